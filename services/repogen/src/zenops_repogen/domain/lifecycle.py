"""The work-order lifecycle: THE one table of allowed transitions, who may make each, and
what each means.

    DRAFT → DATA_PENDING → READY_FOR_RENDER → RENDERED → RELEASED
    READY_FOR_RENDER → DATA_PENDING        (the contract was patched again, or its template changed)
    any state before RELEASED → CANCELLED  (a reason is required)

Each move is made by one actor kind (`By`):
- TRANSITION: a person, through TransitionWorkOrder (capability repogen.transition):
  acceptance (DRAFT → DATA_PENDING: billing reserves or plans an invoice), the move to
  READY_FOR_RENDER (only when readiness passes: READINESS_NOT_MET otherwise) and CANCELLED;
- CHANGE: a change of the contract's data (PatchContract, OverrideTemplate) demotes a work
  order that was ready for render;
- FACTORY: the render job succeeded (RENDERED);
- RELEASE: the billing-gated release (RELEASED).
Anything else is FAILED_PRECONDITION / ILLEGAL_TRANSITION (metadata `from`, `to`).

CLOSED work orders take no more changes of their data (contract, template, evidence):
RENDERED (its report is made from a fixed state; cancel it to start over), RELEASED and
CANCELLED. Comments stay open until the work order is cancelled or released.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from zenops_kit.errors import FailedPrecondition
from zenops_kit.fields import invalid, text

DRAFT = "DRAFT"
DATA_PENDING = "DATA_PENDING"
READY_FOR_RENDER = "READY_FOR_RENDER"
RENDERED = "RENDERED"
RELEASED = "RELEASED"
CANCELLED = "CANCELLED"

STATUSES = (DRAFT, DATA_PENDING, READY_FOR_RENDER, RENDERED, RELEASED, CANCELLED)
# The data (contract, template, evidence, annexure order) may change only in these.
EDITABLE = (DRAFT, DATA_PENDING, READY_FOR_RENDER)
CLOSED = (RENDERED, RELEASED, CANCELLED)
# Where billing's reconciliation stands (GetBillingRefState).
DELIVERED_STATES = (RELEASED,)
CANCELLED_STATES = (CANCELLED,)


class By(Enum):
    TRANSITION = "transition"
    CHANGE = "change"
    FACTORY = "factory"
    RELEASE = "release"


@dataclass(frozen=True)
class Move:
    by: By
    reason_required: bool = False
    # What the move announces (repogen.work_order.<event>), if anything.
    event: str | None = None


ACCEPTED = "accepted"
READY = "ready_for_render"
CANCELLED_EVENT = "cancelled"

# (from, to) → the move. THE transition table.
TRANSITIONS: dict[tuple[str, str], Move] = {
    (DRAFT, DATA_PENDING): Move(By.TRANSITION, event=ACCEPTED),
    (DATA_PENDING, READY_FOR_RENDER): Move(By.TRANSITION, event=READY),
    (READY_FOR_RENDER, DATA_PENDING): Move(By.CHANGE),
    (READY_FOR_RENDER, RENDERED): Move(By.FACTORY),
    (RENDERED, RELEASED): Move(By.RELEASE),
    **{
        (state, CANCELLED): Move(By.TRANSITION, reason_required=True, event=CANCELLED_EVENT)
        for state in (DRAFT, DATA_PENDING, READY_FOR_RENDER, RENDERED)
    },
}

MAX_REASON = 1000


def move(from_status: str, to_status: str, by: By) -> Move:
    """The move from → to made by `by`; ILLEGAL_TRANSITION when the table has no such move."""
    found = TRANSITIONS.get((from_status, to_status))
    if found is None or found.by is not by:
        raise illegal(from_status, to_status)
    return found


def illegal(from_status: str, to_status: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"a work order cannot move from {from_status} to {to_status}",
        reason="ILLEGAL_TRANSITION",
        metadata={"from": from_status, "to": to_status},
    )


def clean_reason(reason: str) -> str:
    return text(reason, "reason", max_length=MAX_REASON, required=False)


def check_manual(from_status: str, to_status: str, reason: str) -> Move:
    """A person's move (TransitionWorkOrder): allowed by the table, with its reason."""
    found = move(from_status, to_status, By.TRANSITION)
    if found.reason_required and not reason:
        raise invalid("reason", "is required when cancelling")
    return found


def require_editable(status: str, work_order_id: str) -> None:
    """The work order's data may still change (FAILED_PRECONDITION WORK_ORDER_CLOSED)."""
    if status not in EDITABLE:
        raise FailedPrecondition(
            f"work order {work_order_id} is {status}: its data can no longer change",
            reason="WORK_ORDER_CLOSED",
            metadata={"status": status},
        )


def require_open(status: str, work_order_id: str) -> None:
    """Not released or cancelled (comments)."""
    if status in (RELEASED, CANCELLED):
        raise FailedPrecondition(
            f"work order {work_order_id} is {status}", reason="WORK_ORDER_CLOSED", metadata={"status": status}
        )


def billing_ref_state(status: str | None) -> str:
    """OPEN | DELIVERED | CANCELLED | NOT_FOUND (None: no such work order)."""
    if status is None:
        return "NOT_FOUND"
    if status in DELIVERED_STATES:
        return "DELIVERED"
    if status in CANCELLED_STATES:
        return "CANCELLED"
    return "OPEN"
