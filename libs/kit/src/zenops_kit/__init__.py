"""ZenOps shared kit: the few mechanisms every service needs (nothing domain-specific)."""
