"""gRPC servicers of the ops service: translate proto ↔ domain, nothing else."""
