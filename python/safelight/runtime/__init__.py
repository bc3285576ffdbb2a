"""Runtime: certificates, configuration, TLS transport, programs, servers, clusters."""
