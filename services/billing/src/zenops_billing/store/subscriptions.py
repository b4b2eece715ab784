"""SQL of plans, subscriptions and refills (every call runs in the caller's tenant transaction)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.subscriptions import Plan, PlanSpec, Subscription

_PLAN_COLS = "id::text, tenant_id::text, code, name, credits_per_period, period, price_paise, active, created_at"
_SUB_COLS = (
    "id::text, tenant_id::text, account_id::text, plan_id::text, status, anchor_at, next_period, "
    "next_refill_at, created_at, updated_at, paused_at, cancelled_at"
)


def _plan(row) -> Plan:
    return Plan(*row)


def _sub(row) -> Subscription:
    return Subscription(*row)


async def insert_plan(conn: AsyncConnection, *, tenant_id: str, spec: PlanSpec) -> Plan | None:
    """None when the code is taken (no exception: the transaction stays usable)."""
    row = (
        await conn.execute(
            text(
                f"INSERT INTO plans (id, tenant_id, code, name, credits_per_period, period, price_paise) "
                f"VALUES (:id, :t, :code, :name, :credits, :period, :price) ON CONFLICT (tenant_id, code) DO NOTHING "
                f"RETURNING {_PLAN_COLS}"
            ),
            {
                "id": uuid.uuid4(),
                "t": tenant_id,
                "code": spec.code,
                "name": spec.name,
                "credits": spec.credits_per_period,
                "period": spec.period,
                "price": spec.price_paise,
            },
        )
    ).first()
    return _plan(row) if row else None


async def list_plans(conn: AsyncConnection, *, include_inactive: bool) -> list[Plan]:
    where = "" if include_inactive else "WHERE active"
    rows = await conn.execute(text(f"SELECT {_PLAN_COLS} FROM plans {where} ORDER BY code"))
    return [_plan(r) for r in rows]


async def get_plan(conn: AsyncConnection, plan_id: str) -> Plan | None:
    row = (await conn.execute(text(f"SELECT {_PLAN_COLS} FROM plans WHERE id = :id"), {"id": plan_id})).first()
    return _plan(row) if row else None


async def insert_subscription(
    conn: AsyncConnection, *, tenant_id: str, account_id: str, plan_id: str, anchor_at: datetime
) -> Subscription | None:
    """A new ACTIVE subscription; None when the account already has a live one on this plan."""
    row = (
        await conn.execute(
            text(
                f"INSERT INTO subscriptions (id, tenant_id, account_id, plan_id, status, anchor_at, next_period, "
                f"next_refill_at) VALUES (:id, :t, :a, :p, 'ACTIVE', :anchor, 0, :anchor) "
                f"ON CONFLICT (tenant_id, account_id, plan_id) WHERE status <> 'CANCELLED' DO NOTHING "
                f"RETURNING {_SUB_COLS}"
            ),
            {"id": uuid.uuid4(), "t": tenant_id, "a": account_id, "p": plan_id, "anchor": anchor_at},
        )
    ).first()
    return _sub(row) if row else None


async def get_subscription(
    conn: AsyncConnection, subscription_id: str, *, lock: bool = False, skip_locked: bool = False
) -> Subscription | None:
    suffix = ""
    if lock:
        suffix = " FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"
    row = (
        await conn.execute(
            text(f"SELECT {_SUB_COLS} FROM subscriptions WHERE id = :id{suffix}"), {"id": subscription_id}
        )
    ).first()
    return _sub(row) if row else None


async def live_subscription(conn: AsyncConnection, *, account_id: str, plan_id: str) -> Subscription | None:
    row = (
        await conn.execute(
            text(
                f"SELECT {_SUB_COLS} FROM subscriptions WHERE account_id = :a AND plan_id = :p AND status <> 'CANCELLED'"
            ),
            {"a": account_id, "p": plan_id},
        )
    ).first()
    return _sub(row) if row else None


async def save_subscription(conn: AsyncConnection, sub: Subscription) -> Subscription:
    row = (
        await conn.execute(
            text(
                f"UPDATE subscriptions SET status = :status, next_period = :next_period, next_refill_at = :next_refill_at, "
                f"paused_at = :paused_at, cancelled_at = :cancelled_at, updated_at = now() WHERE id = :id "
                f"RETURNING {_SUB_COLS}"
            ),
            {
                "id": sub.id,
                "status": sub.status,
                "next_period": sub.next_period,
                "next_refill_at": sub.next_refill_at,
                "paused_at": sub.paused_at,
                "cancelled_at": sub.cancelled_at,
            },
        )
    ).one()
    return _sub(row)


async def due_subscription_ids(conn: AsyncConnection, *, now: datetime, after: str | None, limit: int) -> list[str]:
    """ACTIVE subscriptions with a refill due by `now`, in id order after `after` (keyset)."""
    rows = await conn.execute(
        text(
            "SELECT id::text FROM subscriptions WHERE status = 'ACTIVE' AND next_refill_at <= :now "
            "AND (CAST(:after AS uuid) IS NULL OR id > CAST(:after AS uuid)) ORDER BY id LIMIT :limit"
        ),
        {"now": now, "after": after, "limit": limit},
    )
    return [r[0] for r in rows]


async def claim_refill(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    subscription_id: str,
    period_start: datetime,
    period_index: int,
    amount: int,
) -> bool:
    """The exactly-once guard: False when this period's refill row exists already."""
    row = (
        await conn.execute(
            text(
                "INSERT INTO refills (tenant_id, subscription_id, period_start, period_index, amount) "
                "VALUES (:t, :s, :start, :n, :amount) ON CONFLICT DO NOTHING RETURNING 1"
            ),
            {"t": tenant_id, "s": subscription_id, "start": period_start, "n": period_index, "amount": amount},
        )
    ).first()
    return row is not None


async def record_refill_entry(
    conn: AsyncConnection, *, subscription_id: str, period_start: datetime, ledger_entry_id: str
) -> None:
    await conn.execute(
        text("UPDATE refills SET ledger_entry_id = :e WHERE subscription_id = :s AND period_start = :start"),
        {"e": ledger_entry_id, "s": subscription_id, "start": period_start},
    )
