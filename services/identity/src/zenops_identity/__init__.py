"""ZenOps identity service."""
