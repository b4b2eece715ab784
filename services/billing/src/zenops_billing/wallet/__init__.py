"""Wallet operations (see operations.py)."""
