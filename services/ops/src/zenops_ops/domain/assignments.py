"""Assignments: the rules of their fields, reference numbers and completeness (no I/O).

Reference numbers are `ZA-<yyyy>-<6 digits>`: the year is the firm's (Asia/Kolkata) at
creation, the number the next of that tenant's year counter (store.assignments takes it in
the assignment's own transaction, so numbers are unique and gapless per year).

The completeness score is the share (0–100, rounded down) of the fields an assignment needs
before its report can go out that are present: who sends it (the bank, the channel or the
client org), the bank branch (bank assignments), the property, a contact, the due date, an
assignee, the fee and the borrower.

Each check raises InvalidArgument naming the field as the proto names it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from zenops_kit.fields import invalid, optional_uuid, text

FIRM_ZONE = ZoneInfo("Asia/Kolkata")

BANK, CHANNEL, DIRECT = "BANK", "CHANNEL", "DIRECT"
SOURCE_TYPES = (BANK, CHANNEL, DIRECT)
PRIORITIES = ("LOW", "MEDIUM", "HIGH")
DEFAULT_PRIORITY = "MEDIUM"

MAX_ASSIGNEES = 20
MAX_FEE_PAISE = 10**12  # ₹1,000 crore: anything larger is a typo
MAX_NOTES = 5000
MAX_BORROWER_NAME = 200
# A due date is in the future (with some clock skew allowed) and within a few years.
DUE_SKEW = timedelta(minutes=5)
DUE_HORIZON = timedelta(days=5 * 366)
MAX_SEQUENCE = 999_999

# The update_mask paths UpdateAssignment accepts (as the proto names them).
UPDATABLE = (
    "bank_id",
    "branch_id",
    "client_org_id",
    "property_id",
    "contact_id",
    "due_at",
    "priority",
    "assignee_ids",
    "fee_paise",
    "notes",
    "borrower_name",
)
# Fields that reference another record: path → the kind of record.
REFERENCES = {
    "bank_id": "bank",
    "branch_id": "bank_branch",
    "client_org_id": "client_org",
    "property_id": "property",
    "contact_id": "contact",
    "channel_id": "channel",
}


def reference_year(now: datetime) -> int:
    """The year of `now` in the firm's zone (an assignment made at 00:30 IST on 1 January is
    the new year's, though it is still 31 December in UTC)."""
    return now.astimezone(FIRM_ZONE).year


def reference_number(year: int, sequence: int) -> str:
    if not 1 <= sequence <= MAX_SEQUENCE:
        raise ValueError(f"sequence {sequence} out of range")
    return f"ZA-{year:04d}-{sequence:06d}"


@dataclass(frozen=True)
class Details:
    """The editable fields of an assignment (UPDATABLE), checked."""

    bank_id: str | None = None
    branch_id: str | None = None
    client_org_id: str | None = None
    property_id: str | None = None
    contact_id: str | None = None
    due_at: datetime | None = None
    priority: str = DEFAULT_PRIORITY
    assignee_ids: tuple[str, ...] = ()
    fee_paise: int = 0
    notes: str = ""
    borrower_name: str = ""

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# -- one check per field -------------------------------------------------------------------


def due_at(value: datetime | None, now: datetime, field: str = "due_at") -> datetime | None:
    if value is None:
        return None
    if value < now - DUE_SKEW:
        raise invalid(field, "must be in the future")
    if value > now + DUE_HORIZON:
        raise invalid(field, "must be within 5 years")
    return value


def priority(value: str, field: str = "priority") -> str:
    if value not in PRIORITIES:
        raise invalid(field, "must be one of low, medium, high")
    return value


def assignee_ids(values, field: str = "assignee_ids") -> tuple[str, ...]:
    """User ids (UUIDs), duplicates dropped, order kept."""
    seen: dict[str, None] = {}
    for value in values:
        seen[optional_uuid(value, field) or ""] = None
    seen.pop("", None)
    if len(seen) > MAX_ASSIGNEES:
        raise invalid(field, f"must name at most {MAX_ASSIGNEES} users")
    return tuple(seen)


def fee_paise(value: int, field: str = "fee_paise") -> int:
    if value < 0:
        raise invalid(field, "must not be negative")
    if value > MAX_FEE_PAISE:
        raise invalid(field, f"must be at most {MAX_FEE_PAISE} paise")
    return value


def notes(value: str, field: str = "notes") -> str:
    return text(value, field, max_length=MAX_NOTES, required=False)


def borrower_name(value: str, field: str = "borrower_name") -> str:
    return text(value, field, max_length=MAX_BORROWER_NAME, required=False)


def clean(path: str, value, now: datetime):
    """The checked value of one UPDATABLE field (ids: '' → None)."""
    if path in REFERENCES:
        return optional_uuid(value, path)
    checks = {
        "due_at": lambda v: due_at(v, now),
        "priority": priority,
        "assignee_ids": assignee_ids,
        "fee_paise": fee_paise,
        "notes": notes,
        "borrower_name": borrower_name,
    }
    if path not in checks:
        raise invalid("update_mask", f"cannot update {path!r}; updatable: " + ", ".join(UPDATABLE))
    return checks[path](value)


def details(values: dict, now: datetime) -> Details:
    """A Details from raw values (the proto's), every field checked; missing → default."""
    return Details(**{path: clean(path, value, now) for path, value in values.items()})


def update_paths(paths) -> tuple[str, ...]:
    """The update_mask's paths: known, at least one, no duplicates."""
    paths = tuple(dict.fromkeys(p.strip() for p in paths))
    if not paths:
        raise invalid("update_mask", "must name at least one field; updatable: " + ", ".join(UPDATABLE))
    for path in paths:
        if path not in UPDATABLE:
            raise invalid("update_mask", f"cannot update {path!r}; updatable: " + ", ".join(UPDATABLE))
    return paths


def updated(current: Details, values: dict, now: datetime) -> Details:
    """`current` with the given raw values (path → value) checked and applied. A due date
    that is not changed is kept even if it has passed."""
    changes = {
        path: clean(path, value, now) if not (path == "due_at" and value == current.due_at) else value
        for path, value in values.items()
    }
    return replace(current, **changes)


def check_source(source_type: str, d: Details, channel_id: str | None) -> None:
    """Who sent the work must be known: the bank (bank), the channel (channel), the client
    org or at least the borrower (direct)."""
    if source_type not in SOURCE_TYPES:
        raise invalid("source_type", "must be one of bank, channel, direct")
    if source_type == BANK and not d.bank_id:
        raise invalid("bank_id", "is required for a bank assignment")
    if source_type == CHANNEL and not channel_id:
        raise invalid("channel_id", "is required for a channel assignment")
    if source_type == DIRECT and not (d.client_org_id or d.borrower_name):
        raise invalid("client_org_id", "or borrower_name is required for a direct assignment")


def required_fields(source_type: str) -> tuple[str, ...]:
    """The fields the completeness score counts for an assignment of this source."""
    sender = {BANK: "bank_id", CHANNEL: "channel_id", DIRECT: "client_org_id"}[source_type]
    branch = ("branch_id",) if source_type == BANK else ()
    return (sender, *branch, "property_id", "contact_id", "due_at", "assignee_ids", "fee_paise", "borrower_name")


def completeness(source_type: str, d: Details, channel_id: str | None) -> int:
    present = {**d.as_dict(), "channel_id": channel_id}
    required = required_fields(source_type)
    have = sum(1 for name in required if present.get(name))
    return have * 100 // len(required)
