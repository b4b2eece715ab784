"""Invoicing routes (billing's InvoicingService): supplier settings, GST service invoices and
their lines, issue, void, adjustments, credit notes, the rendered PDF, payments, payment proofs,
receivables and checkout — and the `/v1/service-invoices/*` compatibility aliases of the
invoice routes (the seeds' names: the same handlers, marked deprecated in OpenAPI).

Capabilities (invoices.read / invoices.write / billing.write / billing.credits.write) and the
portal's channel scoping are checked by billing; its PERMISSION_DENIED becomes 403 in
errors.py. Billing names fields as its request messages do (`id`, `invoice_id`,
`settings.gstin`, `statuses`, `page.cursor`, `idempotency_key`); each route renames them to
what the caller sent (`path.invoice_id`, `gstin`, `query.status`, `query.cursor`,
`header.Idempotency-Key`), so a 400 or a 409 `IDEMPOTENCY_KEY_REUSED` names the HTTP
request's fields.

Idempotency: operations that take a number or move money (issue, adjustments, credit notes,
payments, proof confirmation, checkout) REQUIRE an `Idempotency-Key` header; the others take
an optional one. It travels as the request's `idempotency_key`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Header, Path, Query, Response

from zenops.billing.v1 import invoicing_pb2 as pb

from ..deps import CallerDep, InvoicingDep
from ..errors import problem_responses as problems
from ..handler import LeanRoute
from ..models.common import Cursor, Limit, or_none
from ..models.invoicing import (
    AddLinesBody,
    AdjustmentBody,
    BillingSettings,
    Checkout,
    CheckoutBody,
    ConfirmProofBody,
    CreateInvoiceBody,
    CreditNoteBody,
    CreditNoteIssued,
    DocDate,
    Invoice,
    InvoiceList,
    InvoiceStatus,
    IssueBody,
    PaymentBody,
    PaymentProof,
    PaymentProofBody,
    PaymentProofList,
    PaymentRecorded,
    ProofReviewed,
    ProofStatus,
    Receivables,
    RejectProofBody,
    SettingsBody,
    VoidBody,
    proof_status_value,
    status_value,
)
from .files import content_disposition, safe_content_type
from .ops_common import CREATED, IDEMPOTENCY_DOC, MAX_IDEMPOTENCY_KEY, OptionalIdempotencyKey, page, query_fields
from .ops_common import ops_field_names as billing_field_names

router = APIRouter(prefix="/v1/billing", tags=["invoicing"], route_class=LeanRoute)
# The seeds' names of the invoice routes: the same handlers (deprecated; use /v1/billing/invoices).
compat_router = APIRouter(prefix="/v1/service-invoices", tags=["invoicing"], deprecated=True, route_class=LeanRoute)

_KEY_PATTERN = r"^[!-~]+$"  # visible ASCII, as every Idempotency-Key of the API
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY,
        pattern=_KEY_PATTERN,
        description="Required. " + IDEMPOTENCY_DOC,
    ),
]
InvoiceId = Annotated[UUID, Path(description="Invoice id.")]
ProofId = Annotated[UUID, Path(description="Payment proof id.")]
StatusFilter = Annotated[
    list[InvoiceStatus] | None,
    Query(max_length=5, description="Only invoices in these states (repeat the parameter for several)."),
]

# billing's request fields → the HTTP request's, per route.
ID = {"id": "path.invoice_id"}
INVOICE_ID = {"invoice_id": "path.invoice_id"}
PROOF_ID = {"id": "path.proof_id"}


def invoice_location(invoice_id: str) -> str:
    return f"/v1/billing/invoices/{invoice_id}"


def invoice_route(method: str, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a handler at `/v1/billing/invoices{path}` and at its compatibility alias
    `/v1/service-invoices{path}` (deprecated in OpenAPI)."""

    def register(handler: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(f"/invoices{path}", handler, methods=[method], **kwargs)
        compat_router.add_api_route(
            path, handler, methods=[method], operation_id=f"compat_{handler.__name__}", **kwargs
        )
        return handler

    return register


# == supplier settings =====================================================================================


@router.get(
    "/settings",
    response_model=BillingSettings,
    summary="The supplier on every invoice: legal name, GSTIN, state, address, number prefix (invoices.read)",
    responses=problems(401, 403, 404, 503),
)
async def get_settings(caller: CallerDep, invoicing: InvoicingDep) -> BillingSettings:
    resp = await invoicing.get_settings(token=caller.token)
    return BillingSettings.from_proto(resp.settings)


@router.put(
    "/settings",
    response_model=BillingSettings,
    summary="Set the supplier printed on invoices (invoices.write)",
    description="The whole settings (PUT replaces them). `state` decides CGST+SGST (place of supply in the same "
    "state) or IGST; `invoice_prefix` starts every number (`<prefix>/<yy-yy>/<n>`, at most 16 characters).",
    responses=problems(401, 403, 503),
)
async def put_settings(body: SettingsBody, caller: CallerDep, invoicing: InvoicingDep) -> BillingSettings:
    with billing_field_names({"settings": ""}):
        resp = await invoicing.put_settings(pb.PutBillingSettingsRequest(settings=body.to_proto()), token=caller.token)
    return BillingSettings.from_proto(resp.settings)


# == invoices ==============================================================================================


@invoice_route(
    "POST",
    "",
    status_code=201,
    response_model=Invoice,
    summary="Create a DRAFT invoice with its lines; GST computed per line (invoices.write)",
    description="Place of supply: `place_of_supply` if given, else the property's state (from the line's "
    "assignment), else the recipient's. CGST 9 % + SGST 9 % when it is the supplier's state, else IGST 18 %. "
    "`Location` is the invoice. `Idempotency-Key` optional.",
    responses={**problems(401, 403, 404, 409, 503), **CREATED},
)
async def create_invoice(
    body: CreateInvoiceBody,
    caller: CallerDep,
    invoicing: InvoicingDep,
    response: Response,
    idempotency_key: OptionalIdempotencyKey = None,
) -> Invoice:
    with billing_field_names():
        resp = await invoicing.create_invoice(body.to_proto(idempotency_key), token=caller.token)
    response.headers["location"] = invoice_location(resp.invoice.id)
    return Invoice.from_proto(resp.invoice)


@invoice_route(
    "GET",
    "",
    response_model=InvoiceList,
    summary="Invoices, newest first (invoices.read)",
    description="Portal users see only their channel's invoices (`channel_id` is for staff).",
    responses=problems(401, 403, 503),
)
async def list_invoices(
    caller: CallerDep,
    invoicing: InvoicingDep,
    account_id: Annotated[UUID | None, Query(description="Only this account's invoices.")] = None,
    status: StatusFilter = None,
    channel_id: Annotated[UUID | None, Query(description="Only this channel's invoices (staff).")] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> InvoiceList:
    with billing_field_names(query_fields("account_id", "channel_id", statuses="status")):
        resp = await invoicing.list_invoices(
            pb.ListInvoicesRequest(
                page=page(limit, cursor),
                account_id=str(account_id) if account_id else "",
                statuses=[status_value(s) for s in dict.fromkeys(status or ())],
                channel_id=str(channel_id) if channel_id else "",
            ),
            token=caller.token,
        )
    return InvoiceList(items=[Invoice.from_proto(i) for i in resp.invoices], next_cursor=or_none(resp.page.next_cursor))


@invoice_route(
    "GET",
    "/{invoice_id}",
    response_model=Invoice,
    summary="An invoice with its lines, adjustments, credit notes and payments (invoices.read)",
    description="Another channel's invoice is 404 for a portal user.",
    responses=problems(401, 403, 404, 503),
)
async def get_invoice(invoice_id: InvoiceId, caller: CallerDep, invoicing: InvoicingDep) -> Invoice:
    with billing_field_names(ID):
        resp = await invoicing.get_invoice(pb.GetInvoiceRequest(id=str(invoice_id)), token=caller.token)
    return Invoice.from_proto(resp.invoice)


@invoice_route(
    "POST",
    "/{invoice_id}/lines",
    response_model=Invoice,
    summary="Add lines to a DRAFT invoice (invoices.write)",
    description="409 when the invoice is no longer a draft. `Idempotency-Key` optional.",
    responses=problems(401, 403, 404, 409, 503),
)
async def add_lines(
    invoice_id: InvoiceId,
    body: AddLinesBody,
    caller: CallerDep,
    invoicing: InvoicingDep,
    idempotency_key: OptionalIdempotencyKey = None,
) -> Invoice:
    with billing_field_names(INVOICE_ID):
        resp = await invoicing.add_invoice_lines(
            pb.AddInvoiceLinesRequest(
                invoice_id=str(invoice_id),
                lines=[line.to_proto() for line in body.lines],
                idempotency_key=idempotency_key or "",
            ),
            token=caller.token,
        )
    return Invoice.from_proto(resp.invoice)


@invoice_route(
    "POST",
    "/{invoice_id}/issue",
    response_model=Invoice,
    summary="Issue a DRAFT invoice: the next number of the financial year's series, and its PDF (invoices.write)",
    description="Needs an `Idempotency-Key`. Body optional: `invoice_date` defaults to today (Asia/Kolkata); never "
    "in the future nor before the series' last issued date (numbers stay chronological).",
    responses=problems(401, 403, 404, 409, 503),
)
async def issue_invoice(
    invoice_id: InvoiceId,
    idempotency_key: IdempotencyKey,
    caller: CallerDep,
    invoicing: InvoicingDep,
    body: IssueBody | None = None,
) -> Invoice:
    with billing_field_names(ID):
        resp = await invoicing.issue_invoice(
            pb.IssueInvoiceRequest(
                id=str(invoice_id), invoice_date=body.date_text() if body else "", idempotency_key=idempotency_key
            ),
            token=caller.token,
        )
    return Invoice.from_proto(resp.invoice)


@invoice_route(
    "POST",
    "/{invoice_id}/void",
    response_model=Invoice,
    summary="Void a DRAFT or unpaid ISSUED invoice; its number is never reused (invoices.write)",
    description="After a payment, use a credit note instead (409). `Idempotency-Key` optional.",
    responses=problems(401, 403, 404, 409, 503),
)
async def void_invoice(
    invoice_id: InvoiceId,
    body: VoidBody,
    caller: CallerDep,
    invoicing: InvoicingDep,
    idempotency_key: OptionalIdempotencyKey = None,
) -> Invoice:
    with billing_field_names(ID):
        resp = await invoicing.void_invoice(
            pb.VoidInvoiceRequest(id=str(invoice_id), reason=body.reason, idempotency_key=idempotency_key or ""),
            token=caller.token,
        )
    return Invoice.from_proto(resp.invoice)


@invoice_route(
    "POST",
    "/{invoice_id}/adjustments",
    response_model=Invoice,
    summary="A discount or write-off on an issued invoice: lowers what is due (invoices.write)",
    description="Needs an `Idempotency-Key`.",
    responses=problems(401, 403, 404, 409, 503),
)
async def add_adjustment(
    invoice_id: InvoiceId,
    body: AdjustmentBody,
    idempotency_key: IdempotencyKey,
    caller: CallerDep,
    invoicing: InvoicingDep,
) -> Invoice:
    with billing_field_names(INVOICE_ID):
        resp = await invoicing.add_adjustment(
            pb.AddAdjustmentRequest(
                invoice_id=str(invoice_id),
                kind=body.kind,
                amount_paise=body.amount_paise,
                reason=body.reason,
                idempotency_key=idempotency_key,
            ),
            token=caller.token,
        )
    return Invoice.from_proto(resp.invoice)


@invoice_route(
    "POST",
    "/{invoice_id}/credit-notes",
    status_code=201,
    response_model=CreditNoteIssued,
    summary="A GST credit note against an issued invoice, numbered in its own series (invoices.write)",
    description="Needs an `Idempotency-Key`. GST on `taxable_paise` is computed as on the invoice. `Location` is "
    "the invoice (its `credit_notes`).",
    responses={**problems(401, 403, 404, 409, 503), **CREATED},
)
async def issue_credit_note(
    invoice_id: InvoiceId,
    body: CreditNoteBody,
    idempotency_key: IdempotencyKey,
    caller: CallerDep,
    invoicing: InvoicingDep,
    response: Response,
) -> CreditNoteIssued:
    with billing_field_names(INVOICE_ID):
        resp = await invoicing.issue_credit_note(
            pb.IssueCreditNoteRequest(
                invoice_id=str(invoice_id),
                taxable_paise=body.taxable_paise,
                reason=body.reason,
                idempotency_key=idempotency_key,
            ),
            token=caller.token,
        )
    response.headers["location"] = invoice_location(resp.invoice.id)
    return CreditNoteIssued.from_proto(resp)


@invoice_route(
    "GET",
    "/{invoice_id}/document",
    summary="The rendered invoice (PDF) (invoices.read)",
    description="The PDF rendered at issue, with `Content-Disposition: attachment` and `X-Content-SHA256`. "
    "404 while the invoice has none (a draft).",
    response_class=Response,
    responses={
        200: {
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
            "headers": {"X-Content-SHA256": {"schema": {"type": "string"}}},
        },
        **problems(401, 403, 404, 409, 503),
    },
)
async def invoice_document(invoice_id: InvoiceId, caller: CallerDep, invoicing: InvoicingDep) -> Response:
    with billing_field_names(ID):
        resp = await invoicing.get_invoice_document(
            pb.GetInvoiceDocumentRequest(id=str(invoice_id)), token=caller.token
        )
    headers = {
        "content-disposition": content_disposition(resp.filename or f"invoice-{invoice_id}.pdf"),
        "x-content-sha256": resp.sha256,
        "cache-control": "private, no-store",
    }
    return Response(
        content=resp.content, media_type=safe_content_type(resp.content_type or "application/pdf"), headers=headers
    )


# == payments ==============================================================================================


async def _record_payment(
    invoice_id: UUID, body: PaymentBody, idempotency_key: str, caller: Any, invoicing: Any, response: Response
) -> PaymentRecorded:
    with billing_field_names(INVOICE_ID):
        resp = await invoicing.record_payment(body.to_proto(invoice_id, idempotency_key), token=caller.token)
    response.headers["location"] = invoice_location(resp.invoice.id)
    return PaymentRecorded.from_proto(resp)


PAYMENT_DOC = dict(
    status_code=201,
    response_model=PaymentRecorded,
    description="Needs an `Idempotency-Key`. A payment is once per (method, reference): the same reference again "
    "answers the original payment. Partial → `partially_paid`; the balance reaching 0 → `paid` (and "
    "`billing.invoice.paid`). `Location` is the invoice.",
    responses={**problems(401, 403, 404, 409, 503), **CREATED},
)


@invoice_route("POST", "/{invoice_id}/payments", summary="Record a manual payment (billing.write)", **PAYMENT_DOC)
async def record_payment(
    invoice_id: InvoiceId,
    body: PaymentBody,
    idempotency_key: IdempotencyKey,
    caller: CallerDep,
    invoicing: InvoicingDep,
    response: Response,
) -> PaymentRecorded:
    return await _record_payment(invoice_id, body, idempotency_key, caller, invoicing, response)


@compat_router.post(
    "/{invoice_id}/mark-paid", summary="Record a payment (the seeds' name of …/payments; billing.write)", **PAYMENT_DOC
)
async def mark_paid(
    invoice_id: InvoiceId,
    body: PaymentBody,
    idempotency_key: IdempotencyKey,
    caller: CallerDep,
    invoicing: InvoicingDep,
    response: Response,
) -> PaymentRecorded:
    return await _record_payment(invoice_id, body, idempotency_key, caller, invoicing, response)


@invoice_route(
    "POST",
    "/{invoice_id}/payment-proofs",
    status_code=201,
    response_model=PaymentProof,
    summary="Submit a payment proof (an uploaded ops document and a note) for an invoice (portal: its channel's)",
    description="Accounts staff confirm it into a payment or reject it. `Location` lists the invoice's proofs. "
    "`Idempotency-Key` optional.",
    responses={**problems(401, 403, 404, 409, 503), **CREATED},
)
async def submit_payment_proof(
    invoice_id: InvoiceId,
    body: PaymentProofBody,
    caller: CallerDep,
    invoicing: InvoicingDep,
    response: Response,
    idempotency_key: OptionalIdempotencyKey = None,
) -> PaymentProof:
    with billing_field_names(INVOICE_ID):
        resp = await invoicing.submit_payment_proof(
            pb.SubmitPaymentProofRequest(
                invoice_id=str(invoice_id),
                document_id=str(body.document_id),
                note=body.note or "",
                amount_paise=body.amount_paise,
                reference=body.reference or "",
                idempotency_key=idempotency_key or "",
            ),
            token=caller.token,
        )
    response.headers["location"] = "/v1/billing/payment-proofs?" + urlencode({"invoice_id": resp.proof.invoice_id})
    return PaymentProof.from_proto(resp.proof)


@router.get(
    "/payment-proofs",
    response_model=PaymentProofList,
    summary="Payment proofs, newest first (invoices.read; portal: its channel's)",
    responses=problems(401, 403, 503),
)
async def list_payment_proofs(
    caller: CallerDep,
    invoicing: InvoicingDep,
    invoice_id: Annotated[UUID | None, Query(description="Only this invoice's proofs.")] = None,
    status: Annotated[ProofStatus | None, Query(description="Only proofs in this state.")] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> PaymentProofList:
    with billing_field_names(query_fields("invoice_id", "status")):
        resp = await invoicing.list_payment_proofs(
            pb.ListPaymentProofsRequest(
                page=page(limit, cursor),
                invoice_id=str(invoice_id) if invoice_id else "",
                status=proof_status_value(status) if status else 0,
            ),
            token=caller.token,
        )
    return PaymentProofList(
        items=[PaymentProof.from_proto(p) for p in resp.proofs], next_cursor=or_none(resp.page.next_cursor)
    )


@router.post(
    "/payment-proofs/{proof_id}/confirm",
    response_model=ProofReviewed,
    summary="Confirm a payment proof into a payment on its invoice (billing.write)",
    description="Needs an `Idempotency-Key`. 409 when the proof was already reviewed.",
    responses=problems(401, 403, 404, 409, 503),
)
async def confirm_payment_proof(
    proof_id: ProofId,
    body: ConfirmProofBody,
    idempotency_key: IdempotencyKey,
    caller: CallerDep,
    invoicing: InvoicingDep,
) -> ProofReviewed:
    with billing_field_names(PROOF_ID):
        resp = await invoicing.review_payment_proof(
            pb.ReviewPaymentProofRequest(
                id=str(proof_id), confirm=True, method=body.method, idempotency_key=idempotency_key
            ),
            token=caller.token,
        )
    return ProofReviewed.from_proto(resp)


@router.post(
    "/payment-proofs/{proof_id}/reject",
    response_model=ProofReviewed,
    summary="Reject a payment proof, with a reason (billing.write)",
    description="409 when the proof was already reviewed. `Idempotency-Key` optional.",
    responses=problems(401, 403, 404, 409, 503),
)
async def reject_payment_proof(
    proof_id: ProofId,
    body: RejectProofBody,
    caller: CallerDep,
    invoicing: InvoicingDep,
    idempotency_key: OptionalIdempotencyKey = None,
) -> ProofReviewed:
    with billing_field_names(PROOF_ID):
        resp = await invoicing.review_payment_proof(
            pb.ReviewPaymentProofRequest(
                id=str(proof_id), confirm=False, reason=body.reason, idempotency_key=idempotency_key or ""
            ),
            token=caller.token,
        )
    return ProofReviewed.from_proto(resp)


@router.get(
    "/receivables",
    response_model=Receivables,
    summary="Unpaid and overdue invoices per account, with ageing buckets (invoices.read)",
    description="Ageing by days past the invoice date: 0–30, 31–60, 61–90, 90+.",
    responses=problems(401, 403, 404, 503),
)
async def receivables(
    caller: CallerDep,
    invoicing: InvoicingDep,
    account_id: Annotated[UUID | None, Query(description="One account (default: every account).")] = None,
    as_of: Annotated[DocDate | None, Query(description="The day ageing is counted to (default today).")] = None,
) -> Receivables:
    with billing_field_names(query_fields("account_id", "as_of")):
        resp = await invoicing.get_receivables(
            pb.GetReceivablesRequest(
                account_id=str(account_id) if account_id else "", as_of=as_of.isoformat() if as_of else ""
            ),
            token=caller.token,
        )
    return Receivables.from_proto(resp)


# == checkout ==============================================================================================


@router.post(
    "/checkout",
    status_code=201,
    response_model=Checkout,
    summary="A Razorpay order or a Stripe Checkout session: a credit top-up (billing.credits.write) or an "
    "invoice's balance (billing.write)",
    description="Needs an `Idempotency-Key`. The provider's webhook settles it (`POST /v1/webhooks/{provider}`): "
    "a top-up grants `topup` credits once; an invoice gets a payment. 503 when the provider is not configured.",
    responses=problems(401, 403, 404, 409, 503),
)
async def create_checkout(
    body: CheckoutBody, idempotency_key: IdempotencyKey, caller: CallerDep, invoicing: InvoicingDep
) -> Checkout:
    with billing_field_names():
        resp = await invoicing.create_checkout(body.to_proto(idempotency_key), token=caller.token)
    return Checkout.from_proto(resp.checkout)
