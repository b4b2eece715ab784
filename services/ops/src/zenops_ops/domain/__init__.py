"""Ops' rules: pure functions and tables (no I/O). Every validator takes the field name the
caller sent, so an error names it."""
