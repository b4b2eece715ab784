"""The assignment lifecycle: the one table of allowed transitions, and the rules around it.

    DRAFT → COLLECTING → SITE_VISIT → UNDER_REVIEW → DELIVERED
    UNDER_REVIEW → COLLECTING             (rework: a reason is required)
    any state before DELIVERED → CANCELLED (a reason is required)

Anything else is FAILED_PRECONDITION / ILLEGAL_TRANSITION (metadata `from`, `to`). A manual
move to DELIVERED needs the capability that releases reports (`repogen.release`): the people
who may release a report may also record its delivery by hand; valuers cannot.

A released report (repogen.deliverable.released) is a fact, not a request: the assignment
is DELIVERED from whatever open state it is in (staff do not always move it through
UNDER_REVIEW first), so RELEASE_FROM lists the states a release delivers from. A release
of a DELIVERED assignment is nothing to do; of a CANCELLED one, only an activity entry.
"""

from __future__ import annotations

from zenops_kit.errors import FailedPrecondition
from zenops_kit.fields import invalid, text

DRAFT = "DRAFT"
COLLECTING = "COLLECTING"
SITE_VISIT = "SITE_VISIT"
UNDER_REVIEW = "UNDER_REVIEW"
DELIVERED = "DELIVERED"
CANCELLED = "CANCELLED"

STATUSES = (DRAFT, COLLECTING, SITE_VISIT, UNDER_REVIEW, DELIVERED, CANCELLED)
OPEN = (DRAFT, COLLECTING, SITE_VISIT, UNDER_REVIEW)
CLOSED = (DELIVERED, CANCELLED)

# (from, to) → whether a reason is required. THE transition table.
TRANSITIONS: dict[tuple[str, str], bool] = {
    (DRAFT, COLLECTING): False,
    (COLLECTING, SITE_VISIT): False,
    (SITE_VISIT, UNDER_REVIEW): False,
    (UNDER_REVIEW, DELIVERED): False,
    (UNDER_REVIEW, COLLECTING): True,  # rework
    **{(state, CANCELLED): True for state in OPEN},
}

# The states a released report delivers the assignment from.
RELEASE_FROM = OPEN

# Who may move an assignment to DELIVERED by hand (on top of assignments.transition).
MANUAL_DELIVERY_CAPABILITY = "repogen.release"

MAX_REASON = 1000


def allowed(from_status: str, to_status: str) -> bool:
    return (from_status, to_status) in TRANSITIONS


def needs_reason(from_status: str, to_status: str) -> bool:
    return TRANSITIONS.get((from_status, to_status), False)


def illegal(from_status: str, to_status: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"an assignment cannot move from {from_status} to {to_status}",
        reason="ILLEGAL_TRANSITION",
        metadata={"from": from_status, "to": to_status},
    )


def clean_reason(reason: str) -> str:
    return text(reason, "reason", max_length=MAX_REASON, required=False)


def check(from_status: str, to_status: str, reason: str) -> None:
    """Raise unless the table allows from → to with this (cleaned) reason."""
    if not allowed(from_status, to_status):
        raise illegal(from_status, to_status)
    if needs_reason(from_status, to_status) and not reason:
        what = "cancelling" if to_status == CANCELLED else "sending back for rework"
        raise invalid("reason", f"is required when {what}")
