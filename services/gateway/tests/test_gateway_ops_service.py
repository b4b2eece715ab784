"""The gateway's ops routes against the REAL ops service (its own PostgreSQL database, files
on a temporary disk): HTTP → typed client → ops → HTTP, with real signed tokens (a devstack
TokenSigner stands in for identity's keys in both the gateway and ops).

Master data (create, 400 naming the field for a bad IFSC / PIN / phone, 409 duplicates,
lists by verification, verify with and without masterdata.approve, idempotent replays and
key reuse naming the HTTP fields); channels (create, read, merge patch, list); assignments
(create, read with history, patch with expected_version, transitions legal and illegal,
history, lists); tasks; partner intake (a portal user submits, another channel's portal user
gets 404, a valuer 403 on accept, accept twice → one assignment, reject); documents and the
local storage driver's file URLs (presign → PUT through the gateway → confirm → download
URL → GET, byte for byte; wrong SHA-256 refused; size limits on the declared and streamed
body; the upload is streamed to ops, not buffered); the analytics overview.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from gateway_testing import assert_problem, gateway_settings, running

from zenops_devstack.testing import TokenSigner, poll
from zenops_gateway.app import USER_AUDIENCES, create_app
from zenops_kit.auth import JwtVerifier, RevocationList

ISSUER = "zenops-identity"
MiB = 1024 * 1024

MANAGER_CAPS = (
    "masterdata.read",
    "masterdata.write",
    "masterdata.approve",
    "assignments.read",
    "assignments.write",
    "assignments.transition",
    "tasks.read",
    "tasks.write",
    "channel_requests.read",
    "channel_requests.write",
    "channel_requests.review",
    "documents.read",
    "documents.write",
    "documents.read_sensitive",
    "analytics.read",
    "repogen.release",  # a manual transition to delivered
)
VALUER_CAPS = (
    "masterdata.read",
    "masterdata.write",
    "assignments.read",
    "assignments.write",
    "assignments.transition",
    "tasks.read",
    "tasks.write",
    "channel_requests.read",
    "documents.read",
    "documents.write",
)
PORTAL_CAPS = ("channel_requests.read", "channel_requests.write", "documents.read", "documents.write")

PROPERTY = {
    "address_line1": "Flat 4B, Sea View",
    "locality": "Bandra West",
    "city": "Mumbai",
    "state": "MH",
    "pin_code": "400050",
    "property_type": "residential_flat",
}


def key() -> dict[str, str]:
    return {"idempotency-key": str(uuid.uuid4())}


def fields(resp: httpx.Response, status: int = 400, code: str | None = None) -> dict[str, str]:
    body = assert_problem(resp, status, code)
    return {e["field"]: e["message"] for e in body["errors"]}


def stable(problem: dict) -> dict:
    return {k: v for k, v in problem.items() if k not in ("request_id", "trace_id")}


@dataclass
class Suite:
    client: httpx.AsyncClient
    signer: TokenSigner
    storage: Path
    tenant: str
    external_tenant: str
    manager_id: str
    manager: str

    def token(self, caps=MANAGER_CAPS, *, user_id: str | None = None) -> str:
        return self.signer.token(aud="web", caps=list(caps), tid=self.tenant, sub=user_id or str(uuid.uuid4()))

    def portal(self, channel_id: str, caps=PORTAL_CAPS) -> str:
        return self.signer.token(
            aud="portal", caps=list(caps), tid=self.external_tenant, sub=str(uuid.uuid4()), channel_id=channel_id
        )

    async def call(self, method: str, path: str, token: str | None = None, **kwargs) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        headers["authorization"] = f"Bearer {token or self.manager}"
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def ok(self, method: str, path: str, status: int = 200, token: str | None = None, **kwargs) -> dict:
        resp = await self.call(method, path, token, **kwargs)
        assert resp.status_code == status, resp.text
        return resp.json()

    async def channel(self, **fields) -> dict:
        body = {"name": f"Partner {uuid.uuid4().hex[:6]}", "channel_type": "agent", "commission_mode": "flat"}
        return await self.ok("POST", "/v1/channels", 201, json={"commission_value": 50000, **body, **fields})

    async def assignment(self, **fields) -> dict:
        body = {"source_type": "direct", "borrower_name": "Asha Patel", **fields}
        return await self.ok("POST", "/v1/assignments", 201, json=body)


@asynccontextmanager
async def ops_suite(start_service, tmp_path: Path, *, ops_settings=None, **gateway_overrides) -> AsyncIterator[Suite]:
    signer = TokenSigner()
    storage = tmp_path / "files"
    settings = {"storage_dir": str(storage), "max_upload_bytes": 3 * MiB, "run_workers": False, **(ops_settings or {})}
    async with start_service("ops", verifier=signer.verifier(), **settings) as ops:
        app = create_app(gateway_settings(ops_addr=f"127.0.0.1:{ops.port}", rpc_timeout=10.0, **gateway_overrides))
        async with running(app) as client:
            app.state.runtime.verifier = JwtVerifier(
                signer.key_source(), issuer=ISSUER, audiences=USER_AUDIENCES, revocations=RevocationList()
            )
            tenant, manager_id = str(uuid.uuid4()), str(uuid.uuid4())
            manager = signer.token(aud="web", caps=list(MANAGER_CAPS), tid=tenant, sub=manager_id)
            yield Suite(client, signer, storage, tenant, str(uuid.uuid4()), manager_id, manager)


@pytest.fixture
def suite(start_service, tmp_path):
    return lambda **kwargs: ops_suite(start_service, tmp_path, **kwargs)


# == master data ========================================================================================


async def test_banks_and_branches(suite):
    async with suite() as s:
        resp = await s.call("POST", "/v1/banks", json={"code": "sbi", "name": "State Bank of India"}, headers=key())
        assert resp.status_code == 201, resp.text
        bank = resp.json()
        assert bank["code"] == "SBI" and bank["name"] == "State Bank of India"
        # created by an approver: verified at once, by them
        assert bank["verification"] == "verified" and bank["verified_by"] == s.manager_id
        assert bank["created_by"] == s.manager_id and bank["created_at"].endswith("Z")
        # the same code again → 409
        assert_problem(await s.call("POST", "/v1/banks", json={"code": "SBI", "name": "Another"}), 409)

        branches = f"/v1/banks/{bank['id']}/branches"
        good = {"name": "Fort", "ifsc": "sbin0001234", "city": "Mumbai", "state": "mh", "address": "Horniman Circle"}
        # a bad IFSC is ops' 400 naming the field as the body names it
        for ifsc in ("SBIN1001234", "SBI00012345", "SBIN000123$"):
            errors = fields(await s.call("POST", branches, json={**good, "ifsc": ifsc}))
            assert set(errors) == {"ifsc"}, (ifsc, errors)
        assert set(fields(await s.call("POST", branches, json={**good, "state": "XX"}))) == {"state"}
        branch = await s.ok("POST", branches, 201, json=good)
        assert branch["ifsc"] == "SBIN0001234" and branch["state"] == "MH" and branch["bank_id"] == bank["id"]
        assert branch["address"] == "Horniman Circle"
        # the same IFSC again (under any bank) → 409
        assert_problem(await s.call("POST", branches, json={**good, "name": "Fort 2"}), 409)
        # an unknown bank: 404 naming the path parameter
        resp = await s.call("POST", f"/v1/banks/{uuid.uuid4()}/branches", json={**good, "ifsc": "SBIN0009999"})
        problem = assert_problem(resp, 404)
        assert problem["errors"] == [] or {e["field"] for e in problem["errors"]} == {"path.bank_id"}

        # a writer without masterdata.approve makes unverified records; an approver verifies them
        valuer = s.token(VALUER_CAPS)
        other = await s.ok("POST", "/v1/banks", 201, valuer, json={"code": "HDFC", "name": "HDFC Bank"})
        assert other["verification"] == "unverified" and other["verified_at"] is None
        unverified = await s.ok("GET", "/v1/banks", params={"verification": "unverified"})
        assert [b["id"] for b in unverified["items"]] == [other["id"]] and unverified["next_cursor"] is None
        verify = f"/v1/master-data/banks/{other['id']}/verify"
        assert_problem(await s.call("POST", verify, valuer), 403)
        verified = await s.ok("POST", verify)
        assert verified["kind"] == "banks" and verified["id"] == other["id"]
        assert verified["verification"] == "verified" and verified["verified_by"] == s.manager_id
        assert (await s.ok("POST", verify))["verified_at"] == verified["verified_at"]  # a no-op the second time
        assert (await s.ok("GET", "/v1/banks", params={"verification": "unverified"}))["items"] == []
        assert_problem(await s.call("POST", f"/v1/master-data/bank-branches/{uuid.uuid4()}/verify"), 404)

        # lists: search, paging
        found = await s.ok("GET", "/v1/banks", params={"q": "hdfc"})
        assert [b["code"] for b in found["items"]] == ["HDFC"]
        first = await s.ok("GET", "/v1/banks", params={"limit": 1})
        assert len(first["items"]) == 1 and first["next_cursor"]
        second = await s.ok("GET", "/v1/banks", params={"limit": 1, "cursor": first["next_cursor"]})
        assert {b["id"] for b in first["items"] + second["items"]} == {bank["id"], other["id"]}
        assert set(fields(await s.call("GET", "/v1/banks", params={"cursor": "not-a-cursor"}))) == {"query.cursor"}
        listed = await s.ok("GET", branches, params={"q": "SBIN0001234"})
        assert [b["id"] for b in listed["items"]] == [branch["id"]]


async def test_other_master_data_and_replays(suite):
    async with suite() as s:
        org = await s.ok(
            "POST",
            "/v1/client-orgs",
            201,
            json={"name": "Acme Builders", "org_type": "builder", "gstin": "27aapfu0939f1zv", "state": "MH"},
        )
        assert org["org_type"] == "builder" and org["gstin"] == "27AAPFU0939F1ZV" and org["city"] is None
        contact = await s.ok(
            "POST",
            "/v1/contacts",
            201,
            json={
                "name": "Ravi Kumar",
                "phone": "98765 43210",
                "email": "Ravi@Example.COM",
                "client_org_id": org["id"],
            },
        )
        assert contact["phone"] == "+919876543210" and contact["email"] == "ravi@example.com"
        assert set(fields(await s.call("POST", "/v1/contacts", json={"name": "X", "phone": "12"}))) == {"phone"}
        resp = await s.call(
            "POST", "/v1/contacts", json={"name": "X", "email": "a@b.c", "client_org_id": str(uuid.uuid4())}
        )
        assert resp.status_code in (400, 404), resp.text
        assert {e["field"] for e in resp.json()["errors"]} <= {"client_org_id"}
        listed = await s.ok("GET", "/v1/contacts", params={"client_org_id": org["id"]})
        assert [c["id"] for c in listed["items"]] == [contact["id"]]

        # properties: coordinates as numbers or strings, kept as exact decimal text
        prop = await s.ok("POST", "/v1/properties", 201, json={**PROPERTY, "latitude": 19.0596, "longitude": "72.8295"})
        assert prop["pin_code"] == "400050" and prop["locality"] == "Bandra West" and prop["address_line2"] is None
        assert prop["latitude"] == "19.059600" and prop["longitude"] == "72.829500"
        for bad, field in (({"pin_code": "040005"}, "pin_code"), ({"state": "ZZ"}, "state")):
            assert set(fields(await s.call("POST", "/v1/properties", json={**PROPERTY, **bad}))) == {field}
        errors = fields(await s.call("POST", "/v1/properties", json={**PROPERTY, "latitude": 19.1}))
        assert set(errors) == {"longitude"}, errors
        assert [p["id"] for p in (await s.ok("GET", "/v1/properties", params={"pin_code": "400050"}))["items"]] == [
            prop["id"]
        ]

        bank = await s.ok("POST", "/v1/banks", 201, json={"code": "ICICI", "name": "ICICI Bank"})
        branch = await s.ok(
            "POST",
            f"/v1/banks/{bank['id']}/branches",
            201,
            json={"name": "Andheri", "ifsc": "ICIC0000123", "city": "Mumbai", "state": "MH"},
        )
        link = {"branch_id": branch["id"], "contact_id": contact["id"], "role": "branch_manager"}
        bc = await s.ok("POST", "/v1/branch-contacts", 201, json=link)
        assert bc["role"] == "branch_manager"
        assert_problem(await s.call("POST", "/v1/branch-contacts", json=link), 409)
        listed = await s.ok("GET", "/v1/branch-contacts", params={"branch_id": branch["id"]})
        assert [b["id"] for b in listed["items"]] == [bc["id"]]
        for kind, record in (
            ("client-orgs", org),
            ("contacts", contact),
            ("properties", prop),
            ("branch-contacts", bc),
        ):
            assert (await s.ok("POST", f"/v1/master-data/{kind}/{record['id']}/verify"))["verification"] == "verified"

        # replays: the same key and request answer the original; another request → 409 naming
        # the differing fields as the HTTP body names them
        k = key()
        body = {**PROPERTY, "address_line1": "Plot 7", "city": "Pune"}
        first = await s.call("POST", "/v1/properties", json=body, headers=k)
        again = await s.call("POST", "/v1/properties", json=body, headers=k)
        assert first.status_code == again.status_code == 201 and again.content == first.content, again.text
        assert_problem(await s.call("POST", "/v1/properties", json={**body, "city": "Nashik"}, headers=k), 409)
        k = key()
        body = {"name": "Patel Constructions", "org_type": "builder", "city": "Surat"}
        first = await s.call("POST", "/v1/client-orgs", json=body, headers=k)
        assert (
            first.status_code == 201
            and (await s.call("POST", "/v1/client-orgs", json=body, headers=k)).content == first.content
        )
        resp = await s.call("POST", "/v1/client-orgs", json={**body, "city": "Vapi", "org_type": "other"}, headers=k)
        problem = assert_problem(resp, 409, "IDEMPOTENCY_KEY_REUSED")
        assert {e["field"] for e in problem["errors"]} == {"city", "org_type"}, problem
        # an original failure replays as the same failure
        k = key()
        p1 = assert_problem(await s.call("POST", "/v1/banks", json={"code": "ICICI", "name": "x"}, headers=k), 409)
        p2 = assert_problem(await s.call("POST", "/v1/banks", json={"code": "ICICI", "name": "x"}, headers=k), 409)
        assert stable(p1) == stable(p2)

        # capabilities are ops' to check
        reader = s.token(("masterdata.read",))
        assert_problem(await s.call("POST", "/v1/banks", reader, json={"code": "AXIS", "name": "Axis"}), 403)
        assert (await s.call("GET", "/v1/client-orgs", reader)).status_code == 200
        assert_problem(await s.call("GET", "/v1/banks", s.token(("tasks.read",))), 403)


# == channels ===========================================================================================


async def test_channels(suite):
    async with suite() as s:
        portal_user = str(uuid.uuid4())
        resp = await s.call(
            "POST",
            "/v1/channels",
            json={
                "name": "Sharma Associates",
                "channel_type": "advocate",
                "commission_mode": "percent",
                "commission_value": 250,
                "default_credits": 2,
                "portal_user_ids": [portal_user],
            },
        )
        assert resp.status_code == 201, resp.text
        channel = resp.json()
        assert resp.headers["location"] == f"/v1/channels/{channel['id']}"
        assert channel["channel_type"] == "advocate" and channel["commission_mode"] == "percent"
        assert channel["commission_value"] == 250 and channel["is_active"] is True
        assert channel["default_credits"] == 2 and channel["portal_user_ids"] == [portal_user]
        assert channel["billing_account_id"] is None
        assert await s.ok("GET", resp.headers["location"]) == channel

        # percent commission is at most 10000 basis points: ops names the field
        resp = await s.call(
            "POST",
            "/v1/channels",
            json={"name": "X", "channel_type": "agent", "commission_mode": "percent", "commission_value": 10001},
        )
        assert set(fields(resp)) == {"commission_value"}

        path = f"/v1/channels/{channel['id']}"
        assert await s.ok("PATCH", path, json={}) == channel  # {} changes nothing
        patched = await s.ok(
            "PATCH",
            path,
            json={"is_active": False, "portal_user_ids": None, "name": "Sharma & Co"},
            headers={"content-type": "application/merge-patch+json"},
        )
        assert patched["is_active"] is False and patched["portal_user_ids"] == [] and patched["name"] == "Sharma & Co"
        assert patched["commission_value"] == 250  # absent members are kept
        inactive = await s.ok("GET", "/v1/channels", params={"is_active": "false"})
        assert [c["id"] for c in inactive["items"]] == [channel["id"]]
        assert (await s.ok("GET", "/v1/channels", params={"is_active": "true"}))["items"] == []
        assert (await s.ok("GET", "/v1/channels", params={"channel_type": "builder"}))["items"] == []
        assert_problem(await s.call("GET", f"/v1/channels/{uuid.uuid4()}"), 404)
        assert_problem(await s.call("PATCH", f"/v1/channels/{uuid.uuid4()}", json={"name": "Y"}), 404)


# == assignments ========================================================================================


async def test_assignment_lifecycle(suite):
    async with suite() as s:
        bank = await s.ok("POST", "/v1/banks", 201, json={"code": "SBI", "name": "State Bank of India"})
        valuer_id = str(uuid.uuid4())
        due = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0)
        resp = await s.call(
            "POST",
            "/v1/assignments",
            json={
                "source_type": "bank",
                "bank_id": bank["id"],
                "due_at": due.isoformat(),
                "priority": "high",
                "assignee_ids": [valuer_id],
                "fee_paise": 350000,
                "borrower_name": "Asha Patel",
            },
            headers=key(),
        )
        assert resp.status_code == 201, resp.text
        a = resp.json()
        assert resp.headers["location"] == f"/v1/assignments/{a['id']}"
        assert a["reference_number"].startswith(f"ZA-{datetime.now(UTC).year}-") and a["status"] == "draft"
        assert a["priority"] == "high" and a["fee_paise"] == 350000 and a["assignee_ids"] == [valuer_id]
        assert a["due_at"] == due.isoformat().replace("+00:00", "Z") and 0 <= a["completeness_score"] <= 100
        assert a["source_type"] == "bank" and a["credits_short"] is False and a["version"] >= 1

        detail = await s.ok("GET", resp.headers["location"])
        assert {k: detail[k] for k in a} == a
        assert [h["to_status"] for h in detail["history"]] == ["draft"] and detail["history"][0]["from_status"] is None
        assert detail["documents"] == []

        path = f"/v1/assignments/{a['id']}"
        patched = await s.ok(
            "PATCH", path, json={"notes": "Keys with the society office", "expected_version": a["version"]}
        )
        assert patched["notes"] == "Keys with the society office" and patched["version"] > a["version"]
        # a stale version is refused
        problem = assert_problem(
            await s.call("PATCH", path, json={"notes": "x", "expected_version": a["version"]}), 409
        )
        assert problem["code"] == "VERSION_CONFLICT", problem
        cleared = await s.ok("PATCH", path, json={"notes": None, "due_at": None})
        assert cleared["notes"] is None and cleared["due_at"] is None
        assert (await s.ok("PATCH", path, json={}))["version"] == cleared["version"]  # {} changes nothing

        transitions = f"{path}/transitions"
        # illegal: straight to delivered
        assert_problem(await s.call("POST", transitions, json={"to": "delivered"}), 409, "ILLEGAL_TRANSITION")
        for to in ("collecting", "site_visit", "under_review"):
            assert (await s.ok("POST", transitions, json={"to": to}, headers=key()))["status"] == to
        # rework needs a reason (ops names it)
        assert "reason" in fields(await s.call("POST", transitions, json={"to": "collecting"}))
        reworked = await s.ok("POST", transitions, json={"to": "collecting", "reason": "Missing approval plan"})
        assert reworked["status"] == "collecting"
        cancelled = await s.ok("POST", transitions, json={"to": "cancelled", "reason": "Borrower withdrew"})
        assert cancelled["status"] == "cancelled"
        assert_problem(await s.call("POST", transitions, json={"to": "collecting", "reason": "r"}), 409)

        history = await s.ok("GET", f"{path}/history")
        assert [h["to_status"] for h in history["history"]][:2] == ["cancelled", "collecting"]
        assert history["history"][0]["reason"] == "Borrower withdrew"
        kinds = {e["kind"] for e in history["items"]}
        assert "assignment.status_changed" in kinds, kinds
        assert all(isinstance(e["detail"], dict) and e["at"].endswith("Z") for e in history["items"])
        page = await s.ok("GET", f"{path}/history", params={"limit": 1})
        assert len(page["items"]) == 1 and page["next_cursor"]

        other = await s.assignment(priority="low")
        listed = await s.ok("GET", "/v1/assignments", params=[("status", "cancelled"), ("status", "draft")])
        assert {x["id"] for x in listed["items"]} == {a["id"], other["id"]}
        assert [x["id"] for x in (await s.ok("GET", "/v1/assignments", params={"status": "draft"}))["items"]] == [
            other["id"]
        ]
        mine = await s.ok("GET", "/v1/assignments", params={"assignee_id": valuer_id})
        assert [x["id"] for x in mine["items"]] == [a["id"]]
        by_bank = await s.ok("GET", "/v1/assignments", params={"bank_id": bank["id"]})
        assert [x["id"] for x in by_bank["items"]] == [a["id"]]
        found = await s.ok("GET", "/v1/assignments", params={"q": a["reference_number"]})
        assert [x["id"] for x in found["items"]] == [a["id"]]

        # bad input named as the body names it; unknown refs never a 500
        resp = await s.call("POST", "/v1/assignments", json={"source_type": "bank", "bank_id": str(uuid.uuid4())})
        assert resp.status_code in (400, 404) and {e["field"] for e in resp.json()["errors"]} <= {"bank_id"}
        resp = await s.call("POST", "/v1/assignments", json={"source_type": "channel"})
        assert "channel_id" in fields(resp)
        assert_problem(await s.call("GET", f"/v1/assignments/{uuid.uuid4()}"), 404)
        assert_problem(await s.call("POST", transitions, s.token(("assignments.read",)), json={"to": "draft"}), 403)


# == tasks ==============================================================================================


async def test_tasks(suite):
    async with suite() as s:
        a = await s.assignment()
        valuer_id = str(uuid.uuid4())
        valuer = s.token(VALUER_CAPS, user_id=valuer_id)
        past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        task = await s.ok(
            "POST",
            "/v1/tasks",
            201,
            json={"title": "Collect sale deed", "assignment_id": a["id"], "assignee_id": valuer_id, "due_at": past},
            headers=key(),
        )
        assert task["status"] == "open" and task["priority"] == "medium" and task["overdue"] is True
        assert task["assignee_id"] == valuer_id and task["created_by"] == s.manager_id
        own = await s.ok("POST", "/v1/tasks", 201, valuer, json={"title": "Site photos", "priority": "high"})
        assert own["assignee_id"] == valuer_id and own["overdue"] is False

        mine = await s.ok("GET", "/v1/tasks", token=valuer, params={"assigned_to_me": "true"})
        assert {t["id"] for t in mine["items"]} == {task["id"], own["id"]}
        overdue = await s.ok("GET", "/v1/tasks", params={"overdue": "true"})
        assert [t["id"] for t in overdue["items"]] == [task["id"]]
        assert [t["id"] for t in (await s.ok("GET", "/v1/tasks", params={"assignment_id": a["id"]}))["items"]] == [
            task["id"]
        ]

        path = f"/v1/tasks/{task['id']}"
        blocked = await s.ok("PATCH", path, json={"status": "blocked", "description": "Waiting for the society NOC"})
        assert blocked["status"] == "blocked" and blocked["description"] == "Waiting for the society NOC"
        cleared = await s.ok("PATCH", path, json={"description": None, "due_at": None})
        assert cleared["description"] is None and cleared["due_at"] is None and cleared["overdue"] is False
        done = await s.ok("POST", f"{path}/done")
        assert done["status"] == "done" and done["done_at"].endswith("Z")
        assert await s.ok("POST", f"{path}/done") == done  # idempotent
        assert [t["id"] for t in (await s.ok("GET", "/v1/tasks", params={"status": "done"}))["items"]] == [task["id"]]
        assert_problem(await s.call("POST", f"/v1/tasks/{uuid.uuid4()}/done"), 404)
        resp = await s.call("POST", "/v1/tasks", json={"title": "x", "assignment_id": str(uuid.uuid4())})
        assert resp.status_code in (400, 404) and {e["field"] for e in resp.json()["errors"]} <= {"assignment_id"}
        assert_problem(await s.call("GET", "/v1/tasks", s.token(("masterdata.read",))), 403)

        overview = await s.ok("GET", "/v1/analytics/overview")
        assert overview["open_tasks"] == 1 and overview["overdue_tasks"] == 0
        assert overview["assignments_by_status"]["draft"] == 1
        assert set(overview["assignments_by_status"]) == {
            "draft",
            "collecting",
            "site_visit",
            "under_review",
            "delivered",
            "cancelled",
        }
        assert overview["channel_requests_by_status"] == {"submitted": 0, "accepted": 0, "rejected": 0}
        assert overview["outbox_failed"] == overview["outbox_dead"] == 0


# == partner intake =====================================================================================


async def test_partner_intake(suite):
    async with suite() as s:
        channel = await s.channel(default_credits=3)
        other_channel = await s.channel()
        portal = s.portal(channel["id"])
        stranger = s.portal(other_channel["id"])
        body = {
            "borrower_name": "Asha Patel",
            "borrower_phone": "9876543210",
            "property": {**PROPERTY, "latitude": "19.0596", "longitude": 72.8295},
            "requested_service": "valuation_report",
            "notes": "Resale flat",
        }
        resp = await s.call("POST", "/v1/channel-requests", portal, json=body, headers=key())
        assert resp.status_code == 201, resp.text
        request = resp.json()
        assert resp.headers["location"] == f"/v1/channel-requests/{request['id']}"
        assert request["status"] == "submitted" and request["channel_id"] == channel["id"]
        assert request["assignment_id"] is None and request["credits"] == 3
        assert request["borrower_phone"] == "+919876543210" and request["property"]["city"] == "Mumbai"
        assert request["property"]["latitude"] == "19.059600"
        # a bad PIN is named inside the property
        errors = fields(
            await s.call(
                "POST", "/v1/channel-requests", portal, json={**body, "property": {**PROPERTY, "pin_code": "000001"}}
            )
        )
        assert set(errors) == {"property.pin_code"}, errors

        location = resp.headers["location"]
        assert (await s.ok("GET", location, token=portal))["id"] == request["id"]
        # another channel's portal user: 404, and absent from its lists
        assert_problem(await s.call("GET", location, stranger), 404)
        assert (await s.ok("GET", "/v1/channel-requests", token=stranger))["items"] == []
        assert [r["id"] for r in (await s.ok("GET", "/v1/channel-requests", token=portal))["items"]] == [request["id"]]

        # review: a valuer may not accept; a portal user neither
        accept = f"{location}/accept"
        assert_problem(await s.call("POST", accept, s.token(VALUER_CAPS)), 403)
        assert_problem(await s.call("POST", accept, portal), 403)
        k = key()
        first = await s.call("POST", accept, json={"priority": "high", "fee_paise": 250000}, headers=k)
        assert first.status_code == 200, first.text
        accepted = first.json()
        assignment = accepted["assignment"]
        assert accepted["channel_request"]["status"] == "accepted"
        assert accepted["channel_request"]["assignment_id"] == assignment["id"]
        assert assignment["source_type"] == "channel" and assignment["channel_id"] == channel["id"]
        assert assignment["channel_request_id"] == request["id"] and assignment["priority"] == "high"
        # accepting again — with the key or without — answers the same assignment
        assert (
            await s.call("POST", accept, json={"priority": "high", "fee_paise": 250000}, headers=k)
        ).content == first.content
        again = await s.ok("POST", accept)
        assert again["assignment"]["id"] == assignment["id"]
        assert len((await s.ok("GET", "/v1/assignments", params={"channel_id": channel["id"]}))["items"]) == 1
        assert (await s.ok("GET", location, token=portal))["assignment_id"] == assignment["id"]
        assert_problem(await s.call("POST", f"{location}/reject", json={"reason": "late"}), 409)

        second = await s.ok("POST", "/v1/channel-requests", 201, portal, json=body)
        rejected = await s.ok("POST", f"/v1/channel-requests/{second['id']}/reject", json={"reason": "Duplicate"})
        assert rejected["status"] == "rejected" and rejected["rejection_reason"] == "Duplicate"
        assert rejected["reviewed_by"] == s.manager_id and rejected["assignment_id"] is None
        listed = await s.ok("GET", "/v1/channel-requests", params={"status": "rejected"})
        assert [r["id"] for r in listed["items"]] == [second["id"]]
        overview = await s.ok("GET", "/v1/analytics/overview")
        assert overview["channel_requests_by_status"] == {"submitted": 0, "accepted": 1, "rejected": 1}
        assert_problem(await s.call("POST", f"/v1/channel-requests/{uuid.uuid4()}/accept"), 404)


# == documents and files ================================================================================


def presign_body(data: bytes, **fields) -> dict:
    return {
        "filename": "sale-deed.pdf",
        "content_type": "application/pdf",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "classification": "legal",
        "source": "desktop_upload",
        **fields,
    }


def pdf(size: int) -> bytes:
    head = b"%PDF-1.7\n"
    return head + bytes((i * 7 + 3) % 251 for i in range(size - len(head)))


async def test_document_upload_and_download_round_trip(suite):
    async with suite() as s:
        a = await s.assignment()
        data = pdf(2 * MiB + 12345)  # several 1 MiB messages each way
        resp = await s.call(
            "POST",
            "/v1/documents/presign-upload",
            json=presign_body(data, assignment_id=a["id"], metadata={"page_count": "12"}),
            headers=key(),
        )
        assert resp.status_code == 201, resp.text
        presigned = resp.json()
        doc_id = presigned["document_id"]
        assert resp.headers["location"] == f"/v1/documents/{doc_id}"
        assert presigned["upload_method"] == "PUT" and presigned["upload_url"].startswith("/v1/files/")
        assert presigned["document"]["status"] == "pending" and presigned["expires_at"].endswith("Z")
        assert presigned["document"]["links"]["assignment_id"] == a["id"]
        assert presigned["document"]["metadata"] == {"page_count": "12"}
        # not uploaded yet: no download, no confirm
        assert_problem(await s.call("GET", f"/v1/documents/{doc_id}/download"), 409)
        assert_problem(await s.call("POST", f"/v1/documents/{doc_id}/confirm"), 409)

        # the upload: no bearer token, the signed URL is the authorisation
        upload = await s.client.put(presigned["upload_url"], content=data, headers=presigned["upload_headers"])
        assert upload.status_code == 200, upload.text
        assert upload.json() == {"size_bytes": len(data)}
        confirmed = await s.ok("POST", f"/v1/documents/{doc_id}/confirm")
        assert confirmed["status"] == "uploaded" and confirmed["uploaded_at"].endswith("Z")
        assert confirmed["sha256"] == hashlib.sha256(data).hexdigest() and confirmed["size_bytes"] == len(data)
        assert await s.ok("POST", f"/v1/documents/{doc_id}/confirm") == confirmed  # idempotent
        assert await s.ok("GET", f"/v1/documents/{doc_id}") == confirmed
        # the URL cannot be used again once the document is uploaded
        assert (await s.client.put(presigned["upload_url"], content=data)).status_code == 409

        download = await s.ok("GET", f"/v1/documents/{doc_id}/download")
        assert download["url"].startswith("/v1/files/") and download["expires_at"].endswith("Z")
        got = await s.client.get(download["url"])
        assert got.status_code == 200, got.text
        assert got.content == data
        assert got.headers["content-type"] == "application/pdf"
        assert got.headers["content-length"] == str(len(data))
        assert got.headers["content-disposition"] == 'attachment; filename="sale-deed.pdf"'
        assert got.headers["x-content-type-options"] == "nosniff"
        # grants are single-purpose and signed
        assert_problem(await s.client.get(presigned["upload_url"]), 401, "SIGNED_URL_INVALID")
        assert_problem(await s.client.put(download["url"], content=b"x"), 401, "SIGNED_URL_INVALID")
        forged = download["url"][:-4] + ("AAAA" if not download["url"].endswith("AAAA") else "BBBB")
        assert_problem(await s.client.get(forged), 401, "SIGNED_URL_INVALID")

        # the assignment lists it; tags; list filters
        detail = await s.ok("GET", f"/v1/assignments/{a['id']}")
        assert [d["id"] for d in detail["documents"]] == [doc_id]
        tagged = await s.ok("PUT", f"/v1/documents/{doc_id}/tags", json={"tags": {"room": "kitchen", "floor": "4"}})
        assert tagged["tags"] == {"floor": "4", "room": "kitchen"}
        untagged = await s.ok("PUT", f"/v1/documents/{doc_id}/tags", json={"tags": {"floor": None}})
        assert untagged["tags"] == {"room": "kitchen"}
        assert "tags" in " ".join(
            fields(await s.call("PUT", f"/v1/documents/{doc_id}/tags", json={"tags": {"Room!": "x"}}))
        )
        listed = await s.ok("GET", "/v1/documents", params={"tag_key": "room", "tag_value": "kitchen"})
        assert [d["id"] for d in listed["items"]] == [doc_id]
        assert (await s.ok("GET", "/v1/documents", params={"classification": "site_photo"}))["items"] == []
        by_link = await s.ok("GET", "/v1/documents", params={"assignment_id": a["id"], "status": "uploaded"})
        assert [d["id"] for d in by_link["items"]] == [doc_id]


async def test_document_checks(suite):
    async with suite() as s:
        a = await s.assignment()
        data = pdf(5000)
        # a wrong SHA-256 is found at confirm: refused, the document stays pending
        wrong = await s.ok(
            "POST",
            "/v1/documents/presign-upload",
            201,
            json=presign_body(data, assignment_id=a["id"], sha256=hashlib.sha256(b"other").hexdigest()),
        )
        assert (await s.client.put(wrong["upload_url"], content=data)).status_code == 200
        assert_problem(await s.call("POST", f"/v1/documents/{wrong['document_id']}/confirm"), 409, "CHECKSUM_MISMATCH")
        assert (await s.ok("GET", f"/v1/documents/{wrong['document_id']}"))["status"] == "pending"

        # ops' rules, named as the body names them
        errors = fields(await s.call("POST", "/v1/documents/presign-upload", json=presign_body(data)))
        assert set(errors) == {"body"}, errors  # links to nothing
        too_big = presign_body(data, assignment_id=a["id"], size=3 * MiB + 1)
        assert set(fields(await s.call("POST", "/v1/documents/presign-upload", json=too_big))) == {"size"}
        exe = presign_body(data, assignment_id=a["id"], filename="setup.exe", content_type="application/x-msdownload")
        assert "content_type" in fields(await s.call("POST", "/v1/documents/presign-upload", json=exe))
        resp = await s.call(
            "POST", "/v1/documents/presign-upload", json=presign_body(data, assignment_id=str(uuid.uuid4()))
        )
        assert resp.status_code in (400, 404) and {e["field"] for e in resp.json()["errors"]} <= {"assignment_id"}
        # sensitive documents need documents.read_sensitive
        pii = await s.ok(
            "POST",
            "/v1/documents/presign-upload",
            201,
            json=presign_body(data, assignment_id=a["id"], sensitivity="pii"),
        )
        plain = s.token(VALUER_CAPS)
        assert_problem(await s.call("GET", f"/v1/documents/{pii['document_id']}", plain), 403)
        assert (await s.call("GET", f"/v1/documents/{pii['document_id']}")).status_code == 200
        assert_problem(await s.call("GET", f"/v1/documents/{uuid.uuid4()}"), 404)

        # more bytes than declared: ops refuses the upload (named `body`), nothing is kept
        extra = await s.ok("POST", "/v1/documents/presign-upload", 201, json=presign_body(data, assignment_id=a["id"]))
        assert set(fields(await s.client.put(extra["upload_url"], content=data + b"!"))) == {"body"}
        assert_problem(await s.call("POST", f"/v1/documents/{extra['document_id']}/confirm"), 409, "OBJECT_MISSING")


async def test_file_uploads_stream_within_their_own_limit(suite):
    # The gateway's upload limit (2 MiB here) below ops' (3 MiB): the gateway's own check acts.
    async with suite(max_upload_bytes=2 * MiB) as s:
        a = await s.assignment()
        data = pdf(2 * MiB + 500_000)
        big = await s.ok("POST", "/v1/documents/presign-upload", 201, json=presign_body(data, assignment_id=a["id"]))
        url = big["upload_url"]
        # declared too long: 413 before a byte is read
        assert_problem(await s.client.put(url, content=data), 413, "PAYLOAD_TOO_LARGE")

        # streamed (no Content-Length) past the limit: 413 as soon as it is passed, and ops
        # keeps nothing (the aborted upload leaves no file)
        async def chunked(payload: bytes, pause=None):
            for i in range(0, len(payload), 256 * 1024):
                if pause is not None and i == 5 * 256 * 1024:
                    await pause()
                yield payload[i : i + 256 * 1024]

        assert_problem(await s.client.put(url, content=chunked(data)), 413, "PAYLOAD_TOO_LARGE")
        assert_problem(await s.call("POST", f"/v1/documents/{big['document_id']}/confirm"), 409, "OBJECT_MISSING")
        # (ops sees the cancelled call and removes its partial file)
        await poll(lambda: not [p for p in s.storage.rglob("*") if p.is_file()], what="the aborted upload removed")

        # within the limit the body is streamed: ops holds the first megabyte on disk (its
        # partial file) while the rest has not even been sent yet
        small = pdf(1 * MiB + 400_000)
        doc = await s.ok("POST", "/v1/documents/presign-upload", 201, json=presign_body(small, assignment_id=a["id"]))

        def partial_size() -> int:
            parts = [p for p in s.storage.rglob("*.part") if p.is_file()]
            return parts[0].stat().st_size if parts else 0

        async def wait_for_ops() -> None:
            await poll(lambda: partial_size() >= MiB, timeout=20, what="ops to receive the first chunk")

        resp = await s.client.put(doc["upload_url"], content=chunked(small, pause=wait_for_ops))
        assert resp.status_code == 200 and resp.json() == {"size_bytes": len(small)}, resp.text
        assert (await s.ok("POST", f"/v1/documents/{doc['document_id']}/confirm"))["status"] == "uploaded"
        got = await s.client.get((await s.ok("GET", f"/v1/documents/{doc['document_id']}/download"))["url"])
        assert got.content == small


async def test_portal_documents_are_isolated(suite):
    async with suite() as s:
        channel, other = await s.channel(), await s.channel()
        portal, stranger = s.portal(channel["id"]), s.portal(other["id"])
        body = {"borrower_name": "Asha Patel", "property": PROPERTY, "requested_service": "site_inspection"}
        request = await s.ok("POST", "/v1/channel-requests", 201, portal, json=body)
        data = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000
        doc = await s.ok(
            "POST",
            "/v1/documents/presign-upload",
            201,
            portal,
            json={
                "filename": "front.png",
                "content_type": "image/png",
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "classification": "site_photo",
                "channel_request_id": request["id"],
            },
        )
        assert doc["document"]["source"] == "portal_upload" and doc["document"]["channel_id"] == channel["id"]
        assert (await s.client.put(doc["upload_url"], content=data)).status_code == 200
        assert (await s.ok("POST", f"/v1/documents/{doc['document_id']}/confirm", token=portal))["status"] == "uploaded"
        assert [d["id"] for d in (await s.ok("GET", "/v1/documents", token=portal))["items"]] == [doc["document_id"]]
        # another channel's portal user neither sees nor downloads it
        assert (await s.ok("GET", "/v1/documents", token=stranger))["items"] == []
        assert_problem(await s.call("GET", f"/v1/documents/{doc['document_id']}", stranger), 404)
        assert_problem(await s.call("GET", f"/v1/documents/{doc['document_id']}/download", stranger), 404)
        # staff see it
        assert (await s.ok("GET", f"/v1/documents/{doc['document_id']}"))["links"]["channel_request_id"] == request[
            "id"
        ]


async def test_concurrent_uploads_do_not_interfere(suite):
    async with suite() as s:
        a = await s.assignment()
        files = [pdf(300_000 + i * 1000) for i in range(4)]
        docs = [
            await s.ok("POST", "/v1/documents/presign-upload", 201, json=presign_body(f, assignment_id=a["id"]))
            for f in files
        ]
        answers = await asyncio.gather(
            *(s.client.put(d["upload_url"], content=f) for d, f in zip(docs, files, strict=True))
        )
        assert [r.status_code for r in answers] == [200] * 4
        for d, f in zip(docs, files, strict=True):
            assert (await s.ok("POST", f"/v1/documents/{d['document_id']}/confirm"))["size_bytes"] == len(f)
            url = (await s.ok("GET", f"/v1/documents/{d['document_id']}/download"))["url"]
            assert (await s.client.get(url)).content == f
