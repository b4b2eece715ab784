"""Granting one subscription's due refills: the exactly-once step both the scheduler and
the subscription use cases run.

Each period is granted in the caller's transaction together with its `refills` row
(INSERT ... ON CONFLICT DO NOTHING): the row exists iff the REFILL ledger entry does, so a
concurrent scheduler, a rerun or a retry after a crash can never grant it a second time,
and `next_period` advances only in that same transaction, so no period is ever skipped.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain import subscriptions as rules
from ..domain.subscriptions import Plan, Subscription
from ..domain.wallet import REFILL
from ..store import subscriptions as store
from ..wallet import operations as wallet

log = logging.getLogger("zenops.billing.refills")

SCHEDULER_ACTOR = "service:billing/refills"


async def grant_period(conn: AsyncConnection, sub: Subscription, plan: Plan, *, actor: str) -> Subscription:
    """Grant `sub.next_period` (if no refill row exists for it yet) and advance the pointer."""
    n = sub.next_period
    start = rules.period_start(sub.anchor_at, n)
    if await store.claim_refill(
        conn,
        tenant_id=sub.tenant_id,
        subscription_id=sub.id,
        period_start=start,
        period_index=n,
        amount=plan.credits_per_period,
    ):
        entry, _ = await wallet.grant(
            conn,
            tenant_id=sub.tenant_id,
            account_id=sub.account_id,
            amount=plan.credits_per_period,
            kind=REFILL,
            reason=f"plan {plan.code}: period {n + 1} from {start:%Y-%m-%d}",
            actor=actor,
            business_ref=rules.refill_ref(sub.id, start),
        )
        await store.record_refill_entry(conn, subscription_id=sub.id, period_start=start, ledger_entry_id=entry.id)
    else:  # pragma: no cover - the row lock on the subscription makes this a belt-and-braces path
        log.warning("refill row exists already; not granted again", extra={"subscription_id": sub.id, "period": n})
    nxt = n + 1
    return dataclasses.replace(
        sub,
        next_period=nxt,
        next_refill_at=(rules.period_start(sub.anchor_at, nxt) if sub.status == rules.ACTIVE else sub.next_refill_at),
    )


async def catch_up(
    conn: AsyncConnection, sub: Subscription, plan: Plan, *, until: datetime | None, actor: str
) -> tuple[Subscription, int]:
    """Grant every period started by `until` that is not granted yet, all in `conn`'s
    transaction (the caller holds the subscription's row lock and saves it)."""
    granted = 0
    if until is None:
        return sub, 0
    for _ in rules.due_periods(sub.anchor_at, sub.next_period, until):
        sub = await grant_period(conn, sub, plan, actor=actor)
        granted += 1
    return sub, granted
