"""`make demo`: the ZenOps workflow, step by step, against a running `make run` (Envoy on
localhost:8080 or ZENOPS_HTTP_PORT). Logs in as the bootstrap admin (password from
ZENOPS_BOOTSTRAP_ADMIN_PASSWORD or .data/secrets.json), prints each step and leaves the data in
place to look at (through the API, /v1/docs, or the databases).

The same steps as tests/e2e/test_workflow.py: master data, a CREDIT and a POSTPAID partner, a
portal user's request accepted by an ops manager, billing's reservation (CREDIT) or draft invoice
(POSTPAID), repogen's work order, the contract, the evidence, the rendered report, the release,
billing's consumption and ops' delivery. The POSTPAID invoice is paid by a bank transfer recorded
by accounts (`make run` talks to no payment provider).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reliability"))
from chaos_harness import PROPERTY, Api, World, login, poll, render_and_release, sbi_world  # noqa: E402


class Demo:
    """The suite as the demo sees it: its URL and the bootstrap admin's credentials."""

    def __init__(self) -> None:
        self.url = f"http://127.0.0.1:{os.environ.get('ZENOPS_HTTP_PORT', '8080')}"
        email = os.environ.get("ZENOPS_BOOTSTRAP_ADMIN_EMAIL")
        password = os.environ.get("ZENOPS_BOOTSTRAP_ADMIN_PASSWORD")
        secrets_file = Path(os.environ.get("ZENOPS_DATA_DIR", ROOT / ".data")) / "secrets.json"
        if not password and secrets_file.exists():
            known = json.loads(secrets_file.read_text())
            email, password = email or known["bootstrap_admin_email"], known["bootstrap_admin_password"]
        if not password:
            sys.exit(f"no admin password: set ZENOPS_BOOTSTRAP_ADMIN_PASSWORD or start `make run` ({secrets_file})")
        self.admin_credentials = (email or "admin@zenops.local", password)


def step(n: int, text: str, detail: str = "") -> None:
    print(f"{n:>2}. {text}" + (f"\n      {detail}" if detail else ""), flush=True)


def partner_flow(world: World, policy: str, first: int) -> int:
    n = first
    if policy == "credit":
        partner = world.partner
        step(
            n,
            "CREDIT partner: billing account with 10 credits, a channel and its portal user",
            f"account {partner.account_id}  channel {partner.channel_id}",
        )
    else:
        partner = world.new_partner("postpaid")
        world.partner = partner
        step(
            n,
            "POSTPAID partner: billing account, a channel and its portal user",
            f"account {partner.account_id}  channel {partner.channel_id}",
        )
    request = partner.portal.must(
        "POST",
        "/v1/channel-requests",
        {
            "borrower_name": "Kavita Deshmukh",
            "property": PROPERTY,
            "bank_id": world.bank_id,
            "branch_id": world.branch_id,
            "requested_service": "valuation_report",
            "credits": 2,
        },
    )
    step(n + 1, "the portal user submits a channel request", f"request {request['id']} ({request['status']})")
    accepted = world.manager.must("POST", f"/v1/channel-requests/{request['id']}/accept", {})
    assignment_id = accepted["channel_request"]["assignment_id"]
    step(
        n + 2,
        "the ops manager accepts it: an assignment",
        f"assignment {assignment_id} "
        f"({accepted['assignment']['reference_number']}, {accepted['assignment']['status']})",
    )
    if policy == "credit":
        [res] = poll(
            lambda: world.admin.get(
                "/v1/billing/credits/reservations", ref_type="channel_request", ref_id=request["id"]
            )["items"],
            "billing's reservation",
        )
        step(
            n + 3,
            "billing reserved the credits (from ops' event)",
            f"reservation {res['id']}: {res['amount']} credits, {res['status']}",
        )
    else:
        [inv] = poll(
            lambda: [
                i for i in world.admin.get("/v1/billing/invoices", account_id=partner.account_id)["items"] if i["lines"]
            ],
            "billing's draft invoice",
        )
        step(n + 3, "billing drafted the invoice line (from ops' event)", f"invoice {inv['id']} ({inv['status']})")
    work_order = poll(
        lambda: world.manager.get("/v1/work-orders", assignment_id=assignment_id)["items"], "repogen's work order"
    )[0]
    step(
        n + 4,
        "repogen opened the work order (from ops' event)",
        f"work order {work_order['id']} ({work_order['status']}, template {work_order['template_id']})",
    )
    if policy == "postpaid":
        admin = world.admin
        admin.must(
            "PUT",
            "/v1/billing/settings",
            {
                "legal_name": "Zen Valuers LLP",
                "gstin": "27AAAFZ1234K1Z4",
                "state": "MH",
                "address": "Office 4, Prabhat Road, Pune 411004",
                "invoice_prefix": "ZE",
            },
        )
        admin.must(
            "POST",
            f"/v1/billing/invoices/{inv['id']}/lines",
            {"lines": [{"description": "Valuation report", "quantity": "1", "unit_price_paise": 1_180_050}]},
        )
        issued = admin.must("POST", f"/v1/billing/invoices/{inv['id']}/issue", {})
        paid = admin.must(
            "POST",
            f"/v1/billing/invoices/{inv['id']}/payments",
            {
                "amount_paise": issued["total_paise"],
                "method": "bank_transfer",
                "reference": f"UTR-{uuid.uuid4().hex[:8]}",
            },
        )
        step(
            n + 5,
            "accounts issue the invoice and record its payment (the release gate needs it paid)",
            f"invoice {issued['number']}: ₹{issued['total_paise'] / 100:,.2f}, {paid['invoice']['status']}",
        )
        n += 1
    started = time.monotonic()
    render_and_release(world, assignment_id)
    detail = world.manager.get(f"/v1/work-orders/{work_order['id']}")
    step(
        n + 5,
        "contract patched, 7 evidence documents uploaded, added and linked; rendered; released",
        f"work order {detail['status']} (snapshot {detail['snapshot_version']}) in "
        f"{time.monotonic() - started:.1f}s; artifacts at /v1/work-orders/{work_order['id']}/artifacts",
    )
    if policy == "credit":
        [res] = world.admin.get("/v1/billing/credits/reservations", ref_type="channel_request", ref_id=request["id"])[
            "items"
        ]
        step(n + 6, "billing consumed the reservation", f"{res['status']}: {res['consumed_amount']} credits")
        n += 1
    poll(lambda: world.manager.get(f"/v1/assignments/{assignment_id}")["status"] == "delivered", "delivery")
    step(n + 6, "ops marked the assignment delivered (from repogen's event)", f"assignment {assignment_id}")
    return n + 7


def main() -> int:
    demo = Demo()
    try:
        Api(demo.url, patience=5).get("/v1/health")
    except Exception as exc:  # noqa: BLE001 - the one thing to tell a newcomer
        sys.exit(f"the suite does not answer at {demo.url} ({exc}); start it with `make run`")
    print(f"ZenOps demo against {demo.url} as {demo.admin_credentials[0]}\n", flush=True)
    login(demo.url, *demo.admin_credentials)
    world = sbi_world(demo, credits=10)
    step(
        1,
        "master data: the bank (SBI) and a branch",
        f"bank {world.bank_id}  branch {world.branch_id} (IFSC {world.ifsc})",
    )
    n = partner_flow(world, "credit", 2)
    partner_flow(world, "postpaid", n)
    print(
        "\nDone. Everything above is still there: browse it at "
        f"{demo.url}/v1/docs (log in with the admin) or GET /v1/assignments, /v1/work-orders, /v1/billing/invoices."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
