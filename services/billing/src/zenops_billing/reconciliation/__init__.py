"""Reconciliation of stale reservations with the services that own their refs."""
