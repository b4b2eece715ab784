"""HandleProviderWebhook: signed with the providers' real schemes, verified by the official
SDKs' helpers; stored once, applied once per payment (replays and siblings in any order),
rejections audited with nothing changed, the same id with another body refused, a crash
between storing and applying repaired, a failure never undoing a capture, and a refund after
spending: one compensating debit and RECOVERY_DUE."""

from __future__ import annotations

import json
import random
import time
import uuid

import grpc
import pytest
from fake_providers import (
    FakeProviders,
    razorpay_headers,
    razorpay_payment,
    stripe_event,
    stripe_headers,
)

from zenops.billing.v1 import billing_pb2 as pb
from zenops.billing.v1 import invoicing_pb2 as ipb
from zenops.billing.v1 import invoicing_pb2_grpc
from zenops_billing.providers import settlement
from zenops_kit.errors import parse_rpc_error

PRICE = 50000


@pytest.fixture
def fake():
    with FakeProviders() as server:
        yield server


def stub(h):
    return invoicing_pb2_grpc.InvoicingServiceStub(h.channel)


async def post(h, provider: str, body: bytes, headers: dict[str, str]) -> ipb.HandleProviderWebhookResponse:
    # Public: no bearer token, as the gateway forwards a provider's request.
    return await stub(h).HandleProviderWebhook(
        ipb.HandleProviderWebhookRequest(provider=provider, body=body, headers=headers), timeout=30
    )


async def post_fails(h, provider: str, body: bytes, headers: dict[str, str]):
    try:
        await post(h, provider, body, headers)
    except grpc.aio.AioRpcError as exc:
        return parse_rpc_error(exc)
    raise AssertionError("the webhook was accepted")


async def topup(h, provider: str, account_id: str, credits: int) -> ipb.Checkout:
    resp = await stub(h).CreateCheckout(
        ipb.CreateCheckoutRequest(
            purpose="topup",
            provider=provider,
            account_id=account_id,
            credits=credits,
            idempotency_key=f"co-{uuid.uuid4()}",
        ),
        metadata=(("authorization", f"Bearer {h.operator}"),),
        timeout=30,
    )
    return resp.checkout


def notes(h, made: ipb.Checkout) -> dict:
    return {
        "purpose": "topup",
        "tenant_id": h.tenant,
        "checkout_id": made.id,
        "account_id": made.account_id,
        "credits": str(made.credits),
    }


async def topups(h, account_id: str) -> list[int]:
    rows = await h.sql(
        "SELECT amount FROM credit_ledger WHERE account_id = CAST(:a AS uuid) AND kind = 'TOPUP'", {"a": account_id}
    )
    return [r.amount for r in rows]


async def rejections(h) -> list:
    return await h.sql("SELECT reason, event_id FROM webhook_rejections ORDER BY received_at", tenant=None)


async def test_razorpay_topup_credited_once_whatever_the_replays(billing, fake):
    async with billing(**fake.settings()) as h:
        account = await h.account()
        made = await topup(h, "razorpay", account.id, 4)
        pay = f"pay_{uuid.uuid4().hex[:14]}"
        captured = razorpay_payment(
            "payment.captured",
            payment_id=pay,
            order_id=made.provider_ref,
            amount=made.amount_paise,
            notes=notes(h, made),
        )
        first = await post(h, "razorpay", captured, razorpay_headers(captured, "evt_cap"))
        assert (first.event_id, first.outcome) == ("evt_cap", "applied")
        assert await topups(h, account.id) == [4]
        assert (await h.wallet(account.id)).available == 4

        paid = razorpay_payment("order.paid", payment_id=pay, order_id=made.provider_ref, amount=made.amount_paise)
        deliveries = [(captured, "evt_cap")] * 5 + [(paid, "evt_paid")] * 5
        random.shuffle(deliveries)
        outcomes = [(await post(h, "razorpay", body, razorpay_headers(body, eid))).outcome for body, eid in deliveries]
        assert set(outcomes) == {"duplicate"}
        assert await topups(h, account.id) == [4]
        entry = (await h.sql("SELECT idempotency_key, business_ref FROM credit_ledger WHERE kind = 'TOPUP'"))[0]
        assert entry.idempotency_key == f"razorpay:payment:{pay}" and entry.business_ref == f"checkout:{made.id}"
        events = await h.sql("SELECT event_id, outcome FROM payment_events ORDER BY received_at")
        assert [(e.event_id, e.outcome) for e in events] == [("evt_cap", "applied"), ("evt_paid", "duplicate")]
        status = await h.sql("SELECT status FROM checkouts WHERE id = CAST(:id AS uuid)", {"id": made.id})
        assert status[0].status == "paid"

        # a later payment.failed for it never undoes the capture
        failed = razorpay_payment(
            "payment.failed", payment_id=pay, order_id=made.provider_ref, amount=made.amount_paise, status="failed"
        )
        assert (await post(h, "razorpay", failed, razorpay_headers(failed, "evt_fail"))).outcome == "ignored"
        status = await h.sql("SELECT status FROM checkouts WHERE id = CAST(:id AS uuid)", {"id": made.id})
        assert status[0].status == "paid" and await topups(h, account.id) == [4]
        assert await h.invariants() == []


async def test_stripe_topup_credited_once_in_any_order(billing, fake):
    async with billing(**fake.settings()) as h:
        account = await h.account()
        made = await topup(h, "stripe", account.id, 2)
        pi = f"pi_{uuid.uuid4().hex}"
        meta = notes(h, made)
        completed = stripe_event(
            "checkout.session.completed",
            {
                "id": made.provider_ref,
                "object": "checkout.session",
                "payment_intent": pi,
                "payment_status": "paid",
                "amount_total": made.amount_paise,
                "currency": "inr",
                "metadata": meta,
            },
            event_id="evt_done",
        )
        succeeded = stripe_event(
            "payment_intent.succeeded",
            {
                "id": pi,
                "object": "payment_intent",
                "amount": made.amount_paise,
                "amount_received": made.amount_paise,
                "currency": "inr",
                "metadata": meta,
            },
            event_id="evt_pi",
        )
        deliveries = [completed] * 5 + [succeeded] * 5
        random.shuffle(deliveries)
        outcomes = [(await post(h, "stripe", body, stripe_headers(body))).outcome for body in deliveries]
        assert outcomes.count("applied") == 1 and set(outcomes) == {"applied", "duplicate"}
        assert await topups(h, account.id) == [2]
        # several v1 signatures (a rotated secret): any one matching is enough
        again = await post(h, "stripe", completed, stripe_headers(completed, extra_v1=("00" * 32,)))
        assert again.outcome == "duplicate"
        assert await h.invariants() == []


async def test_unauthentic_webhooks_change_nothing_and_are_audited(billing, fake):
    async with billing(**fake.settings()) as h:
        account = await h.account()
        made = await topup(h, "stripe", account.id, 1)
        body = stripe_event(
            "checkout.session.completed",
            {
                "id": made.provider_ref,
                "payment_intent": "pi_x",
                "payment_status": "paid",
                "amount_total": made.amount_paise,
                "currency": "inr",
                "metadata": notes(h, made),
            },
            event_id="evt_bad",
        )
        now = int(time.time())
        tampered = body.replace(b'"paid"', b'"paid" ')
        cases = [
            ("stripe", tampered, stripe_headers(body), "WEBHOOK_SIGNATURE_INVALID"),
            ("stripe", body, stripe_headers(body, "whsec_wrong"), "WEBHOOK_SIGNATURE_INVALID"),
            ("stripe", body, stripe_headers(body, timestamp=now - 301), "WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE"),
            ("stripe", body, stripe_headers(body, timestamp=now + 301), "WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE"),
            ("stripe", body, {}, "WEBHOOK_SIGNATURE_INVALID"),
        ]
        rz = razorpay_payment("payment.captured", payment_id="pay_x", order_id="order_x", amount=100)
        cases += [
            ("razorpay", rz + b" ", razorpay_headers(rz, "evt_rz"), "WEBHOOK_SIGNATURE_INVALID"),
            ("razorpay", rz, razorpay_headers(rz, "evt_rz", secret="wrong"), "WEBHOOK_SIGNATURE_INVALID"),
        ]
        for provider, payload, headers, reason in cases:
            err = await post_fails(h, provider, payload, headers)
            assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.reason == reason, (provider, headers, err)
        assert [r.reason for r in await rejections(h)] == [c[3] for c in cases]
        assert await topups(h, account.id) == []
        assert await h.sql("SELECT 1 FROM payment_events") == []
        assert await h.sql("SELECT 1 FROM provider_event_receipts", tenant=None) == []
        # within the tolerance either side it is accepted
        ok = await post(h, "stripe", body, stripe_headers(body, timestamp=now + 200))
        assert ok.outcome == "applied"


async def test_same_event_id_with_another_body_is_refused(billing, fake):
    async with billing(**fake.settings()) as h:
        account = await h.account()
        made = await topup(h, "razorpay", account.id, 1)
        body = razorpay_payment(
            "payment.captured", payment_id="pay_1", order_id=made.provider_ref, amount=made.amount_paise
        )
        assert (await post(h, "razorpay", body, razorpay_headers(body, "evt_1"))).outcome == "applied"
        other = razorpay_payment(
            "payment.captured", payment_id="pay_2", order_id=made.provider_ref, amount=made.amount_paise
        )
        err = await post_fails(h, "razorpay", other, razorpay_headers(other, "evt_1"))
        assert err.code == grpc.StatusCode.ALREADY_EXISTS and err.reason == "EVENT_ID_REUSED", err
        assert [(r.reason, r.event_id) for r in await rejections(h)] == [("EVENT_ID_REUSED", "evt_1")]
        assert await topups(h, account.id) == [1]
        assert len(await h.sql("SELECT 1 FROM payment_events")) == 1


async def test_unknown_events_are_stored_and_acknowledged(billing, fake):
    async with billing(**fake.settings()) as h:
        account = await h.account()
        made = await topup(h, "stripe", account.id, 1)
        known = stripe_event("customer.created", {"id": "cus_1", "metadata": notes(h, made)}, event_id="evt_c")
        assert (await post(h, "stripe", known, stripe_headers(known))).outcome == "ignored"
        stray = stripe_event("invoice.finalized", {"id": "in_1"}, event_id="evt_stray")
        assert (await post(h, "stripe", stray, stripe_headers(stray))).outcome == "ignored"
        assert (await post(h, "stripe", stray, stripe_headers(stray))).outcome == "duplicate"
        events = await h.sql("SELECT event_id, event_type, outcome FROM payment_events")
        assert [(e.event_id, e.event_type, e.outcome) for e in events] == [("evt_c", "customer.created", "ignored")]
        receipts = await h.sql("SELECT event_id FROM provider_event_receipts ORDER BY event_id", tenant=None)
        assert [r.event_id for r in receipts] == ["evt_c", "evt_stray"]


async def test_a_crash_between_storing_and_applying_is_repaired(billing, fake, monkeypatch):
    async with billing(**fake.settings()) as h:
        account = await h.account()
        real_apply = settlement.apply

        async def crash(*args, **kwargs):
            raise RuntimeError("the process died here")

        # by the provider's retry
        made = await topup(h, "razorpay", account.id, 1)
        body = razorpay_payment(
            "payment.captured", payment_id="pay_a", order_id=made.provider_ref, amount=made.amount_paise
        )
        monkeypatch.setattr(settlement, "apply", crash)
        with pytest.raises(grpc.aio.AioRpcError):
            await post(h, "razorpay", body, razorpay_headers(body, "evt_a"))
        assert [e.outcome for e in await h.sql("SELECT outcome FROM payment_events")] == ["pending"]
        assert await topups(h, account.id) == []
        monkeypatch.setattr(settlement, "apply", real_apply)
        assert (await post(h, "razorpay", body, razorpay_headers(body, "evt_a"))).outcome == "applied"
        assert await topups(h, account.id) == [1]

        # by the sweep
        made = await topup(h, "razorpay", account.id, 2)
        body = razorpay_payment(
            "payment.captured", payment_id="pay_b", order_id=made.provider_ref, amount=made.amount_paise
        )
        monkeypatch.setattr(settlement, "apply", crash)
        with pytest.raises(grpc.aio.AioRpcError):
            await post(h, "razorpay", body, razorpay_headers(body, "evt_b"))
        monkeypatch.setattr(settlement, "apply", real_apply)
        assert await settlement.sweep(h.engine) == 1
        assert await settlement.sweep(h.engine) == 0
        assert sorted(await topups(h, account.id)) == [1, 2]
        assert (await post(h, "razorpay", body, razorpay_headers(body, "evt_b"))).outcome == "duplicate"
        assert sorted(await topups(h, account.id)) == [1, 2]


async def test_refund_after_spending_one_compensating_debit_and_recovery_due(billing, fake):
    async with billing(**fake.settings()) as h:
        account = await h.account()
        made = await topup(h, "razorpay", account.id, 10)
        pay = "pay_refunded"
        body = razorpay_payment(
            "payment.captured", payment_id=pay, order_id=made.provider_ref, amount=made.amount_paise
        )
        await post(h, "razorpay", body, razorpay_headers(body, "evt_cap"))
        spent = await h.reserve(account.id, 7)
        await h.call("ConsumeReservation", pb.ConsumeReservationRequest(reservation_id=spent.reservation.id))
        assert (await h.wallet(account.id)).available == 3

        refund = razorpay_payment(
            "refund.processed",
            payment_id=pay,
            order_id=made.provider_ref,
            amount=made.amount_paise,
            extra={
                "refund": {
                    "entity": {"id": "rfnd_1", "payment_id": pay, "amount": made.amount_paise, "currency": "INR"}
                }
            },
        )
        dispute = razorpay_payment(
            "payment.dispute.lost",
            payment_id=pay,
            order_id=made.provider_ref,
            amount=made.amount_paise,
            extra={"dispute": {"entity": {"id": "disp_1", "payment_id": pay, "amount": made.amount_paise}}},
        )
        deliveries = [(refund, "evt_rf")] * 3 + [(dispute, "evt_dp")] * 3
        random.shuffle(deliveries)
        outcomes = [(await post(h, "razorpay", b, razorpay_headers(b, e))).outcome for b, e in deliveries]
        assert outcomes.count("applied") == 1
        wallet = await h.wallet(account.id)
        assert wallet.available == -7 and wallet.granted == 10 and wallet.consumed == 17
        debits = await h.sql(
            "SELECT ref_id, amount, status, shortfall FROM reservations WHERE ref_id LIKE 'recovery:%'"
        )
        assert [(d.ref_id, d.amount, d.status, d.shortfall) for d in debits] == [
            (f"recovery:razorpay:{pay}", 10, "CONSUMED", 7)
        ]
        recovery = await h.sql("SELECT status, credits, shortfall FROM payment_recoveries")
        assert [(r.status, r.credits, r.shortfall) for r in recovery] == [("RECOVERY_DUE", 10, 7)]
        flagged = await h.sql("SELECT kind, detail FROM account_events WHERE kind = 'RECOVERY_DUE'")
        assert len(flagged) == 1 and json.loads(json.dumps(flagged[0].detail))["shortfall"] == 7
        status = await h.sql("SELECT status FROM checkouts WHERE id = CAST(:id AS uuid)", {"id": made.id})
        assert status[0].status == "refunded"
        assert await h.invariants() == []


async def test_webhooks_of_a_provider_without_its_secret_are_unavailable(billing, fake):
    async with billing(**fake.settings(stripe_webhook_secret=None)) as h:
        body = stripe_event("checkout.session.completed", {"id": "cs_1"})
        err = await post_fails(h, "stripe", body, stripe_headers(body))
        assert err.code == grpc.StatusCode.UNAVAILABLE and err.reason == "PROVIDER_NOT_CONFIGURED"
        err = await post_fails(h, "paypal", body, {})
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.violations[0].field == "provider"


async def test_invoice_checkout_paid_records_one_provider_payment(billing, fake):
    from invoicing_harness import Invoicing

    async with billing(**fake.settings()) as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()
        invoice = await inv.issued(account.id)
        assert invoice.balance_paise > 0
        made = (
            await inv.call(
                "CreateCheckout",
                ipb.CreateCheckoutRequest(
                    purpose="invoice",
                    provider="stripe",
                    account_id=account.id,
                    invoice_id=invoice.id,
                    idempotency_key=f"co-{uuid.uuid4()}",
                ),
            )
        ).checkout
        assert made.amount_paise == invoice.balance_paise and made.invoice_id == invoice.id
        [sent] = [r for r in fake.requests if r.path == "/v1/checkout/sessions"]
        assert sent.form["metadata[purpose]"] == "invoice" and sent.form["metadata[invoice_id]"] == invoice.id
        pi = f"pi_{uuid.uuid4().hex}"
        meta = {"purpose": "invoice", "tenant_id": h.tenant, "checkout_id": made.id, "invoice_id": invoice.id}
        completed = stripe_event(
            "checkout.session.completed",
            {
                "id": made.provider_ref,
                "payment_intent": pi,
                "payment_status": "paid",
                "amount_total": made.amount_paise,
                "currency": "inr",
                "metadata": meta,
            },
        )
        succeeded = stripe_event(
            "payment_intent.succeeded",
            {"id": pi, "amount_received": made.amount_paise, "currency": "inr", "metadata": meta},
        )
        deliveries = [completed] * 3 + [succeeded] * 3
        random.shuffle(deliveries)
        outcomes = [(await post(h, "stripe", body, stripe_headers(body))).outcome for body in deliveries]
        assert outcomes.count("applied") == 1
        paid = await inv.get(invoice.id)
        assert paid.status == ipb.INVOICE_STATUS_PAID and paid.balance_paise == 0
        assert [(p.method, p.provider, p.reference, p.amount_paise) for p in paid.payments] == [
            ("provider", "stripe", pi, made.amount_paise)
        ]
        # paid: nothing left to check out
        err = await inv.fails(
            "CreateCheckout",
            ipb.CreateCheckoutRequest(
                purpose="invoice", provider="stripe", account_id=account.id, invoice_id=invoice.id
            ),
        )
        assert err.reason == "INVOICE_NOT_PAYABLE"
