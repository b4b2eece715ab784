"""CreateCheckout through the official SDKs against the fake provider (the request each SDK
sends is what the fake checks), a provider without its secret, capabilities, and the review
fixes (trailing newlines in ref ids and idempotency keys; plans and subscriptions need
billing.credits.write)."""

from __future__ import annotations

import base64
import json
import uuid

import grpc
import pytest
from fake_providers import RAZORPAY_KEY_ID, RAZORPAY_KEY_SECRET, STRIPE_SECRET_KEY, FakeProviders

from zenops.billing.v1 import billing_pb2 as pb
from zenops.billing.v1 import invoicing_pb2 as ipb
from zenops.billing.v1 import invoicing_pb2_grpc
from zenops_kit.errors import parse_rpc_error

PRICE = 50000


async def checkout(h, token: str | None = None, **fields) -> ipb.Checkout:
    stub = invoicing_pb2_grpc.InvoicingServiceStub(h.channel)
    resp = await stub.CreateCheckout(
        ipb.CreateCheckoutRequest(**fields), metadata=(("authorization", f"Bearer {token or h.operator}"),), timeout=30
    )
    return resp.checkout


async def checkout_fails(h, token: str | None = None, **fields):
    try:
        await checkout(h, token, **fields)
    except grpc.aio.AioRpcError as exc:
        return parse_rpc_error(exc)
    raise AssertionError("CreateCheckout succeeded")


@pytest.fixture
def fake():
    with FakeProviders() as server:
        yield server


async def test_razorpay_topup_order_through_the_sdk(billing, fake):
    async with billing(**fake.settings()) as h:
        account = await h.account()
        key = f"co-{uuid.uuid4()}"
        made = await checkout(
            h, purpose="topup", provider="razorpay", account_id=account.id, credits=3, idempotency_key=key
        )
        assert made.provider == "razorpay" and made.purpose == "topup" and made.status == "created"
        assert made.amount_paise == 3 * PRICE and made.credits == 3 and made.provider_ref.startswith("order_")
        [sent] = [r for r in fake.requests if r.path == "/v1/orders"]
        assert (
            sent.headers["authorization"]
            == "Basic " + base64.b64encode(f"{RAZORPAY_KEY_ID}:{RAZORPAY_KEY_SECRET}".encode()).decode()
        )
        body = json.loads(sent.body)
        assert body["amount"] == 3 * PRICE and body["currency"] == "INR" and body["receipt"] == made.id
        assert body["notes"] == {
            "purpose": "topup",
            "tenant_id": h.tenant,
            "checkout_id": made.id,
            "account_id": account.id,
            "credits": "3",
        }
        # a retry with the key answers the same checkout and makes no second order
        again = await checkout(
            h, purpose="topup", provider="razorpay", account_id=account.id, credits=3, idempotency_key=key
        )
        assert again == made and len([r for r in fake.requests if r.path == "/v1/orders"]) == 1
        rows = await h.sql("SELECT status, amount_paise FROM checkouts WHERE id = CAST(:id AS uuid)", {"id": made.id})
        assert [(r.status, r.amount_paise) for r in rows] == [("created", 3 * PRICE)]
        directory = await h.sql(
            "SELECT ref FROM provider_refs WHERE checkout_id = CAST(:id AS uuid) ORDER BY ref",
            {"id": made.id},
            tenant=None,
        )
        assert sorted(r.ref for r in directory) == sorted([f"checkout:{made.id}", made.provider_ref])


async def test_stripe_checkout_session_through_the_sdk(billing, fake):
    async with billing(**fake.settings(credit_price_paise=1000)) as h:
        account = await h.account()
        made = await checkout(
            h,
            purpose="topup",
            provider="stripe",
            account_id=account.id,
            credits=7,
            idempotency_key=f"co-{uuid.uuid4()}",
        )
        assert made.provider_ref.startswith("cs_test_") and made.checkout_url.endswith(made.provider_ref)
        assert made.amount_paise == 7000
        [sent] = [r for r in fake.requests if r.path == "/v1/checkout/sessions"]
        assert sent.headers["authorization"] == f"Bearer {STRIPE_SECRET_KEY}"
        assert sent.headers["idempotency-key"] == f"zenops-checkout-{made.id}"
        form = sent.form
        assert form["mode"] == "payment" and form["client_reference_id"] == made.id
        assert form["line_items[0][price_data][currency]"] == "inr"
        assert form["line_items[0][price_data][unit_amount]"] == "7000"
        assert form["line_items[0][quantity]"] == "1"
        for prefix in ("metadata", "payment_intent_data[metadata]"):
            assert form[f"{prefix}[purpose]"] == "topup" and form[f"{prefix}[tenant_id]"] == h.tenant
            assert form[f"{prefix}[checkout_id]"] == made.id and form[f"{prefix}[credits]"] == "7"


async def test_a_provider_without_its_secret_is_unavailable(billing, fake):
    async with billing(**fake.settings(stripe_secret_key=None, razorpay_key_secret=None)) as h:
        account = await h.account()
        for provider in ("razorpay", "stripe"):
            err = await checkout_fails(
                h,
                purpose="topup",
                provider=provider,
                account_id=account.id,
                credits=1,
                idempotency_key=f"co-{uuid.uuid4()}",
            )
            assert err.code == grpc.StatusCode.UNAVAILABLE and err.reason == "PROVIDER_NOT_CONFIGURED", err
        assert fake.requests == []
        assert await h.sql("SELECT 1 FROM checkouts") == []


async def test_checkout_validation_and_capabilities(billing, fake):
    async with billing(**fake.settings()) as h:
        account = await h.account()
        err = await checkout_fails(
            h,
            h.token(("billing.read", "billing.write")),
            purpose="topup",
            provider="stripe",
            account_id=account.id,
            credits=1,
        )
        assert err.code == grpc.StatusCode.PERMISSION_DENIED and err.metadata["missing"] == "billing.credits.write"
        err = await checkout_fails(
            h,
            h.token(("billing.read", "billing.credits.write")),
            purpose="invoice",
            provider="stripe",
            account_id=account.id,
            invoice_id=str(uuid.uuid4()),
        )
        assert err.code == grpc.StatusCode.PERMISSION_DENIED
        for fields, field in (
            (dict(purpose="gift", provider="stripe", credits=1), "purpose"),
            (dict(purpose="topup", provider="paypal", credits=1), "provider"),
            (dict(purpose="topup", provider="stripe", credits=0), "credits"),
            (dict(purpose="invoice", provider="stripe", invoice_id="x"), "invoice_id"),
        ):
            err = await checkout_fails(h, account_id=account.id, **fields)
            assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.violations[0].field == field, err
        err = await checkout_fails(
            h, purpose="invoice", provider="razorpay", account_id=account.id, invoice_id=str(uuid.uuid4())
        )
        assert err.reason == "INVOICE_NOT_FOUND"
        err = await checkout_fails(h, purpose="topup", provider="razorpay", account_id=str(uuid.uuid4()), credits=1)
        assert err.code == grpc.StatusCode.NOT_FOUND
        # the provider down: UNAVAILABLE, nothing recorded, the same key works later
        fake.fail_next = 1
        key = f"co-{uuid.uuid4()}"
        err = await checkout_fails(
            h, purpose="topup", provider="razorpay", account_id=account.id, credits=1, idempotency_key=key
        )
        assert err.code == grpc.StatusCode.UNAVAILABLE and err.reason == "PROVIDER_UNAVAILABLE"
        made = await checkout(
            h, purpose="topup", provider="razorpay", account_id=account.id, credits=1, idempotency_key=key
        )
        assert made.status == "created"


# -- review fixes ------------------------------------------------------------------------------


async def test_ref_ids_and_keys_with_a_trailing_newline_are_refused(billing):
    async with billing() as h:
        account = await h.account(10)
        await h.reserve(account.id, 1, "wo-1")
        err = await h.fails(
            "ReserveCredits",
            pb.ReserveCreditsRequest(account_id=account.id, amount=1, ref_type="manual", ref_id="wo-1\n"),
        )
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.violations[0].field == "ref_id", err
        err = await h.fails(
            "GrantCredits",
            pb.GrantCreditsRequest(account_id=account.id, amount=1, reason="x", idempotency_key="key-1\n"),
        )
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.violations[0].field == "idempotency_key", err
        # (metadata cannot carry a newline at all: gRPC refuses it before sending)
        active = await h.sql("SELECT count(*) AS n FROM reservations WHERE status = 'ACTIVE'")
        assert active[0].n == 1


async def test_plans_and_subscriptions_need_billing_credits_write(billing):
    async with billing() as h:
        account = await h.account()
        staff = h.token(("billing.read", "billing.write"))
        err = await h.fails(
            "CreatePlan", pb.CreatePlanRequest(code="p1", name="P", credits_per_period=10, price_paise=0), staff
        )
        assert err.code == grpc.StatusCode.PERMISSION_DENIED and err.metadata["missing"] == "billing.credits.write"
        plan = (
            await h.call("CreatePlan", pb.CreatePlanRequest(code="p1", name="P", credits_per_period=10, price_paise=0))
        ).plan
        err = await h.fails(
            "Subscribe", pb.SubscribeRequest(account_id=account.id, plan_id=plan.id, idempotency_key="s-1"), staff
        )
        assert err.code == grpc.StatusCode.PERMISSION_DENIED and err.metadata["missing"] == "billing.credits.write"
        sub = (
            await h.call(
                "Subscribe", pb.SubscribeRequest(account_id=account.id, plan_id=plan.id, idempotency_key="s-1")
            )
        ).subscription
        assert sub.status == pb.SUBSCRIPTION_STATUS_ACTIVE
