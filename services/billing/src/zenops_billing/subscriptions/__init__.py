"""Subscriptions: plans, subscribe/pause/resume/cancel and the refill scheduler."""
