"""HTTP models of billing's invoicing area (supplier settings, GST service invoices, lines,
adjustments, credit notes, payments, payment proofs, receivables, checkout, provider webhooks)
and their conversions from zenops.billing.v1 (invoicing.proto).

JSON conventions (as everywhere in the gateway): enums are lower-case strings (`draft`,
`partially_paid`, `submitted`, …), timestamps ISO-8601 UTC, dates `YYYY-MM-DD` (Asia/Kolkata,
as billing prints them), money integer paise, quantities decimal text (`"2.5"`), empty proto
strings `null`.

The gateway types and bounds every field (a bad value is a 400 naming it: `lines[0].quantity`,
`place_of_supply`, `query.status`); billing applies the rules (GST, numbering, states,
balances, capabilities, portal scoping) and names the field in its own errors, which pass
through renamed as the HTTP request names them.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from zenops.billing.v1 import invoicing_pb2 as pb

from .common import MAX_CREDITS, MAX_PAISE, Strict, UtcDatetime, enum_name, enum_value, or_none, timestamp, to_timestamp

InvoiceStatus = Literal["draft", "issued", "partially_paid", "paid", "void"]
ProofStatus = Literal["submitted", "confirmed", "rejected"]
# What a line bills (billing's reactions add lines for assignments and work orders).
LineRefType = Literal["assignment", "work_order", "channel_request", "manual"]
AdjustmentKind = Literal["discount", "write_off"]
# Manual payments; `provider` payments come from checkout webhooks only.
ManualMethod = Literal["bank_transfer", "upi", "card", "cash"]
CheckoutPurpose = Literal["topup", "invoice"]
Provider = Literal["razorpay", "stripe"]

MAX_LINES = 200
MAX_QUANTITY = Decimal(1_000_000)

# Strict: "5" and 5.5 are errors, never money.
Paise = Annotated[int, Field(strict=True, ge=0, le=MAX_PAISE, description="Integer paise (₹1 = 100).")]
PositivePaise = Annotated[int, Field(strict=True, gt=0, le=MAX_PAISE, description="Integer paise (₹1 = 100), > 0.")]
Credits = Annotated[int, Field(strict=True, gt=0, le=MAX_CREDITS, examples=[100])]
Reason = Annotated[str, Field(min_length=1, max_length=500, description="Why (recorded in the invoice's audit).")]
StateCode = Annotated[
    str,
    Field(pattern=r"^[A-Z]{2}$", description="A 2-letter Indian state / union territory code, e.g. `MH`."),
]
Sac = Annotated[str, Field(pattern=r"^[0-9]{6}$", description="SAC code (6 digits); default `997224`.")]
Gstin = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{2}[A-Z0-9]{10}[0-9A-Z]Z[0-9A-Z]$",
        description="GSTIN (15 characters; its first two digits are the state's GST code).",
    ),
]
Reference = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\x20-\x7e]+$")]


def _date_in(value: Any) -> Any:
    # Only the text `YYYY-MM-DD` is a date here (not a number of seconds, nor a timestamp).
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise PydanticCustomError("date_format", "Must be a date YYYY-MM-DD")
    return value


DocDate = Annotated[date, BeforeValidator(_date_in), Field(description="`YYYY-MM-DD` (Asia/Kolkata).")]


def _quantity_in(value: Any) -> Any:
    # A JSON integer is a whole quantity; a JSON float is refused (binary fractions are not
    # quantities: send "2.5").
    if isinstance(value, bool) or isinstance(value, float):
        raise PydanticCustomError("quantity_type", 'Must be a decimal string such as "2.5", or an integer')
    if isinstance(value, int):
        return str(value)
    return value


def _quantity_range(value: str) -> str:
    try:
        q = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise PydanticCustomError("quantity_value", "Must be a decimal number") from None
    if not 0 < q <= MAX_QUANTITY:
        raise PydanticCustomError("quantity_range", "Must be greater than 0 and at most 1000000")
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_quantity_in),
    Field(pattern=r"^[0-9]{1,7}(\.[0-9]{1,3})?$", description='Decimal text (at most 3 decimals), e.g. "1" or "2.5".'),
    AfterValidator(_quantity_range),
]


def _date_text(value: date | None) -> str:
    return value.isoformat() if value else ""


def status_value(status: InvoiceStatus) -> int:
    return enum_value(pb.InvoiceStatus, status, "INVOICE_STATUS_")


def proof_status_value(status: ProofStatus) -> int:
    return enum_value(pb.ProofStatus, status, "PROOF_STATUS_")


# -- supplier settings ---------------------------------------------------------------------------


class BillingSettings(BaseModel):
    """The supplier (the firm) printed on every invoice; `state` decides CGST+SGST vs IGST."""

    legal_name: str
    gstin: str
    state: str
    address: str
    invoice_prefix: str
    payment_terms_days: int
    updated_at: datetime | None

    @classmethod
    def from_proto(cls, s: pb.BillingSettings) -> BillingSettings:
        return cls(
            legal_name=s.legal_name,
            gstin=s.gstin,
            state=s.state,
            address=s.address,
            invoice_prefix=s.invoice_prefix,
            payment_terms_days=s.payment_terms_days,
            updated_at=timestamp(s, "updated_at"),
        )


class SettingsBody(Strict):
    legal_name: str = Field(min_length=1, max_length=200)
    gstin: Gstin
    state: StateCode
    address: str = Field(min_length=1, max_length=1000)
    invoice_prefix: str = Field(
        min_length=1,
        max_length=8,
        pattern=r"^[A-Za-z0-9-]+$",
        description="Numbers are `<prefix>/<yy-yy>/<n>`, at most 16 characters in all (e.g. `ZO/25-26/000042`).",
    )
    payment_terms_days: int | None = Field(
        None, strict=True, ge=0, le=365, description="Days an issued invoice is due after its date (default 30)."
    )

    def to_proto(self) -> pb.BillingSettings:
        return pb.BillingSettings(
            legal_name=self.legal_name,
            gstin=self.gstin,
            state=self.state,
            address=self.address,
            invoice_prefix=self.invoice_prefix,
            payment_terms_days=self.payment_terms_days or 0,
        )


# -- invoices ------------------------------------------------------------------------------------


class InvoiceLine(BaseModel):
    id: str
    description: str
    sac: str
    quantity: str
    unit_price_paise: int
    discount_paise: int
    taxable_paise: int
    cgst_paise: int
    sgst_paise: int
    igst_paise: int
    total_paise: int
    ref_type: str | None
    ref_id: str | None
    place_of_supply: str | None

    @classmethod
    def from_proto(cls, line: pb.InvoiceLine) -> InvoiceLine:
        return cls(
            id=line.id,
            description=line.description,
            sac=line.sac,
            quantity=line.quantity,
            unit_price_paise=line.unit_price_paise,
            discount_paise=line.discount_paise,
            taxable_paise=line.taxable_paise,
            cgst_paise=line.cgst_paise,
            sgst_paise=line.sgst_paise,
            igst_paise=line.igst_paise,
            total_paise=line.total_paise,
            ref_type=or_none(line.ref_type),
            ref_id=or_none(line.ref_id),
            place_of_supply=or_none(line.place_of_supply),
        )


class Adjustment(BaseModel):
    id: str
    kind: str
    amount_paise: int
    reason: str
    actor: str | None
    created_at: datetime | None

    @classmethod
    def from_proto(cls, a: pb.InvoiceAdjustment) -> Adjustment:
        return cls(
            id=a.id,
            kind=a.kind,
            amount_paise=a.amount_paise,
            reason=a.reason,
            actor=or_none(a.actor),
            created_at=timestamp(a, "created_at"),
        )


class CreditNote(BaseModel):
    id: str
    number: str
    taxable_paise: int
    cgst_paise: int
    sgst_paise: int
    igst_paise: int
    total_paise: int
    reason: str
    issued_at: datetime | None

    @classmethod
    def from_proto(cls, c: pb.CreditNote) -> CreditNote:
        return cls(
            id=c.id,
            number=c.number,
            taxable_paise=c.taxable_paise,
            cgst_paise=c.cgst_paise,
            sgst_paise=c.sgst_paise,
            igst_paise=c.igst_paise,
            total_paise=c.total_paise,
            reason=c.reason,
            issued_at=timestamp(c, "issued_at"),
        )


class Payment(BaseModel):
    id: str
    invoice_id: str
    amount_paise: int
    method: str = Field(description="`bank_transfer`, `upi`, `card`, `cash` or `provider`.")
    reference: str
    provider: str | None = Field(description="`razorpay` or `stripe` for provider payments.")
    received_at: datetime | None
    recorded_by: str | None
    created_at: datetime | None

    @classmethod
    def from_proto(cls, p: pb.Payment) -> Payment:
        return cls(
            id=p.id,
            invoice_id=p.invoice_id,
            amount_paise=p.amount_paise,
            method=p.method,
            reference=p.reference,
            provider=or_none(p.provider),
            received_at=timestamp(p, "received_at"),
            recorded_by=or_none(p.recorded_by),
            created_at=timestamp(p, "created_at"),
        )


class Invoice(BaseModel):
    id: str
    account_id: str
    number: str | None = Field(description="Assigned at issue (gapless per financial year); null on a draft.")
    status: InvoiceStatus
    invoice_date: str | None = Field(description="`YYYY-MM-DD` (Asia/Kolkata), set at issue.")
    due_date: str | None
    place_of_supply: str | None = Field(description="2-letter state code: CGST+SGST when the supplier's, else IGST.")
    supplier_gstin: str | None
    recipient_gstin: str | None
    lines: list[InvoiceLine]
    taxable_paise: int
    cgst_paise: int
    sgst_paise: int
    igst_paise: int
    round_off_paise: int = Field(description="The total rounded to the rupee minus the exact sum (may be negative).")
    total_paise: int
    adjusted_paise: int
    credited_paise: int
    paid_paise: int
    balance_paise: int = Field(description="total - adjusted - credited - paid.")
    total_in_words: str | None
    adjustments: list[Adjustment]
    credit_notes: list[CreditNote]
    payments: list[Payment]
    channel_id: str | None = Field(description="The channel whose portal users may see it.")
    has_document: bool = Field(description="Whether the rendered PDF exists (`GET …/document`).")
    created_by: str | None
    created_at: datetime | None
    issued_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def from_proto(cls, i: pb.Invoice) -> Invoice:
        return cls(
            id=i.id,
            account_id=i.account_id,
            number=or_none(i.number),
            status=enum_name(pb.InvoiceStatus, i.status, "INVOICE_STATUS_"),
            invoice_date=or_none(i.invoice_date),
            due_date=or_none(i.due_date),
            place_of_supply=or_none(i.place_of_supply),
            supplier_gstin=or_none(i.supplier_gstin),
            recipient_gstin=or_none(i.recipient_gstin),
            lines=[InvoiceLine.from_proto(line) for line in i.lines],
            taxable_paise=i.taxable_paise,
            cgst_paise=i.cgst_paise,
            sgst_paise=i.sgst_paise,
            igst_paise=i.igst_paise,
            round_off_paise=i.round_off_paise,
            total_paise=i.total_paise,
            adjusted_paise=i.adjusted_paise,
            credited_paise=i.credited_paise,
            paid_paise=i.paid_paise,
            balance_paise=i.balance_paise,
            total_in_words=or_none(i.total_in_words),
            adjustments=[Adjustment.from_proto(a) for a in i.adjustments],
            credit_notes=[CreditNote.from_proto(c) for c in i.credit_notes],
            payments=[Payment.from_proto(p) for p in i.payments],
            channel_id=or_none(i.channel_id),
            has_document=i.has_document,
            created_by=or_none(i.created_by),
            created_at=timestamp(i, "created_at"),
            issued_at=timestamp(i, "issued_at"),
            updated_at=timestamp(i, "updated_at"),
        )


class InvoiceList(BaseModel):
    items: list[Invoice] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Cursor of the next page; null on the last page.")


class LineBody(Strict):
    description: str = Field(min_length=1, max_length=500)
    sac: Sac | None = None
    quantity: Quantity
    unit_price_paise: Paise
    discount_paise: Paise | None = Field(None, description="Off this line's amount, before GST.")
    ref_type: LineRefType | None = None
    ref_id: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")
    place_of_supply: StateCode | None = Field(None, description="Overrides the derived place of supply of this line.")

    def to_proto(self) -> pb.InvoiceLineInput:
        return pb.InvoiceLineInput(
            description=self.description,
            sac=self.sac or "",
            quantity=self.quantity,
            unit_price_paise=self.unit_price_paise,
            discount_paise=self.discount_paise or 0,
            ref_type=self.ref_type or "",
            ref_id=self.ref_id or "",
            place_of_supply=self.place_of_supply or "",
        )


Lines = Annotated[list[LineBody], Field(min_length=1, max_length=MAX_LINES)]


class CreateInvoiceBody(Strict):
    account_id: UUID = Field(description="The billing account invoiced (the recipient).")
    place_of_supply: StateCode | None = Field(
        None, description="Overrides the derived place of supply (the property's state, else the recipient's)."
    )
    due_date: DocDate | None = Field(None, description="Default: the invoice date + the payment terms.")
    channel_id: UUID | None = Field(None, description="The channel whose portal users may see it.")
    lines: Lines

    def to_proto(self, idempotency_key: str | None) -> pb.CreateInvoiceRequest:
        return pb.CreateInvoiceRequest(
            account_id=str(self.account_id),
            place_of_supply=self.place_of_supply or "",
            due_date=_date_text(self.due_date),
            lines=[line.to_proto() for line in self.lines],
            channel_id=str(self.channel_id) if self.channel_id else "",
            idempotency_key=idempotency_key or "",
        )


class AddLinesBody(Strict):
    lines: Lines


class IssueBody(Strict):
    invoice_date: DocDate | None = Field(
        None, description="Default today; never in the future, never before the series' last issued date."
    )

    def date_text(self) -> str:
        return _date_text(self.invoice_date)


class VoidBody(Strict):
    reason: Reason


class AdjustmentBody(Strict):
    kind: AdjustmentKind
    amount_paise: PositivePaise
    reason: Reason


class PaymentBody(Strict):
    amount_paise: PositivePaise
    method: ManualMethod
    reference: Reference = Field(description="UTR, cheque or transaction number: a payment is once per reference.")
    received_at: UtcDatetime | None = Field(None, description="Default now; never in the future.")

    def to_proto(self, invoice_id: UUID, idempotency_key: str) -> pb.RecordPaymentRequest:
        return pb.RecordPaymentRequest(
            invoice_id=str(invoice_id),
            amount_paise=self.amount_paise,
            method=self.method,
            reference=self.reference,
            received_at=to_timestamp(self.received_at),
            idempotency_key=idempotency_key,
        )


class CreditNoteBody(Strict):
    taxable_paise: PositivePaise = Field(description="The taxable amount credited (GST as on the invoice).")
    reason: Reason


class PaymentRecorded(BaseModel):
    invoice: Invoice
    payment: Payment

    @classmethod
    def from_proto(cls, r: pb.RecordPaymentResponse) -> PaymentRecorded:
        return cls(invoice=Invoice.from_proto(r.invoice), payment=Payment.from_proto(r.payment))


class CreditNoteIssued(BaseModel):
    invoice: Invoice
    credit_note: CreditNote

    @classmethod
    def from_proto(cls, r: pb.IssueCreditNoteResponse) -> CreditNoteIssued:
        return cls(invoice=Invoice.from_proto(r.invoice), credit_note=CreditNote.from_proto(r.credit_note))


# -- payment proofs ------------------------------------------------------------------------------


class PaymentProof(BaseModel):
    id: str
    invoice_id: str
    document_id: str = Field(description="The ops document the partner uploaded.")
    note: str | None
    amount_paise: int
    reference: str | None
    status: ProofStatus
    submitted_by: str | None
    reviewed_by: str | None
    review_reason: str | None
    payment_id: str | None = Field(description="The payment a confirmation recorded.")
    created_at: datetime | None
    reviewed_at: datetime | None

    @classmethod
    def from_proto(cls, p: pb.PaymentProof) -> PaymentProof:
        return cls(
            id=p.id,
            invoice_id=p.invoice_id,
            document_id=p.document_id,
            note=or_none(p.note),
            amount_paise=p.amount_paise,
            reference=or_none(p.reference),
            status=enum_name(pb.ProofStatus, p.status, "PROOF_STATUS_"),
            submitted_by=or_none(p.submitted_by),
            reviewed_by=or_none(p.reviewed_by),
            review_reason=or_none(p.review_reason),
            payment_id=or_none(p.payment_id),
            created_at=timestamp(p, "created_at"),
            reviewed_at=timestamp(p, "reviewed_at"),
        )


class PaymentProofList(BaseModel):
    items: list[PaymentProof]
    next_cursor: str | None


class PaymentProofBody(Strict):
    document_id: UUID = Field(description="The uploaded ops document (receipt, bank advice).")
    note: str | None = Field(None, max_length=1000)
    amount_paise: PositivePaise
    reference: Reference | None = None


class ConfirmProofBody(Strict):
    method: ManualMethod = Field(description="How the money came in (the payment recorded).")


class RejectProofBody(Strict):
    reason: Reason


class ProofReviewed(BaseModel):
    proof: PaymentProof
    invoice: Invoice

    @classmethod
    def from_proto(cls, r: pb.ReviewPaymentProofResponse) -> ProofReviewed:
        return cls(proof=PaymentProof.from_proto(r.proof), invoice=Invoice.from_proto(r.invoice))


# -- receivables ---------------------------------------------------------------------------------


class Ageing(BaseModel):
    """Outstanding paise by days past the invoice date."""

    days_0_30_paise: int
    days_31_60_paise: int
    days_61_90_paise: int
    days_90_plus_paise: int

    @classmethod
    def from_proto(cls, a: pb.AgeingBuckets) -> Ageing:
        return cls(
            days_0_30_paise=a.days_0_30_paise,
            days_31_60_paise=a.days_31_60_paise,
            days_61_90_paise=a.days_61_90_paise,
            days_90_plus_paise=a.days_90_plus_paise,
        )


class AccountReceivables(BaseModel):
    account_id: str
    display_name: str
    unpaid_invoices: int
    overdue_invoices: int
    outstanding_paise: int
    ageing: Ageing

    @classmethod
    def from_proto(cls, r: pb.AccountReceivables) -> AccountReceivables:
        return cls(
            account_id=r.account_id,
            display_name=r.display_name,
            unpaid_invoices=r.unpaid_invoices,
            overdue_invoices=r.overdue_invoices,
            outstanding_paise=r.outstanding_paise,
            ageing=Ageing.from_proto(r.ageing),
        )


class Receivables(BaseModel):
    accounts: list[AccountReceivables]
    total: Ageing
    outstanding_paise: int

    @classmethod
    def from_proto(cls, r: pb.GetReceivablesResponse) -> Receivables:
        return cls(
            accounts=[AccountReceivables.from_proto(a) for a in r.accounts],
            total=Ageing.from_proto(r.total),
            outstanding_paise=r.outstanding_paise,
        )


# -- checkout and provider webhooks --------------------------------------------------------------


class CheckoutBody(Strict):
    purpose: CheckoutPurpose = Field(description="`topup`: buy credits; `invoice`: pay an invoice's balance.")
    provider: Provider
    account_id: UUID
    credits: Credits | None = Field(None, validate_default=True, description="`topup` only: the credits bought.")
    invoice_id: UUID | None = Field(None, validate_default=True, description="`invoice` only: the invoice paid.")

    @field_validator("credits")
    @classmethod
    def _credits_for_topup(cls, value: int | None, info: ValidationInfo) -> int | None:
        purpose = info.data.get("purpose")
        if purpose == "topup" and value is None:
            raise PydanticCustomError("missing", "Field required for a top-up")
        if purpose == "invoice" and value is not None:
            raise PydanticCustomError("not_allowed", "Only for a top-up")
        return value

    @field_validator("invoice_id")
    @classmethod
    def _invoice_for_invoice(cls, value: UUID | None, info: ValidationInfo) -> UUID | None:
        purpose = info.data.get("purpose")
        if purpose == "invoice" and value is None:
            raise PydanticCustomError("missing", "Field required to pay an invoice")
        if purpose == "topup" and value is not None:
            raise PydanticCustomError("not_allowed", "Only to pay an invoice")
        return value

    def to_proto(self, idempotency_key: str) -> pb.CreateCheckoutRequest:
        return pb.CreateCheckoutRequest(
            purpose=self.purpose,
            provider=self.provider,
            account_id=str(self.account_id),
            credits=self.credits or 0,
            invoice_id=str(self.invoice_id) if self.invoice_id else "",
            idempotency_key=idempotency_key,
        )


class Checkout(BaseModel):
    id: str
    provider: str
    purpose: str
    account_id: str
    credits: int
    invoice_id: str | None
    amount_paise: int
    provider_ref: str = Field(description="Razorpay's order id or Stripe's Checkout Session id.")
    checkout_url: str | None = Field(
        description="Stripe: the hosted page; Razorpay: null (open Checkout with the order)."
    )
    status: str = Field(description="`created`, `paid`, `failed` or `refunded`.")
    created_at: datetime | None

    @classmethod
    def from_proto(cls, c: pb.Checkout) -> Checkout:
        return cls(
            id=c.id,
            provider=c.provider,
            purpose=c.purpose,
            account_id=c.account_id,
            credits=c.credits,
            invoice_id=or_none(c.invoice_id),
            amount_paise=c.amount_paise,
            provider_ref=c.provider_ref,
            checkout_url=or_none(c.checkout_url),
            status=c.status,
            created_at=timestamp(c, "created_at"),
        )


class WebhookResult(BaseModel):
    event_id: str = Field(description="The provider's event id.")
    outcome: str = Field(description="`applied`, `duplicate` (a replay: no second effect) or `ignored` (stored).")

    @classmethod
    def from_proto(cls, r: pb.HandleProviderWebhookResponse) -> WebhookResult:
        return cls(event_id=r.event_id, outcome=r.outcome)
