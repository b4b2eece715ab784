"""ZenOps repogen service."""
