"""ZenOps billing service."""
