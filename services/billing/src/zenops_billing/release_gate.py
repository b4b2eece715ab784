"""AuthorizeRelease, the use case (the rules are domain/release.py).

Runs inside the idempotency transaction: the consume (or reserve + consume), the record
of the decision and the idempotency record commit together. Decisions on one work order
are serialised (advisory lock) and recorded once, so a second call with another key
answers the first decision instead of charging again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from zenops_kit.errors import AlreadyExists, FailedPrecondition

from .domain import release as rules
from .domain.release import GateRequest
from .domain.wallet import (
    INSUFFICIENT_CREDITS,
    POSTPAID,
    RESERVATION_EXISTS,
    RESERVATION_EXPIRED,
    Reservation,
    account_not_found,
)
from .store import accounts as account_store
from .store import invoices as invoice_store
from .store import release as store
from .wallet import operations as wallet


@dataclass(frozen=True)
class GateDecision:
    basis: str
    reservation: Reservation | None


async def authorize(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    req: GateRequest,
    capabilities: frozenset[str],
    actor: str,
    reservation_ttl: timedelta,
    now: datetime | None = None,
) -> GateDecision:
    """`req` validated (domain.release.validate). Allowed → the decision; not → DomainError."""
    await store.lock_work_order(conn, tenant_id, req.work_order_id)
    earlier = await store.decision(conn, req.work_order_id)
    if earlier is not None:
        basis, reservation_id = earlier
        return GateDecision(basis, await wallet.get_reservation(conn, reservation_id) if reservation_id else None)
    account = await wallet.get_account(conn, req.account_id)
    if account is None:
        raise account_not_found(req.account_id)
    reservation = None
    if account.policy == POSTPAID:
        # the invoice holding the work order's line (or its channel request's) is PAID?
        paid, _ = await invoice_store.paid_for_refs(conn, rules.reservation_refs(req))
        basis = rules.postpaid_basis(req, capabilities, invoice_paid=paid)
        if basis == rules.OVERRIDDEN:
            await account_store.append_event(
                conn,
                tenant_id=tenant_id,
                account_id=account.id,
                kind=rules.OVERRIDE_EVENT,
                actor=actor,
                reason=req.override_reason,
                detail={
                    "work_order_id": req.work_order_id,
                    "channel_request_id": req.channel_request_id,
                    "policy": POSTPAID,
                    "waived": "INVOICE_UNPAID",
                },
            )
    else:
        reservation = await _charge(
            conn,
            tenant_id=tenant_id,
            req=req,
            capabilities=capabilities,
            actor=actor,
            expires_at=(now or datetime.now(UTC)) + reservation_ttl,
        )
        basis = rules.credit_basis(reservation.override_reason)
    await store.record(
        conn,
        tenant_id=tenant_id,
        work_order_id=req.work_order_id,
        account_id=account.id,
        channel_request_id=req.channel_request_id,
        basis=basis,
        reservation_id=reservation.id if reservation else None,
        override_reason=req.override_reason if basis == rules.OVERRIDDEN else "",
        actor=actor,
    )
    return GateDecision(basis, reservation)


async def _consume(conn: AsyncConnection, tenant_id: str, reservation_id: str, actor: str) -> Reservation | None:
    """The reservation consumed; None when it turned out to be past its expiry (then it is
    expired now, as the sweep would have, and the caller charges afresh)."""
    try:
        async with conn.begin_nested():
            reservation, _ = await wallet.consume(
                conn, tenant_id=tenant_id, reservation_id=reservation_id, amount=None, actor=actor
            )
        return reservation
    except FailedPrecondition as err:
        if err.reason != RESERVATION_EXPIRED:
            raise
    await wallet.release(
        conn, tenant_id=tenant_id, reservation_id=reservation_id, reason="expired", actor=actor, expired=True
    )
    return None


async def _charge(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    req: GateRequest,
    capabilities: frozenset[str],
    actor: str,
    expires_at: datetime,
) -> Reservation:
    for ref_type, ref_id in rules.reservation_refs(req):
        active = await wallet.active_reservation(conn, account_id=req.account_id, ref_type=ref_type, ref_id=ref_id)
        if active is not None:
            consumed = await _consume(conn, tenant_id, active.id, actor)
            if consumed is not None:
                return consumed
    may = rules.may_override(req, capabilities)
    try:
        async with conn.begin_nested():
            reservation, _ = await wallet.reserve(
                conn,
                tenant_id=tenant_id,
                account_id=req.account_id,
                amount=req.amount,
                ref_type="work_order",
                ref_id=req.work_order_id,
                expires_at=expires_at,
                actor=actor,
                override_reason=req.override_reason if may else "",
                may_override=may,
            )
    except AlreadyExists as err:
        # an acceptance reserved for this work order meanwhile: that is the one to consume
        if err.reason != RESERVATION_EXISTS:
            raise
        reservation_id = err.metadata["reservation_id"]
    except FailedPrecondition as err:
        if err.reason == INSUFFICIENT_CREDITS:
            err.metadata.update(rules.override_note(req, capabilities))
        raise
    else:
        reservation_id = reservation.id
    consumed, _ = await wallet.consume(
        conn, tenant_id=tenant_id, reservation_id=reservation_id, amount=None, actor=actor
    )
    return consumed
