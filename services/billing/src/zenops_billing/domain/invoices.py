"""Invoice rules (pure): the lifecycle, the financial year, numbering, dates, what is due,
payments and ageing.

Lifecycle: DRAFT → ISSUED → PARTIALLY_PAID → PAID; DRAFT | ISSUED → VOID (with a reason;
after any payment a void is refused: use a credit note). Adjustments (discount, write-off)
and credit notes only on issued invoices (ISSUED, PARTIALLY_PAID), never beyond the balance.
The balance is total − adjusted − credited − paid; it reaching zero settles the invoice
(PAID).

Numbering: one series per (tenant, kind, financial year); the financial year starts on
1 April (Asia/Kolkata); a number is `<prefix>/<yy-yy>/<n>` with n zero-padded to 6 digits,
16 characters at most (a long prefix shortens the padding, never the number).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from zenops_kit.errors import AlreadyExists, FailedPrecondition, FieldViolation, NotFound
from zenops_kit.fields import invalid

IST = ZoneInfo("Asia/Kolkata")

DRAFT, ISSUED, PARTIALLY_PAID, PAID, VOID = "DRAFT", "ISSUED", "PARTIALLY_PAID", "PAID", "VOID"
STATUSES = (DRAFT, ISSUED, PARTIALLY_PAID, PAID, VOID)
OPEN = (ISSUED, PARTIALLY_PAID)  # issued and not settled: receivable

INVOICE, CREDIT_NOTE = "invoice", "credit_note"
MAX_NUMBER = 16
PADDING = 6
NUMBER = re.compile(r"[A-Za-z0-9/-]{1,16}")
PREFIX = re.compile(r"[A-Za-z0-9]{1,6}")

ADJUSTMENT_KINDS = ("discount", "write_off")
PAYMENT_METHODS = ("bank_transfer", "upi", "card", "cash")  # manual; "provider" is the providers' own
PROVIDER_METHOD = "provider"
PROVIDERS = ("razorpay", "stripe")
LINE_REF_TYPES = ("assignment", "work_order", "channel_request", "manual")
MAX_LINES = 200
MAX_REASON = 500
MAX_DESCRIPTION = 500
MAX_REFERENCE = 200
MAX_NOTE = 1000
DEFAULT_TERMS_DAYS = 30

PROOF_SUBMITTED, PROOF_CONFIRMED, PROOF_REJECTED = "SUBMITTED", "CONFIRMED", "REJECTED"

# Reason codes.
SETTINGS_REQUIRED = "SETTINGS_REQUIRED"
INVOICE_NOT_FOUND = "INVOICE_NOT_FOUND"
INVOICE_NOT_DRAFT = "INVOICE_NOT_DRAFT"
INVOICE_NOT_ISSUED = "INVOICE_NOT_ISSUED"
INVOICE_HAS_PAYMENTS = "INVOICE_HAS_PAYMENTS"
INVOICE_EMPTY = "INVOICE_EMPTY"
INVOICE_DATE_BEFORE_LAST = "INVOICE_DATE_BEFORE_LAST"
EXCEEDS_BALANCE = "EXCEEDS_BALANCE"
OVERPAYMENT = "OVERPAYMENT"
PAYMENT_REFERENCE_USED = "PAYMENT_REFERENCE_USED"
REF_ALREADY_INVOICED = "REF_ALREADY_INVOICED"
SERIES_EXHAUSTED = "SERIES_EXHAUSTED"
MIXED_PLACE_OF_SUPPLY = "MIXED_PLACE_OF_SUPPLY"
PROOF_NOT_FOUND = "PROOF_NOT_FOUND"
PROOF_ALREADY_REVIEWED = "PROOF_ALREADY_REVIEWED"
DOCUMENT_NOT_FOUND = "DOCUMENT_NOT_FOUND"

# Audit kinds (invoice_events.kind).
EV_CREATED, EV_LINES_ADDED, EV_ISSUED, EV_VOIDED = (
    "invoice.created",
    "invoice.lines_added",
    "invoice.issued",
    "invoice.voided",
)
EV_ADJUSTED, EV_CREDITED, EV_PAYMENT, EV_PAID = (
    "invoice.adjusted",
    "invoice.credited",
    "payment.recorded",
    "invoice.paid",
)
EV_PROOF_SUBMITTED, EV_PROOF_CONFIRMED, EV_PROOF_REJECTED = "proof.submitted", "proof.confirmed", "proof.rejected"


def today_ist(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(IST).date()


def financial_year(day: date) -> int:
    """The year of the April the financial year of `day` starts in (31 March 2026 → 2025)."""
    return day.year if day.month >= 4 else day.year - 1


def year_label(fy: int) -> str:
    """2025 → "25-26"."""
    return f"{fy % 100:02d}-{(fy + 1) % 100:02d}"


def series_prefix(prefix: str, kind: str) -> str:
    """Credit notes have their own series: the invoice prefix + "C" (ZO → ZOC)."""
    return prefix + ("C" if kind == CREDIT_NOTE else "")


def format_number(prefix: str, fy: int, n: int) -> str:
    """`<prefix>/<yy-yy>/<n>`: n zero-padded to 6 digits, or less when the prefix is long, so
    the number fits 16 characters; a number that cannot fit → SERIES_EXHAUSTED."""
    head = f"{prefix}/{year_label(fy)}/"
    room = MAX_NUMBER - len(head)
    digits = str(n)
    if n < 1 or len(digits) > room:
        raise FailedPrecondition(
            f"the number series {head} cannot hold {n} in {MAX_NUMBER} characters",
            reason=SERIES_EXHAUSTED,
            metadata={"series": head, "value": str(n)},
        )
    number = head + digits.zfill(min(PADDING, room))
    assert NUMBER.fullmatch(number), number
    return number


def check_prefix(value: str, field: str) -> str:
    value = (value or "").strip()
    if not PREFIX.fullmatch(value):
        raise invalid(field, "must be 1 to 6 letters or digits (numbers are <prefix>/<yy-yy>/<n>, e.g. ZO)")
    return value


def parse_date(value: str, field: str) -> date | None:
    """YYYY-MM-DD or '' (None)."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise invalid(field, "must be a date YYYY-MM-DD") from None


def check_invoice_date(requested: date | None, today: date) -> date:
    """The date printed on the invoice: `requested` (never in the future) or today (IST)."""
    if requested is None:
        return today
    if requested > today:
        raise invalid("invoice_date", f"must not be in the future (today is {today.isoformat()} in India)")
    return requested


def before_last(requested: date, last: date) -> FailedPrecondition:
    return FailedPrecondition(
        f"invoice_date {requested.isoformat()} is before the series' last issued date {last.isoformat()}",
        reason=INVOICE_DATE_BEFORE_LAST,
        violations=[FieldViolation("invoice_date", "is before the last issued date")],
        metadata={"invoice_date": requested.isoformat(), "last_date": last.isoformat()},
    )


def not_found(invoice_id: str, field: str = "id") -> NotFound:
    return NotFound(
        f"invoice {invoice_id} not found", reason=INVOICE_NOT_FOUND, metadata={"field": field, "id": invoice_id}
    )


def settings_required() -> FailedPrecondition:
    return FailedPrecondition(
        "the supplier's billing settings (legal name, GSTIN, state, prefix) are not set", reason=SETTINGS_REQUIRED
    )


def wrong_status(invoice_id: str, status: str, reason: str, wanted: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"invoice {invoice_id} is {status}; {wanted}", reason=reason, metadata={"status": status, "id": invoice_id}
    )


def check_draft(invoice_id: str, status: str) -> None:
    if status != DRAFT:
        raise wrong_status(invoice_id, status, INVOICE_NOT_DRAFT, "only a draft can be changed or issued")


def check_voidable(invoice_id: str, status: str, paid_paise: int) -> None:
    if paid_paise > 0 or status in (PARTIALLY_PAID, PAID):
        raise wrong_status(
            invoice_id, status, INVOICE_HAS_PAYMENTS, "an invoice with payments cannot be voided: issue a credit note"
        )
    if status not in (DRAFT, ISSUED):
        raise wrong_status(invoice_id, status, INVOICE_NOT_ISSUED, "only a draft or an issued invoice can be voided")


def check_open(invoice_id: str, status: str, what: str) -> None:
    """Adjustments, credit notes and payments need an issued, unsettled invoice."""
    if status not in OPEN:
        reason = OVERPAYMENT if status == PAID and what == "payment" else INVOICE_NOT_ISSUED
        raise wrong_status(invoice_id, status, reason, f"a {what} needs an issued, unpaid invoice")


def balance(total: int, adjusted: int, credited: int, paid: int) -> int:
    return total - adjusted - credited - paid


def check_within_balance(amount: int, due: int, field: str, *, reason: str = EXCEEDS_BALANCE) -> None:
    if amount > due:
        raise FailedPrecondition(
            f"{field} {amount} is more than the balance {due}",
            reason=reason,
            violations=[FieldViolation(field, f"must be at most the balance ({due} paise)")],
            metadata={"field": field, field: str(amount), "balance_paise": str(due)},
        )


def status_after(status: str, total: int, adjusted: int, credited: int, paid: int) -> str:
    """An issued invoice's status from its figures: settled → PAID, some paid → PARTIALLY_PAID."""
    if status not in OPEN:
        return status
    if balance(total, adjusted, credited, paid) <= 0:
        return PAID
    return PARTIALLY_PAID if paid > 0 else ISSUED


def check_amount(amount: int, field: str) -> int:
    if amount <= 0:
        raise invalid(field, "must be greater than 0 (paise)")
    if amount > 10**13:
        raise invalid(field, "is too large")
    return amount


def reference_used(method: str, reference: str) -> AlreadyExists:
    return AlreadyExists(
        f"a different payment was recorded with {method} reference {reference!r}",
        reason=PAYMENT_REFERENCE_USED,
        violations=[FieldViolation("reference", "was used by another payment")],
        metadata={"field": "reference", "method": method},
    )


@dataclass(frozen=True)
class Ageing:
    days_0_30: int = 0
    days_31_60: int = 0
    days_61_90: int = 0
    days_90_plus: int = 0

    def add(self, days: int, amount: int) -> Ageing:
        if days <= 30:
            return Ageing(self.days_0_30 + amount, self.days_31_60, self.days_61_90, self.days_90_plus)
        if days <= 60:
            return Ageing(self.days_0_30, self.days_31_60 + amount, self.days_61_90, self.days_90_plus)
        if days <= 90:
            return Ageing(self.days_0_30, self.days_31_60, self.days_61_90 + amount, self.days_90_plus)
        return Ageing(self.days_0_30, self.days_31_60, self.days_61_90, self.days_90_plus + amount)

    def __add__(self, other: Ageing) -> Ageing:
        return Ageing(
            self.days_0_30 + other.days_0_30,
            self.days_31_60 + other.days_31_60,
            self.days_61_90 + other.days_61_90,
            self.days_90_plus + other.days_90_plus,
        )


def days_past(invoice_date: date, as_of: date) -> int:
    """Days past the invoice date (0 on the day; an invoice dated after as_of counts as 0)."""
    return max((as_of - invoice_date).days, 0)
