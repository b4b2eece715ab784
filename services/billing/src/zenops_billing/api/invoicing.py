"""zenops.billing.v1.InvoicingService: proto ↔ use cases (invoicing/), nothing else.

Callers (zenops_kit.caller.resolve_caller): staff with invoices.read for reads and
invoices.write for settings, invoices, lines, issue, void, adjustments and credit notes;
billing.write for payments and proof reviews. Portal users (aud=portal, invoices.read) read
their channel's invoices (another channel's → NOT_FOUND) and submit payment proofs; their
tenant is the one that owns the channel (invoice_channels). Mutations take an idempotency key
(the request's field, else metadata `idempotency-key`), fingerprinted from the request
message minus its key; a portal user's keys are scoped to its channel.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from google.protobuf.json_format import MessageToDict
from sqlalchemy.ext.asyncio import AsyncEngine

from zenops.billing.v1 import invoicing_pb2 as ipb
from zenops.billing.v1 import invoicing_pb2_grpc
from zenops.common.v1 import common_pb2
from zenops_kit.caller import Caller, resolve_caller, trace_id
from zenops_kit.db import tenant_tx
from zenops_kit.errors import PermissionDenied
from zenops_kit.fields import invalid, parse_uuid
from zenops_kit.paging import decode_cursor, encode_cursor, page_limit
from zenops_kit.server import Runtime

from ..domain import invoices as rules
from ..domain.gst import quantity_text
from ..idempotency import idempotent
from ..invoicing import invoices, payments, receivables
from ..invoicing import settings as billing_settings
from ..invoicing.places import property_states_for
from ..store import invoices as store
from .providers import ProviderRpcs
from .translate import idempotency_key, ts

SERVICE_NAME = ipb.DESCRIPTOR.services_by_name["InvoicingService"].full_name

STATUS_PB = {name: ipb.InvoiceStatus.Value(f"INVOICE_STATUS_{name}") for name in rules.STATUSES}
STATUS_OF = {v: k for k, v in STATUS_PB.items()}
PROOF_STATUS_PB = {
    name: ipb.ProofStatus.Value(f"PROOF_STATUS_{name}")
    for name in (rules.PROOF_SUBMITTED, rules.PROOF_CONFIRMED, rules.PROOF_REJECTED)
}
PROOF_STATUS_OF = {v: k for k, v in PROOF_STATUS_PB.items()}


# -- proto ------------------------------------------------------------------------------------


def _date(value) -> str:
    return value.isoformat() if value else ""


def settings_pb(row) -> ipb.BillingSettings:
    if row is None:
        return ipb.BillingSettings()
    msg = ipb.BillingSettings(
        legal_name=row.legal_name,
        gstin=row.gstin,
        state=row.state,
        address=row.address,
        invoice_prefix=row.invoice_prefix,
        payment_terms_days=row.payment_terms_days,
    )
    ts(msg.updated_at, row.updated_at)
    return msg


def line_pb(r) -> ipb.InvoiceLine:
    return ipb.InvoiceLine(
        id=r.id,
        description=r.description,
        sac=r.sac,
        quantity=quantity_text(r.quantity),
        unit_price_paise=r.unit_price_paise,
        discount_paise=r.discount_paise,
        taxable_paise=r.taxable_paise,
        cgst_paise=r.cgst_paise,
        sgst_paise=r.sgst_paise,
        igst_paise=r.igst_paise,
        total_paise=r.total_paise,
        ref_type=r.ref_type,
        ref_id=r.ref_id,
        place_of_supply=r.place_of_supply,
    )


def payment_pb(p) -> ipb.Payment:
    msg = ipb.Payment(
        id=p.id,
        invoice_id=p.invoice_id,
        amount_paise=p.amount_paise,
        method=p.method,
        reference=p.reference,
        provider=p.provider,
        recorded_by=p.recorded_by,
    )
    ts(msg.received_at, p.received_at)
    ts(msg.created_at, p.created_at)
    return msg


def credit_note_pb(c) -> ipb.CreditNote:
    msg = ipb.CreditNote(
        id=c.id,
        number=c.number,
        taxable_paise=c.taxable_paise,
        cgst_paise=c.cgst_paise,
        sgst_paise=c.sgst_paise,
        igst_paise=c.igst_paise,
        total_paise=c.total_paise,
        reason=c.reason,
    )
    ts(msg.issued_at, c.issued_at)
    return msg


def adjustment_pb(a) -> ipb.InvoiceAdjustment:
    msg = ipb.InvoiceAdjustment(id=a.id, kind=a.kind, amount_paise=a.amount_paise, reason=a.reason, actor=a.actor)
    ts(msg.created_at, a.created_at)
    return msg


def invoice_pb(v: invoices.InvoiceView) -> ipb.Invoice:
    i = v.invoice
    msg = ipb.Invoice(
        id=i.id,
        account_id=i.account_id,
        number=i.number or "",
        status=STATUS_PB.get(i.status, 0),
        invoice_date=_date(i.invoice_date),
        due_date=_date(i.due_date),
        place_of_supply=i.place_of_supply,
        supplier_gstin=i.supplier_gstin,
        recipient_gstin=i.recipient_gstin,
        lines=[line_pb(r) for r in v.lines],
        taxable_paise=i.taxable_paise,
        cgst_paise=i.cgst_paise,
        sgst_paise=i.sgst_paise,
        igst_paise=i.igst_paise,
        round_off_paise=i.round_off_paise,
        total_paise=i.total_paise,
        adjusted_paise=i.adjusted_paise,
        credited_paise=i.credited_paise,
        paid_paise=i.paid_paise,
        balance_paise=v.balance,
        total_in_words=v.total_in_words,
        adjustments=[adjustment_pb(a) for a in v.adjustments],
        credit_notes=[credit_note_pb(c) for c in v.credit_notes],
        payments=[payment_pb(p) for p in v.payments],
        channel_id=i.channel_id,
        created_by=i.created_by,
        has_document=bool(i.has_document),
    )
    ts(msg.created_at, i.created_at)
    ts(msg.issued_at, i.issued_at)
    ts(msg.updated_at, i.updated_at)
    return msg


def proof_pb(p) -> ipb.PaymentProof:
    msg = ipb.PaymentProof(
        id=p.id,
        invoice_id=p.invoice_id,
        document_id=p.document_id,
        note=p.note,
        amount_paise=p.amount_paise,
        reference=p.reference,
        status=PROOF_STATUS_PB.get(p.status, 0),
        submitted_by=p.submitted_by,
        reviewed_by=p.reviewed_by,
        review_reason=p.review_reason,
        payment_id=p.payment_id,
    )
    ts(msg.created_at, p.created_at)
    ts(msg.reviewed_at, p.reviewed_at)
    return msg


def ageing_pb(a: rules.Ageing) -> ipb.AgeingBuckets:
    return ipb.AgeingBuckets(
        days_0_30_paise=a.days_0_30,
        days_31_60_paise=a.days_31_60,
        days_61_90_paise=a.days_61_90,
        days_90_plus_paise=a.days_90_plus,
    )


def _fields(request) -> dict:
    """The idempotency fingerprint: the request message minus its key."""
    copy = type(request)()
    copy.CopyFrom(request)
    if "idempotency_key" in copy.DESCRIPTOR.fields_by_name:
        copy.ClearField("idempotency_key")
    return MessageToDict(copy, preserving_proto_field_name=True)


def _scoped_key(caller: Caller, key: str) -> str:
    """A portal user's key is its channel's: partners of two channels never share answers."""
    if not key or not caller.is_portal:
        return key
    return "portal:" + hashlib.sha256(f"{caller.channel_id}\0{key}".encode()).hexdigest()


def _after(cursor: str, kind: str) -> tuple[datetime, str] | None:
    position = decode_cursor(cursor, kind, 2)
    if position is None:
        return None
    try:
        return datetime.fromisoformat(position[0]), parse_uuid(position[1], "page.cursor")
    except ValueError:
        raise invalid("page.cursor", "is not a cursor returned by this list") from None


class InvoicingServicer(ProviderRpcs, invoicing_pb2_grpc.InvoicingServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def engine(self) -> AsyncEngine:
        return self.runtime.engine

    @property
    def version(self) -> str:
        return self.runtime.settings.version

    async def _channel_tenant(self, channel_id: str) -> str | None:
        async with self.engine.begin() as conn:
            return await store.channel_tenant(conn, channel_id)

    async def _caller(self, context, *capabilities: str, portal: bool = False) -> Caller:
        caller = await resolve_caller(context, capabilities, channel_tenant=self._channel_tenant)
        if caller.is_portal and not portal:
            raise PermissionDenied("partners cannot do this", reason="PORTAL_NOT_ALLOWED")
        return caller

    async def _reader(self, context, *, portal_unknown_ok: bool = True) -> Caller | None:
        """invoices.read; None for a portal user whose channel has no invoices (nothing to see)."""
        try:
            return await self._caller(context, "invoices.read", portal=True)
        except PermissionDenied as err:
            if err.reason == "CHANNEL_UNKNOWN" and portal_unknown_ok:
                return None
            raise

    async def _idempotent(self, caller: Caller, context, request, operation: str, run, decode):
        key = _scoped_key(
            caller,
            idempotency_key(
                request.idempotency_key if "idempotency_key" in request.DESCRIPTOR.fields_by_name else "", context
            ),
        )
        return await idempotent(
            self.engine,
            tenant_id=caller.tenant_id,
            key=key,
            operation=operation,
            request=_fields(request),
            run=run,
            decode=decode,
        )

    async def _invoice(self, conn, invoice_id: str, caller: Caller | None = None) -> ipb.Invoice:
        return invoice_pb(
            await invoices.load(conn, invoice_id, channel_id=caller.channel_id if caller is not None else None)
        )

    # -- settings ----------------------------------------------------------------------------

    async def GetBillingSettings(self, request, context):
        caller = await self._caller(context, "invoices.read")
        async with tenant_tx(self.engine, caller.tenant_id) as conn:
            row = await billing_settings.get(conn)
        return ipb.GetBillingSettingsResponse(settings=settings_pb(row))

    async def PutBillingSettings(self, request, context):
        caller = await self._caller(context, "invoices.write")
        values = billing_settings.validate(request.settings)
        async with tenant_tx(self.engine, caller.tenant_id) as conn:
            row = await billing_settings.put(conn, tenant_id=caller.tenant_id, values=values)
        return ipb.PutBillingSettingsResponse(settings=settings_pb(row))

    # -- invoices ----------------------------------------------------------------------------

    async def CreateInvoice(self, request, context):
        caller = await self._caller(context, "invoices.write")
        req = invoices.validate_create(
            account_id=request.account_id,
            place_of_supply=request.place_of_supply,
            due_date=request.due_date,
            channel_id=request.channel_id,
            lines=request.lines,
        )
        states = await invoices.property_states(
            property_states_for(self.runtime), caller.tenant_id, {li.assignment_id for li in req.lines}, strict=False
        )

        async def run(conn):
            invoice_id = await invoices.create(
                conn, tenant_id=caller.tenant_id, req=req, states=states, actor=caller.actor, trace_id=trace_id()
            )
            return ipb.CreateInvoiceResponse(invoice=await self._invoice(conn, invoice_id))

        return await self._idempotent(
            caller, context, request, "CreateInvoice", run, ipb.CreateInvoiceResponse.FromString
        )

    async def GetInvoice(self, request, context):
        invoice_id = parse_uuid(request.id, "id")
        caller = await self._reader(context)
        if caller is None:
            raise rules.not_found(invoice_id)
        async with tenant_tx(self.engine, caller.tenant_id) as conn:
            return ipb.GetInvoiceResponse(invoice=await self._invoice(conn, invoice_id, caller))

    async def ListInvoices(self, request, context):
        caller = await self._reader(context)
        limit = page_limit(request.page.limit)
        after = _after(request.page.cursor, "invoices")
        account_id = parse_uuid(request.account_id, "account_id") if request.account_id else None
        statuses = invoices.validate_statuses([STATUS_OF.get(s, "?") for s in request.statuses])
        if caller is None:
            return ipb.ListInvoicesResponse(page=common_pb2.PageInfo())
        channel_id = caller.channel_id or (parse_uuid(request.channel_id, "channel_id") if request.channel_id else None)
        async with tenant_tx(self.engine, caller.tenant_id) as conn:
            found = await invoices.list_page(
                conn, account_id=account_id, statuses=statuses, channel_id=channel_id, after=after, limit=limit + 1
            )
        more = len(found) > limit
        found = found[:limit]
        cursor = encode_cursor("invoices", [found[-1].invoice.created_at.isoformat(), found[-1].id]) if more else ""
        return ipb.ListInvoicesResponse(
            invoices=[invoice_pb(v) for v in found], page=common_pb2.PageInfo(next_cursor=cursor)
        )

    async def AddInvoiceLines(self, request, context):
        caller = await self._caller(context, "invoices.write")
        invoice_id = parse_uuid(request.invoice_id, "invoice_id")
        lines = invoices.validate_lines(request.lines, required=True)
        states = await invoices.property_states(
            property_states_for(self.runtime), caller.tenant_id, {li.assignment_id for li in lines}, strict=False
        )

        async def run(conn):
            await invoices.add_lines(
                conn,
                tenant_id=caller.tenant_id,
                invoice_id=invoice_id,
                lines=lines,
                states=states,
                actor=caller.actor,
                trace_id=trace_id(),
            )
            return ipb.AddInvoiceLinesResponse(invoice=await self._invoice(conn, invoice_id))

        return await self._idempotent(
            caller, context, request, "AddInvoiceLines", run, ipb.AddInvoiceLinesResponse.FromString
        )

    async def IssueInvoice(self, request, context):
        caller = await self._caller(context, "invoices.write")
        invoice_id = parse_uuid(request.id, "id")
        invoice_date = rules.parse_date(request.invoice_date, "invoice_date")
        async with tenant_tx(self.engine, caller.tenant_id) as conn:
            assignment_ids = await invoices.assignments_of(conn, invoice_id)
        states = await invoices.property_states(
            property_states_for(self.runtime), caller.tenant_id, assignment_ids, strict=True
        )

        async def run(conn):
            await invoices.issue(
                conn,
                tenant_id=caller.tenant_id,
                invoice_id=invoice_id,
                invoice_date=invoice_date,
                states=states,
                actor=caller.actor,
                trace_id=trace_id(),
            )
            return ipb.IssueInvoiceResponse(invoice=await self._invoice(conn, invoice_id))

        return await self._idempotent(
            caller, context, request, "IssueInvoice", run, ipb.IssueInvoiceResponse.FromString
        )

    async def VoidInvoice(self, request, context):
        caller = await self._caller(context, "invoices.write")
        invoice_id = parse_uuid(request.id, "id")
        reason = invoices.validate_reason(request.reason)

        async def run(conn):
            await invoices.void(
                conn,
                tenant_id=caller.tenant_id,
                invoice_id=invoice_id,
                reason=reason,
                actor=caller.actor,
                trace_id=trace_id(),
            )
            return ipb.VoidInvoiceResponse(invoice=await self._invoice(conn, invoice_id))

        return await self._idempotent(caller, context, request, "VoidInvoice", run, ipb.VoidInvoiceResponse.FromString)

    async def AddAdjustment(self, request, context):
        caller = await self._caller(context, "invoices.write")
        invoice_id = parse_uuid(request.invoice_id, "invoice_id")
        kind, amount, reason = invoices.validate_adjustment(request.kind, request.amount_paise, request.reason)

        async def run(conn):
            await invoices.adjust(
                conn,
                tenant_id=caller.tenant_id,
                invoice_id=invoice_id,
                kind=kind,
                amount=amount,
                reason=reason,
                actor=caller.actor,
                trace_id=trace_id(),
                producer_version=self.version,
            )
            return ipb.AddAdjustmentResponse(invoice=await self._invoice(conn, invoice_id))

        return await self._idempotent(
            caller, context, request, "AddAdjustment", run, ipb.AddAdjustmentResponse.FromString
        )

    async def IssueCreditNote(self, request, context):
        caller = await self._caller(context, "invoices.write")
        invoice_id = parse_uuid(request.invoice_id, "invoice_id")
        taxable, reason = invoices.validate_credit_note(request.taxable_paise, request.reason)

        async def run(conn):
            note = await invoices.credit_note(
                conn,
                tenant_id=caller.tenant_id,
                invoice_id=invoice_id,
                taxable=taxable,
                reason=reason,
                actor=caller.actor,
                trace_id=trace_id(),
                producer_version=self.version,
            )
            return ipb.IssueCreditNoteResponse(
                invoice=await self._invoice(conn, invoice_id), credit_note=credit_note_pb(note)
            )

        return await self._idempotent(
            caller, context, request, "IssueCreditNote", run, ipb.IssueCreditNoteResponse.FromString
        )

    async def GetInvoiceDocument(self, request, context):
        invoice_id = parse_uuid(request.id, "id")
        caller = await self._reader(context)
        if caller is None:
            raise rules.not_found(invoice_id)
        async with tenant_tx(self.engine, caller.tenant_id) as conn:
            doc = await invoices.get_document(conn, invoice_id, channel_id=caller.channel_id)
        return ipb.GetInvoiceDocumentResponse(
            content_type=doc.content_type, filename=doc.filename, content=bytes(doc.content), sha256=doc.sha256
        )

    # -- payments ----------------------------------------------------------------------------

    async def RecordPayment(self, request, context):
        caller = await self._caller(context, "billing.write")
        invoice_id, amount, method, reference, received_at = payments.validate_payment(
            invoice_id=request.invoice_id,
            amount_paise=request.amount_paise,
            method=request.method,
            reference=request.reference,
            received_at=request.received_at.ToDatetime(tzinfo=UTC) if request.HasField("received_at") else None,
        )

        async def run(conn):
            _, payment, _ = await payments.record_payment(
                conn,
                tenant_id=caller.tenant_id,
                invoice_id=invoice_id,
                amount_paise=amount,
                method=method,
                reference=reference,
                provider="",
                received_at=received_at,
                actor=caller.actor,
                trace_id=trace_id(),
                producer_version=self.version,
            )
            return ipb.RecordPaymentResponse(invoice=await self._invoice(conn, invoice_id), payment=payment_pb(payment))

        return await self._idempotent(
            caller, context, request, "RecordPayment", run, ipb.RecordPaymentResponse.FromString
        )

    async def SubmitPaymentProof(self, request, context):
        caller = await self._caller(context, "invoices.read", portal=True)
        invoice_id, document_id, note, amount, reference = payments.validate_proof(
            invoice_id=request.invoice_id,
            document_id=request.document_id,
            note=request.note,
            amount_paise=request.amount_paise,
            reference=request.reference,
        )

        async def run(conn):
            proof = await payments.submit_proof(
                conn,
                tenant_id=caller.tenant_id,
                channel_id=caller.channel_id,
                invoice_id=invoice_id,
                document_id=document_id,
                note=note,
                amount=amount,
                reference=reference,
                actor=caller.actor,
                trace_id=trace_id(),
            )
            return ipb.SubmitPaymentProofResponse(proof=proof_pb(proof))

        return await self._idempotent(
            caller, context, request, "SubmitPaymentProof", run, ipb.SubmitPaymentProofResponse.FromString
        )

    async def ReviewPaymentProof(self, request, context):
        caller = await self._caller(context, "billing.write")
        proof_id, method, reason = payments.validate_review(
            proof_id=request.id, confirm=request.confirm, method=request.method, reason=request.reason
        )

        async def run(conn):
            proof = await payments.review_proof(
                conn,
                tenant_id=caller.tenant_id,
                proof_id=proof_id,
                confirm=request.confirm,
                method=method,
                reason=reason,
                actor=caller.actor,
                trace_id=trace_id(),
                producer_version=self.version,
            )
            return ipb.ReviewPaymentProofResponse(
                proof=proof_pb(proof), invoice=await self._invoice(conn, proof.invoice_id)
            )

        return await self._idempotent(
            caller, context, request, "ReviewPaymentProof", run, ipb.ReviewPaymentProofResponse.FromString
        )

    async def ListPaymentProofs(self, request, context):
        caller = await self._reader(context)
        limit = page_limit(request.page.limit)
        after = _after(request.page.cursor, "payment_proofs")
        invoice_id = parse_uuid(request.invoice_id, "invoice_id") if request.invoice_id else None
        status = None
        if request.status:
            if request.status not in PROOF_STATUS_OF:
                raise invalid("status", "must be a proof status")
            status = PROOF_STATUS_OF[request.status]
        if caller is None:
            return ipb.ListPaymentProofsResponse(page=common_pb2.PageInfo())
        async with tenant_tx(self.engine, caller.tenant_id) as conn:
            rows = await store.proofs_page(
                conn, invoice_id=invoice_id, status=status, channel_id=caller.channel_id, after=after, limit=limit + 1
            )
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = encode_cursor("payment_proofs", [rows[-1].created_at.isoformat(), rows[-1].id]) if more else ""
        return ipb.ListPaymentProofsResponse(
            proofs=[proof_pb(p) for p in rows], page=common_pb2.PageInfo(next_cursor=cursor)
        )

    async def GetReceivables(self, request, context):
        caller = await self._caller(context, "invoices.read")
        account_id = parse_uuid(request.account_id, "account_id") if request.account_id else None
        as_of = rules.parse_date(request.as_of, "as_of") or rules.today_ist()
        async with tenant_tx(self.engine, caller.tenant_id) as conn:
            found = await receivables.receivables(conn, account_id=account_id, as_of=as_of)
        return ipb.GetReceivablesResponse(
            accounts=[
                ipb.AccountReceivables(
                    account_id=a.account_id,
                    display_name=a.display_name,
                    unpaid_invoices=a.unpaid_invoices,
                    overdue_invoices=a.overdue_invoices,
                    outstanding_paise=a.outstanding_paise,
                    ageing=ageing_pb(a.ageing),
                )
                for a in found.accounts
            ],
            total=ageing_pb(found.total),
            outstanding_paise=found.outstanding_paise,
        )


def register(server, runtime: Runtime) -> list[str]:
    invoicing_pb2_grpc.add_InvoicingServiceServicer_to_server(InvoicingServicer(runtime), server)
    return [SERVICE_NAME]
