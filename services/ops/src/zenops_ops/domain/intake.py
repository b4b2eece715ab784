"""Channel requests (partner intake): what a partner may submit, how a request is reviewed,
and where a request or assignment stands for billing (no I/O).

    SUBMITTED → ACCEPTED   (creates and links the assignment; ops.channel_request.accepted)
    SUBMITTED → REJECTED   (a reason; ops.channel_request.rejected)

Both reviews are final and idempotent: accepting an accepted request answers it as it is,
rejecting a rejected one too; the other review of a decided request is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal

from zenops_kit.errors import FailedPrecondition
from zenops_kit.fields import choice, invalid, optional_uuid, text

from . import lifecycle
from .places import PropertyDetails, phone, property_details

SUBMITTED, ACCEPTED, REJECTED = "SUBMITTED", "ACCEPTED", "REJECTED"
STATUSES = (SUBMITTED, ACCEPTED, REJECTED)

SERVICES = ("valuation_report", "revaluation", "site_inspection", "desktop_valuation")
# Services whose outcome is a report (repogen opens a work order for them).
REPORT_SERVICES = ("valuation_report", "revaluation", "desktop_valuation")

MAX_CREDITS = 10_000
MAX_NOTES = 5000
MAX_REASON = 1000

# What billing's reconciliation is told (zenops.ops.v1.BillingRefState without its prefix).
OPEN, DELIVERED, CANCELLED, NOT_FOUND = "OPEN", "DELIVERED", "CANCELLED", "NOT_FOUND"
REF_TYPES = ("channel_request", "assignment")


@dataclass(frozen=True)
class Submission:
    """A checked SubmitChannelRequestRequest (channel resolved by the use case)."""

    channel_id: str | None
    borrower_name: str
    borrower_phone: str
    property: PropertyDetails
    bank_id: str | None
    branch_id: str | None
    requested_service: str
    credits: int  # 0: the channel's default
    notes: str


def submission(request) -> Submission:
    """Every field of a zenops.ops.v1.SubmitChannelRequestRequest checked, named as the proto
    names it."""
    if request.credits < 0:
        raise invalid("credits", "must not be negative")
    if request.credits > MAX_CREDITS:
        raise invalid("credits", f"must be at most {MAX_CREDITS}")
    return Submission(
        channel_id=optional_uuid(request.channel_id, "channel_id"),
        borrower_name=text(request.borrower_name, "borrower_name", max_length=200),
        borrower_phone=phone(request.borrower_phone, "borrower_phone"),
        property=property_details(request.property, "property"),
        bank_id=optional_uuid(request.bank_id, "bank_id"),
        branch_id=optional_uuid(request.branch_id, "branch_id"),
        requested_service=_service(request.requested_service),
        credits=request.credits,
        notes=text(request.notes, "notes", max_length=MAX_NOTES, required=False),
    )


def _service(value: str) -> str:
    value = (value or "").strip().lower()
    if not value:
        raise invalid("requested_service", "is required")
    return choice(value, "requested_service", SERVICES)


def rejection_reason(reason: str) -> str:
    return text(reason, "reason", max_length=MAX_REASON)


def report_requested(requested_service: str) -> bool:
    return requested_service in REPORT_SERVICES


def property_json(details: PropertyDetails) -> dict:
    """As stored in channel_requests.property (coordinates as text)."""
    values = asdict(details)
    for key in ("latitude", "longitude"):
        values[key] = "" if values[key] is None else str(values[key])
    return values


def property_from_json(values: dict) -> PropertyDetails:
    def coordinate(key: str) -> Decimal | None:
        return Decimal(values[key]) if values.get(key) else None

    return PropertyDetails(
        address_line1=values.get("address_line1", ""),
        address_line2=values.get("address_line2", ""),
        locality=values.get("locality", ""),
        city=values.get("city", ""),
        state=values.get("state", ""),
        pin_code=values.get("pin_code", ""),
        property_type=values.get("property_type", ""),
        latitude=coordinate("latitude"),
        longitude=coordinate("longitude"),
    )


def check_acceptable(status: str) -> bool:
    """True when the request is to be accepted now; False when it was accepted already."""
    if status == REJECTED:
        raise FailedPrecondition("the channel request was rejected", reason="CHANNEL_REQUEST_REJECTED")
    return status == SUBMITTED


def check_rejectable(status: str) -> bool:
    """True when the request is to be rejected now; False when it was rejected already."""
    if status == ACCEPTED:
        raise FailedPrecondition("the channel request was accepted", reason="CHANNEL_REQUEST_ACCEPTED")
    return status == SUBMITTED


def ref_type(value: str) -> str:
    value = (value or "").strip()
    if value not in REF_TYPES:
        raise invalid("ref_type", "must be channel_request or assignment (work orders are repogen's)")
    return value


def assignment_ref_state(status: str) -> str:
    if status == lifecycle.DELIVERED:
        return DELIVERED
    if status == lifecycle.CANCELLED:
        return CANCELLED
    return OPEN


def channel_request_ref_state(status: str, assignment_status: str | None) -> str:
    """SUBMITTED: open; REJECTED: cancelled; ACCEPTED: as its assignment stands."""
    if status == REJECTED:
        return CANCELLED
    if status == ACCEPTED and assignment_status is not None:
        return assignment_ref_state(assignment_status)
    return OPEN
