"""Reconciliation: what to do with a stale ACTIVE reservation, given what its owner says.

The owner of a ref (ops for channel requests and assignments, repogen for work orders)
is the only source of truth about it: a ref whose owner does not answer, answers
something unexpected, or has no owner to ask is left alone and reported — never
released or consumed by guess.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

CONSUME = "consume"
RELEASE = "release"
LEAVE = "leave"

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

# Which service owns which ref type (the one GetBillingRefState is asked on).
OWNERS = {"channel_request": "ops", "assignment": "ops", "work_order": "repogen"}


class RefState(enum.Enum):
    OPEN = "open"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    NOT_FOUND = "not_found"
    # The owner did not answer (unimplemented, unavailable, timed out) or gave no usable state.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class OwnerAnswer:
    state: RefState
    # Why the state is UNKNOWN (e.g. "UNIMPLEMENTED"); empty for a real answer.
    detail: str = ""


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str


def owner_of(ref_type: str) -> str | None:
    return OWNERS.get(ref_type)


def decide(answer: OwnerAnswer | None) -> Decision:
    """None: the ref type has no owner to ask."""
    if answer is None:
        return Decision(LEAVE, "no owner to ask for this ref type")
    match answer.state:
        case RefState.DELIVERED:
            return Decision(CONSUME, "ref delivered")
        case RefState.CANCELLED:
            return Decision(RELEASE, "ref cancelled")
        case RefState.NOT_FOUND:
            return Decision(RELEASE, "ref not found")
        case RefState.OPEN:
            return Decision(LEAVE, "ref still open")
    suffix = f" ({answer.detail})" if answer.detail else ""
    return Decision(LEAVE, "owner did not answer" + suffix)


SETTLED = ("RESERVATION_ALREADY_CONSUMED", "RESERVATION_ALREADY_RELEASED", "RESERVATION_EXPIRED")


def not_applied(reason_code: str) -> Decision:
    """Our consume/release was refused: by the time we acted, someone else (a consume, a
    release, the expiry sweep) had settled the reservation, or the wallet said no."""
    if reason_code in SETTLED:
        return Decision(LEAVE, f"settled meanwhile ({reason_code})")
    return Decision(LEAVE, f"not applied ({reason_code})")
