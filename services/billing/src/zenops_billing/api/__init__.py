"""gRPC servicers of the billing service: translate proto ↔ domain, nothing else."""
