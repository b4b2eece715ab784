"""The refill scheduler: grants every due period's REFILL exactly once.

One transaction per (subscription, period): lock the subscription row (SKIP LOCKED: a
subscription another scheduler is working on is left to it), insert the period's
`refills` row, grant, advance `next_period`, commit. Killed anywhere, a run leaves every
period either fully granted (row + ledger entry + pointer) or not at all; the next run
continues where it stopped. Missed periods (the scheduler was down) are caught up one by
one, oldest first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from zenops_kit.db import system_tx, tenant_tx
from zenops_kit.errors import DomainError

from ..domain import subscriptions as rules
from ..store import accounts as accounts_store
from ..store import subscriptions as store
from .refills import SCHEDULER_ACTOR, grant_period

log = logging.getLogger("zenops.billing.scheduler")

SCAN_BATCH = 500


@dataclass
class RefillRun:
    granted: int = 0
    # Subscriptions whose grant failed (e.g. a suspended account): retried next run.
    failed: list[str] = field(default_factory=list)


async def refill_subscription(
    engine: AsyncEngine, tenant_id: str, subscription_id: str, *, now: datetime, run: RefillRun
) -> None:
    while True:
        async with tenant_tx(engine, tenant_id) as conn:
            sub = await store.get_subscription(conn, subscription_id, lock=True, skip_locked=True)
            if sub is None or sub.status != rules.ACTIVE or sub.next_refill_at is None or sub.next_refill_at > now:
                return  # locked by another scheduler (it catches up), or nothing due
            plan = await store.get_plan(conn, sub.plan_id)
            try:
                sub = await grant_period(conn, sub, plan, actor=SCHEDULER_ACTOR)
            except DomainError as err:
                # rolled back with the transaction; the period stays due for the next run
                log.warning(
                    "refill not granted",
                    extra={"subscription_id": subscription_id, "period": sub.next_period, "reason": err.reason},
                )
                run.failed.append(subscription_id)
                raise _Skip from err
            await store.save_subscription(conn, sub)
        run.granted += 1


class _Skip(Exception):
    """Ends one subscription's catch-up (its transaction rolls back)."""


async def run_tenant(engine: AsyncEngine, tenant_id: str, *, now: datetime, run: RefillRun) -> None:
    after: str | None = None
    while True:
        async with tenant_tx(engine, tenant_id) as conn:
            ids = await store.due_subscription_ids(conn, now=now, after=after, limit=SCAN_BATCH)
        for subscription_id in ids:
            try:
                await refill_subscription(engine, tenant_id, subscription_id, now=now, run=run)
            except _Skip:
                pass
        if len(ids) < SCAN_BATCH:
            return
        after = ids[-1]


async def run_refills(
    engine: AsyncEngine, *, now: datetime | None = None, tenant_ids: list[str] | None = None
) -> RefillRun:
    """Grant every refill due by `now` (default: the current time) for `tenant_ids`
    (default: every tenant with a billing account)."""
    now = now or datetime.now(UTC)
    if tenant_ids is None:
        async with system_tx(engine) as conn:
            tenant_ids = await accounts_store.tenant_ids(conn)
    run = RefillRun()
    for tenant_id in tenant_ids:
        await run_tenant(engine, tenant_id, now=now, run=run)
    return run
