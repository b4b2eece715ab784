"""The gateway's invoicing routes and provider webhooks, part 1: no real billing.

- Billing down: every invoicing route (and its `/v1/service-invoices/*` alias) needs a token
  (401) — the webhooks need none (billing down: 503, never 401); bodies, queries, paths and the
  `Idempotency-Key` header are 400s naming the field before any RPC; a valid request reaches
  billing (down: 503).
- A stand-in InvoicingService (a real gRPC server in the test) shows what the gateway sends
  and how it maps answers: webhooks forward the raw body bytes and the lower-cased headers
  untouched, without a token; billing's INVALID_ARGUMENT / ALREADY_EXISTS / UNAVAILABLE are
  400 / 409 / 503; over 256 KiB is 413 before billing is called; an invoice's JSON; the PDF;
  billing's field names renamed as the HTTP request names them.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import pytest
from gateway_testing import assert_problem, gateway_settings, running
from google.protobuf.timestamp_pb2 import Timestamp

from zenops.billing.v1 import invoicing_pb2 as pb
from zenops.billing.v1 import invoicing_pb2_grpc
from zenops_devstack.testing import TokenSigner
from zenops_gateway.app import USER_AUDIENCES, create_app
from zenops_kit.auth import JwtVerifier, RevocationList
from zenops_kit.errors import AlreadyExists, DomainError, FieldViolation, InvalidArgument, Unavailable, to_grpc_status

ISSUER = "zenops-identity"
KEY_FIELD = "header.Idempotency-Key"
IID, PID, AID, DID = (str(uuid.uuid4()) for _ in range(4))


def fields(resp: httpx.Response, status: int = 400, code: str | None = "VALIDATION_FAILED") -> dict[str, str]:
    body = assert_problem(resp, status, code)
    return {e["field"]: e["message"] for e in body["errors"]}


def key() -> dict[str, str]:
    return {"idempotency-key": str(uuid.uuid4())}


LINE = {"description": "Valuation report", "quantity": "1", "unit_price_paise": 500_000}


@asynccontextmanager
async def gateway(**settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, TokenSigner]]:
    """The gateway (identity down); its verifier trusts the test's key."""
    app = create_app(gateway_settings(**settings))
    signer = TokenSigner()
    async with running(app) as client:
        app.state.runtime.verifier = JwtVerifier(
            signer.key_source(), issuer=ISSUER, audiences=USER_AUDIENCES, revocations=RevocationList()
        )
        client.headers["authorization"] = f"Bearer {signer.token(aud='web')}"
        yield client, signer


@pytest.fixture
async def local():
    """Billing down."""
    async with gateway() as (client, _):
        yield client


# == billing down: tokens, validation ====================================================================

INVOICE_ROUTES = [
    ("POST", ""),
    ("GET", ""),
    ("GET", f"/{IID}"),
    ("POST", f"/{IID}/lines"),
    ("POST", f"/{IID}/issue"),
    ("POST", f"/{IID}/void"),
    ("POST", f"/{IID}/adjustments"),
    ("POST", f"/{IID}/payments"),
    ("POST", f"/{IID}/credit-notes"),
    ("GET", f"/{IID}/document"),
    ("POST", f"/{IID}/payment-proofs"),
]
PROTECTED = [
    *((m, f"/v1/billing/invoices{p}") for m, p in INVOICE_ROUTES),
    *((m, f"/v1/service-invoices{p}") for m, p in INVOICE_ROUTES),
    ("POST", f"/v1/service-invoices/{IID}/mark-paid"),
    ("GET", "/v1/billing/payment-proofs"),
    ("POST", f"/v1/billing/payment-proofs/{PID}/confirm"),
    ("POST", f"/v1/billing/payment-proofs/{PID}/reject"),
    ("GET", "/v1/billing/receivables"),
    ("POST", "/v1/billing/checkout"),
    ("PUT", "/v1/billing/settings"),
    ("GET", "/v1/billing/settings"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
async def test_invoicing_routes_need_a_token(local, method, path):
    resp = await local.request(method, path, headers={"authorization": ""}, json={"nonsense": True})
    assert_problem(resp, 401, "TOKEN_MISSING")


async def test_webhooks_need_no_token_and_answer_503_while_billing_is_down(local):
    for provider in ("razorpay", "stripe"):
        resp = await local.post(f"/v1/webhooks/{provider}", content=b'{"id":"evt_1"}', headers={"authorization": ""})
        assert_problem(resp, 503, "UNAVAILABLE")  # the provider retries later; never 401
        # a token (anyone's, or garbage) changes nothing: the signature is the authorisation
        resp = await local.post(f"/v1/webhooks/{provider}", content=b"{}", headers={"authorization": "Bearer x"})
        assert_problem(resp, 503, "UNAVAILABLE")
    assert_problem(await local.post("/v1/webhooks/paypal", content=b"{}"), 404)
    assert_problem(await local.get("/v1/webhooks/stripe"), 405)
    # over 256 KiB: 413 before billing is asked
    big = b"{" + b" " * (256 * 1024) + b"}"
    assert_problem(await local.post("/v1/webhooks/stripe", content=big), 413, "PAYLOAD_TOO_LARGE")


async def test_invoice_bodies_are_validated(local):
    errors = fields(await local.post("/v1/billing/invoices", json={}))
    assert set(errors) == {"account_id", "lines"}, errors
    resp = await local.post(
        "/v1/billing/invoices",
        json={
            "account_id": "acc-1",
            "place_of_supply": "Maharashtra",
            "due_date": "2026-02-30",
            "channel_id": 7,
            "lines": [
                {
                    "description": "",
                    "sac": "9972",
                    "quantity": 2.5,
                    "unit_price_paise": "500000",
                    "discount_paise": -1,
                    "ref_type": "invoice",
                    "ref_id": "a b",
                    "place_of_supply": "mh",
                    "extra": True,
                }
            ],
        },
    )
    errors = fields(resp)
    assert set(errors) == {
        "account_id",
        "place_of_supply",
        "due_date",
        "channel_id",
        "lines[0].description",
        "lines[0].sac",
        "lines[0].quantity",
        "lines[0].unit_price_paise",
        "lines[0].discount_paise",
        "lines[0].ref_type",
        "lines[0].ref_id",
        "lines[0].place_of_supply",
        "lines[0].extra",
    }, errors
    assert set(fields(await local.post("/v1/billing/invoices", json={"account_id": AID, "lines": []}))) == {"lines"}
    too_many = {"account_id": AID, "lines": [LINE] * 201}
    assert set(fields(await local.post("/v1/billing/invoices", json=too_many))) == {"lines"}
    for quantity in ("0", "0.000", "-1", "1.2345", "1e3", "abc", "10000000", True, None, 0, 1_000_001):
        body = {"account_id": AID, "lines": [{**LINE, "quantity": quantity}]}
        assert set(fields(await local.post("/v1/billing/invoices", json=body))) == {"lines[0].quantity"}, quantity
    for price in (-1, 1.5, "100", 10**19, True):
        body = {"account_id": AID, "lines": [{**LINE, "unit_price_paise": price}]}
        assert set(fields(await local.post("/v1/billing/invoices", json=body))) == {"lines[0].unit_price_paise"}
    # valid: forwarded (billing down → 503); JSON integers and decimal text are both quantities
    for quantity in (1, "2.5", "0.5", "1000000"):
        body = {"account_id": AID, "due_date": "2026-05-31", "lines": [{**LINE, "quantity": quantity}]}
        assert_problem(await local.post("/v1/billing/invoices", json=body), 503)

    base = f"/v1/billing/invoices/{IID}"
    assert set(fields(await local.post(f"{base}/lines", json={"lines": [{}]}))) == {
        "lines[0].description",
        "lines[0].quantity",
        "lines[0].unit_price_paise",
    }
    assert set(fields(await local.post("/v1/billing/invoices/nope/lines", json={"lines": [LINE]}))) == {
        "path.invoice_id"
    }
    errors = fields(await local.post(f"{base}/issue", json={"invoice_date": "31/03/2026", "x": 1}, headers=key()))
    assert set(errors) == {"invoice_date", "x"}
    assert set(fields(await local.post(f"{base}/void", json={"reason": ""}))) == {"reason"}
    errors = fields(
        await local.post(f"{base}/adjustments", json={"kind": "refund", "amount_paise": 0, "reason": ""}, headers=key())
    )
    assert set(errors) == {"kind", "amount_paise", "reason"}
    errors = fields(
        await local.post(
            f"{base}/payments",
            json={"amount_paise": 0, "method": "provider", "reference": "", "received_at": "2026-01-01T10:00:00"},
            headers=key(),
        )
    )
    assert set(errors) == {"amount_paise", "method", "reference", "received_at"}
    errors = fields(await local.post(f"{base}/credit-notes", json={"taxable_paise": 1.5}, headers=key()))
    assert set(errors) == {"taxable_paise", "reason"}
    errors = fields(
        await local.post(f"{base}/payment-proofs", json={"document_id": "doc", "note": "n" * 1001, "amount_paise": -5})
    )
    assert set(errors) == {"document_id", "note", "amount_paise"}
    assert set(fields(await local.post(f"/v1/billing/payment-proofs/{PID}/confirm", json={}, headers=key()))) == {
        "method"
    }
    assert set(fields(await local.post("/v1/billing/payment-proofs/x/reject", json={"reason": ""}))) == {
        "path.proof_id",
        "reason",
    }
    # the aliases validate the same way
    assert set(fields(await local.post("/v1/service-invoices", json={"account_id": AID}))) == {"lines"}
    errors = fields(await local.post(f"/v1/service-invoices/{IID}/mark-paid", json={"amount_paise": 5}))
    assert set(errors) == {KEY_FIELD, "method", "reference"}


async def test_money_moves_and_numbers_need_an_idempotency_key(local):
    base = f"/v1/billing/invoices/{IID}"
    required = [
        (f"{base}/issue", None),
        (f"{base}/adjustments", {"kind": "discount", "amount_paise": 100, "reason": "goodwill"}),
        (f"{base}/payments", {"amount_paise": 100, "method": "upi", "reference": "UTR-1"}),
        (f"{base}/credit-notes", {"taxable_paise": 100, "reason": "fee revised"}),
        (f"/v1/billing/payment-proofs/{PID}/confirm", {"method": "bank_transfer"}),
        ("/v1/billing/checkout", {"purpose": "topup", "provider": "razorpay", "account_id": AID, "credits": 10}),
        (f"/v1/service-invoices/{IID}/issue", None),
    ]
    for path, body in required:
        errors = fields(await local.post(path, json=body))
        assert errors == {KEY_FIELD: "Field required"}, (path, errors)
        for bad in ("", "has space", "k" * 201):
            assert set(fields(await local.post(path, json=body, headers={"idempotency-key": bad}))) == {KEY_FIELD}
        assert_problem(await local.post(path, json=body, headers={"idempotency-key": "k" * 200}), 503)
    # optional where a retry is harmless or answered by billing's own keys
    optional = [
        ("/v1/billing/invoices", {"account_id": AID, "lines": [LINE]}),
        (f"{base}/lines", {"lines": [LINE]}),
        (f"{base}/void", {"reason": "raised in error"}),
        (f"{base}/payment-proofs", {"document_id": DID, "amount_paise": 100}),
        (f"/v1/billing/payment-proofs/{PID}/reject", {"reason": "illegible"}),
    ]
    for path, body in optional:
        assert_problem(await local.post(path, json=body), 503)
        assert set(fields(await local.post(path, json=body, headers={"idempotency-key": "a b"}))) == {KEY_FIELD}


async def test_checkout_settings_and_queries_are_validated(local):
    checkout = "/v1/billing/checkout"
    errors = fields(await local.post(checkout, json={"purpose": "gift", "provider": "paypal"}, headers=key()))
    assert set(errors) == {"purpose", "provider", "account_id"}, errors
    topup = {"purpose": "topup", "provider": "stripe", "account_id": AID}
    assert set(fields(await local.post(checkout, json=topup, headers=key()))) == {"credits"}
    errors = fields(await local.post(checkout, json={**topup, "credits": 0, "invoice_id": IID}, headers=key()))
    assert set(errors) == {"credits", "invoice_id"}
    pay = {"purpose": "invoice", "provider": "razorpay", "account_id": AID}
    assert set(fields(await local.post(checkout, json=pay, headers=key()))) == {"invoice_id"}
    assert set(fields(await local.post(checkout, json={**pay, "invoice_id": IID, "credits": 5}, headers=key()))) == {
        "credits"
    }
    assert_problem(await local.post(checkout, json={**pay, "invoice_id": IID}, headers=key()), 503)

    errors = fields(
        await local.put(
            "/v1/billing/settings",
            json={"gstin": "27ABC", "state": "Maharashtra", "invoice_prefix": "ZO/X", "payment_terms_days": "30"},
        )
    )
    assert set(errors) == {"legal_name", "gstin", "state", "address", "invoice_prefix", "payment_terms_days"}
    settings = {
        "legal_name": "Zen Valuers LLP",
        "gstin": "27AAAFZ1234K1ZV",
        "state": "MH",
        "address": "Pune",
        "invoice_prefix": "ZO",
    }
    assert_problem(await local.put("/v1/billing/settings", json=settings), 503)

    resp = await local.get("/v1/billing/invoices?account_id=x&status=open&channel_id=y&limit=0&cursor=" + "c" * 2000)
    assert set(fields(resp)) == {
        "query.account_id",
        "query.status[0]",  # the first (repeatable) status
        "query.channel_id",
        "query.limit",
        "query.cursor",
    }
    assert_problem(await local.get("/v1/billing/invoices?status=issued&status=partially_paid"), 503)
    assert set(fields(await local.get("/v1/billing/invoices/nope"))) == {"path.invoice_id"}
    assert set(fields(await local.get("/v1/billing/invoices/nope/document"))) == {"path.invoice_id"}
    resp = await local.get("/v1/billing/payment-proofs?invoice_id=1&status=pending")
    assert set(fields(resp)) == {"query.invoice_id", "query.status"}
    resp = await local.get("/v1/billing/receivables?account_id=z&as_of=2026-13-01")
    assert set(fields(resp)) == {"query.account_id", "query.as_of"}
    assert_problem(await local.get(f"/v1/billing/receivables?account_id={AID}&as_of=2026-03-31"), 503)


async def test_openapi_documents_invoicing_and_webhooks(local):
    spec = (await local.get("/v1/openapi.json")).json()
    paths = spec["paths"]
    documented = {(m.upper(), p) for p, item in paths.items() for m in item}
    for method, path in PROTECTED:
        template = path.replace(IID, "{invoice_id}").replace(PID, "{proof_id}")
        assert (method, template) in documented, (method, template)
        operation = paths[template][method.lower()]
        assert operation["security"] == [{"bearer": []}]
        assert operation.get("deprecated", False) is template.startswith("/v1/service-invoices")
    issue = paths["/v1/billing/invoices/{invoice_id}/issue"]["post"]
    header = next(p for p in issue["parameters"] if p["in"] == "header")
    assert header["name"] == "Idempotency-Key" and header["required"] is True
    assert (
        "application/pdf" in paths["/v1/billing/invoices/{invoice_id}/document"]["get"]["responses"]["200"]["content"]
    )
    for provider in ("razorpay", "stripe"):
        hook = paths[f"/v1/webhooks/{provider}"]["post"]
        assert hook["security"] == []  # public: the provider signature is the authorisation
        assert {"400", "409", "413", "503"} <= set(hook["responses"])
    invoice = spec["components"]["schemas"]["Invoice"]["properties"]
    for member in (
        "number",
        "status",
        "place_of_supply",
        "taxable_paise",
        "cgst_paise",
        "sgst_paise",
        "igst_paise",
        "round_off_paise",
        "total_paise",
        "balance_paise",
        "total_in_words",
    ):
        assert member in invoice, member


# == a stand-in InvoicingService: what the gateway sends, how it maps the answers ========================


def ts(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


def sample_invoice(invoice_id: str = IID) -> pb.Invoice:
    line = pb.InvoiceLine(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"line:{invoice_id}")),
        description="Valuation report — Flat 702",
        sac="997224",
        quantity="1",
        unit_price_paise=1_180_050,
        taxable_paise=1_180_050,
        cgst_paise=106_205,  # 9 % of 11,800.50 = 1,062.045 → 1,062.05 (half-up)
        sgst_paise=106_205,
        total_paise=1_392_460,
        ref_type="assignment",
        ref_id=AID,
        place_of_supply="MH",
    )
    return pb.Invoice(
        id=invoice_id,
        account_id=AID,
        number="ZO/25-26/000042",
        status=pb.INVOICE_STATUS_PARTIALLY_PAID,
        invoice_date="2026-03-31",
        due_date="2026-04-30",
        place_of_supply="MH",
        supplier_gstin="27AAAFZ1234K1ZV",
        lines=[line],
        taxable_paise=1_180_050,
        cgst_paise=106_205,
        sgst_paise=106_205,
        round_off_paise=40,  # 13,924.60 → 13,925
        total_paise=1_392_500,
        paid_paise=500_000,
        balance_paise=892_500,
        total_in_words="Rupees Thirteen Thousand Nine Hundred Twenty-Five Only",
        payments=[
            pb.Payment(
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"payment:{invoice_id}")),
                invoice_id=invoice_id,
                amount_paise=500_000,
                method="upi",
                reference="UTR123",
                received_at=ts(1_774_000_000),
                created_at=ts(1_774_000_100),
            )
        ],
        created_at=ts(1_773_000_000),
        issued_at=ts(1_774_000_000),
        has_document=True,
    )


PDF = b"%PDF-1.7\n" + bytes(range(256)) + b"\n%%EOF\n"


@dataclass
class FakeInvoicing(invoicing_pb2_grpc.InvoicingServiceServicer):
    """Records every request with its metadata; `errors[rpc]` makes that RPC fail."""

    calls: list[tuple[str, Any, dict[str, str]]] = field(default_factory=list)
    errors: dict[str, DomainError] = field(default_factory=dict)

    async def _answer(self, rpc: str, request: Any, context: grpc.aio.ServicerContext, response: Any) -> Any:
        self.calls.append((rpc, request, dict(context.invocation_metadata())))
        if rpc in self.errors:
            await context.abort_with_status(to_grpc_status(self.errors[rpc], "billing"))
        return response

    async def HandleProviderWebhook(self, request, context):  # noqa: N802 - gRPC's name
        return await self._answer(
            "HandleProviderWebhook",
            request,
            context,
            pb.HandleProviderWebhookResponse(event_id="evt_1", outcome="applied"),
        )

    async def GetInvoice(self, request, context):  # noqa: N802
        return await self._answer("GetInvoice", request, context, pb.GetInvoiceResponse(invoice=sample_invoice()))

    async def GetInvoiceDocument(self, request, context):  # noqa: N802
        return await self._answer(
            "GetInvoiceDocument",
            request,
            context,
            pb.GetInvoiceDocumentResponse(
                content_type="application/pdf",
                filename="ZO-25-26-000042.pdf",
                content=PDF,
                sha256=hashlib.sha256(PDF).hexdigest(),
            ),
        )

    async def CreateInvoice(self, request, context):  # noqa: N802
        invoice = sample_invoice(str(uuid.uuid4()))
        invoice.status, invoice.number = pb.INVOICE_STATUS_DRAFT, ""
        return await self._answer("CreateInvoice", request, context, pb.CreateInvoiceResponse(invoice=invoice))

    async def IssueInvoice(self, request, context):  # noqa: N802
        return await self._answer("IssueInvoice", request, context, pb.IssueInvoiceResponse(invoice=sample_invoice()))

    async def PutBillingSettings(self, request, context):  # noqa: N802
        return await self._answer(
            "PutBillingSettings", request, context, pb.PutBillingSettingsResponse(settings=request.settings)
        )

    async def ListInvoices(self, request, context):  # noqa: N802
        return await self._answer("ListInvoices", request, context, pb.ListInvoicesResponse())


@asynccontextmanager
async def fake_billing() -> AsyncIterator[tuple[httpx.AsyncClient, FakeInvoicing]]:
    fake = FakeInvoicing()
    server = grpc.aio.server()
    invoicing_pb2_grpc.add_InvoicingServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with gateway(billing_addr=f"127.0.0.1:{port}") as (client, _):
            yield client, fake
    finally:
        await server.stop(grace=None)


async def test_webhooks_forward_raw_bytes_and_headers_untouched():
    async with fake_billing() as (client, fake):
        # bytes a JSON parser would normalise: spacing, key order, escapes, a trailing newline
        raw = b'{ "id":"evt_1",  "type":"payment.captured", "n": 1.50, "s":"\\u00e9" }\n'
        resp = await client.post(
            "/v1/webhooks/razorpay",
            content=raw,
            headers={
                "authorization": "",  # no token at all
                "Content-Type": "application/json",
                "X-Razorpay-Signature": "AbCd" * 16,
                "X-Razorpay-Event-Id": "evt_1",
            },
        )
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"event_id": "evt_1", "outcome": "applied"}
        [(rpc, request, metadata)] = fake.calls
        assert rpc == "HandleProviderWebhook" and request.provider == "razorpay"
        assert request.body == raw  # byte for byte
        assert request.headers["x-razorpay-signature"] == "AbCd" * 16  # values untouched, names lower-cased
        assert request.headers["x-razorpay-event-id"] == "evt_1"
        assert request.headers["content-type"] == "application/json"
        assert all(name == name.lower() for name in request.headers)
        assert "authorization" not in metadata  # public: no token travels

        # stripe: a repeated header keeps every value; an empty body is forwarded as empty
        resp = await client.post(
            "/v1/webhooks/stripe",
            content=b"",
            headers=[("Stripe-Signature", "t=1,v1=aa"), ("X-Extra", "one"), ("X-Extra", "two")],
        )
        assert resp.status_code == 200, resp.text
        _, request, _ = fake.calls[-1]
        assert (request.provider, request.body) == ("stripe", b"")
        assert request.headers["stripe-signature"] == "t=1,v1=aa" and request.headers["x-extra"] == "one, two"

        # billing's verdicts: bad signature 400, same id different body 409, billing unavailable 503
        for error, status in (
            (InvalidArgument("signature mismatch", reason="WEBHOOK_SIGNATURE_INVALID"), 400),
            (AlreadyExists("event evt_1 was received with another body", reason="WEBHOOK_EVENT_CONFLICT"), 409),
            (Unavailable("stripe is not configured", reason="PROVIDER_UNAVAILABLE"), 503),
        ):
            fake.errors["HandleProviderWebhook"] = error
            resp = await client.post("/v1/webhooks/stripe", content=b"{}", headers={"stripe-signature": "t=1,v1=0"})
            assert_problem(resp, status, error.reason)
        calls = len(fake.calls)
        assert_problem(await client.post("/v1/webhooks/razorpay", content=b"x" * (256 * 1024 + 1)), 413)
        assert len(fake.calls) == calls  # refused before billing


async def test_invoice_json_document_and_field_names():
    async with fake_billing() as (client, fake):
        resp = await client.get(f"/v1/billing/invoices/{IID}")
        assert resp.status_code == 200, resp.text
        invoice = resp.json()
        assert (invoice["number"], invoice["status"], invoice["place_of_supply"]) == (
            "ZO/25-26/000042",
            "partially_paid",
            "MH",
        )
        assert (invoice["taxable_paise"], invoice["cgst_paise"], invoice["sgst_paise"], invoice["igst_paise"]) == (
            1_180_050,
            106_205,
            106_205,
            0,
        )
        assert (invoice["round_off_paise"], invoice["total_paise"], invoice["balance_paise"]) == (
            40,
            1_392_500,
            892_500,
        )
        assert invoice["total_in_words"].startswith("Rupees Thirteen Thousand")
        [line] = invoice["lines"]
        assert (line["sac"], line["quantity"], line["cgst_paise"], line["igst_paise"], line["ref_type"]) == (
            "997224",
            "1",
            106_205,
            0,
            "assignment",
        )
        assert invoice["payments"][0]["method"] == "upi" and invoice["payments"][0]["provider"] is None
        assert invoice["recipient_gstin"] is None and invoice["channel_id"] is None
        assert invoice["issued_at"].endswith("Z") and invoice["updated_at"] is None
        _, request, metadata = fake.calls[-1]
        assert request.id == IID and metadata["authorization"].startswith("Bearer ")
        # the alias answers the same
        assert (await client.get(f"/v1/service-invoices/{IID}")).json() == invoice

        doc = await client.get(f"/v1/billing/invoices/{IID}/document")
        assert doc.status_code == 200 and doc.content == PDF
        assert doc.headers["content-type"] == "application/pdf"
        assert doc.headers["content-disposition"] == 'attachment; filename="ZO-25-26-000042.pdf"'
        assert doc.headers["x-content-sha256"] == hashlib.sha256(PDF).hexdigest()

        # what a create sends; 201 + Location
        body = {
            "account_id": AID,
            "place_of_supply": "KA",
            "due_date": "2026-05-31",
            "lines": [{**LINE, "quantity": 2, "discount_paise": 100, "ref_type": "work_order", "ref_id": "wo-1"}],
        }
        resp = await client.post("/v1/billing/invoices", json=body, headers={"idempotency-key": "create-1"})
        assert resp.status_code == 201, resp.text
        assert resp.headers["location"] == f"/v1/billing/invoices/{resp.json()['id']}"
        assert resp.json()["status"] == "draft" and resp.json()["number"] is None
        _, request, _ = fake.calls[-1]
        assert (request.account_id, request.place_of_supply, request.due_date, request.idempotency_key) == (
            AID,
            "KA",
            "2026-05-31",
            "create-1",
        )
        assert [(x.quantity, x.discount_paise, x.ref_type, x.sac) for x in request.lines] == [
            ("2", 100, "work_order", "")
        ]

        # billing's field names, as the HTTP request names them
        fake.errors["IssueInvoice"] = InvalidArgument(
            "invalid",
            violations=[
                FieldViolation("invoice_date", "must not be in the future"),
                FieldViolation("id", "unknown"),
                FieldViolation("idempotency_key", "bad"),
            ],
        )
        resp = await client.post(
            f"/v1/billing/invoices/{IID}/issue", json={"invoice_date": "2099-01-01"}, headers=key()
        )
        assert set(fields(resp)) == {"invoice_date", "path.invoice_id", KEY_FIELD}
        fake.errors["PutBillingSettings"] = InvalidArgument(
            "invalid", violations=[FieldViolation("settings.gstin", "checksum")]
        )
        settings = {
            "legal_name": "Zen Valuers LLP",
            "gstin": "27AAAFZ1234K1ZV",
            "state": "MH",
            "address": "Pune",
            "invoice_prefix": "ZO",
        }
        assert set(fields(await client.put("/v1/billing/settings", json=settings))) == {"gstin"}
        fake.errors["ListInvoices"] = InvalidArgument(
            "invalid", violations=[FieldViolation("page.cursor", "bad"), FieldViolation("statuses", "bad")]
        )
        resp = await client.get("/v1/billing/invoices", params={"cursor": "zz", "status": "paid"})
        assert set(fields(resp)) == {"query.cursor", "query.status"}
        _, request, _ = fake.calls[-1]
        assert list(request.statuses) == [pb.INVOICE_STATUS_PAID]
        assert json.loads(json.dumps(invoice))  # plain JSON through and through
