"""gRPC servicers of the repogen service: translate proto ↔ domain, nothing else."""
