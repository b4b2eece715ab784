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
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops_kit.db import tenant_tx
from zenops_kit.errors import DomainError

from ..domain import wallet as rules
from ..domain.accounts import Account
from ..domain.wallet import (
    ACTIVE,
    ADJUSTMENT,
    CONSUMED,
    EXPIRE,
    EXPIRED,
    RELEASE,
    RELEASED,
    RESERVE,
    LedgerEntry,
    Reservation,
    Wallet,
)
from ..store import accounts as account_store
from ..store import wallet as store
from ..store.wallet import Claim

log = logging.getLogger("zenops.billing.wallet")

# A reservation made without expires_at (callers that have the settings pass
# settings.reservation_ttl_seconds explicitly; this is the same default).
DEFAULT_RESERVATION_TTL = timedelta(days=7)
EXPIRY_ACTOR = "system:expiry"
OVERRIDE_EVENT = "CREDITS_OVERRIDE"
PARTIAL_REMAINDER = "remainder of a partial consume"


class KeyTaken(Exception):
    """The idempotency key given as `claim` was recorded by an earlier (or concurrent) request:
    the caller must roll this transaction back and replay the recorded result."""


def _clean_account_id(account_id: str) -> str:
    if not rules.is_uuid(account_id):
        raise rules.account_not_found(account_id)
    return str(uuid.UUID(account_id))


def _tenant_for(conn, tenant_id: str) -> str | None:
    """The tenant the database function scopes itself to: an asyncpg connection in
    autocommit (the credit RPCs) is scoped by the call itself; a SQLAlchemy transaction the
    caller opened is scoped already (and keeps its own tenant)."""
    return None if isinstance(conn, AsyncConnection) else tenant_id


def refusal(outcome: str, detail: dict) -> DomainError:
    """The DomainError of a wallet operation the database refused (first time, and when a
    retry with its idempotency key replays it: the same error from the same figures)."""
    d = detail or {}
    if outcome == rules.ACCOUNT_NOT_FOUND:
        return rules.account_not_found(str(d.get("account_id", "")))
    if outcome == rules.RESERVATION_EXISTS:
        return rules.reservation_exists(str(d["reservation_id"]), d["ref_type"], d["ref_id"])
    if outcome == rules.ACCOUNT_SUSPENDED:
        return rules.account_suspended(str(d["account_id"]))
    if outcome == rules.INSUFFICIENT_CREDITS:
        return rules.insufficient_credits(int(d["requested"]), int(d["available"]))
    if outcome == rules.RESERVATION_NOT_FOUND:
        return rules.reservation_not_found(str(d["reservation_id"]))
    if outcome == rules.EXCEEDS_RESERVED_AMOUNT:
        return rules.exceeds_reserved(str(d["reservation_id"]), int(d["requested"]), int(d["reserved"]))
    expires_at = datetime.fromisoformat(d["expires_at"]) if d.get("expires_at") else None
    return rules.settle_refused(outcome, str(d.get("reservation_id", "")), expires_at)


def _done(written: store.Written, claim: Claim | None) -> store.Written:
    if written.outcome == "KEY_TAKEN":
        raise KeyTaken()
    if written.outcome != "OK":
        err = refusal(written.outcome, written.detail)
        # The database recorded it under the key already (the same transaction).
        err.recorded = claim is not None
        raise err
    return written


async def grant(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    account_id: str,
    amount: int,
    kind: str,
    reason: str,
    actor: str,
    business_ref: str = "",
    idempotency_key: str = "",
    claim: Claim | None = None,
) -> tuple[LedgerEntry, Wallet]:
    """Adds `amount` credits (GRANT | TOPUP | REFILL | ADJUSTMENT) with a reason."""
    rules.check_grant_kind(kind)
    rules.check_amount(amount)
    reason = rules.check_reason(reason)
    account_id = _clean_account_id(account_id)
    written = _done(
        await store.write_grant(
            conn,
            tenant_id=_tenant_for(conn, tenant_id),
            account_id=account_id,
            kind=kind,
            amount=amount,
            reason=reason,
            actor=actor,
            business_ref=business_ref,
            idempotency_key=idempotency_key,
            claim=claim,
        ),
        claim,
    )
    return written.entries[0], written.wallet


async def reserve(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    account_id: str,
    amount: int,
    ref_type: str,
    ref_id: str,
    expires_at: datetime | None,
    actor: str,
    override_reason: str = "",
    may_override: bool = False,
    idempotency_key: str = "",
    claim: Claim | None = None,
) -> tuple[Reservation, Wallet]:
    """Moves `amount` from available to reserved for (ref_type, ref_id).

    An ACTIVE reservation for the ref → AlreadyExists RESERVATION_EXISTS (metadata
    reservation_id); suspended → ACCOUNT_SUSPENDED; unknown → ACCOUNT_NOT_FOUND; beyond
    available → INSUFFICIENT_CREDITS (metadata requested/available) unless `may_override`
    with an `override_reason`: then the shortfall is an ADJUSTMENT entry and an audited
    account event (CREDITS_OVERRIDE). Decided under the balance-row lock."""
    rules.check_amount(amount)
    rules.check_ref(ref_type, ref_id)
    override_reason = rules.check_reason(override_reason, "override_reason", required=False)
    account_id = _clean_account_id(account_id)
    if expires_at is None:
        expires_at = datetime.now(UTC) + DEFAULT_RESERVATION_TTL
    written = _done(
        await store.write_reserve(
            conn,
            tenant_id=_tenant_for(conn, tenant_id),
            account_id=account_id,
            reservation_id=str(uuid.uuid4()),
            amount=amount,
            ref_type=ref_type,
            ref_id=ref_id,
            expires_at=expires_at,
            may_override=may_override and bool(override_reason),
            override_reason=override_reason,
            actor=actor,
            business_ref=f"{ref_type}:{ref_id}",
            idempotency_key=idempotency_key,
            claim=claim,
        ),
        claim,
    )
    return written.reservation, written.wallet


async def consume(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    reservation_id: str,
    amount: int | None,
    actor: str,
    idempotency_key: str = "",
    claim: Claim | None = None,
) -> tuple[Reservation, Wallet]:
    """Moves the reservation's credits to consumed: all of them (`amount` None or 0) or
    `amount`, the remainder released in the same transaction (CONSUME + RELEASE entries).
    RESERVATION_ALREADY_CONSUMED | _RELEASED | RESERVATION_EXPIRED, EXCEEDS_RESERVED_AMOUNT,
    RESERVATION_NOT_FOUND."""
    if amount is not None and amount < 0:
        raise rules.invalid("amount", "must be > 0 (or 0 for the whole reservation)")
    if not rules.is_uuid(reservation_id):
        raise rules.reservation_not_found(reservation_id)
    written = _done(
        await store.write_settle(
            conn,
            tenant_id=_tenant_for(conn, tenant_id),
            reservation_id=reservation_id,
            new_status=CONSUMED,
            take=amount or -1,
            returned_kind=RELEASE,
            actor=actor,
            reason="",
            returned_reason=PARTIAL_REMAINDER,
            idempotency_key=idempotency_key,
            claim=claim,
        ),
        claim,
    )
    return written.reservation, written.wallet


async def release(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    reservation_id: str,
    reason: str,
    actor: str,
    expired: bool = False,
    idempotency_key: str = "",
    claim: Claim | None = None,
) -> tuple[Reservation, Wallet]:
    """Returns the reservation's credits to available: RELEASED (a RELEASE entry), or with
    `expired` EXPIRED (an EXPIRE entry; allowed past expires_at, which a plain release is not:
    RESERVATION_EXPIRED)."""
    reason = rules.check_reason(reason)
    if not rules.is_uuid(reservation_id):
        raise rules.reservation_not_found(reservation_id)
    written = _done(
        await store.write_settle(
            conn,
            tenant_id=_tenant_for(conn, tenant_id),
            reservation_id=reservation_id,
            new_status=EXPIRED if expired else RELEASED,
            take=0,
            returned_kind=EXPIRE if expired else RELEASE,
            actor=actor,
            reason=reason,
            returned_reason=reason,
            idempotency_key=idempotency_key,
            expiring=expired,
            claim=claim,
        ),
        claim,
    )
    return written.reservation, written.wallet


async def recorded_result(conn: AsyncConnection, entry_id: str) -> tuple[LedgerEntry, Reservation | None]:
    """What a credit operation answered, rebuilt from its last ledger entry: the entry (its
    balances are the wallet then) and its reservation as the operation left it. Both are
    immutable (the ledger is append-only, a settled reservation final); a reserve's
    reservation is shown ACTIVE, as it was."""
    entry = await store.entry_by_id(conn, entry_id)
    reservation = await store.get_reservation(conn, entry.reservation_id) if entry.reservation_id else None
    if reservation is not None and entry.kind in (RESERVE, ADJUSTMENT):
        reservation = replace(reservation, status=ACTIVE, consumed_amount=0, settled_at=None, settle_reason="")
    return entry, reservation


async def active_reservation(
    conn: AsyncConnection, *, account_id: str, ref_type: str, ref_id: str
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
        last = None if row.l_granted is None else Wallet(row.l_granted, row.l_consumed, row.l_reserved, row.l_overdraft)
        violations += rules.wallet_violations(
            row.account_id, wallet, row.entries, store.sums_of(row), int(row.active), last
        )
    for row in await store.reservation_ledger_rows(conn, ids):
        problem = rules.reservation_violation(
            row.id, row.status, row.amount, row.consumed_amount, row.reserve, row.consume, row.release, row.expire
        )
        if problem:
            violations.append(problem)
        if row.adjustment != row.shortfall:
            violations.append(
                f"reservation {row.id}: override shortfall {row.shortfall} but ADJUSTMENT entries "
                f"sum to {row.adjustment}"
            )
    return violations


async def expire_due(
    engine: AsyncEngine, tenant_id: str | None = None, *, now: datetime | None = None, limit: int = 10_000
) -> int:
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
                written = await store.write_settle(
                    conn,
                    tenant_id=None,
                    reservation_id=reservation.id,
                    new_status=EXPIRED,
                    take=0,
                    returned_kind=EXPIRE,
                    actor=EXPIRY_ACTOR,
                    reason="expired",
                    returned_reason="expired",
                    idempotency_key="",
                    expiring=True,
                )
                assert written.outcome == "OK", written  # locked and ACTIVE: nothing else can refuse
            expired += 1
    if expired:
        log.info("reservations expired", extra={"count": expired})
    return expired
