"""The ZenOps workflow end to end, through Envoy, with the real services and the bootstrap admin
(issue 12): the suite proving itself as one.

The admin creates the master data (a bank, a branch, a property on record) and two partners —
one charged to a CREDIT account, one to a POSTPAID account — each with a channel and a portal
user. For each partner: the portal user submits a channel request; an ops manager accepts it;
billing reacts (CREDIT: reserves the credits; POSTPAID: drafts the invoice line); repogen opens
the work order by itself; the contract is patched, the evidence uploaded, added and linked; the
report is rendered; the release is decided by billing (CREDIT: consumes the reservation;
POSTPAID: refused until the invoice, issued and paid through a Razorpay checkout whose signed
webhook arrives through Envoy, is paid); ops marks the assignment `delivered`. Every step's
state is asserted.

The trace: Envoy logs the acceptance under the request id the gateway answers with; the gateway
starts the trace (Envoy drops a client's traceparent) and propagates it to ops, which records its
id on the assignment and in the envelope of its event; the rows written by repogen's consumer
(the work order's events) and by billing's (the POSTPAID invoice's events) carry the same id.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from fake_providers import razorpay_headers, razorpay_payment
from test_report_flow import (
    Client,
    Firm,
    firm,
    poll,
    render_job_and_docx,
    to_rendered,
)

__all__ = ["firm"]  # the report flow's module fixture: the bootstrap admin, an ops manager, SBI and a branch

SUPPLIER = {
    "legal_name": "Zen Valuers LLP",
    "gstin": "27AAAFZ1234K1Z4",
    "state": "MH",
    "address": "Office 4, Prabhat Road, Pune 411004",
    "invoice_prefix": "ZE",
}
PROPERTY = {
    "address_line1": "Flat 702, Shanti Heights",
    "city": "Pune",
    "state": "MH",
    "pin_code": "411038",
    "property_type": "residential_flat",
}


def accept(firm: Firm, request_id: str) -> tuple[dict, str]:
    """The manager accepts the request: (the answer, its x-request-id)."""
    r = firm.manager.http.post(
        f"/v1/channel-requests/{request_id}/accept", json={}, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert r.status_code == 200, r.text
    accepted = r.json()
    assert accepted["channel_request"]["status"] == "accepted" and accepted["assignment"]["status"]
    return accepted, r.headers["x-request-id"]


def submit(firm: Firm, portal: Client, credits: int) -> dict:
    request = portal.post(
        "/v1/channel-requests",
        {
            "borrower_name": "Kavita Deshmukh",
            "property": PROPERTY,
            "bank_id": firm.bank_id,
            "branch_id": firm.branch_id,
            "requested_service": "valuation_report",
            "credits": credits,
        },
    )
    assert (request["status"], request["assignment_id"]) == ("submitted", None)
    assert [r["id"] for r in portal.get("/v1/channel-requests")["items"]] == [request["id"]]
    return request


def opened_work_order(firm: Firm, assignment_id: str) -> dict:
    def opened():
        items = firm.manager.get("/v1/work-orders", assignment_id=assignment_id)["items"]
        return items[0] if items else None

    work_order = poll(opened, "repogen's work order for the accepted request")
    assert firm.manager.get("/v1/work-orders", assignment_id=assignment_id)["items"] == [work_order]
    return work_order


def release(firm: Firm, work_order_id: str) -> dict:
    r = firm.manager.call("POST", f"/v1/work-orders/{work_order_id}/release", key=str(uuid.uuid4()))
    assert r.status_code in (200, 201), r.text
    released = r.json()
    assert released["work_order"]["status"] == "released"
    return released


def delivered(firm: Firm, assignment_id: str) -> None:
    poll(
        lambda: firm.manager.get(f"/v1/assignments/{assignment_id}")["status"] == "delivered",
        "ops to mark the assignment delivered",
    )


# -- the trace, read back from every hop -----------------------------------------------------------


def rows_in_trace(suite, trace_id: str) -> dict[str, dict[str, int]]:
    """Per database, per table: the rows recording `trace_id` (audit rows store the trace id,
    or the consumer's traceparent; outbox rows the envelope's traceparent)."""
    found: dict[str, dict[str, int]] = {}
    for db in ("ops", "billing", "repogen"):
        columns = suite.pg.psql(
            "SELECT table_name || ' ' || column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name IN ('trace_id', 'traceparent')",
            db,
        )
        for line in columns.splitlines():
            table, column = line.split()
            n = int(suite.pg.psql(f"SELECT count(*) FROM {table} WHERE {column} LIKE '%{trace_id}%'", db))
            if n:
                found.setdefault(db, {})[table] = n
    return found


def envoy_logged(suite, request_id: str, path: str) -> bool:
    for line in (suite.logs / "envoy.log").read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("path") == path and entry.get("request_id") == request_id:
                return True
    return False


def assert_one_trace(
    firm: Firm, assignment_id: str, request_id: str, accept_path: str, *, billing_table: str | None
) -> str:
    """Envoy logged the acceptance under the request id the gateway answered with; the gateway
    starts the trace (Envoy drops a client's traceparent) and ops records its id on the
    assignment it made; billing's and repogen's consumers of ops' event, and what they emitted,
    carry the same trace id. Returns it."""
    suite = firm.suite
    poll(lambda: envoy_logged(suite, request_id, accept_path), "Envoy's access log line of the acceptance", timeout=10)
    [trace_id] = set(
        suite.pg.psql(
            f"SELECT trace_id FROM assignment_status_history WHERE assignment_id = '{assignment_id}'", "ops"
        ).split()
    )
    assert len(trace_id) == 32 and int(trace_id, 16), trace_id

    seen: dict = {}

    def joined():
        seen.update(rows_in_trace(suite, trace_id))
        ready = (
            "outbox" in seen.get("ops", {})
            and "work_order_events" in seen.get("repogen", {})
            and (billing_table is None or billing_table in seen.get("billing", {}))
        )
        return seen if ready else None

    rows = poll(joined, f"rows of trace {trace_id} in ops, billing and repogen", timeout=20)
    assert {"ops", "repogen"} <= set(rows) and "assignment_status_history" in rows["ops"], rows
    return trace_id


# -- the test ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def supplier(firm: Firm) -> dict:
    return firm.admin.ok("PUT", "/v1/billing/settings", SUPPLIER)


def test_the_workflow_credit_and_postpaid_through_envoy(firm, supplier, providers):
    admin, m = firm.admin, firm.manager
    assert admin.get("/v1/me")["user"]["email"] == firm.suite.admin_credentials[0]  # the bootstrap admin

    # master data: the firm's bank and branch (the fixture), and the property on record
    [branch] = [b for b in admin.get(f"/v1/banks/{firm.bank_id}/branches")["items"] if b["id"] == firm.branch_id]
    assert branch["ifsc"] == firm.ifsc
    prop = admin.post("/v1/properties", PROPERTY)
    assert any(p["id"] == prop["id"] for p in admin.get("/v1/properties", q="Shanti")["items"])

    # -- CREDIT ------------------------------------------------------------------------------------
    account, channel, portal = firm.partner("credit", credits=10)
    assert account["policy"] == "credit" and channel["billing_account_id"] == account["id"]
    request = submit(firm, portal, credits=2)
    accepted, request_id = accept(firm, request["id"])
    assignment_id = accepted["channel_request"]["assignment_id"]
    assert accepted["assignment"]["source_type"] == "channel" and accepted["assignment"]["bank_id"] == firm.bank_id

    [reservation] = poll(
        lambda: admin.get("/v1/billing/credits/reservations", ref_type="channel_request", ref_id=request["id"])[
            "items"
        ],
        "billing's reservation",
    )
    assert (reservation["amount"], reservation["status"]) == (2, "active")
    assert admin.get(f"/v1/billing/accounts/{account['id']}")["wallet"]["reserved"] == 2
    work_order = opened_work_order(firm, assignment_id)
    assert (work_order["status"], work_order["channel_request_id"], work_order["billing_account_id"]) == (
        "data_pending",
        request["id"],
        account["id"],
    )
    # (billing's reservation rows record no trace id: its side of the trace shows on the POSTPAID path)
    credit_trace = assert_one_trace(
        firm, assignment_id, request_id, f"/v1/channel-requests/{request['id']}/accept", billing_table=None
    )

    rendered = to_rendered(firm, work_order)  # contract, evidence uploaded/added/linked, readiness, render
    job, docx, bundle = render_job_and_docx(firm, rendered)
    assert job["status"] == "succeeded" and docx["bundle_sha256"] == bundle["sha256"]
    released = release(firm, work_order["id"])
    assert released["release"]["billing_basis"] == "credits_consumed"
    assert released["release"]["billing_reservation_id"] == reservation["id"]
    [consumed] = admin.get("/v1/billing/credits/reservations", ref_type="channel_request", ref_id=request["id"])[
        "items"
    ]
    assert (consumed["status"], consumed["consumed_amount"]) == ("consumed", 2)
    wallet = admin.get(f"/v1/billing/accounts/{account['id']}")["wallet"]
    assert (wallet["reserved"], wallet["available"], wallet["consumed"]) == (0, 8, 2), wallet
    delivered(firm, assignment_id)
    assert portal.get(f"/v1/channel-requests/{request['id']}")["assignment_id"] == assignment_id

    # -- POSTPAID ----------------------------------------------------------------------------------
    account, channel, portal = firm.partner("postpaid")
    request = submit(firm, portal, credits=1)
    accepted, request_id = accept(firm, request["id"])
    assignment_id = accepted["channel_request"]["assignment_id"]

    def drafted():
        found = admin.get("/v1/billing/invoices", account_id=account["id"])["items"]
        return found if found and found[0]["lines"] else None

    [invoice] = poll(drafted, "billing's draft invoice for the accepted request")
    assert invoice["status"] == "draft" and len(invoice["lines"]) == 1
    assert (
        admin.get("/v1/billing/credits/reservations", ref_type="channel_request", ref_id=request["id"])["items"] == []
    )  # POSTPAID reserves nothing
    work_order = opened_work_order(firm, assignment_id)
    assert work_order["billing_account_id"] == account["id"]
    postpaid_trace = assert_one_trace(
        firm, assignment_id, request_id, f"/v1/channel-requests/{request['id']}/accept", billing_table="invoice_events"
    )
    assert postpaid_trace != credit_trace  # each acceptance is its own trace

    rendered = to_rendered(firm, work_order)
    render_job_and_docx(firm, rendered)
    base = f"/v1/work-orders/{work_order['id']}"
    m.problem("POST", f"{base}/release", status=409, code="INVOICE_UNPAID", key=str(uuid.uuid4()))
    assert m.get(base)["status"] == "rendered"

    iid = invoice["id"]
    admin.ok(
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
    issued = admin.ok("POST", f"/v1/billing/invoices/{iid}/issue", key=str(uuid.uuid4()))
    assert issued["status"] == "issued" and issued["balance_paise"] == issued["total_paise"] > 0

    # the partner pays through a Razorpay checkout; Razorpay's signed webhook arrives through Envoy
    checkout = admin.post(
        "/v1/billing/checkout",
        {"purpose": "invoice", "provider": "razorpay", "account_id": account["id"], "invoice_id": iid},
    )
    assert (checkout["purpose"], checkout["invoice_id"], checkout["amount_paise"]) == (
        "invoice",
        iid,
        issued["total_paise"],
    )
    [order] = [
        r.json
        for r in providers.requests
        if r.path == "/v1/orders" and r.json and r.json.get("receipt") == checkout["id"][:40]
    ]
    body = razorpay_payment(
        "payment.captured",
        payment_id=f"pay_{uuid.uuid4().hex[:14]}",
        order_id=checkout["provider_ref"],
        amount=order["amount"],
        notes=order.get("notes"),
    )
    headers = razorpay_headers(body, f"evt_{uuid.uuid4().hex[:14]}")
    for _ in range(2):  # the provider retries: settled once
        r = httpx.post(f"{firm.suite.url}/v1/webhooks/razorpay", content=body, headers=headers, timeout=30)
        assert r.status_code == 200, r.text
    paid = admin.get(f"/v1/billing/invoices/{iid}")
    assert (paid["status"], paid["balance_paise"], len(paid["payments"])) == ("paid", 0, 1), paid

    released = release(firm, work_order["id"])
    assert released["release"]["work_order_id"] == work_order["id"]
    delivered(firm, assignment_id)
    assert [i["id"] for i in portal.get("/v1/billing/invoices")["items"]] == [iid]
