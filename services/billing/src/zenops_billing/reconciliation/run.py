"""Reconcile: resolve stale ACTIVE reservations with their owners, then check the wallet.

Scan (oldest first, `limit`) → ask each ref's owner, outside any transaction (no lock is
held while another service answers) → apply each decision in its own transaction through
the wallet operations, which lock the balance and reservation rows: a consume or release
racing us on the same reservation ends in exactly one final state, and we report ours as
"settled meanwhile". A second run right after finds nothing left to change. `dry_run`
reports the plan and changes nothing. Every run ends with the invariant check.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from zenops_kit.db import system_tx, tenant_tx
from zenops_kit.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound

from ..domain import reconciliation as rules
from ..store import accounts as accounts_store
from ..store import reconciliation as store
from ..wallet import operations as wallet
from .owners import RefOwners

log = logging.getLogger("zenops.billing.reconciliation")

SCHEDULE_ACTOR = "service:billing/reconciliation"
# Owners asked at once (each call has its own deadline).
CONCURRENCY = 8


@dataclass(frozen=True)
class Action:
    reservation_id: str
    ref_type: str
    ref_id: str
    action: str
    reason: str


@dataclass
class Report:
    dry_run: bool
    actions: list[Action] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for a in self.actions if a.action == action)


def check_limit(limit: int) -> int:
    if limit == 0:
        return rules.DEFAULT_LIMIT
    if not 0 < limit <= rules.MAX_LIMIT:
        raise InvalidArgument(
            "invalid limit",
            violations=[
                FieldViolation("limit", f"must be between 1 and {rules.MAX_LIMIT} (0 means {rules.DEFAULT_LIMIT})")
            ],
        )
    return limit


async def _apply(
    engine: AsyncEngine, tenant_id: str, r: store.StaleReservation, decision: rules.Decision, actor: str
) -> rules.Decision:
    try:
        async with tenant_tx(engine, tenant_id) as conn:
            if decision.action == rules.CONSUME:
                await wallet.consume(conn, tenant_id=tenant_id, reservation_id=r.id, amount=None, actor=actor)
            else:
                await wallet.release(
                    conn,
                    tenant_id=tenant_id,
                    reservation_id=r.id,
                    reason=f"reconciliation: {decision.reason}",
                    actor=actor,
                )
    except (FailedPrecondition, NotFound) as err:
        return rules.not_applied(err.reason)
    return decision


async def reconcile(
    engine: AsyncEngine,
    owners: RefOwners,
    *,
    tenant_id: str,
    dry_run: bool,
    limit: int,
    threshold_seconds: int,
    actor: str,
    now: datetime | None = None,
) -> Report:
    now = now or datetime.now(UTC)
    async with tenant_tx(engine, tenant_id) as conn:
        stale = await store.stale_reservations(
            conn, created_before=now - timedelta(seconds=threshold_seconds), limit=limit
        )
    gate = asyncio.Semaphore(CONCURRENCY)

    async def ask(r: store.StaleReservation):
        async with gate:
            return await owners.state(tenant_id=tenant_id, ref_type=r.ref_type, ref_id=r.ref_id)

    answers = await asyncio.gather(*(ask(r) for r in stale))
    report = Report(dry_run=dry_run)
    for r, answer in zip(stale, answers, strict=True):
        decision = rules.decide(answer)
        if not dry_run and decision.action != rules.LEAVE:
            decision = await _apply(engine, tenant_id, r, decision, actor)
        report.actions.append(Action(r.id, r.ref_type, r.ref_id, decision.action, decision.reason))
    async with tenant_tx(engine, tenant_id) as conn:
        report.violations = await wallet.check_invariants(conn)
    return report


async def reconcile_all(
    engine: AsyncEngine, owners: RefOwners, *, limit: int, threshold_seconds: int, now: datetime | None = None
) -> dict[str, Report]:
    """The scheduled run: every tenant with billing data, `limit` reservations each."""
    async with system_tx(engine) as conn:
        tenant_ids = await accounts_store.tenant_ids(conn)
    reports = {}
    for tenant_id in tenant_ids:
        report = await reconcile(
            engine,
            owners,
            tenant_id=tenant_id,
            dry_run=False,
            limit=limit,
            threshold_seconds=threshold_seconds,
            actor=SCHEDULE_ACTOR,
            now=now,
        )
        reports[tenant_id] = report
        left = [a for a in report.actions if a.action == rules.LEAVE]
        if report.actions:
            log.info(
                "reconciliation run",
                extra={
                    "tenant_id": tenant_id,
                    "consumed": report.count(rules.CONSUME),
                    "released": report.count(rules.RELEASE),
                    "left": len(left),
                    "left_reasons": sorted({a.reason for a in left}),
                },
            )
        if report.violations:
            log.error("wallet invariant violations", extra={"tenant_id": tenant_id, "violations": report.violations})
    return reports
