"""The bank's valuation report end to end, through Envoy as `make run` serves it, with the real
services and no hand-made events (issue 9, "Done when"):

- CREDIT: a partner asks for a valuation report naming an SBI branch; an ops manager accepts the
  request → `ops.channel_request.accepted` → billing reserves the credits AND repogen opens the
  work order (already accepted: `data_pending`) by itself; the contract is patched (FMV, 95 % /
  80 % worked out by hand below); `ready_for_render` is refused 409 `READINESS_NOT_MET` with the
  readiness report while the evidence is missing; the evidence is uploaded through the signed file
  URLs, added and linked to the fields; `ready_for_render` passes → exactly one render job → a DOCX
  whose text has the FMV in figures (Indian grouping) and in words; the release (the same
  `Idempotency-Key` answers the same release) consumes billing's reservation and ops marks the
  assignment `delivered`.
- A redelivered `repogen.work_order.ready_for_render` (the original envelope from repogen's outbox,
  published again as the relay publishes it, under a new `Nats-Msg-Id` as if JetStream's dedupe
  window had passed) and a duplicated trigger (the same payload under a new event id) create no
  second job.
- The export bundle's hash is the same across calls, through the release and across a restart of
  the repogen process.
- POSTPAID: the same flow to `rendered`; the release is refused 409 `INVOICE_UNPAID` and nothing
  changes (still `rendered`, no release, the assignment not delivered).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import nats
import pytest
from docx import Document

from zenops.events.v1 import envelope_pb2
from zenops.events.v1 import repogen_pb2 as repogen_events
from zenops_kit.events import unpack_payload

PASSWORD = "amber-harbour-kestrel-93"
PROPERTY = {
    "address_line1": "Flat 702, Shanti Heights",
    "city": "Pune",
    "state": "MH",
    "pin_code": "411038",
    "property_type": "residential_flat",
}
READY_EVENT = "repogen.work_order.ready_for_render"
READY_SUBJECT = "zenops.repogen.work_order.ready_for_render"
REPOGEN_STREAM, FACTORY_CONSUMER = "ZENOPS_REPOGEN", "repogen-factory"

# Hand-worked values of CONTRACT (below) under SBI_UNDER_5CR_V1 (realisable 95 %, distress 80 %):
#   carpet   850 sqft × 0.09290304 = 78.966584 → 78.97 sqm (half-up to 2 decimals: not 78.96)
#   built-up 1000 sqft × 0.09290304 = 92.90304 → 92.90 sqm
#   valuation line 78.97 sqm × ₹1,25,000/sqm = ₹98,71,250.00
#   FMV = ₹98,71,250 + ₹1,50,000 (covered car parking) = ₹1,00,21,250 (below ₹5 crore: the under-5cr template)
#   realisable 95 % = ₹95,20,187.50 → ₹95,20,188 (half-up to the rupee); distress 80 % = ₹80,17,000
#   guideline 78.97 sqm × ₹90,000/sqm = ₹71,07,300 (the FMV is above it: no warning)
FMV, REALISABLE, DISTRESS, GUIDELINE = 10_021_250, 9_520_188, 8_017_000, 7_107_300
FMV_FIGURES = "₹1,00,21,250"
FMV_WORDS = "Rupees One Crore Twenty-One Thousand Two Hundred Fifty Only"
# SBI_STANDARD_V1, the evidence profile of SBI_UNDER_5CR_V1: kind → (minimum, ops classification).
EVIDENCE = {
    "site_photo": (4, "site_photo"),
    "sale_deed": (1, "legal"),
    "tax_receipt": (1, "tax_receipt"),
    "location_map": (1, "other"),
}
# The template's required fields that documents back (a warning while unlinked) → the evidence kind.
FIELD_LINKS = {
    "parties.owner_name": "sale_deed",
    "property.ownership": "sale_deed",
    "property.tenure": "sale_deed",
    "legal.sale_deed_number": "sale_deed",
    "property.address": "location_map",
    "property.boundaries": "location_map",
    "areas.carpet": "site_photo",
    "guideline": "tax_receipt",
}

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\xff\xd9"
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"


def contract(ifsc: str) -> dict:
    return {
        "parties": {
            "bank_code": "SBI",
            "branch_ifsc": ifsc,
            "borrower_name": "Kavita Deshmukh",
            "owner_name": "Kavita Deshmukh",
        },
        "property": {
            "address": "Flat 702, Shanti Heights, Kothrud, Pune 411038",
            "property_type": "residential_flat",
            "is_coop_society": False,
            "ownership": "freehold",
            "tenure": "freehold",
            "occupancy": "self",
            "boundaries": {"north": "Paud Road", "south": "Wing B", "east": "Garden", "west": "CTS 118"},
        },
        "areas": {"carpet": {"value": "850", "unit": "sqft"}, "built_up": {"value": "1000", "unit": "sqft"}},
        "valuation_lines": [
            {"description": "Flat (carpet area)", "area": {"value": "850", "unit": "sqft"}, "rate_per_sqm": "125000"}
        ],
        "extras": [{"description": "Covered car parking", "amount": "150000"}],
        "guideline": {"rate_per_sqm": "90000"},
        # yesterday (UTC): never after the service's today, never stale
        "inspection": {
            "date": (datetime.now(UTC).date() - timedelta(days=1)).isoformat(),
            "inspector": "S. Gokhale",
            "remarks": "Well maintained, lift working",
        },
        "legal": {"sale_deed_number": "HVL-5521-2018", "sale_deed_date": "2018-03-09"},
        "sections": {"justification": "Rates from three registered sales in the same society in 2024."},
    }


# -- HTTP through Envoy ------------------------------------------------------------------------------


def login(suite, email: str, password: str, aud: str = "web") -> str:
    r = httpx.post(f"{suite.url}/v1/auth/login", json={"email": email, "password": password, "aud": aud})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


class Client:
    def __init__(self, suite, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=suite.url, headers=headers, timeout=30)

    def call(
        self, method: str, path: str, body: dict | None = None, *, key: str | None = None, **params
    ) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return self.http.request(method, path, json=body, params=params or None, headers=headers)

    def ok(
        self, method: str, path: str, body: dict | None = None, *, status: int = 200, key: str | None = None, **params
    ) -> dict:
        r = self.call(method, path, body, key=key, **params)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        return r.json()

    def post(self, path: str, body: dict | None = None, *, status: int = 201) -> dict:
        return self.ok("POST", path, body if body is not None else {}, status=status, key=str(uuid.uuid4()))

    def get(self, path: str, **params) -> dict:
        return self.ok("GET", path, **params)

    def problem(
        self, method: str, path: str, body: dict | None = None, *, status: int, code: str, key: str | None = None
    ) -> dict:
        r = self.call(method, path, body, key=key)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json"), r.headers
        problem = r.json()
        assert problem["code"] == code, problem
        return problem


def poll(check, what: str, timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def docx_text(data: bytes) -> str:
    doc = Document(io.BytesIO(data))
    lines = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        for row in table.rows:
            lines.extend(cell.text for cell in row.cells)
    return "\n".join(lines)


# -- the firm: users, a bank and a branch --------------------------------------------------------------


@dataclass
class Firm:
    suite: object
    admin: Client
    manager: Client
    bank_id: str
    branch_id: str
    ifsc: str

    def user(self, roles: list[str], aud: str = "web", **extra) -> Client:
        email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
        self.admin.post(
            "/v1/users", {"email": email, "display_name": "E2E User", "password": PASSWORD, "roles": roles, **extra}
        )
        return Client(self.suite, login(self.suite, email, PASSWORD, aud))

    def partner(self, policy: str, credits: int = 0) -> tuple[dict, dict, Client]:
        """A billing account (granted `credits`), a channel charged to it, its portal user."""
        account = self.admin.post("/v1/billing/accounts", {"display_name": f"E2E {policy} partner", "policy": policy})
        if credits:
            self.admin.post(
                f"/v1/billing/accounts/{account['id']}/credits/grant",
                {"amount": credits, "reason": "e2e opening balance"},
                status=200,
            )
        channel = self.admin.post(
            "/v1/channels",
            {
                "name": f"E2E channel {uuid.uuid4().hex[:8]}",
                "channel_type": "agent",
                "commission_mode": "percent",
                "commission_value": 250,
                "billing_account_id": account["id"],
            },
        )
        return account, channel, self.user(["portal_user"], "portal", channel_id=channel["id"])


@pytest.fixture(scope="module")
def firm(suite) -> Firm:
    admin = Client(suite, login(suite, *suite.admin_credentials))
    # bank codes are unique per tenant: another test of the session may have made SBI already
    found = [b for b in admin.get("/v1/banks", q="SBI")["items"] if b["code"] == "SBI"]
    bank_id = found[0]["id"] if found else admin.post("/v1/banks", {"code": "SBI", "name": "State Bank of India"})["id"]
    ifsc = "SBIN0" + uuid.uuid4().hex[:6].upper()
    branch = admin.post(
        f"/v1/banks/{bank_id}/branches", {"name": "Kothrud", "ifsc": ifsc, "city": "Pune", "state": "MH"}
    )
    assert branch["bank_id"] == bank_id and branch["ifsc"] == ifsc
    firm = Firm(suite, admin, admin, bank_id, branch["id"], ifsc)
    firm.manager = firm.user(["ops_manager"])  # the report is the ops manager's work from here on
    return firm


# -- the report, step by step ----------------------------------------------------------------------------


def accepted_request(firm: Firm, portal: Client, credits: int) -> tuple[dict, str, dict]:
    """The partner's request for a valuation report at the firm's SBI branch, accepted by the ops
    manager: (the request, its assignment id, the work order repogen opened on ops' event)."""
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
    assert (request["status"], request["bank_id"], request["branch_id"]) == ("submitted", firm.bank_id, firm.branch_id)
    accepted = firm.manager.post(f"/v1/channel-requests/{request['id']}/accept", status=200)
    assignment_id = accepted["channel_request"]["assignment_id"]
    assert accepted["channel_request"]["status"] == "accepted" and assignment_id
    assert accepted["assignment"]["bank_id"] == firm.bank_id and accepted["assignment"]["branch_id"] == firm.branch_id

    # repogen opens the work order by itself, from ops' ops.channel_request.accepted
    def opened():
        items = firm.manager.get("/v1/work-orders", assignment_id=assignment_id)["items"]
        return items[0] if items else None

    work_order = poll(opened, "repogen's work order for the accepted request")
    assert firm.manager.get("/v1/work-orders", assignment_id=assignment_id)["items"] == [work_order]
    return request, assignment_id, work_order


def upload(firm: Firm, assignment_id: str, kind: str, classification: str) -> str:
    """An ops document of the assignment, through the signed file URL; its id."""
    photo = classification == "site_photo"
    data = (JPEG if photo else PDF) + uuid.uuid4().bytes
    presigned = firm.manager.post(
        "/v1/documents/presign-upload",
        {
            "filename": f"{kind}.{'jpg' if photo else 'pdf'}",
            "content_type": "image/jpeg" if photo else "application/pdf",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "classification": classification,
            "source": "desktop_upload",
            "assignment_id": assignment_id,
        },
    )
    assert presigned["upload_url"].startswith("/v1/files/")
    put = Client(firm.suite).http.put(presigned["upload_url"], content=data, headers=presigned["upload_headers"])
    assert put.status_code == 200, put.text
    confirmed = firm.manager.post(f"/v1/documents/{presigned['document_id']}/confirm", status=200)
    assert confirmed["status"] == "uploaded"
    return presigned["document_id"]


def to_rendered(firm: Firm, work_order: dict) -> dict:
    """From the auto-opened work order to `rendered`: the contract, the refused ready_for_render,
    the evidence and its links, ready_for_render, the factory. The rendered work order."""
    m, base = firm.manager, f"/v1/work-orders/{work_order['id']}"
    # born from the channel request and accepted at once (DATA_PENDING; its first snapshot is version 0)
    assert (work_order["status"], work_order["bank_code"], work_order["template_id"]) == (
        "data_pending",
        "SBI",
        "SBI_UNDER_5CR_V1",
    )
    assert work_order["evidence_profile"] == "SBI_STANDARD_V1"

    patched = m.ok(
        "PATCH", f"{base}/contract", {"expected_version": work_order["snapshot_version"], "patch": contract(firm.ifsc)}
    )
    out = patched["outputs"]
    assert patched["version"] == work_order["snapshot_version"] + 1
    assert (out["fair_market_value"], out["realisable_value"], out["distress_value"]) == (FMV, REALISABLE, DISTRESS)
    assert out["fair_market_value_in_words"] == FMV_WORDS and out["template_id"] == "SBI_UNDER_5CR_V1"
    assert out["areas"]["carpet"] == {"value": "850", "unit": "sqft", "sqm": "78.97"}
    assert out["areas"]["built_up"] == {"value": "1000", "unit": "sqft", "sqm": "92.90"}
    assert (out["guideline_value"], out["below_guideline"]) == (GUIDELINE, False)
    # every field is in; the evidence is not
    readiness = patched["readiness"]
    assert readiness["ready"] is False and readiness["missing_fields"] == [] and readiness["errors"] == []
    assert {e["kind"]: (e["required"], e["present"]) for e in readiness["missing_evidence"]} == {
        kind: (count, 0) for kind, (count, _) in EVIDENCE.items()
    }

    refused = m.problem("POST", f"{base}/transitions", {"to": "ready_for_render"}, status=409, code="READINESS_NOT_MET")
    assert refused["readiness"]["ready"] is False
    assert refused["readiness"]["missing_evidence"] == readiness["missing_evidence"]
    assert m.get(base)["status"] == "data_pending"

    # the evidence: uploaded to ops through /v1/files, added to the work order, linked to the fields
    evidence: dict[str, list[dict]] = {}
    for kind, (count, classification) in EVIDENCE.items():
        for n in range(count):
            document_id = upload(firm, work_order["assignment_id"], kind, classification)
            added = m.post(
                f"{base}/evidence",
                {"document_id": document_id, "kind": kind, "caption": f"{kind.replace('_', ' ')} {n + 1}"},
            )
            assert added["evidence"]["document_id"] == document_id and added["evidence"]["kind"] == kind
            evidence.setdefault(kind, []).append(added["evidence"])
    assert added["readiness"]["ready"] is True and added["readiness"]["missing_evidence"] == []
    assert any("UNLINKED_FIELD" in w for w in added["readiness"]["warnings"])
    for field_key, kind in FIELD_LINKS.items():
        link = m.post(
            f"{base}/field-links",
            {"field_key": field_key, "evidence_id": evidence[kind][0]["id"], "note": "checked against the document"},
        )
        assert (link["field_key"], link["removed_at"]) == (field_key, None)
    now = m.get(f"{base}/readiness")
    assert (now["ready"], now["score"], now["warnings"]) == (True, 100, []), now

    ready = m.ok("POST", f"{base}/transitions", {"to": "ready_for_render"})
    assert ready["status"] == "ready_for_render" and ready["readiness"]["ready"] is True

    def rendered():
        got = m.get(base)
        if got["status"] == "rendered":
            return got
        # a failed attempt is retried by the factory; a dead job never renders: say why at once
        if got["last_error"]:
            jobs = m.get(f"{base}/artifacts")["jobs"]
            assert all(j["status"] != "dead" for j in jobs), jobs
        return None

    done = poll(rendered, f"work order {work_order['id']} rendered", timeout=60)
    assert done["snapshot_version"] == patched["version"] and done["last_error"] is None
    return done


def render_job_and_docx(firm: Firm, work_order: dict) -> tuple[dict, dict, dict]:
    """(the one render job, the DOCX artifact, the export bundle artifact)."""
    listing = firm.manager.get(f"/v1/work-orders/{work_order['id']}/artifacts")
    [job] = listing["jobs"]
    assert job["id"] == f"{work_order['id']}:{work_order['snapshot_version']}" and job["status"] == "succeeded"
    by_kind: dict[str, list[dict]] = {}
    for artifact in listing["items"]:
        by_kind.setdefault(artifact["kind"], []).append(artifact)
    [docx], [bundle] = by_kind["docx"], by_kind["export_bundle"]
    assert (docx["template_id"], docx["template_version"]) == ("SBI_UNDER_5CR_V1", 1)
    assert docx["bundle_sha256"] == bundle["sha256"]
    return job, docx, bundle


def export_bundle(client: Client, work_order_id: str) -> tuple[bytes, str]:
    r = client.call("GET", f"/v1/work-orders/{work_order_id}/export-bundle")
    assert r.status_code == 200, r.text
    digest = hashlib.sha256(r.content).hexdigest()
    assert r.headers["x-content-sha256"] == digest and r.headers["etag"] == f'"{digest}"'
    return r.content, digest


# -- NATS: publish as the outbox relay does ----------------------------------------------------------------


def outbox(suite, event_type: str, aggregate_id: str, service: str = "repogen") -> list[bytes]:
    """The envelopes (the bytes the relay publishes) of `event_type` about the aggregate (a
    work order, by default in repogen's outbox) in `service`'s outbox, published or not."""
    rows = suite.pg.psql(
        f"SELECT encode(envelope, 'hex') FROM outbox WHERE event_type = '{event_type}' ORDER BY created_at", service
    )
    envelopes = [bytes.fromhex(line) for line in rows.split()]
    return [e for e in envelopes if envelope_pb2.EventEnvelope.FromString(e).aggregate_id == aggregate_id]


async def _publish_and_wait(suite, envelopes: list[bytes], timeout: float = 15.0) -> None:
    """Publish each envelope to the ready_for_render subject with the relay's headers, but a new
    Nats-Msg-Id (JetStream's dedupe window passed), then wait until the factory's durable consumer
    has been delivered past them and has nothing unacknowledged."""
    nc = await nats.connect(suite.nats.url, **suite.nats_credentials("repogen"))  # repogen's subjects: its user
    try:
        js = nc.jetstream()
        last = 0
        for data in envelopes:
            headers = {"Nats-Msg-Id": str(uuid.uuid4()), "Zenops-Event-Type": READY_EVENT}
            ack = await js.publish(READY_SUBJECT, data, headers=headers, timeout=5)
            assert not ack.duplicate and ack.stream == REPOGEN_STREAM
            last = max(last, ack.seq)
        deadline = time.monotonic() + timeout
        while True:
            info = await js.consumer_info(REPOGEN_STREAM, FACTORY_CONSUMER)
            if info.delivered.stream_seq >= last and info.num_ack_pending == 0:
                return
            assert time.monotonic() < deadline, f"{FACTORY_CONSUMER} never handled the republished events: {info}"
            await asyncio.sleep(0.1)
    finally:
        await nc.close()


def assert_redelivery_creates_no_second_job(firm: Firm, work_order: dict, job: dict, artifacts: list[dict]) -> None:
    suite = firm.suite
    [original] = outbox(suite, READY_EVENT, work_order["id"])  # one move to READY_FOR_RENDER, one event
    env = envelope_pb2.EventEnvelope.FromString(original)
    payload = unpack_payload(env, repogen_events.WorkOrderReadyForRender)
    assert (payload.work_order_id, payload.snapshot_version) == (work_order["id"], work_order["snapshot_version"])
    # a duplicated trigger: the same payload under another event id (the inbox cannot drop it)
    copy = envelope_pb2.EventEnvelope()
    copy.CopyFrom(env)
    copy.event_id = str(uuid.uuid4())
    asyncio.run(_publish_and_wait(suite, [original, copy.SerializeToString()]))

    # both reached the factory's consumer: the redelivery was dropped by the inbox (the original
    # event id, once), the copy was handled (its own inbox row) and created nothing
    inbox = suite.pg.psql(
        f"SELECT event_id::text FROM inbox WHERE consumer = '{FACTORY_CONSUMER}' "
        f"AND event_id IN ('{env.event_id}', '{copy.event_id}')",
        "repogen",
    )
    assert sorted(inbox.split()) == sorted([env.event_id, copy.event_id])
    listing = firm.manager.get(f"/v1/work-orders/{work_order['id']}/artifacts")
    assert listing["jobs"] == [job]
    assert sorted(a["id"] for a in listing["items"]) == sorted(a["id"] for a in artifacts)
    queued = suite.pg.psql(f"SELECT count(*) FROM render_jobs WHERE work_order_id = '{work_order['id']}'", "repogen")
    assert queued == "1"


def assert_bundle_hash_survives_a_restart(firm: Firm, work_order_id: str, digest: str) -> None:
    suite = firm.suite
    assert suite.stop_process("repogen") == 0  # a graceful exit
    poll(lambda: suite.health()[0] == 503, "/v1/health to notice repogen is gone")
    suite.start_process("repogen")
    suite.wait_healthy()
    # the gateway's channel to repogen may still be reconnecting: a 503 is retried, nothing else
    r = poll(
        lambda: (
            (r := firm.manager.call("GET", f"/v1/work-orders/{work_order_id}/export-bundle")).status_code != 503 and r
        ),
        "the export bundle after repogen's restart",
    )
    assert r.status_code == 200, r.text
    assert hashlib.sha256(r.content).hexdigest() == digest == r.headers["x-content-sha256"]


# -- the tests ---------------------------------------------------------------------------------------------


def test_credit_report_flow_from_channel_request_to_delivery(firm):
    admin, m = firm.admin, firm.manager
    account, _, portal = firm.partner("credit", credits=10)
    request, assignment_id, work_order = accepted_request(firm, portal, credits=2)
    assert (work_order["channel_request_id"], work_order["billing_account_id"], work_order["credits"]) == (
        request["id"],
        account["id"],
        2,
    )
    # billing reserved the request's credits from the same event
    [reservation] = poll(
        lambda: admin.get("/v1/billing/credits/reservations", ref_type="channel_request", ref_id=request["id"])[
            "items"
        ],
        "billing's reservation",
    )
    assert (reservation["amount"], reservation["status"]) == (2, "active")

    rendered = to_rendered(firm, work_order)
    base = f"/v1/work-orders/{work_order['id']}"
    job, docx, bundle = render_job_and_docx(firm, rendered)

    # the DOCX, through a signed URL (no bearer token), read with python-docx
    signed = m.get(f"/v1/artifacts/{docx['id']}/download")
    assert signed["url"].startswith("/v1/artifact-files/")
    got = Client(firm.suite).http.get(signed["url"])
    assert got.status_code == 200, got.text
    assert hashlib.sha256(got.content).hexdigest() == docx["sha256"] and len(got.content) == docx["size_bytes"]
    text = docx_text(got.content)
    assert FMV_FIGURES in text and FMV_WORDS in text, text[:3000]
    assert "₹95,20,188" in text and "₹80,17,000" in text, text[:3000]

    # the export bundle: the same bytes twice, the hash the DOCX was rendered from
    first, digest = export_bundle(m, work_order["id"])
    assert export_bundle(m, work_order["id"]) == (first, digest) and digest == bundle["sha256"]

    # the release: billing consumes the channel request's reservation; the same key, the same release
    key = str(uuid.uuid4())
    resp = m.call("POST", f"{base}/release", key=key)
    assert resp.status_code in (200, 201), resp.text
    released = resp.json()
    assert released["work_order"]["status"] == "released"
    r = released["release"]
    assert (r["work_order_id"], r["snapshot_version"]) == (work_order["id"], rendered["snapshot_version"])
    assert (r["billing_basis"], r["billing_reservation_id"]) == ("credits_consumed", reservation["id"])
    assert r["artifact_hashes"]["docx"] == docx["sha256"]
    again = m.call("POST", f"{base}/release", key=key)
    assert again.status_code == resp.status_code and again.json()["release"]["id"] == r["id"], again.text
    m.problem("POST", f"{base}/release", status=409, code="RELEASE_EXISTS", key=str(uuid.uuid4()))
    [consumed] = admin.get("/v1/billing/credits/reservations", ref_type="channel_request", ref_id=request["id"])[
        "items"
    ]
    assert (consumed["id"], consumed["status"], consumed["consumed_amount"]) == (reservation["id"], "consumed", 2)
    wallet = admin.get(f"/v1/billing/accounts/{account['id']}")["wallet"]
    assert (wallet["reserved"], wallet["available"], wallet["consumed"]) == (0, 8, 2), wallet
    # ops delivers the assignment on repogen.deliverable.released
    poll(lambda: m.get(f"/v1/assignments/{assignment_id}")["status"] == "delivered", "the assignment delivered")

    # a redelivered (and a duplicated) ready_for_render: still one job, the same artifacts
    assert_redelivery_creates_no_second_job(firm, rendered, job, m.get(f"{base}/artifacts")["items"])

    # the bundle's hash did not change with the release, nor does it with a restart of repogen
    assert export_bundle(m, work_order["id"])[1] == digest
    assert_bundle_hash_survives_a_restart(firm, work_order["id"], digest)


def test_postpaid_release_without_a_paid_invoice_is_refused_and_changes_nothing(firm):
    m = firm.manager
    _, _, portal = firm.partner("postpaid")
    request, assignment_id, work_order = accepted_request(firm, portal, credits=1)
    rendered = to_rendered(firm, work_order)
    base = f"/v1/work-orders/{work_order['id']}"
    render_job_and_docx(firm, rendered)
    _, digest = export_bundle(m, work_order["id"])

    key = str(uuid.uuid4())
    refused = m.problem("POST", f"{base}/release", status=409, code="INVOICE_UNPAID", key=key)
    assert refused["detail"]
    # asking again (the same key) is refused again: a refusal is not a release
    m.problem("POST", f"{base}/release", status=409, code="INVOICE_UNPAID", key=key)

    after = m.get(base)
    assert (after["status"], after["version"], after["snapshot_version"]) == (
        "rendered",
        rendered["version"],
        rendered["snapshot_version"],
    )
    assert export_bundle(m, work_order["id"])[1] == digest
    assert (
        firm.suite.pg.psql(f"SELECT count(*) FROM releases WHERE work_order_id = '{work_order['id']}'", "repogen")
        == "0"
    )
    assert outbox(firm.suite, "repogen.deliverable.released", work_order["id"]) == []
    assert (
        firm.admin.get("/v1/billing/credits/reservations", ref_type="channel_request", ref_id=request["id"])["items"]
        == []
    )
    assert m.get(f"/v1/assignments/{assignment_id}")["status"] != "delivered"
