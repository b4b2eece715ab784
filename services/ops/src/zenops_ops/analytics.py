"""The operational overview of a tenant (analytics.read): assignments by status, open and
overdue tasks, channel requests by status, and the notification outbox's failed and dead
rows.

Counts are tenant-wide whoever asks (the capability is a manager's): task visibility rules
do not narrow them. An empty tenant gives zeros, never an error. The notification outbox
does not exist yet (notifications come in a later issue): `outbox_failed` and `outbox_dead`
are 0 until it does, when they become two more branches of store.analytics' one statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from zenops_kit.rls import scoped_tx

from .api.caller import Caller
from .domain.tasks import require_staff
from .store import analytics as store


@dataclass(frozen=True)
class Overview:
    # stored status (e.g. 'UNDER_REVIEW') → count; statuses without rows are absent.
    assignments_by_status: dict[str, int] = field(default_factory=dict)
    open_tasks: int = 0
    overdue_tasks: int = 0
    channel_requests_by_status: dict[str, int] = field(default_factory=dict)
    outbox_failed: int = 0
    outbox_dead: int = 0


async def overview(engine: AsyncEngine, caller: Caller) -> Overview:
    """The caller's tenant's counters (portal users have none: they are the firm's figures)."""
    require_staff(caller.is_portal)
    async with scoped_tx(engine, caller.tenant_id) as conn:
        counts = await store.counts(conn)
    tasks = counts[store.TASKS]
    return Overview(
        assignments_by_status=counts[store.ASSIGNMENTS],
        open_tasks=tasks.get(store.OPEN, 0),
        overdue_tasks=tasks.get(store.OVERDUE_KEY, 0),
        channel_requests_by_status=counts[store.CHANNEL_REQUESTS],
    )
