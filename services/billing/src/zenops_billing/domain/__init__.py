"""Domain rules of billing: pure functions and value types, no I/O."""
