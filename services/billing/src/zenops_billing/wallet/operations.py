"""Wallet operations: THE interface for everything that moves credits (the RPCs, event
reactions, the release gate, refills, reconciliation).

Each function runs inside the caller's transaction `conn`, already scoped to the tenant
(`tenant_tx`, or `set_tenant` in a kit-opened transaction), and raises kit DomainErrors
with the spec's reason codes. The caller commits, so a reaction's inbox row, an
idempotency record or an outbox event commits with the money movement or not at all.

Concurrency: every balance change is an UPDATE of the account's balance row, made while
that row is locked, with the ledger entries (carrying the balances after them) written in
the same statement; operations on one account therefore serialise and none can lose an
update or spend twice. Lock order: reserve and grant lock the balance row first (reserve
decides on `available` under that lock); consume, release and expiry lock the reservation
row first (its state decides), then the balance row. No path locks a reservation while
holding a balance row of another reservation's account, so these orders cannot deadlock;
`idempotent()` retries a transaction PostgreSQL aborts as a deadlock anyway.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops_kit.db import tenant_tx
from zenops_kit.errors import FailedPrecondition

from ..domain import wallet as rules
from ..domain.wallet import (
    CONSUMED,
    EXPIRE,
    EXPIRED,
    RELEASE,
    RELEASED,
    Account,
    LedgerEntry,
    Reservation,
    Wallet,
)
from ..store import accounts as account_store
from ..store import wallet as store

log = logging.getLogger("zenops.billing.wallet")

# A reservation made without expires_at (callers that have the settings pass
# settings.reservation_ttl_seconds explicitly; this is the same default).
DEFAULT_RESERVATION_TTL = timedelta(days=7)
EXPIRY_ACTOR = "system:expiry"
OVERRIDE_EVENT = "CREDITS_OVERRIDE"


def _clean_account_id(account_id: str) -> str:
    if not rules.is_uuid(account_id):
        raise rules.account_not_found(account_id)
    return str(uuid.UUID(account_id))


async def grant(
    conn: AsyncConnection, *, tenant_id: str, account_id: str, amount: int, kind: str, reason: str, actor: str,
    business_ref: str = "", idempotency_key: str = "",
) -> tuple[LedgerEntry, Wallet]:
    """Adds `amount` credits (GRANT | TOPUP | REFILL | ADJUSTMENT) with a reason."""
    rules.check_grant_kind(kind)
    rules.check_amount(amount)
    reason = rules.check_reason(reason)
    account_id = _clean_account_id(account_id)
    result = await store.write_grant(conn, account_id=account_id, kind=kind, amount=amount, reason=reason,
                                     actor=actor, business_ref=business_ref, idempotency_key=idempotency_key)
    if result is None:
        raise rules.account_not_found(account_id)
    return result


async def reserve(
    conn: AsyncConnection, *, tenant_id: str, account_id: str, amount: int, ref_type: str, ref_id: str,
    expires_at: datetime | None, actor: str, override_reason: str = "", may_override: bool = False,
    idempotency_key: str = "",
) -> tuple[Reservation, Wallet]:
    """Moves `amount` from available to reserved for (ref_type, ref_id).

    INSUFFICIENT_CREDITS (metadata requested/available) unless `may_override` and an
    `override_reason`: then the shortfall is an ADJUSTMENT entry and an audited account event;
    an ACTIVE reservation for the ref → AlreadyExists RESERVATION_EXISTS (metadata
    reservation_id); suspended → ACCOUNT_SUSPENDED; unknown → ACCOUNT_NOT_FOUND."""
    rules.check_amount(amount)
    rules.check_ref(ref_type, ref_id)
    override_reason = rules.check_reason(override_reason, "override_reason", required=False)
    account_id = _clean_account_id(account_id)
    account = await store.lock_account(conn, account_id)
    if account is None:
        raise rules.account_not_found(account_id)
    try:
        shortfall = rules.reserve_shortfall(account, amount, may_override=may_override,
                                            override_reason=override_reason)
    except FailedPrecondition as err:
        # An existing reservation for the ref is the better answer (a retried acceptance).
        existing = None
        if err.reason == rules.INSUFFICIENT_CREDITS:
            existing = await store.active_reservation(conn, account_id, ref_type, ref_id)
        if existing is not None:
            raise rules.reservation_exists(existing) from None
        raise
    if expires_at is None:
        expires_at = datetime.now(UTC) + DEFAULT_RESERVATION_TTL
    result = await store.write_reserve(
        conn, tenant_id=tenant_id, account_id=account_id, reservation_id=str(uuid.uuid4()), amount=amount,
        ref_type=ref_type, ref_id=ref_id, expires_at=expires_at, shortfall=shortfall,
        override_reason=override_reason if shortfall else "", actor=actor, business_ref=f"{ref_type}:{ref_id}",
        idempotency_key=idempotency_key,
    )
    if result is None:
        existing = await store.active_reservation(conn, account_id, ref_type, ref_id)
        raise rules.reservation_exists(existing)
    reservation, wallet = result
    if shortfall:
        await account_store.append_event(
            conn, tenant_id=tenant_id, account_id=account_id, kind=OVERRIDE_EVENT, actor=actor,
            reason=override_reason,
            detail={"reservation_id": reservation.id, "amount": amount, "shortfall": shortfall,
                    "available_before": account.wallet.available, "ref": f"{ref_type}:{ref_id}"},
        )
    return reservation, wallet


async def _locked_active(conn: AsyncConnection, reservation_id: str, *, expiring: bool) -> tuple[Reservation, datetime]:
    if not rules.is_uuid(reservation_id):
        raise rules.reservation_not_found(reservation_id)
    found = await store.lock_reservation(conn, reservation_id)
    if found is None:
        raise rules.reservation_not_found(reservation_id)
    reservation, now = found
    # Expiring a reservation is allowed past its expires_at (that is the point).
    rules.check_settle(reservation, now=now, expiring=expiring)
    return reservation, now


async def consume(
    conn: AsyncConnection, *, tenant_id: str, reservation_id: str, amount: int | None, actor: str,
    idempotency_key: str = "",
) -> tuple[Reservation, Wallet]:
    """Moves the reservation's credits to consumed: all of them (`amount` None or 0) or
    `amount`, the remainder released in the same transaction (CONSUME + RELEASE entries).
    RESERVATION_ALREADY_CONSUMED | _RELEASED | RESERVATION_EXPIRED, EXCEEDS_RESERVED_AMOUNT,
    RESERVATION_NOT_FOUND."""
    reservation, _ = await _locked_active(conn, reservation_id, expiring=False)
    consumed, remainder = rules.consume_split(reservation, amount)
    return await store.write_settle(conn, reservation=reservation, status=CONSUMED, consumed=consumed,
                                    returned_kind=RELEASE, returned=remainder, actor=actor, reason="",
                                    idempotency_key=idempotency_key)


async def release(
    conn: AsyncConnection, *, tenant_id: str, reservation_id: str, reason: str, actor: str, expired: bool = False,
    idempotency_key: str = "",
) -> tuple[Reservation, Wallet]:
    """Returns the reservation's credits to available: RELEASED (a RELEASE entry), or with
    `expired` EXPIRED (an EXPIRE entry; allowed past expires_at, which a plain release is not:
    RESERVATION_EXPIRED)."""
    reason = rules.check_reason(reason)
    reservation, _ = await _locked_active(conn, reservation_id, expiring=expired)
    return await store.write_settle(
        conn, reservation=reservation, status=EXPIRED if expired else RELEASED, consumed=0,
        returned_kind=EXPIRE if expired else RELEASE, returned=reservation.amount, actor=actor, reason=reason,
        idempotency_key=idempotency_key,
    )


async def active_reservation(conn: AsyncConnection, *, account_id: str, ref_type: str, ref_id: str
                             ) -> Reservation | None:
    if not rules.is_uuid(account_id):
        return None
    return await store.active_reservation(conn, account_id, ref_type, ref_id)


async def get_account(conn: AsyncConnection, account_id: str) -> Account | None:
    """The account with its wallet (None when unknown or not a UUID)."""
    if not rules.is_uuid(account_id):
        return None
    return await account_store.get(conn, account_id)


async def get_reservation(conn: AsyncConnection, reservation_id: str) -> Reservation | None:
    if not rules.is_uuid(reservation_id):
        return None
    return await store.get_reservation(conn, reservation_id)


async def check_invariants(conn: AsyncConnection, account_ids: list[str] | None = None) -> list[str]:
    """Every violation of the wallet invariants in the transaction's tenant (empty = healthy):
    balance rows equal their ledger sums and their last entry's balances; reserved equals the
    ACTIVE reservations; available ≥ -override allowance; each reservation's ledger entries
    match its state."""
    ids = None if account_ids is None else [str(uuid.UUID(a)) for a in account_ids]
    violations: list[str] = []
    for row in await store.invariant_rows(conn, ids):
        wallet = Wallet(row.granted, row.consumed, row.reserved, row.overdraft)
        last = None if row.l_granted is None else Wallet(row.l_granted, row.l_consumed, row.l_reserved,
                                                          row.l_overdraft)
        violations += rules.wallet_violations(row.account_id, wallet, row.entries, store.sums_of(row),
                                              int(row.active), last)
    for row in await store.reservation_ledger_rows(conn, ids):
        problem = rules.reservation_violation(row.id, row.status, row.amount, row.consumed_amount, row.reserve,
                                              row.consume, row.release, row.expire)
        if problem:
            violations.append(problem)
        if row.adjustment != row.shortfall:
            violations.append(f"reservation {row.id}: override shortfall {row.shortfall} but ADJUSTMENT entries "
                              f"sum to {row.adjustment}")
    return violations


async def expire_due(engine: AsyncEngine, tenant_id: str | None = None, *, now: datetime | None = None,
                     limit: int = 10_000) -> int:
    """The expiry sweep: every ACTIVE reservation past its expires_at becomes EXPIRED (an
    EXPIRE entry returns its credits), earliest first, one transaction each. A reservation
    another transaction holds (a consume or release in flight) is skipped; whoever holds it
    decides its one final state. `tenant_id` None: every tenant with billing data. Returns
    how many expired (at most `limit`)."""
    if tenant_id is None:
        async with engine.connect() as conn:
            tenants = await account_store.tenant_ids(conn)
    else:
        tenants = [tenant_id]
    expired = 0
    for tenant in tenants:
        while expired < limit:
            async with tenant_tx(engine, tenant) as conn:
                found = await store.due_reservation(conn, now or datetime.now(UTC))
                if found is None:
                    break
                reservation, _ = found
                await store.write_settle(conn, reservation=reservation, status=EXPIRED, consumed=0,
                                         returned_kind=EXPIRE, returned=reservation.amount, actor=EXPIRY_ACTOR,
                                         reason="expired", idempotency_key="")
            expired += 1
    if expired:
        log.info("reservations expired", extra={"count": expired})
    return expired
