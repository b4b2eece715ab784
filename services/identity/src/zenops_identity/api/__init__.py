"""gRPC servicers of the identity service: translate proto ↔ domain, nothing else."""
