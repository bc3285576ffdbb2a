"""Programs and the op contract: a Program is a graph of ops over named shared tensors
(built by the client, revalidated by every server); the op registry and the Context an op
may use while it runs."""
