"""Network layer: framed TLS 1.3 transport and sealed records, certificates, cluster
configuration, per-job links between servers, the hardened accept loop, and the pipe
adapter the OT protocols run over."""
