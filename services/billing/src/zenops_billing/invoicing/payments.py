"""Payments on invoices and portal payment proofs.

`record_payment` is THE way money lands on an invoice (manual payments, confirmed proofs, and
provider settlements, which call it with method="provider"): idempotent by (method,
provider, reference) — the same reference twice records once and answers the same payment;
partial → PARTIALLY_PAID; the balance reaching zero → PAID and billing.invoice.paid in the
outbox, in the caller's transaction; more than the balance → FAILED_PRECONDITION OVERPAYMENT
naming amount_paise.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from importlib import metadata

from sqlalchemy.ext.asyncio import AsyncConnection

from zenops.events.v1 import billing_pb2 as billing_events
from zenops_kit.errors import FailedPrecondition, FieldViolation, NotFound
from zenops_kit.events import append_event, new_event
from zenops_kit.fields import invalid, parse_uuid
from zenops_kit.fields import text as clean_text

from ..domain import invoices as rules
from ..store import invoices as store

INVOICE_PAID = "billing.invoice.paid"

try:
    PRODUCER_VERSION = metadata.version("zenops-billing")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    PRODUCER_VERSION = "0.1.0"


def validate_payment(
    *,
    invoice_id: str,
    amount_paise: int,
    method: str,
    reference: str,
    received_at: datetime | None,
    now: datetime | None = None,
) -> tuple[str, int, str, str, datetime]:
    """A manual payment's fields (received_at defaults to now; never in the future)."""
    now = now or datetime.now(UTC)
    invoice_id = parse_uuid(invoice_id, "invoice_id")
    amount = rules.check_amount(amount_paise, "amount_paise")
    if method not in rules.PAYMENT_METHODS:
        raise invalid("method", "must be one of " + ", ".join(rules.PAYMENT_METHODS))
    reference = clean_text(reference, "reference", max_length=rules.MAX_REFERENCE)
    if received_at is None:
        received_at = now
    elif received_at > now:
        raise invalid("received_at", "must not be in the future")
    return invoice_id, amount, method, reference, received_at


async def emit_paid(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    invoice_id: str,
    actor: str,
    trace_id: str = "",
    producer_version: str = "",
) -> None:
    """billing.invoice.paid for the invoice (once: the event id is derived from the invoice),
    with the refs its lines bill; and the audit row."""
    invoice = await store.get_invoice(conn, invoice_id)
    lines = (await store.lines(conn, [invoice_id]))[invoice_id]
    refs = [f"{r.ref_type}:{r.ref_id}" for r in lines if r.ref_type != "manual"]
    payload = billing_events.InvoicePaid(
        invoice_id=invoice_id,
        billing_account_id=invoice.account_id,
        number=invoice.number or "",
        total_paise=invoice.total_paise,
        paid_paise=invoice.paid_paise,
        refs=refs,
    )
    await append_event(
        conn,
        new_event(
            event_type=INVOICE_PAID,
            payload=payload,
            producer="billing",
            producer_version=producer_version or PRODUCER_VERSION,
            aggregate_type="invoice",
            aggregate_id=invoice_id,
            aggregate_version=int(invoice.version),
            tenant_id=tenant_id,
            event_id=str(uuid.uuid5(uuid.UUID(invoice_id), INVOICE_PAID)),
        ),
    )
    await store.append_event(
        conn,
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        kind=rules.EV_PAID,
        actor=actor,
        detail={"paid_paise": invoice.paid_paise, "refs": refs},
        trace_id=trace_id,
    )


async def record_payment(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    invoice_id: str,
    amount_paise: int,
    method: str,
    reference: str,
    provider: str,
    received_at: datetime,
    actor: str,
    trace_id: str,
    producer_version: str = "",
):
    """(invoice row, payment row, created). `conn`: a transaction of `tenant_id`. Values
    validated by the caller (validate_payment for manual payments); `provider` is '' for
    manual payments, razorpay | stripe with method "provider"."""
    if method == rules.PROVIDER_METHOD and provider not in rules.PROVIDERS:
        raise invalid("provider", "must be razorpay or stripe for a provider payment")
    if method != rules.PROVIDER_METHOD and provider:
        raise invalid("provider", "is only for provider payments")
    invoice = await store.get_invoice(conn, invoice_id, for_update=True)
    if invoice is None:
        raise rules.not_found(invoice_id, "invoice_id")
    earlier = await store.payment_by_reference(conn, method=method, provider=provider, reference=reference)
    if earlier is not None:
        if earlier.invoice_id != invoice_id or earlier.amount_paise != amount_paise:
            raise rules.reference_used(method, reference)
        return await store.get_invoice(conn, invoice_id), earlier, False
    if invoice.status == rules.PAID:
        rules.check_within_balance(amount_paise, 0, "amount_paise", reason=rules.OVERPAYMENT)
    rules.check_open(invoice_id, invoice.status, "payment")
    due = rules.balance(invoice.total_paise, invoice.adjusted_paise, invoice.credited_paise, invoice.paid_paise)
    rules.check_within_balance(amount_paise, due, "amount_paise", reason=rules.OVERPAYMENT)
    payment = await store.insert_payment(
        conn,
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        amount=amount_paise,
        method=method,
        reference=reference,
        provider=provider,
        received_at=received_at,
        recorded_by=actor,
    )
    if payment is None:  # a twin on another invoice committed the reference first (this invoice was locked)
        earlier = await store.payment_by_reference(conn, method=method, provider=provider, reference=reference)
        if earlier is None or earlier.invoice_id != invoice_id or earlier.amount_paise != amount_paise:
            raise rules.reference_used(method, reference)
        return await store.get_invoice(conn, invoice_id), earlier, False
    paid = invoice.paid_paise + amount_paise
    status = rules.status_after(
        invoice.status, invoice.total_paise, invoice.adjusted_paise, invoice.credited_paise, paid
    )
    await store.update_invoice(conn, invoice_id, paid_paise=paid, status=status)
    await store.append_event(
        conn,
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        kind=rules.EV_PAYMENT,
        actor=actor,
        detail={
            "payment_id": payment.id,
            "amount_paise": amount_paise,
            "method": method,
            "provider": provider,
            "reference": reference,
            "status": status,
        },
        trace_id=trace_id,
    )
    if status == rules.PAID:
        await emit_paid(
            conn,
            tenant_id=tenant_id,
            invoice_id=invoice_id,
            actor=actor,
            trace_id=trace_id,
            producer_version=producer_version,
        )
    return await store.get_invoice(conn, invoice_id), payment, True


# -- payment proofs ---------------------------------------------------------------------------


def validate_proof(
    *, invoice_id: str, document_id: str, note: str, amount_paise: int, reference: str
) -> tuple[str, str, str, int, str]:
    return (
        parse_uuid(invoice_id, "invoice_id"),
        parse_uuid(document_id, "document_id"),
        clean_text(note, "note", max_length=rules.MAX_NOTE, required=False),
        rules.check_amount(amount_paise, "amount_paise"),
        clean_text(reference, "reference", max_length=rules.MAX_REFERENCE, required=False),
    )


async def submit_proof(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    channel_id: str | None,
    invoice_id: str,
    document_id: str,
    note: str,
    amount: int,
    reference: str,
    actor: str,
    trace_id: str = "",
):
    """A partner's proof of payment for an issued, unpaid invoice of its channel."""
    invoice = await store.get_invoice(conn, invoice_id, channel_id=channel_id)
    if invoice is None:
        raise rules.not_found(invoice_id, "invoice_id")
    rules.check_open(invoice_id, invoice.status, "payment proof")
    proof = await store.insert_proof(
        conn,
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        document_id=document_id,
        note=note,
        amount=amount,
        reference=reference,
        submitted_by=actor,
    )
    await store.append_event(
        conn,
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        kind=rules.EV_PROOF_SUBMITTED,
        actor=actor,
        detail={"proof_id": proof.id, "document_id": document_id, "amount_paise": amount, "reference": reference},
        trace_id=trace_id,
    )
    return proof


def proof_not_found(proof_id: str) -> NotFound:
    return NotFound(
        f"payment proof {proof_id} not found", reason=rules.PROOF_NOT_FOUND, metadata={"field": "id", "id": proof_id}
    )


def validate_review(*, proof_id: str, confirm: bool, method: str, reason: str) -> tuple[str, str, str]:
    proof_id = parse_uuid(proof_id, "id")
    if confirm:
        method = method or "bank_transfer"
        if method not in rules.PAYMENT_METHODS:
            raise invalid("method", "must be one of " + ", ".join(rules.PAYMENT_METHODS))
        return proof_id, method, clean_text(reason, "reason", max_length=rules.MAX_REASON, required=False)
    return proof_id, "", clean_text(reason, "reason", max_length=rules.MAX_REASON)


async def review_proof(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    proof_id: str,
    confirm: bool,
    method: str,
    reason: str,
    actor: str,
    trace_id: str = "",
    producer_version: str = "",
):
    """Confirm (a payment with RecordPayment's semantics: the proof's amount, its reference
    or the proof's id) or reject (with a reason). A proof is reviewed once."""
    proof = await store.get_proof(conn, proof_id, for_update=True)
    if proof is None:
        raise proof_not_found(proof_id)
    if proof.status != rules.PROOF_SUBMITTED:
        raise FailedPrecondition(
            f"payment proof {proof_id} is {proof.status}",
            reason=rules.PROOF_ALREADY_REVIEWED,
            metadata={"status": proof.status},
        )
    payment_id = None
    if confirm:
        reference = proof.reference or f"proof:{proof.id}"
        try:
            async with conn.begin_nested():
                _, payment, _ = await record_payment(
                    conn,
                    tenant_id=tenant_id,
                    invoice_id=proof.invoice_id,
                    amount_paise=proof.amount_paise,
                    method=method,
                    reference=reference,
                    provider="",
                    received_at=proof.created_at,
                    actor=actor,
                    trace_id=trace_id,
                    producer_version=producer_version,
                )
        except FailedPrecondition as err:
            err.violations.append(FieldViolation("id", "the proof cannot be confirmed into a payment"))
            raise
        payment_id = payment.id
    status = rules.PROOF_CONFIRMED if confirm else rules.PROOF_REJECTED
    await store.review_proof(conn, proof_id, status=status, reviewed_by=actor, reason=reason, payment_id=payment_id)
    await store.append_event(
        conn,
        tenant_id=tenant_id,
        invoice_id=proof.invoice_id,
        kind=rules.EV_PROOF_CONFIRMED if confirm else rules.EV_PROOF_REJECTED,
        actor=actor,
        reason=reason,
        detail={"proof_id": proof_id, "payment_id": payment_id or ""},
        trace_id=trace_id,
    )
    return await store.get_proof(conn, proof_id)
