"""Ops' reactions to other services' events (kit consumers: one transaction with the inbox
row per event, so a redelivery has no second effect)."""

from .handlers import Reactions, subscriptions

__all__ = ["Reactions", "subscriptions"]
