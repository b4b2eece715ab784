"""Invoice use cases: create a draft, add lines, issue (number, GST settled, document), void,
adjust, credit notes, read and list.

Shape of every mutation: `validate_*` (pure, once, naming the fields) → optional look-ups
outside the transaction (the property's state, asked of ops) → the operation on the caller's
transaction connection (`conn`, scoped to the tenant; the idempotency record commits with
it) → an invoice_events row (actor, trace id).

GST is computed when lines are added (with what is known then) and settled at issue: the
supplier's state from the settings, each line's place of supply (the line's override, else
its property's state, else the recipient's), taxes per line, the total rounded to the rupee.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from zenops_kit import india
from zenops_kit.errors import AlreadyExists, FailedPrecondition, FieldViolation, NotFound, Unavailable
from zenops_kit.fields import invalid, optional_uuid, parse_uuid
from zenops_kit.fields import text as clean_text
from zenops_kit.money import paise_in_words

from ..domain import gst
from ..domain import invoices as rules
from ..domain.wallet import account_not_found
from ..store import accounts as account_store
from ..store import invoices as store
from . import document
from .places import PropertyStates

log = logging.getLogger("zenops.billing.invoices")

_REF_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}")


# -- views ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceView:
    invoice: object  # store row
    lines: list
    adjustments: list
    credit_notes: list
    payments: list

    @property
    def id(self) -> str:
        return self.invoice.id

    @property
    def balance(self) -> int:
        i = self.invoice
        return rules.balance(i.total_paise, i.adjusted_paise, i.credited_paise, i.paid_paise)

    @property
    def total_in_words(self) -> str:
        return paise_in_words(self.invoice.total_paise)


async def views(conn: AsyncConnection, rows: list) -> list[InvoiceView]:
    ids = [r.id for r in rows]
    lines = await store.lines(conn, ids)
    adjustments = await store.adjustments(conn, ids)
    credit_notes = await store.credit_notes(conn, ids)
    payments = await store.payments(conn, ids)
    return [
        InvoiceView(
            r, lines.get(r.id, []), adjustments.get(r.id, []), credit_notes.get(r.id, []), payments.get(r.id, [])
        )
        for r in rows
    ]


async def load(conn: AsyncConnection, invoice_id: str, *, channel_id: str | None = None) -> InvoiceView:
    row = await store.get_invoice(conn, invoice_id, channel_id=channel_id)
    if row is None:
        raise rules.not_found(invoice_id)
    return (await views(conn, [row]))[0]


# -- input ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineInput:
    description: str
    sac: str
    quantity: Decimal
    unit_price: int
    discount: int
    ref_type: str
    ref_id: str
    place_override: str
    assignment_id: str = ""


def validate_line(line, prefix: str) -> LineInput:
    """`line`: an InvoiceLineInput (or anything with its fields)."""
    description = clean_text(line.description, f"{prefix}.description", max_length=rules.MAX_DESCRIPTION)
    sac = gst.sac(line.sac, f"{prefix}.sac")
    qty = gst.quantity(line.quantity, f"{prefix}.quantity")
    if not 0 <= line.unit_price_paise <= gst.MAX_PAISE:
        raise invalid(f"{prefix}.unit_price_paise", "must be between 0 and 10^13 paise")
    if line.discount_paise < 0:
        raise invalid(f"{prefix}.discount_paise", "must not be negative")
    if gst.taxable_value(qty, line.unit_price_paise, line.discount_paise) < 0:
        raise invalid(f"{prefix}.discount_paise", "must not exceed quantity × unit price")
    ref_type = line.ref_type or "manual"
    if ref_type not in rules.LINE_REF_TYPES:
        raise invalid(f"{prefix}.ref_type", "must be one of " + ", ".join(rules.LINE_REF_TYPES))
    ref_id = (line.ref_id or "").strip()
    if ref_type == "manual":
        if ref_id:
            raise invalid(f"{prefix}.ref_id", "must be empty for a manual line")
    elif not _REF_ID.fullmatch(ref_id):
        raise invalid(
            f"{prefix}.ref_id", "is required for a ref_type other than manual: letters, digits, _.:/- (at most 100)"
        )
    place = india.state(line.place_of_supply, f"{prefix}.place_of_supply", required=False)
    return LineInput(
        description,
        sac,
        qty,
        line.unit_price_paise,
        line.discount_paise,
        ref_type,
        ref_id,
        place,
        assignment_id=ref_id if ref_type == "assignment" else "",
    )


def validate_lines(lines, field: str = "lines", *, required: bool = False) -> list[LineInput]:
    lines = list(lines)
    if required and not lines:
        raise invalid(field, "at least one line is required")
    if len(lines) > rules.MAX_LINES:
        raise invalid(field, f"at most {rules.MAX_LINES} lines")
    cleaned = [validate_line(line, f"{field}[{n}]") for n, line in enumerate(lines)]
    refs = [(li.ref_type, li.ref_id) for li in cleaned if li.ref_type != "manual"]
    if len(refs) != len(set(refs)):
        raise invalid(field, "bill a ref (ref_type, ref_id) once")
    return cleaned


@dataclass(frozen=True)
class CreateInput:
    account_id: str
    place_override: str
    due_date: date | None
    channel_id: str | None
    lines: list[LineInput]


def validate_create(*, account_id: str, place_of_supply: str, due_date: str, channel_id: str, lines) -> CreateInput:
    return CreateInput(
        account_id=parse_uuid(account_id, "account_id"),
        place_override=india.state(place_of_supply, "place_of_supply", required=False),
        due_date=rules.parse_date(due_date, "due_date"),
        channel_id=optional_uuid(channel_id, "channel_id"),
        lines=validate_lines(lines),
    )


async def property_states(
    places: PropertyStates, tenant_id: str, assignment_ids: set[str], *, strict: bool
) -> dict[str, str]:
    """The property's state of each assignment ('' = none). Not `strict` (lines being added to a
    draft): ops not answering leaves the state unknown (settled at issue); `strict` (issue):
    UNAVAILABLE."""
    out: dict[str, str] = {}
    for assignment_id in sorted(a for a in assignment_ids if a):
        try:
            out[assignment_id] = await places.property_state(tenant_id=tenant_id, assignment_id=assignment_id)
        except Unavailable:
            if strict:
                raise
            log.info("property state unknown for now", extra={"assignment_id": assignment_id})
    return out


# -- create and lines -------------------------------------------------------------------------


def _line_values(li: LineInput, position: int, *, place: str, supplier_state: str) -> dict:
    t = gst.line_tax(li.quantity, li.unit_price, li.discount, place=place, supplier_state=supplier_state)
    return {
        "position": position,
        "description": li.description,
        "sac": li.sac,
        "quantity": li.quantity,
        "unit_price_paise": li.unit_price,
        "discount_paise": li.discount,
        "taxable_paise": t.taxable,
        "cgst_paise": t.cgst,
        "sgst_paise": t.sgst,
        "igst_paise": t.igst,
        "total_paise": t.total,
        "place_of_supply": place,
        "ref_type": li.ref_type,
        "ref_id": li.ref_id,
        "assignment_id": li.assignment_id,
        "place_override": li.place_override,
    }


def _ref_taken(err: store.RefTaken) -> AlreadyExists:
    return AlreadyExists(
        f"{err.ref_type} {err.ref_id} is already on an invoice",
        reason=rules.REF_ALREADY_INVOICED,
        violations=[FieldViolation("lines.ref_id", "is already billed on a live invoice")],
        metadata={"ref_type": err.ref_type, "ref_id": err.ref_id},
    )


async def _insert_lines(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    invoice,
    lines: list[LineInput],
    states: dict[str, str],
    supplier_state: str,
) -> None:
    existing = (await store.lines(conn, [invoice.id]))[invoice.id]
    start = max((r.position for r in existing), default=0)
    values = [
        _line_values(
            li,
            start + n,
            place=gst.place_of_supply(
                line_override=li.place_override,
                property_state=states.get(li.assignment_id, ""),
                recipient_state=invoice.place_of_supply,
            ),
            supplier_state=supplier_state,
        )
        for n, li in enumerate(lines, start=1)
    ]
    try:
        await store.insert_lines(conn, tenant_id=tenant_id, invoice_id=invoice.id, lines_=values)
    except store.RefTaken as err:
        raise _ref_taken(err) from None


async def _refresh_totals(conn: AsyncConnection, invoice_id: str) -> None:
    lines = (await store.lines(conn, [invoice_id]))[invoice_id]
    t = gst.totals([gst.LineTax(r.taxable_paise, r.cgst_paise, r.sgst_paise, r.igst_paise) for r in lines])
    await store.update_invoice(
        conn,
        invoice_id,
        taxable_paise=t.taxable,
        cgst_paise=t.cgst,
        sgst_paise=t.sgst,
        igst_paise=t.igst,
        round_off_paise=t.round_off,
        total_paise=t.total,
    )


async def create(
    conn: AsyncConnection, *, tenant_id: str, req: CreateInput, states: dict[str, str], actor: str, trace_id: str = ""
) -> str:
    """A DRAFT invoice with its lines; its id."""
    account = await account_store.get(conn, req.account_id)
    if account is None:
        err = account_not_found(req.account_id)
        err.violations.append(FieldViolation("account_id", "no such billing account"))
        raise err
    settings = await store.get_settings(conn)
    supplier_state = settings.state if settings else ""
    recipient = gst.recipient_state(
        request_override=req.place_override, recipient_gstin=account.gstin, fallback=supplier_state
    )
    invoice_id = str(uuid.uuid4())
    await store.insert_invoice(
        conn,
        invoice_id=invoice_id,
        tenant_id=tenant_id,
        account_id=account.id,
        place_of_supply=recipient,
        place_override=req.place_override,
        recipient_gstin=account.gstin,
        due_date=req.due_date,
        channel_id=req.channel_id,
        created_by=actor,
    )
    if req.channel_id:
        await store.register_channel(conn, channel_id=req.channel_id, tenant_id=tenant_id)
    invoice = await store.get_invoice(conn, invoice_id)
    if req.lines:
        await _insert_lines(
            conn, tenant_id=tenant_id, invoice=invoice, lines=req.lines, states=states, supplier_state=supplier_state
        )
        await _refresh_totals(conn, invoice_id)
    await store.append_event(
        conn,
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        kind=rules.EV_CREATED,
        actor=actor,
        detail={
            "account_id": account.id,
            "lines": len(req.lines),
            "place_of_supply": recipient,
            "channel_id": req.channel_id or "",
        },
        trace_id=trace_id,
    )
    return invoice_id


async def add_lines(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    invoice_id: str,
    lines: list[LineInput],
    states: dict[str, str],
    actor: str,
    trace_id: str = "",
) -> None:
    invoice = await store.get_invoice(conn, invoice_id, for_update=True)
    if invoice is None:
        raise rules.not_found(invoice_id, "invoice_id")
    rules.check_draft(invoice_id, invoice.status)
    settings = await store.get_settings(conn)
    await _insert_lines(
        conn,
        tenant_id=tenant_id,
        invoice=invoice,
        lines=lines,
        states=states,
        supplier_state=settings.state if settings else "",
    )
    await _refresh_totals(conn, invoice_id)
    await store.append_event(
        conn,
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        kind=rules.EV_LINES_ADDED,
        actor=actor,
        detail={"lines": len(lines), "refs": [f"{li.ref_type}:{li.ref_id}" for li in lines if li.ref_type != "manual"]},
        trace_id=trace_id,
    )


async def add_acceptance_line(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    account,
    ref_type: str,
    ref_id: str,
    assignment_id: str,
    channel_id: str | None,
    description: str,
    unit_price_paise: int,
    actor: str,
    trace_id: str = "",
) -> bool:
    """POSTPAID acceptance: a line for the ref on the account's open DRAFT invoice (of the
    channel), created if there is none. Once per ref: False when the ref is already on a
    live line. The place of supply is settled at issue (ops is not asked here)."""
    if await store.line_for_ref(conn, ref_type, ref_id) is not None:
        return False
    await store.lock_account_drafts(conn, tenant_id, account.id)
    invoice = await store.open_draft(conn, account.id, channel_id)
    if invoice is None:
        invoice_id = await create(
            conn,
            tenant_id=tenant_id,
            req=CreateInput(account_id=account.id, place_override="", due_date=None, channel_id=channel_id, lines=[]),
            states={},
            actor=actor,
            trace_id=trace_id,
        )
    else:
        invoice_id = invoice.id
    line = LineInput(
        description=description[: rules.MAX_DESCRIPTION],
        sac=gst.DEFAULT_SAC,
        quantity=Decimal(1),
        unit_price=max(unit_price_paise, 0),
        discount=0,
        ref_type=ref_type,
        ref_id=ref_id,
        place_override="",
        assignment_id=assignment_id,
    )
    try:
        async with conn.begin_nested():
            await add_lines(
                conn,
                tenant_id=tenant_id,
                invoice_id=invoice_id,
                lines=[line],
                states={},
                actor=actor,
                trace_id=trace_id,
            )
    except AlreadyExists as err:
        if err.reason != rules.REF_ALREADY_INVOICED:
            raise
        return False
    return True


# -- issue ------------------------------------------------------------------------------------


async def assignments_of(conn: AsyncConnection, invoice_id: str) -> set[str]:
    """The assignments whose property may fix a line's place of supply (lines without an override)."""
    lines = (await store.lines(conn, [invoice_id])).get(invoice_id, [])
    return {r.assignment_id for r in lines if r.assignment_id and not r.place_override}


async def issue(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    invoice_id: str,
    invoice_date: date | None,
    states: dict[str, str],
    actor: str,
    trace_id: str = "",
    now: datetime | None = None,
) -> None:
    """DRAFT → ISSUED: GST settled, the next number of the financial year's series taken in
    this transaction (gapless: a rollback gives it back), the document rendered and stored."""
    now = now or datetime.now(UTC)
    day = rules.check_invoice_date(invoice_date, rules.today_ist(now))
    settings = await store.get_settings(conn)
    if settings is None:
        raise rules.settings_required()
    invoice = await store.get_invoice(conn, invoice_id, for_update=True)
    if invoice is None:
        raise rules.not_found(invoice_id)
    rules.check_draft(invoice_id, invoice.status)
    lines = (await store.lines(conn, [invoice_id]))[invoice_id]
    if not lines:
        raise FailedPrecondition(f"invoice {invoice_id} has no lines", reason=rules.INVOICE_EMPTY)
    account = await account_store.get(conn, invoice.account_id)
    recipient = gst.recipient_state(
        request_override=invoice.place_override, recipient_gstin=account.gstin, fallback=settings.state
    )
    taxes = []
    doc_lines = []
    for r in lines:
        place = gst.place_of_supply(
            line_override=r.place_override,
            property_state=states.get(r.assignment_id, "") if r.assignment_id else "",
            recipient_state=recipient,
        )
        t = gst.line_tax(
            Decimal(r.quantity), r.unit_price_paise, r.discount_paise, place=place, supplier_state=settings.state
        )
        await store.update_line_tax(
            conn,
            r.id,
            place_of_supply=place,
            taxable_paise=t.taxable,
            cgst_paise=t.cgst,
            sgst_paise=t.sgst,
            igst_paise=t.igst,
            total_paise=t.total,
        )
        taxes.append(t)
        doc_lines.append(
            document.DocLine(
                r.description,
                r.sac,
                gst.quantity_text(Decimal(r.quantity)),
                r.unit_price_paise,
                r.discount_paise,
                t.taxable,
                t.cgst,
                t.sgst,
                t.igst,
                t.total,
                place,
            )
        )
    totals = gst.totals(taxes)
    fy = rules.financial_year(day)
    n = await store.take_number(conn, tenant_id=tenant_id, kind=rules.INVOICE, fy=fy, day=day)
    if n is None:
        raise rules.before_last(day, await store.series_last_date(conn, rules.INVOICE, fy))
    number = rules.format_number(rules.series_prefix(settings.invoice_prefix, rules.INVOICE), fy, n)
    due = invoice.due_date or day + timedelta(days=settings.payment_terms_days)
    if due < day:
        raise FailedPrecondition(
            f"the due date {due.isoformat()} is before the invoice date {day.isoformat()}",
            reason="DUE_DATE_BEFORE_INVOICE_DATE",
            violations=[FieldViolation("invoice_date", "is after the invoice's due date")],
        )
    await store.update_invoice(
        conn,
        invoice_id,
        status=rules.ISSUED,
        number=number,
        invoice_date=day,
        due_date=due,
        place_of_supply=recipient,
        supplier_gstin=settings.gstin,
        recipient_gstin=account.gstin,
        taxable_paise=totals.taxable,
        cgst_paise=totals.cgst,
        sgst_paise=totals.sgst,
        igst_paise=totals.igst,
        round_off_paise=totals.round_off,
        total_paise=totals.total,
        issued_at=now,
    )
    content, sha = document.render(
        document.InvoiceDoc(
            number=number,
            invoice_date=day,
            due_date=due,
            issued_at=now,
            supplier_name=settings.legal_name,
            supplier_gstin=settings.gstin,
            supplier_state=settings.state,
            supplier_address=settings.address,
            recipient_name=account.display_name,
            recipient_gstin=account.gstin,
            recipient_address=account.billing_address,
            place_of_supply=recipient,
            taxable=totals.taxable,
            cgst=totals.cgst,
            sgst=totals.sgst,
            igst=totals.igst,
            round_off=totals.round_off,
            total=totals.total,
            total_in_words=paise_in_words(totals.total),
            lines=doc_lines,
        )
    )
    await store.put_document(
        conn,
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        content_type=document.CONTENT_TYPE,
        filename=document.filename(number),
        content=content,
        sha256=sha,
    )
    await store.append_event(
        conn,
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        kind=rules.EV_ISSUED,
        actor=actor,
        detail={"number": number, "invoice_date": day.isoformat(), "total_paise": totals.total, "document_sha256": sha},
        trace_id=trace_id,
    )


# -- void, adjustments, credit notes ---------------------------------------------------------------


async def void(
    conn: AsyncConnection, *, tenant_id: str, invoice_id: str, reason: str, actor: str, trace_id: str = ""
) -> None:
    """DRAFT | ISSUED (no payment) → VOID; an issued invoice keeps its number (never reused);
    its refs may be billed again."""
    invoice = await store.get_invoice(conn, invoice_id, for_update=True)
    if invoice is None:
        raise rules.not_found(invoice_id)
    rules.check_voidable(invoice_id, invoice.status, invoice.paid_paise)
    await store.update_invoice(conn, invoice_id, status=rules.VOID, void_reason=reason)
    await store.void_lines(conn, invoice_id)
    await store.append_event(
        conn,
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        kind=rules.EV_VOIDED,
        actor=actor,
        reason=reason,
        detail={"number": invoice.number or "", "status_before": invoice.status},
        trace_id=trace_id,
    )


def validate_reason(reason: str, field: str = "reason") -> str:
    return clean_text(reason, field, max_length=rules.MAX_REASON)


def validate_adjustment(kind: str, amount: int, reason: str) -> tuple[str, int, str]:
    if kind not in rules.ADJUSTMENT_KINDS:
        raise invalid("kind", "must be discount or write_off")
    return kind, rules.check_amount(amount, "amount_paise"), validate_reason(reason)


async def _settle_if_due(
    conn: AsyncConnection, *, tenant_id: str, invoice_id: str, actor: str, trace_id: str, producer_version: str
) -> None:
    """After a change of what is due: the status from the figures; reaching PAID emits
    billing.invoice.paid (outbox, this transaction)."""
    from .payments import emit_paid  # payments imports this module

    invoice = await store.get_invoice(conn, invoice_id)
    status = rules.status_after(
        invoice.status, invoice.total_paise, invoice.adjusted_paise, invoice.credited_paise, invoice.paid_paise
    )
    if status != invoice.status:
        await store.update_invoice(conn, invoice_id, status=status)
        if status == rules.PAID:
            await emit_paid(
                conn,
                tenant_id=tenant_id,
                invoice_id=invoice_id,
                actor=actor,
                trace_id=trace_id,
                producer_version=producer_version,
            )


async def adjust(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    invoice_id: str,
    kind: str,
    amount: int,
    reason: str,
    actor: str,
    trace_id: str = "",
    producer_version: str = "",
) -> None:
    invoice = await store.get_invoice(conn, invoice_id, for_update=True)
    if invoice is None:
        raise rules.not_found(invoice_id, "invoice_id")
    rules.check_open(invoice_id, invoice.status, "adjustment")
    rules.check_within_balance(
        amount,
        rules.balance(invoice.total_paise, invoice.adjusted_paise, invoice.credited_paise, invoice.paid_paise),
        "amount_paise",
    )
    await store.insert_adjustment(
        conn, tenant_id=tenant_id, invoice_id=invoice_id, kind=kind, amount=amount, reason=reason, actor=actor
    )
    await store.update_invoice(conn, invoice_id, adjusted_paise=invoice.adjusted_paise + amount)
    await store.append_event(
        conn,
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        kind=rules.EV_ADJUSTED,
        actor=actor,
        reason=reason,
        detail={"kind": kind, "amount_paise": amount},
        trace_id=trace_id,
    )
    await _settle_if_due(
        conn,
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        actor=actor,
        trace_id=trace_id,
        producer_version=producer_version,
    )


def validate_credit_note(taxable: int, reason: str) -> tuple[int, str]:
    return rules.check_amount(taxable, "taxable_paise"), validate_reason(reason)


async def credit_note(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    invoice_id: str,
    taxable: int,
    reason: str,
    actor: str,
    trace_id: str = "",
    producer_version: str = "",
    now: datetime | None = None,
):
    """A GST credit note against an issued invoice (GST as on the invoice), numbered in the
    credit-note series of today's financial year; its row."""
    now = now or datetime.now(UTC)
    settings = await store.get_settings(conn)
    if settings is None:
        raise rules.settings_required()
    invoice = await store.get_invoice(conn, invoice_id, for_update=True)
    if invoice is None:
        raise rules.not_found(invoice_id, "invoice_id")
    rules.check_open(invoice_id, invoice.status, "credit note")
    credited_taxable = sum(c.taxable_paise for c in (await store.credit_notes(conn, [invoice_id]))[invoice_id])
    rules.check_within_balance(taxable, invoice.taxable_paise - credited_taxable, "taxable_paise")
    if invoice.cgst_paise and invoice.igst_paise:
        raise FailedPrecondition(
            "the invoice mixes intra-state and inter-state lines: credit it by adjustments",
            reason=rules.MIXED_PLACE_OF_SUPPLY,
        )
    intra = invoice.cgst_paise > 0 or (invoice.igst_paise == 0 and invoice.place_of_supply == settings.state)
    t = gst.tax(taxable, intra_state=intra)
    rules.check_within_balance(
        t.total,
        rules.balance(invoice.total_paise, invoice.adjusted_paise, invoice.credited_paise, invoice.paid_paise),
        "taxable_paise",
    )
    day = rules.today_ist(now)
    fy = rules.financial_year(day)
    n = await store.take_number(conn, tenant_id=tenant_id, kind=rules.CREDIT_NOTE, fy=fy, day=day)
    if n is None:  # a later-dated credit note exists (cannot happen with today's date, but never guess)
        raise rules.before_last(day, await store.series_last_date(conn, rules.CREDIT_NOTE, fy))
    number = rules.format_number(rules.series_prefix(settings.invoice_prefix, rules.CREDIT_NOTE), fy, n)
    note = await store.insert_credit_note(
        conn,
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        number=number,
        taxable=t.taxable,
        cgst=t.cgst,
        sgst=t.sgst,
        igst=t.igst,
        total=t.total,
        reason=reason,
        actor=actor,
    )
    await store.update_invoice(conn, invoice_id, credited_paise=invoice.credited_paise + t.total)
    await store.append_event(
        conn,
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        kind=rules.EV_CREDITED,
        actor=actor,
        reason=reason,
        detail={"number": number, "total_paise": t.total},
        trace_id=trace_id,
    )
    await _settle_if_due(
        conn,
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        actor=actor,
        trace_id=trace_id,
        producer_version=producer_version,
    )
    return note


# -- reads ------------------------------------------------------------------------------------


def validate_statuses(statuses: list[str]) -> list[str]:
    for s in statuses:
        if s not in rules.STATUSES:
            raise invalid("statuses", "must be invoice statuses")
    return sorted(set(statuses))


async def list_page(
    conn: AsyncConnection,
    *,
    account_id: str | None,
    statuses: list[str],
    channel_id: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[InvoiceView]:
    rows = await store.page(
        conn, account_id=account_id, statuses=statuses, channel_id=channel_id, after=after, limit=limit
    )
    return await views(conn, rows)


async def get_document(conn: AsyncConnection, invoice_id: str, *, channel_id: str | None = None):
    invoice = await store.get_invoice(conn, invoice_id, channel_id=channel_id)
    if invoice is None:
        raise rules.not_found(invoice_id)
    doc = await store.get_document(conn, invoice_id)
    if doc is None:
        raise NotFound(
            f"invoice {invoice_id} has no document yet (it is {invoice.status}; rendered at issue)",
            reason=rules.DOCUMENT_NOT_FOUND,
            metadata={"id": invoice_id, "status": invoice.status},
        )
    return doc
