"""The factory's rules, no I/O: render job ids and states, where artifacts are stored and how
they are named, how a render attempt ends, rupees as a report prints them, and the billing
gate as repogen knows it.

Job states: QUEUED → RUNNING → SUCCEEDED | FAILED; a FAILED job is retried (the render
consumer's backoff) and becomes DEAD after its last attempt. A job whose snapshot is no
longer the work order's current one (the contract was patched again) or whose work order is
no longer READY_FOR_RENDER ends FAILED without rendering and without a retry: its reason
says why (SUPERSEDED).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from zenops_kit.fields import invalid, parse_uuid, text

from ..rules import format_rupees

QUEUED = "QUEUED"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
DEAD = "DEAD"
JOB_STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, DEAD)
# Nothing more happens to a job in these.
FINAL = (SUCCEEDED, DEAD)

# A job that ended without rendering because it no longer applies: reason prefix.
SUPERSEDED = "SUPERSEDED"

EXPORT_BUNDLE = "export_bundle"
DOCX = "docx"
PDF = "pdf"
KINDS = (EXPORT_BUNDLE, DOCX, PDF)

CONTENT_TYPES = {
    EXPORT_BUNDLE: "application/json",
    DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    PDF: "application/pdf",
}
EXTENSIONS = {EXPORT_BUNDLE: "json", DOCX: "docx", PDF: "pdf"}
_FILENAME_STEM = {EXPORT_BUNDLE: "export-bundle", DOCX: "valuation-report", PDF: "valuation-report"}

MAX_ERROR = 2000

_JOB_ID = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}):([0-9]{1,18})")


def job_id(work_order_id: str, snapshot_version: int) -> str:
    """`<work_order_id>:<snapshot_version>`: one job per (work order, snapshot), so a
    redelivered trigger finds the job it made."""
    return f"{work_order_id.lower()}:{snapshot_version}"


def parse_job_id(value: str) -> tuple[str, int] | None:
    match = _JOB_ID.fullmatch(value or "")
    return (match.group(1), int(match.group(2))) if match else None


def artifact_key(tenant_id: str, work_order_id: str, snapshot_version: int, kind: str, at: datetime) -> str:
    """`tenant/<tenant>/<yyyy>/<mm>/<work_order>/<snapshot>-<kind>.<ext>`: `at` is the pack's
    creation time, so every attempt of a job writes the same keys."""
    return f"tenant/{tenant_id}/{at:%Y}/{at:%m}/{work_order_id}/{snapshot_version}-{kind}.{EXTENSIONS[kind]}"


def artifact_filename(work_order_id: str, snapshot_version: int, kind: str) -> str:
    """What a download is saved as, e.g. `valuation-report-1b2c3d4e-v7.docx`."""
    return f"{_FILENAME_STEM[kind]}-{work_order_id[:8]}-v{snapshot_version}.{EXTENSIONS[kind]}"


@dataclass(frozen=True)
class Attempt:
    """How a failed attempt leaves the job."""

    status: str  # FAILED (retried) | DEAD
    error: str

    @property
    def dead(self) -> bool:
        return self.status == DEAD


def failed_attempt(attempts: int, max_attempts: int, error: str) -> Attempt:
    """Attempt number `attempts` (1-based) failed with `error`."""
    message = f"attempt {attempts} of {max_attempts}: {error}"[:MAX_ERROR]
    return Attempt(DEAD if attempts >= max_attempts else FAILED, message)


def supersession(*, job_snapshot: int, current_snapshot: int, status: str, ready_status: str) -> str | None:
    """Why the job no longer applies (None when it does): its snapshot is not the work order's
    current one, or the work order left READY_FOR_RENDER."""
    if current_snapshot != job_snapshot:
        return (
            f"{SUPERSEDED}: the work order is at snapshot {current_snapshot}, this job renders snapshot "
            f"{job_snapshot}; a new job renders the new snapshot once it is ready for render"
        )
    if status != ready_status:
        return f"{SUPERSEDED}: the work order is {status}, not {ready_status}; nothing to render"
    return None


# -- money as a report prints it -----------------------------------------------------------------


def rupees(n: int) -> str:
    """₹ in Indian digit grouping: 4520000 → "₹45,20,000"."""
    return f"-₹{format_rupees(-n)}" if n < 0 else f"₹{format_rupees(n)}"


def decimal_rupees(text: str) -> str:
    """A money decimal (string, maybe with paise) in Indian grouping: "1250.5" → "₹1,250.50"."""
    whole, _, fraction = text.partition(".")
    negative = whole.startswith("-")
    grouped = rupees(int(whole.lstrip("-") or "0"))
    if fraction.strip("0"):
        grouped += "." + (fraction + "00")[:2]
    return f"-{grouped}" if negative else grouped


# -- the billing gate, as far as repogen knows -------------------------------------------------

NOT_RESERVED = "not_reserved"
RESERVED = "reserved"
RELEASED = "released"
POSTPAID = "postpaid"
UNKNOWN = "unknown"


def billing_gate(
    *, status: str, released: bool, billing_account_id: str | None, credits: int, born_from_request: bool
) -> str:
    """What stands between the work order and its release, billing-wise, from what repogen
    holds: its release row, whether it was accepted (billing reserves credits at acceptance,
    or at the channel request's acceptance for a work order born from one) and the credits it
    carries. Billing alone knows the account's policy; a work order accepted with no credits
    is billed by invoice (postpaid)."""
    if released:
        return RELEASED
    if not billing_account_id:
        return UNKNOWN
    if status == "CANCELLED":
        return NOT_RESERVED
    accepted = born_from_request or status != "DRAFT"
    if not accepted:
        return NOT_RESERVED
    return RESERVED if credits > 0 else POSTPAID


# -- input ------------------------------------------------------------------------------------


def work_order_id(value: str) -> str:
    return parse_uuid(value, "work_order_id")


def artifact_id(value: str) -> str:
    return parse_uuid(value, "artifact_id")


def override_reason(value: str, *, max_length: int = 500) -> str:
    """The billing override's reason ('' for none): trimmed, bounded, not blank when given."""
    if value and not value.strip():
        raise invalid("override_reason", "must not be blank")
    return text(value, "override_reason", max_length=max_length, required=False)
