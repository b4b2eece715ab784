"""The gateway's invoicing routes and webhooks, part 2: against the REAL identity and billing
services (each with its own PostgreSQL database, NATS JetStream), through the in-process
gateway.

- the supplier settings; an intra-state and an inter-state invoice with GST worked out by hand
  (CGST/SGST 9 % each vs IGST 18 %, per-line paise half-up, the total rounded to the rupee with
  the round-off shown); issue (a number of the financial year's series; the same key answers
  the same invoice) and its PDF; partial and full payments (`partially_paid` → `paid`);
  adjustments, credit notes, void; receivables; the `/v1/service-invoices/*` aliases;
- a portal user sees only its channel's invoices and submits a payment proof, which accounts
  staff confirm into a payment;
- tokens without the capability get 403 and change nothing;
- provider webhooks (no token) signed with the providers' schemes: valid → 200, a replay →
  `duplicate`, a tampered body / wrong secret / stale timestamp → 400, the same event id with
  another body → 409; a checkout without the provider's key → 503.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid

import pytest
from gateway_testing import assert_problem
from test_gateway_billing import Billing, billing_suite, fields, key

STRIPE_SECRET = "whsec_gateway_test_" + "s" * 16
RAZORPAY_SECRET = "rzp_webhook_gateway_test"
SUPPLIER = {
    "legal_name": "Zen Valuers LLP",
    "gstin": "27AAAFZ1234K1Z4",  # 27: Maharashtra
    "state": "MH",
    "address": "Office 4, Prabhat Road, Pune 411004",
    "invoice_prefix": "ZO",
    "payment_terms_days": 30,
}
# ₹11,800.50 of appraisal work: GST worked out by hand.
PRICE = 1_180_050
#   intra-state (MH): CGST 9 % = 1,06,204.5 paise → 1,06,205 (half-up); SGST the same;
#   1,180,050 + 2 × 106,205 = 1,392,460 → ₹13,924.60 → ₹13,925: round-off +40 paise
INTRA = {"cgst_paise": 106_205, "sgst_paise": 106_205, "igst_paise": 0, "round_off_paise": 40, "total_paise": 1_392_500}
#   inter-state (KA): IGST 18 % = 2,12,409 paise exactly; 1,392,459 → ₹13,925: round-off +41 paise
INTER = {"cgst_paise": 0, "sgst_paise": 0, "igst_paise": 212_409, "round_off_paise": 41, "total_paise": 1_392_500}
NUMBER = re.compile(r"^ZO/[0-9]{2}-[0-9]{2}/[0-9]+$")


@pytest.fixture
async def suite(start_service, nats_server):
    async with billing_suite(
        start_service,
        nats_server,
        stripe_webhook_secret=STRIPE_SECRET,
        razorpay_webhook_secret=RAZORPAY_SECRET,
    ) as s:
        await s.ok("PUT", "/v1/billing/settings", json=SUPPLIER)
        yield s


def line(**extra) -> dict:
    return {"description": "Valuation report", "quantity": "1", "unit_price_paise": PRICE, **extra}


async def draft(s: Billing, account_id: str, place: str = "MH", token: str | None = None, **extra) -> dict:
    body = {"account_id": account_id, "place_of_supply": place, "lines": [line()], **extra}
    resp = await s.call("POST", "/v1/billing/invoices", token, json=body, headers=key())
    assert resp.status_code == 201, resp.text
    invoice = resp.json()
    assert resp.headers["location"] == f"/v1/billing/invoices/{invoice['id']}"
    return invoice


async def issued(s: Billing, account_id: str, place: str = "MH", **extra) -> dict:
    invoice = await draft(s, account_id, place, **extra)
    return await s.ok("POST", f"/v1/billing/invoices/{invoice['id']}/issue", headers=key())


async def test_settings_gst_issue_document_payments(suite):
    s = suite
    got = await s.ok("GET", "/v1/billing/settings")
    assert {k: got[k] for k in SUPPLIER} == SUPPLIER and got["updated_at"].endswith("Z")
    aid = (await s.account(policy="postpaid", gstin="29AABCB1234C1ZA"))["id"]

    intra = await draft(s, aid, "MH")
    assert (intra["status"], intra["number"], intra["place_of_supply"]) == ("draft", None, "MH")
    assert intra["taxable_paise"] == PRICE and {k: intra[k] for k in INTRA} == INTRA
    [ln] = intra["lines"]
    assert (ln["sac"], ln["quantity"], ln["taxable_paise"], ln["cgst_paise"], ln["sgst_paise"], ln["igst_paise"]) == (
        "997224",
        "1",
        PRICE,
        106_205,
        106_205,
        0,
    )
    assert intra["balance_paise"] == 0 or intra["balance_paise"] == INTRA["total_paise"]  # due only once issued
    inter = await draft(s, aid, "KA")
    assert inter["place_of_supply"] == "KA" and {k: inter[k] for k in INTER} == INTER
    assert inter["lines"][0]["igst_paise"] == 212_409

    # lines on a draft; GST per line
    more = await s.ok(
        "POST",
        f"/v1/billing/invoices/{intra['id']}/lines",
        json={"lines": [line(description="Site revisit", quantity="0.5", unit_price_paise=200_001)]},
    )
    assert (
        len(more["lines"]) == 2 and more["lines"][1]["taxable_paise"] == 100_001
    )  # 0.5 × 2,000.01 → 1,000.01 (half-up)

    # issue: a number of the series; the same key answers the same invoice
    k = key()
    path = f"/v1/billing/invoices/{inter['id']}/issue"
    first = await s.call("POST", path, headers=k)
    again = await s.call("POST", path, headers=k)
    assert first.status_code == again.status_code == 200, again.text
    assert again.content == first.content
    invoice = first.json()
    assert invoice["status"] == "issued" and NUMBER.match(invoice["number"]) and len(invoice["number"]) <= 16
    assert invoice["invoice_date"] and invoice["due_date"] and invoice["issued_at"].endswith("Z")
    assert invoice["supplier_gstin"] == SUPPLIER["gstin"] and invoice["recipient_gstin"] == "29AABCB1234C1ZA"
    assert invoice["balance_paise"] == INTER["total_paise"] and invoice["total_in_words"]
    assert invoice["has_document"] is True
    assert_problem(await s.call("POST", path, headers=key()), 409)  # issued already
    doc = await s.call("GET", f"/v1/billing/invoices/{inter['id']}/document")
    assert doc.status_code == 200 and doc.content.startswith(b"%PDF")
    assert doc.headers["content-type"] == "application/pdf" and "attachment" in doc.headers["content-disposition"]
    assert doc.headers["x-content-sha256"] == hashlib.sha256(doc.content).hexdigest()
    assert_problem(await s.call("GET", f"/v1/billing/invoices/{intra['id']}/document"), 404)  # a draft has none

    # a partial payment, then the rest; the same reference again answers the original payment
    pay = f"/v1/billing/invoices/{inter['id']}/payments"
    body = {"amount_paise": 500_000, "method": "bank_transfer", "reference": "UTR-0001"}
    resp = await s.call("POST", pay, json=body, headers=key())
    assert resp.status_code == 201, resp.text
    part = resp.json()
    assert part["invoice"]["status"] == "partially_paid" and part["invoice"]["paid_paise"] == 500_000
    assert part["payment"]["reference"] == "UTR-0001" and part["payment"]["method"] == "bank_transfer"
    assert resp.headers["location"] == f"/v1/billing/invoices/{inter['id']}"
    rest = {"amount_paise": INTER["total_paise"] - 500_000, "method": "upi", "reference": "UPI-0002"}
    paid = await s.ok("POST", pay, 201, json=rest, headers=key())
    assert paid["invoice"]["status"] == "paid" and paid["invoice"]["balance_paise"] == 0
    # paid: no void (a credit note is the way)
    resp = await s.call("POST", f"/v1/billing/invoices/{inter['id']}/void", json={"reason": "late"})
    assert_problem(resp, 409)
    listed = await s.ok("GET", "/v1/billing/invoices", params={"account_id": aid, "status": "paid"})
    assert [i["id"] for i in listed["items"]] == [inter["id"]] and listed["next_cursor"] is None

    # a draft voids; its JSON says so
    voided = await s.ok("POST", f"/v1/billing/invoices/{intra['id']}/void", json={"reason": "raised in error"})
    assert voided["status"] == "void" and voided["number"] is None


async def test_adjustments_credit_notes_receivables_and_aliases(suite):
    s = suite
    aid = (await s.account(policy="postpaid", display_name="Receivable Bank"))["id"]
    invoice = await issued(s, aid, "MH")
    iid = invoice["id"]
    adjusted = await s.ok(
        "POST",
        f"/v1/billing/invoices/{iid}/adjustments",
        json={"kind": "discount", "amount_paise": 2_500, "reason": "goodwill"},
        headers=key(),
    )
    assert adjusted["adjusted_paise"] == 2_500 and adjusted["balance_paise"] == INTRA["total_paise"] - 2_500
    assert [a["kind"] for a in adjusted["adjustments"]] == ["discount"]
    resp = await s.call(
        "POST",
        f"/v1/billing/invoices/{iid}/credit-notes",
        json={"taxable_paise": 100_000, "reason": "fee revised"},
        headers=key(),
    )
    assert resp.status_code == 201, resp.text
    note = resp.json()
    # ₹1,000 taxable intra-state: CGST ₹90 + SGST ₹90
    cn = note["credit_note"]
    assert (cn["taxable_paise"], cn["cgst_paise"], cn["sgst_paise"], cn["igst_paise"]) == (100_000, 9_000, 9_000, 0)
    assert cn["number"] and cn["total_paise"] == 118_000
    assert note["invoice"]["credited_paise"] == 118_000

    receivables = await s.ok("GET", "/v1/billing/receivables", params={"account_id": aid})
    [row] = receivables["accounts"]
    assert (row["account_id"], row["unpaid_invoices"]) == (aid, 1)
    assert row["outstanding_paise"] == note["invoice"]["balance_paise"] == receivables["outstanding_paise"]
    assert row["ageing"]["days_0_30_paise"] == row["outstanding_paise"]
    status = await s.ok("GET", f"/v1/billing/accounts/{aid}/status")
    assert status["unpaid_invoices"] == 1

    # the seeds' names: the same invoice, the same handlers
    assert await s.ok("GET", f"/v1/service-invoices/{iid}") == await s.ok("GET", f"/v1/billing/invoices/{iid}")
    listed = await s.ok("GET", "/v1/service-invoices", params={"account_id": aid})
    assert [i["id"] for i in listed["items"]] == [iid]
    balance = note["invoice"]["balance_paise"]
    marked = await s.ok(
        "POST",
        f"/v1/service-invoices/{iid}/mark-paid",
        201,
        json={"amount_paise": balance, "method": "cash", "reference": "CASH-77"},
        headers=key(),
    )
    assert marked["invoice"]["status"] == "paid"
    receivables = await s.ok("GET", "/v1/billing/receivables", params={"account_id": aid})
    assert receivables["outstanding_paise"] == 0


async def test_portal_sees_its_channel_and_a_proof_becomes_a_payment(suite):
    s = suite
    aid = (await s.account(policy="postpaid", display_name="Channel Partner"))["id"]
    mine, other = str(uuid.uuid4()), str(uuid.uuid4())
    ours = await issued(s, aid, "MH", channel_id=mine)
    theirs = await issued(s, aid, "MH", channel_id=other)
    portal = await s.user_token(["portal_user"], aud="portal", channel_id=mine)

    listed = await s.ok("GET", "/v1/billing/invoices", token=portal)
    assert [i["id"] for i in listed["items"]] == [ours["id"]]
    assert (await s.ok("GET", f"/v1/billing/invoices/{ours['id']}", token=portal))["number"] == ours["number"]
    assert_problem(await s.call("GET", f"/v1/billing/invoices/{theirs['id']}", portal), 404)
    # a portal user neither writes invoices nor records payments
    assert_problem(
        await s.call("POST", "/v1/billing/invoices", portal, json={"account_id": aid, "lines": [line()]}), 403
    )

    proof_body = {
        "document_id": str(uuid.uuid4()),
        "note": "NEFT receipt",
        "amount_paise": INTRA["total_paise"],
        "reference": "NEFT-991",
    }
    resp = await s.call("POST", f"/v1/billing/invoices/{ours['id']}/payment-proofs", portal, json=proof_body)
    assert resp.status_code == 201, resp.text
    proof = resp.json()
    assert (proof["status"], proof["invoice_id"], proof["payment_id"]) == ("submitted", ours["id"], None)
    resp = await s.call("POST", f"/v1/billing/invoices/{theirs['id']}/payment-proofs", portal, json=proof_body)
    assert_problem(resp, 404)
    listed = await s.ok("GET", "/v1/billing/payment-proofs", params={"invoice_id": ours["id"]})
    assert [p["id"] for p in listed["items"]] == [proof["id"]]
    # the partner cannot confirm its own proof
    resp = await s.call(
        "POST",
        f"/v1/billing/payment-proofs/{proof['id']}/confirm",
        portal,
        json={"method": "bank_transfer"},
        headers=key(),
    )
    assert_problem(resp, 403)

    accounts = await s.user_token(["accounts"])
    confirmed = await s.ok(
        "POST",
        f"/v1/billing/payment-proofs/{proof['id']}/confirm",
        token=accounts,
        json={"method": "bank_transfer"},
        headers=key(),
    )
    assert confirmed["proof"]["status"] == "confirmed" and confirmed["proof"]["payment_id"]
    assert confirmed["invoice"]["status"] == "paid"
    assert [p["id"] for p in confirmed["invoice"]["payments"]] == [confirmed["proof"]["payment_id"]]
    resp = await s.call("POST", f"/v1/billing/payment-proofs/{proof['id']}/reject", accounts, json={"reason": "late"})
    assert_problem(resp, 409)  # reviewed already
    seen = await s.ok("GET", f"/v1/billing/invoices/{ours['id']}", token=portal)
    assert seen["status"] == "paid"


async def test_tokens_without_the_capability_get_403(suite):
    s = suite
    aid = (await s.account(policy="postpaid"))["id"]
    invoice = await issued(s, aid)
    valuer = await s.user_token(["valuer"])
    manager = await s.user_token(["ops_manager"])
    writes = [
        ("POST", "/v1/billing/invoices", {"account_id": aid, "lines": [line()]}),
        (
            "POST",
            f"/v1/billing/invoices/{invoice['id']}/payments",
            {"amount_paise": 100, "method": "cash", "reference": "C-1"},
        ),
        ("POST", f"/v1/billing/invoices/{invoice['id']}/void", {"reason": "x"}),
        ("PUT", "/v1/billing/settings", SUPPLIER),
    ]
    for token in (valuer, manager):
        for method, path, body in writes:
            assert_problem(await s.call(method, path, token, json=body, headers=key()), 403)
    assert (await s.call("GET", "/v1/billing/invoices", manager)).status_code == 200  # invoices.read
    assert_problem(await s.call("GET", "/v1/billing/invoices", valuer), 403)
    after = await s.ok("GET", f"/v1/billing/invoices/{invoice['id']}")
    assert after["status"] == "issued" and after["payments"] == []


def stripe_signed(body: bytes, secret: str = STRIPE_SECRET, at: int | None = None) -> dict[str, str]:
    t = int(time.time()) if at is None else at
    v1 = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"stripe-signature": f"t={t},v1={v1}", "content-type": "application/json"}


def stripe_event(event_id: str, **extra) -> bytes:
    event = {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "type": "charge.updated",
        "data": {"object": {"id": f"ch_{uuid.uuid4().hex[:14]}", "object": "charge", "amount": 100}},
        **extra,
    }
    return json.dumps(event, separators=(",", ":")).encode()


async def test_webhooks_with_the_real_billing(suite):
    s = suite
    hook = "/v1/webhooks/stripe"
    event_id = f"evt_{uuid.uuid4().hex[:16]}"
    body = stripe_event(event_id)
    # no token: the signature is the authorisation; an event of no known checkout is stored, ignored
    resp = await s.client.post(hook, content=body, headers=stripe_signed(body))
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"event_id": event_id, "outcome": "ignored"}
    replay = await s.client.post(hook, content=body, headers=stripe_signed(body))
    assert replay.status_code == 200 and replay.json() == {"event_id": event_id, "outcome": "duplicate"}

    tampered = body.replace(b'"amount":100', b'"amount":999')
    assert_problem(await s.client.post(hook, content=tampered, headers=stripe_signed(body)), 400)
    assert_problem(await s.client.post(hook, content=body, headers=stripe_signed(body, "whsec_wrong")), 400)
    for skew in (-3600, 3600):  # stale and future timestamps
        resp = await s.client.post(hook, content=body, headers=stripe_signed(body, at=int(time.time()) + skew))
        assert_problem(resp, 400)
    assert_problem(await s.client.post(hook, content=body), 400)  # no signature at all
    # the same event id with another (validly signed) body
    other = stripe_event(event_id, type="charge.refunded")
    assert_problem(await s.client.post(hook, content=other, headers=stripe_signed(other)), 409)

    # razorpay: hex HMAC-SHA256 of the raw body, the event id in its header
    rzp_id = f"evt_{uuid.uuid4().hex[:14]}"
    rbody = json.dumps(
        {
            "entity": "event",
            "account_id": "acc_test",
            "event": "payment.failed",
            "contains": ["payment"],
            "payload": {
                "payment": {
                    "entity": {
                        "id": f"pay_{uuid.uuid4().hex[:14]}",
                        "order_id": "order_nobody",
                        "amount": 100,
                        "currency": "INR",
                        "status": "failed",
                    }
                }
            },
            "created_at": int(time.time()),
        }
    ).encode()
    sig = hmac.new(RAZORPAY_SECRET.encode(), rbody, hashlib.sha256).hexdigest()
    headers = {"x-razorpay-signature": sig, "x-razorpay-event-id": rzp_id, "content-type": "application/json"}
    resp = await s.client.post("/v1/webhooks/razorpay", content=rbody, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["event_id"] == rzp_id
    bad = {**headers, "x-razorpay-signature": "0" * 64}
    assert_problem(await s.client.post("/v1/webhooks/razorpay", content=rbody, headers=bad), 400)

    # a checkout needs the provider's key: none configured here → 503, nothing crashes
    aid = (await s.account())["id"]
    resp = await s.call(
        "POST",
        "/v1/billing/checkout",
        json={"purpose": "topup", "provider": "stripe", "account_id": aid, "credits": 10},
        headers=key(),
    )
    assert_problem(resp, 503)
    assert set(fields(await s.call("POST", "/v1/billing/checkout", json={"purpose": "topup"}, headers=key()))) == {
        "provider",
        "account_id",
        "credits",
    }
