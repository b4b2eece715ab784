"""Use cases of plans and subscriptions (the servicer translates, these decide and store)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops_kit.db import tenant_tx
from zenops_kit.errors import AlreadyExists, FailedPrecondition, FieldViolation, InvalidArgument, NotFound

from ..domain import subscriptions as rules
from ..domain.subscriptions import Plan, PlanSpec, Subscription
from ..domain.wallet import ACCOUNT_ACTIVE, account_not_found, is_uuid
from ..store import subscriptions as store
from ..wallet import operations as wallet
from .refills import catch_up

# A start this far in the past is clock skew, not a backdated subscription (which would
# grant every period since).
START_SKEW = timedelta(minutes=5)
MAX_START_AHEAD = timedelta(days=366)


def now() -> datetime:
    return datetime.now(UTC)


async def create_plan(engine: AsyncEngine, *, tenant_id: str, spec: PlanSpec) -> Plan:
    spec = dataclasses.replace(spec, code=spec.code.strip(), name=spec.name.strip(), period=spec.period.strip())
    rules.validate_plan(spec)
    async with tenant_tx(engine, tenant_id) as conn:
        plan = await store.insert_plan(conn, tenant_id=tenant_id, spec=spec)
    if plan is None:
        raise AlreadyExists(
            f"a plan with code {spec.code!r} exists",
            reason="PLAN_CODE_EXISTS",
            violations=[FieldViolation("code", "is already used by another plan")],
            metadata={"code": spec.code},
        )
    return plan


async def list_plans(engine: AsyncEngine, *, tenant_id: str, include_inactive: bool) -> list[Plan]:
    async with tenant_tx(engine, tenant_id) as conn:
        return await store.list_plans(conn, include_inactive=include_inactive)


def _check_ids(**ids: str) -> None:
    bad = [FieldViolation(name, "must be a UUID") for name, value in ids.items() if not is_uuid(value)]
    if bad:
        raise InvalidArgument("invalid request", violations=bad)


def check_subscribe(account_id: str, plan_id: str, start_at: datetime | None, now: datetime) -> datetime:
    """Validates the request; returns the anchor (start_at, default now)."""
    _check_ids(account_id=account_id, plan_id=plan_id)
    anchor = now if start_at is None else rules.utc(start_at)
    if anchor < now - START_SKEW:
        raise InvalidArgument(
            "start_at is in the past", violations=[FieldViolation("start_at", "must not be in the past (default: now)")]
        )
    if anchor > now + MAX_START_AHEAD:
        raise InvalidArgument(
            "start_at is too far ahead", violations=[FieldViolation("start_at", "must be within a year from now")]
        )
    return anchor


async def subscribe(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    account_id: str,
    plan_id: str,
    anchor: datetime,
    actor: str,
    now: datetime | None = None,
) -> tuple[Subscription, Plan]:
    """In the caller's (idempotency) transaction: the new subscription, its first refill
    granted when the start has come."""
    now = now or datetime.now(UTC)
    account = await wallet.get_account(conn, account_id)
    if account is None:
        raise account_not_found(account_id)
    if account.status != ACCOUNT_ACTIVE:
        raise FailedPrecondition(
            "the billing account is suspended", reason="ACCOUNT_SUSPENDED", metadata={"account_id": account_id}
        )
    plan = await store.get_plan(conn, plan_id)
    if plan is None:
        raise NotFound("no such plan", reason="PLAN_NOT_FOUND", metadata={"plan_id": plan_id})
    if not plan.active:
        raise FailedPrecondition("the plan is not active", reason="PLAN_INACTIVE", metadata={"plan_id": plan_id})
    sub = await store.insert_subscription(
        conn, tenant_id=tenant_id, account_id=account_id, plan_id=plan_id, anchor_at=anchor
    )
    if sub is None:
        existing = await store.live_subscription(conn, account_id=account_id, plan_id=plan_id)
        raise AlreadyExists(
            "the account already has a live subscription to this plan",
            reason="SUBSCRIPTION_EXISTS",
            metadata={"subscription_id": existing.id if existing else ""},
        )
    sub, granted = await catch_up(conn, sub, plan, until=now, actor=actor)
    if granted:
        sub = await store.save_subscription(conn, sub)
    return sub, plan


async def _locked(conn: AsyncConnection, subscription_id: str) -> tuple[Subscription, Plan]:
    _check_ids(id=subscription_id)
    sub = await store.get_subscription(conn, subscription_id, lock=True)
    if sub is None:
        raise NotFound(
            "no such subscription", reason="SUBSCRIPTION_NOT_FOUND", metadata={"subscription_id": subscription_id}
        )
    plan = await store.get_plan(conn, sub.plan_id)
    assert plan is not None  # foreign key
    return sub, plan


async def change(
    engine: AsyncEngine, *, tenant_id: str, subscription_id: str, action: str, actor: str, now: datetime | None = None
) -> Subscription:
    """Pause, resume or cancel (a repeated request answers the subscription as it is).

    Pause stops refills from then on. Resume first grants what was due before the pause
    (had the scheduler not got to it yet), skips periods that started while paused and
    goes on from the first period starting at or after now. Cancel is final; it grants
    what was already due first (the scheduler may not have run yet)."""
    now = now or datetime.now(UTC)
    async with tenant_tx(engine, tenant_id) as conn:
        sub, plan = await _locked(conn, subscription_id)
        target = rules.transition(sub.status, action)
        if target is None:
            return sub
        if action == rules.PAUSE:
            sub = dataclasses.replace(sub, status=rules.PAUSED, paused_at=now, next_refill_at=None)
        elif action == rules.RESUME:
            sub, _ = await catch_up(conn, sub, plan, until=sub.paused_at, actor=actor)
            nxt = max(sub.next_period, rules.first_period_from(sub.anchor_at, now))
            sub = dataclasses.replace(
                sub,
                status=rules.ACTIVE,
                paused_at=None,
                next_period=nxt,
                next_refill_at=rules.period_start(sub.anchor_at, nxt),
            )
            sub, _ = await catch_up(conn, sub, plan, until=now, actor=actor)
        else:
            sub, _ = await catch_up(conn, sub, plan, until=rules.due_until(sub.status, now, sub.paused_at), actor=actor)
            sub = dataclasses.replace(sub, status=rules.CANCELLED, cancelled_at=now, next_refill_at=None)
        return await store.save_subscription(conn, sub)
