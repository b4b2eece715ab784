"""RPCs of subscriptions, the release gate, usage and reconciliation (a mixin of
BillingServicer; see servicer.py)."""

from __future__ import annotations


class OperationsRpcs:
    """Subscribe/Pause/Resume/Cancel, CreatePlan/ListPlans, RunRefills, AuthorizeRelease,
    RecordUsage, Reconcile."""
