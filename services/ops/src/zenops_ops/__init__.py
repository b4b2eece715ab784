"""ZenOps ops service."""
