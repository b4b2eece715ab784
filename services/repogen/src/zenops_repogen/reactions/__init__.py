"""Repogen's reactions to other services' events (kit consumers: one transaction with the
inbox row per event, so a redelivery has no second effect)."""

from .handlers import OPS_CONSUMER, Reactions, subscriptions

__all__ = ["OPS_CONSUMER", "Reactions", "subscriptions"]
