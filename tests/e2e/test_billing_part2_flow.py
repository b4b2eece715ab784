"""Billing part 2 end to end, through Envoy as `make run` serves it, with the real services and
a fake payment provider speaking Razorpay's and Stripe's wire format (issue 10, "Done when"):

- POSTPAID: a partner's request accepted → billing drafts the invoice line for it by itself;
  the work order reaches `rendered` (the report flow's steps); its release is refused
  `INVOICE_UNPAID` while the invoice is unpaid (issued, then partly paid), then allowed once
  it is paid in full, and ops delivers the assignment;
- top-up: a Razorpay checkout → the provider's signed webhooks through Envoy (a
  `payment.captured` and an `order.paid` for the same payment, each replayed in random order)
  → `topup` credits granted exactly once; a tampered webhook is 400 and changes nothing;
- a portal user sees only its channel's invoices, submits a payment proof, and accounts staff
  confirm it into a payment (the invoice is then paid).
"""

from __future__ import annotations

import json
import random
import uuid

import httpx
import pytest
from fake_providers import razorpay_headers, razorpay_payment
from test_report_flow import Client, Firm, accepted_request, firm, poll, render_job_and_docx, to_rendered, upload

__all__ = ["firm"]  # the report flow's module fixture: the firm's users, SBI and a branch

SUPPLIER = {
    "legal_name": "Zen Valuers LLP",
    "gstin": "27AAAFZ1234K1Z4",
    "state": "MH",
    "address": "Office 4, Prabhat Road, Pune 411004",
    "invoice_prefix": "ZE",
}


@pytest.fixture(scope="module")
def supplier(firm: Firm) -> dict:
    return firm.admin.ok("PUT", "/v1/billing/settings", SUPPLIER)


def invoices_of(client: Client, **params) -> list[dict]:
    return client.get("/v1/billing/invoices", **params)["items"]


def test_postpaid_release_refused_until_its_invoice_is_paid(firm, supplier):
    admin, m = firm.admin, firm.manager
    account, _, portal = firm.partner("postpaid")
    request, assignment_id, work_order = accepted_request(firm, portal, credits=1)

    # billing drafted the invoice for the accepted request by itself (POSTPAID acceptance)
    def drafted():
        found = invoices_of(admin, account_id=account["id"])
        return found if found and found[0]["lines"] else None

    [invoice] = poll(drafted, "billing's draft invoice for the accepted request")
    assert invoice["status"] == "draft" and invoice["number"] is None
    assert len(invoice["lines"]) == 1 and invoice["lines"][0]["ref_id"] in (
        request["id"],
        assignment_id,
        work_order["id"],
    )
    # the property is in Maharashtra, as is the firm: CGST + SGST, no IGST
    assert invoice["place_of_supply"] == "MH"
    assert invoice["cgst_paise"] == invoice["sgst_paise"] and invoice["igst_paise"] == 0

    rendered = to_rendered(firm, work_order)
    render_job_and_docx(firm, rendered)
    base = f"/v1/work-orders/{work_order['id']}"
    m.problem("POST", f"{base}/release", status=409, code="INVOICE_UNPAID", key=str(uuid.uuid4()))

    # a line with a price (the acceptance line may be unpriced), issue, then a partial payment
    iid = invoice["id"]
    priced = admin.ok(
        "POST",
        f"/v1/billing/invoices/{iid}/lines",
        {
            "lines": [
                {
                    "description": "Valuation report — Flat 702, Shanti Heights",
                    "quantity": "1",
                    "unit_price_paise": 1_180_050,
                }
            ]
        },
    )
    assert priced["total_paise"] > 0
    issued = admin.ok("POST", f"/v1/billing/invoices/{iid}/issue", key=str(uuid.uuid4()))
    assert issued["status"] == "issued" and issued["number"].startswith("ZE/")
    total = issued["total_paise"]
    assert total % 100 == 0 and issued["balance_paise"] == total  # rounded to the rupee
    part = admin.ok(
        "POST",
        f"/v1/billing/invoices/{iid}/payments",
        {"amount_paise": total // 2, "method": "bank_transfer", "reference": f"UTR-{uuid.uuid4().hex[:8]}"},
        status=201,
        key=str(uuid.uuid4()),
    )
    assert part["invoice"]["status"] == "partially_paid"
    m.problem("POST", f"{base}/release", status=409, code="INVOICE_UNPAID", key=str(uuid.uuid4()))
    assert m.get(base)["status"] == "rendered"

    paid = admin.ok(
        "POST",
        f"/v1/billing/invoices/{iid}/payments",
        {"amount_paise": total - total // 2, "method": "upi", "reference": f"UPI-{uuid.uuid4().hex[:8]}"},
        status=201,
        key=str(uuid.uuid4()),
    )
    assert paid["invoice"]["status"] == "paid" and paid["invoice"]["balance_paise"] == 0
    doc = admin.call("GET", f"/v1/billing/invoices/{iid}/document")
    assert doc.status_code == 200 and doc.content.startswith(b"%PDF"), doc.text[:300]

    resp = m.call("POST", f"{base}/release", key=str(uuid.uuid4()))
    assert resp.status_code in (200, 201), resp.text
    assert resp.json()["work_order"]["status"] == "released"
    poll(lambda: m.get(f"/v1/assignments/{assignment_id}")["status"] == "delivered", "the assignment delivered")


def test_topup_checkout_and_webhooks_credit_exactly_once(firm, providers):
    admin = firm.admin
    account = admin.post("/v1/billing/accounts", {"display_name": "E2E top-up partner", "policy": "credit"})
    aid = account["id"]
    checkout = admin.post(
        "/v1/billing/checkout", {"purpose": "topup", "provider": "razorpay", "account_id": aid, "credits": 3}
    )
    assert (checkout["provider"], checkout["purpose"], checkout["credits"], checkout["status"]) == (
        "razorpay",
        "topup",
        3,
        "created",
    )
    order_id = checkout["provider_ref"]
    assert order_id.startswith("order_") and checkout["checkout_url"] is None
    [order] = [
        r.json
        for r in providers.requests
        if r.path == "/v1/orders" and r.json and r.json.get("receipt") == checkout["id"][:40]
    ]
    assert order["amount"] == checkout["amount_paise"]

    # the provider's webhooks, as Razorpay sends them: two events for one payment, each several times
    payment_id = f"pay_{uuid.uuid4().hex[:14]}"
    events = []
    for kind in ("payment.captured", "order.paid"):
        body = razorpay_payment(
            kind, payment_id=payment_id, order_id=order_id, amount=order["amount"], notes=order.get("notes")
        )
        events.append((body, razorpay_headers(body, f"evt_{uuid.uuid4().hex[:14]}")))
    deliveries = events * 5
    random.Random(10).shuffle(deliveries)
    outcomes = []
    for body, headers in deliveries:
        r = httpx.post(f"{firm.suite.url}/v1/webhooks/razorpay", content=body, headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        outcomes.append(r.json()["outcome"])
    assert outcomes.count("duplicate") >= len(deliveries) - len(events)  # every replay of an event id

    wallet = admin.get(f"/v1/billing/accounts/{aid}")["wallet"]
    assert wallet["granted"] == 3 and wallet["available"] == 3, wallet
    timeline = admin.get(f"/v1/billing/accounts/{aid}/timeline")["items"]
    topups = [
        i["ledger_entry"] for i in timeline if i["type"] == "ledger_entry" and i["ledger_entry"]["kind"] == "topup"
    ]
    assert [t["amount"] for t in topups] == [3]

    # a tampered body (the signature of the original) is refused at billing and changes nothing
    body, headers = events[0]
    tampered = json.loads(body)
    tampered["payload"]["payment"]["entity"]["amount"] = order["amount"] * 10
    r = httpx.post(
        f"{firm.suite.url}/v1/webhooks/razorpay",
        content=json.dumps(tampered).encode(),
        headers={**headers, "x-razorpay-event-id": f"evt_{uuid.uuid4().hex[:14]}"},
        timeout=30,
    )
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json"), r.text
    assert admin.get(f"/v1/billing/accounts/{aid}")["wallet"]["granted"] == 3


def test_portal_sees_its_channel_and_its_proof_becomes_a_payment(firm, supplier):
    admin = firm.admin
    account, channel, portal = firm.partner("postpaid")
    _, other_channel, other_portal = firm.partner("postpaid")
    accounts = firm.user(["accounts"])

    def invoice_for(channel_id: str) -> dict:
        made = accounts.post(
            "/v1/billing/invoices",
            {
                "account_id": account["id"],
                "channel_id": channel_id,
                "place_of_supply": "KA",
                "lines": [{"description": "Desktop valuation", "quantity": "1", "unit_price_paise": 500_000}],
            },
        )
        return accounts.ok("POST", f"/v1/billing/invoices/{made['id']}/issue", key=str(uuid.uuid4()))

    ours, theirs = invoice_for(channel["id"]), invoice_for(other_channel["id"])
    # inter-state (KA): IGST 18 % = ₹900; ₹5,900 exactly (no round-off)
    assert (ours["igst_paise"], ours["cgst_paise"], ours["total_paise"], ours["round_off_paise"]) == (
        90_000,
        0,
        590_000,
        0,
    )

    assert [i["id"] for i in invoices_of(portal)] == [ours["id"]]
    assert [i["id"] for i in invoices_of(other_portal)] == [theirs["id"]]
    r = portal.call("GET", f"/v1/billing/invoices/{theirs['id']}")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json"), r.text

    # the partner's receipt (an ops document), then its proof on its own invoice
    assignment = firm.manager.post(
        "/v1/assignments", {"source_type": "bank", "bank_id": firm.bank_id, "branch_id": firm.branch_id}
    )
    document_id = upload(firm, assignment["id"], "payment_receipt", "other")
    proof = portal.post(
        f"/v1/billing/invoices/{ours['id']}/payment-proofs",
        {"document_id": document_id, "note": "NEFT on 12 March", "amount_paise": 590_000, "reference": "NEFT-4411"},
    )
    assert (proof["status"], proof["invoice_id"]) == ("submitted", ours["id"])
    r = portal.call(
        "POST", f"/v1/billing/invoices/{theirs['id']}/payment-proofs", {"document_id": document_id, "amount_paise": 1}
    )
    assert r.status_code in (403, 404), r.text

    reviewed = accounts.ok(
        "POST", f"/v1/billing/payment-proofs/{proof['id']}/confirm", {"method": "bank_transfer"}, key=str(uuid.uuid4())
    )
    assert reviewed["proof"]["status"] == "confirmed" and reviewed["proof"]["payment_id"]
    assert reviewed["invoice"]["status"] == "paid"
    [payment] = reviewed["invoice"]["payments"]
    assert (payment["id"], payment["amount_paise"], payment["method"]) == (
        reviewed["proof"]["payment_id"],
        590_000,
        "bank_transfer",
    )
    seen = portal.get(f"/v1/billing/invoices/{ours['id']}")
    assert seen["status"] == "paid" and seen["balance_paise"] == 0
    assert admin.get(f"/v1/billing/invoices/{theirs['id']}")["status"] == "issued"
