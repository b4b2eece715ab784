"""ZenOps HTTP gateway: HTTP/JSON in front of the gRPC services (owns no domain data)."""
