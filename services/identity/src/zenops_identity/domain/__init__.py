"""Domain rules of the identity service: pure data and functions, no I/O."""
