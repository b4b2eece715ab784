"""Embedded real infrastructure for local runs and tests (no Docker, nothing to install by hand)."""
