"""The credit wallet: balances, ledger kinds, the reservation state machine, its reason
codes and invariants. Pure rules, no I/O.

Per account: `granted` (every credit ever added), `consumed`, `reserved` (the sum of ACTIVE
reservations) and `available = granted - consumed - reserved`. `overdraft` is the total
shortfall operators have let through by override (each one an ADJUSTMENT ledger entry tied
to its reservation): available may go below zero by at most that much, never otherwise.

Ledger kinds and their effect on the balance row:
  GRANT, TOPUP, REFILL, ADJUSTMENT (no reservation)  granted  += amount
  ADJUSTMENT (tied to a reservation: an override)     overdraft += amount (the shortfall)
  RESERVE                                             reserved += amount
  CONSUME                                             reserved -= amount, consumed += amount
  RELEASE, EXPIRE                                     reserved -= amount

Reservation states: ACTIVE → CONSUMED | RELEASED | EXPIRED, nothing else. A consume takes
all of it or part (the remainder is released in the same transaction); a consume beyond the
amount is EXCEEDS_RESERVED_AMOUNT; an ACTIVE reservation past its expires_at is expired to
everyone but the expiry sweep. These decisions are taken in the database functions that
write (billing_reserve, billing_settle, billing_grant: migrations 0002, 0007), against the rows
they have locked: deciding here would cost client round trips while the account's balance
row is locked. This module names the outcomes (the reason codes), turns them into errors and
checks the invariants. The database also refuses any other transition (trigger) and any
balance below its floor (CHECK).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from zenops_kit.errors import AlreadyExists, FailedPrecondition, FieldViolation, InvalidArgument, NotFound

# -- policies and statuses ------------------------------------------------------------------

CREDIT, POSTPAID = "CREDIT", "POSTPAID"
POLICIES = (CREDIT, POSTPAID)
ACCOUNT_ACTIVE, ACCOUNT_SUSPENDED = "ACTIVE", "SUSPENDED"
ACCOUNT_STATUSES = (ACCOUNT_ACTIVE, ACCOUNT_SUSPENDED)

GRANT, TOPUP, REFILL, RESERVE, CONSUME, RELEASE, EXPIRE, ADJUSTMENT = (
    "GRANT",
    "TOPUP",
    "REFILL",
    "RESERVE",
    "CONSUME",
    "RELEASE",
    "EXPIRE",
    "ADJUSTMENT",
)
LEDGER_KINDS = (GRANT, TOPUP, REFILL, RESERVE, CONSUME, RELEASE, EXPIRE, ADJUSTMENT)
# Kinds that add credits (grant()); REFILL is the subscription scheduler's.
GRANT_KINDS = (GRANT, TOPUP, REFILL, ADJUSTMENT)
# Kinds an operator may grant through GrantCredits.
OPERATOR_GRANT_KINDS = (GRANT, TOPUP, ADJUSTMENT)

ACTIVE, CONSUMED, RELEASED, EXPIRED = "ACTIVE", "CONSUMED", "RELEASED", "EXPIRED"
RESERVATION_STATUSES = (ACTIVE, CONSUMED, RELEASED, EXPIRED)
REF_TYPES = ("channel_request", "work_order", "assignment", "manual")

# A single operation beyond this is a typo (and keeps every sum far from bigint overflow).
MAX_AMOUNT = 1_000_000_000_000
REF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$")
MAX_REASON = 500

# -- reason codes (the spec's, exactly) -----------------------------------------------------

INSUFFICIENT_CREDITS = "INSUFFICIENT_CREDITS"
RESERVATION_ALREADY_CONSUMED = "RESERVATION_ALREADY_CONSUMED"
RESERVATION_ALREADY_RELEASED = "RESERVATION_ALREADY_RELEASED"
RESERVATION_EXPIRED = "RESERVATION_EXPIRED"
EXCEEDS_RESERVED_AMOUNT = "EXCEEDS_RESERVED_AMOUNT"
RESERVATION_NOT_FOUND = "RESERVATION_NOT_FOUND"
RESERVATION_EXISTS = "RESERVATION_EXISTS"
ACCOUNT_NOT_FOUND = "ACCOUNT_NOT_FOUND"
ACCOUNT_SUSPENDED = "ACCOUNT_SUSPENDED"


# -- value types (the proto's fields) -------------------------------------------------------


@dataclass(frozen=True)
class Wallet:
    granted: int = 0
    consumed: int = 0
    reserved: int = 0
    # Total override shortfall (how far below zero `available` may be); not in the proto.
    overdraft: int = 0

    @property
    def available(self) -> int:
        return self.granted - self.consumed - self.reserved


@dataclass(frozen=True)
class LedgerEntry:
    id: str
    account_id: str
    kind: str
    amount: int
    reservation_id: str
    business_ref: str
    actor: str
    reason: str
    idempotency_key: str
    balance_after: Wallet
    created_at: datetime
    # Position in the account's ledger (1, 2, ...): total order of one account's entries.
    seq: int = 0


@dataclass(frozen=True)
class Reservation:
    id: str
    account_id: str
    amount: int
    ref_type: str
    ref_id: str
    status: str
    consumed_amount: int
    expires_at: datetime
    created_at: datetime
    settled_at: datetime | None = None
    override_reason: str = ""
    # The part of `amount` that went beyond available by override (0 normally).
    shortfall: int = 0
    actor: str = ""
    settle_reason: str = ""
    idempotency_key: str = ""
    ledger: tuple[LedgerEntry, ...] = field(default=(), compare=False)


# -- errors ---------------------------------------------------------------------------------


def invalid(field_name: str, description: str, reason: str = "VALIDATION_FAILED") -> InvalidArgument:
    return InvalidArgument(
        f"{field_name} {description}", reason=reason, violations=[FieldViolation(field_name, description)]
    )


def account_not_found(account_id: str) -> NotFound:
    return NotFound("no such billing account", reason=ACCOUNT_NOT_FOUND, metadata={"account_id": account_id})


def reservation_not_found(reservation_id: str) -> NotFound:
    return NotFound("no such reservation", reason=RESERVATION_NOT_FOUND, metadata={"reservation_id": reservation_id})


def account_suspended(account_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        "the billing account is suspended", reason=ACCOUNT_SUSPENDED, metadata={"account_id": account_id}
    )


def insufficient_credits(requested: int, available: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"insufficient credits: {requested} requested, {available} available",
        reason=INSUFFICIENT_CREDITS,
        metadata={"requested": str(requested), "available": str(available)},
    )


def reservation_exists(reservation_id: str, ref_type: str, ref_id: str) -> AlreadyExists:
    return AlreadyExists(
        f"an ACTIVE reservation exists for {ref_type} {ref_id}",
        reason=RESERVATION_EXISTS,
        metadata={"reservation_id": reservation_id, "ref_type": ref_type, "ref_id": ref_id},
    )


# -- rules ----------------------------------------------------------------------------------


def parse_uuid(value: str, field_name: str) -> str:
    if not value:
        raise invalid(field_name, "is required")
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise invalid(field_name, "must be a UUID") from None


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


def check_amount(amount: int, field_name: str = "amount") -> int:
    if amount <= 0:
        raise invalid(field_name, "must be > 0")
    if amount > MAX_AMOUNT:
        raise invalid(field_name, f"must be at most {MAX_AMOUNT}")
    return amount


def check_reason(reason: str, field_name: str = "reason", *, required: bool = True) -> str:
    reason = (reason or "").strip()
    if required and not reason:
        raise invalid(field_name, "must not be empty")
    if len(reason) > MAX_REASON:
        raise invalid(field_name, f"must be at most {MAX_REASON} characters")
    return reason


def check_ref(ref_type: str, ref_id: str) -> tuple[str, str]:
    if ref_type not in REF_TYPES:
        raise invalid("ref_type", "must be one of " + "|".join(REF_TYPES))
    if not ref_id:
        raise invalid("ref_id", "is required")
    if not REF_ID.fullmatch(ref_id):
        raise invalid("ref_id", "must be 1-200 characters of letters, digits and _.:/-")
    return ref_type, ref_id


def check_grant_kind(kind: str, *, allowed: tuple[str, ...] = GRANT_KINDS) -> str:
    if kind not in allowed:
        raise invalid("kind", "must be one of " + "|".join(allowed))
    return kind


def settle_refused(outcome: str, reservation_id: str, expires_at: datetime | None) -> FailedPrecondition:
    """ACTIVE → CONSUMED | RELEASED | EXPIRED, nothing else: why a settle of a reservation in
    another state is refused. A reservation past its expires_at counts as expired even
    before the sweep has marked it (except to the expiry itself)."""
    messages = {
        RESERVATION_ALREADY_CONSUMED: "the reservation was already consumed",
        RESERVATION_ALREADY_RELEASED: "the reservation was already released",
        RESERVATION_EXPIRED: "the reservation has expired",
    }
    metadata = {"reservation_id": reservation_id}
    if outcome == RESERVATION_EXPIRED and expires_at is not None:
        metadata["expires_at"] = expires_at.isoformat()
    return FailedPrecondition(messages.get(outcome, outcome), reason=outcome, metadata=metadata)


def exceeds_reserved(reservation_id: str, requested: int, reserved: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"cannot consume {requested}: the reservation holds {reserved}",
        reason=EXCEEDS_RESERVED_AMOUNT,
        metadata={"reservation_id": reservation_id, "requested": str(requested), "reserved": str(reserved)},
    )


# -- invariants -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerSums:
    """An account's ledger folded into balances (what the balance row must equal)."""

    granted: int
    consumed: int
    reserved: int
    overdraft: int
    entries: int
    last_seq: int


def wallet_violations(
    account_id: str, wallet: Wallet, entries: int, sums: LedgerSums, active_reserved: int, last_after: Wallet | None
) -> list[str]:
    """Human-readable violations of one account's invariants (empty = healthy)."""
    out = []
    for name in ("granted", "consumed", "reserved", "overdraft"):
        row, ledger = getattr(wallet, name), getattr(sums, name)
        if row != ledger:
            out.append(f"account {account_id}: {name} is {row} but the ledger sums to {ledger}")
    if wallet.reserved != active_reserved:
        out.append(
            f"account {account_id}: reserved is {wallet.reserved} but ACTIVE reservations sum to {active_reserved}"
        )
    if wallet.available < -wallet.overdraft:
        out.append(
            f"account {account_id}: available {wallet.available} is below the recorded override "
            f"allowance -{wallet.overdraft}"
        )
    if min(wallet.granted, wallet.consumed, wallet.reserved, wallet.overdraft) < 0:
        out.append(f"account {account_id}: negative balance figure {wallet}")
    if entries != sums.entries or entries != sums.last_seq:
        out.append(
            f"account {account_id}: {entries} entries counted, the ledger holds {sums.entries} "
            f"(last seq {sums.last_seq})"
        )
    if last_after is not None and last_after != wallet:
        out.append(
            f"account {account_id}: the last ledger entry's balances {last_after} differ from the balance row {wallet}"
        )
    return out


def reservation_violation(
    r_id: str, status: str, amount: int, consumed_amount: int, reserve: int, consume: int, release: int, expire: int
) -> str | None:
    """The ledger entries a reservation must have in its state, or the violation."""
    expected = {
        ACTIVE: (amount, 0, 0, 0),
        CONSUMED: (amount, consumed_amount, amount - consumed_amount, 0),
        RELEASED: (amount, 0, amount, 0),
        EXPIRED: (amount, 0, 0, amount),
    }.get(status)
    actual = (reserve, consume, release, expire)
    if expected != actual:
        return (
            f"reservation {r_id} ({status}, amount {amount}, consumed {consumed_amount}): ledger has "
            f"RESERVE/CONSUME/RELEASE/EXPIRE {actual}, expected {expected}"
        )
    return None
