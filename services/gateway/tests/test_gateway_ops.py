"""The gateway's ops routes without ops running: master data, channels, assignments, tasks,
channel requests, documents, analytics, and the local storage driver's file URLs.

Every route but the two file routes needs a token (401); bodies, queries, paths and the
`Idempotency-Key` header are validated before any RPC (400 naming the field as the request
names it); a valid request reaches ops (here down: 503). Body limits: 1 MiB for the API,
the upload limit for `PUT /v1/files/{token}`. The OpenAPI documents every route. A devstack
TokenSigner key stands in for identity's JWKS. The same routes against the real ops service:
test_gateway_ops_service.py.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from gateway_testing import assert_problem, gateway_settings, running

from zenops_devstack.testing import TokenSigner
from zenops_gateway.app import USER_AUDIENCES, create_app
from zenops_gateway.routes.files import content_disposition, safe_content_type
from zenops_gateway.routes.ops_common import rename_field
from zenops_kit.auth import JwtVerifier, RevocationList

ISSUER = "zenops-identity"
MiB = 1024 * 1024
KEY_FIELD = "header.Idempotency-Key"
ID = str(uuid.uuid4())
SHA = "ab" * 32


def fields(resp: httpx.Response, status: int = 400, code: str | None = "VALIDATION_FAILED") -> dict[str, str]:
    body = assert_problem(resp, status, code)
    return {e["field"]: e["message"] for e in body["errors"]}


def key() -> dict[str, str]:
    return {"idempotency-key": str(uuid.uuid4())}


@pytest.fixture
async def local():
    """The gateway with identity and ops down; its verifier trusts the test's key."""
    app = create_app(gateway_settings(max_upload_bytes=3 * MiB))
    signer = TokenSigner()
    async with running(app) as client:
        app.state.runtime.verifier = JwtVerifier(
            signer.key_source(), issuer=ISSUER, audiences=USER_AUDIENCES, revocations=RevocationList()
        )
        client.headers["authorization"] = f"Bearer {signer.token(aud='web')}"
        yield client


PROPERTY = {
    "address_line1": "Flat 4B, Sea View",
    "city": "Mumbai",
    "state": "MH",
    "pin_code": "400050",
    "property_type": "residential_flat",
}

# Every ops route with a valid request (path, query and body): without a token 401, with one
# the request reaches ops (down here: 503).
ROUTES = [
    ("POST", "/v1/banks", {"code": "SBI", "name": "State Bank of India"}),
    ("GET", "/v1/banks?verification=unverified&q=state", None),
    ("POST", f"/v1/banks/{ID}/branches", {"name": "Fort", "ifsc": "SBIN0001234", "city": "Mumbai", "state": "MH"}),
    ("GET", f"/v1/banks/{ID}/branches?limit=5", None),
    ("POST", f"/v1/master-data/bank-branches/{ID}/verify", None),
    ("POST", "/v1/client-orgs", {"name": "Acme Builders", "org_type": "builder"}),
    ("GET", "/v1/client-orgs", None),
    ("POST", "/v1/contacts", {"name": "Ravi", "phone": "9876543210"}),
    ("GET", f"/v1/contacts?client_org_id={ID}", None),
    ("POST", "/v1/properties", {**PROPERTY, "latitude": 19.07609, "longitude": "72.877426"}),
    ("GET", "/v1/properties?state=MH&pin_code=400050", None),
    ("POST", "/v1/branch-contacts", {"branch_id": ID, "contact_id": ID, "role": "branch_manager"}),
    ("GET", f"/v1/branch-contacts?branch_id={ID}", None),
    (
        "POST",
        "/v1/channels",
        {"name": "Agent A", "channel_type": "agent", "commission_mode": "percent", "commission_value": 250},
    ),
    ("GET", "/v1/channels?channel_type=agent&is_active=true", None),
    ("GET", f"/v1/channels/{ID}", None),
    ("PATCH", f"/v1/channels/{ID}", {"is_active": False, "billing_account_id": None}),
    ("POST", "/v1/assignments", {"source_type": "bank", "bank_id": ID, "priority": "high"}),
    ("GET", "/v1/assignments?status=collecting&status=site_visit&due_before=2030-01-01T00:00:00%2B05:30", None),
    ("GET", f"/v1/assignments/{ID}", None),
    ("PATCH", f"/v1/assignments/{ID}", {"notes": None, "expected_version": 3}),
    ("POST", f"/v1/assignments/{ID}/transitions", {"to": "collecting"}),
    ("GET", f"/v1/assignments/{ID}/history", None),
    ("POST", "/v1/tasks", {"title": "Collect sale deed", "assignment_id": ID, "priority": "low"}),
    ("GET", "/v1/tasks?assigned_to_me=true&overdue=true&status=open", None),
    ("PATCH", f"/v1/tasks/{ID}", {"status": "blocked"}),
    ("POST", f"/v1/tasks/{ID}/done", None),
    (
        "POST",
        "/v1/channel-requests",
        {"borrower_name": "Asha", "property": PROPERTY, "requested_service": "valuation_report", "credits": 2},
    ),
    ("GET", "/v1/channel-requests?status=submitted", None),
    ("GET", f"/v1/channel-requests/{ID}", None),
    ("POST", f"/v1/channel-requests/{ID}/accept", {"priority": "high", "fee_paise": 350000}),
    ("POST", f"/v1/channel-requests/{ID}/reject", {"reason": "duplicate"}),
    (
        "POST",
        "/v1/documents/presign-upload",
        {
            "filename": "deed.pdf",
            "content_type": "application/pdf",
            "size": 1234,
            "sha256": SHA,
            "classification": "legal",
            "assignment_id": ID,
        },
    ),
    ("POST", f"/v1/documents/{ID}/confirm", None),
    ("GET", f"/v1/documents/{ID}", None),
    ("GET", f"/v1/documents/{ID}/download", None),
    ("GET", "/v1/documents?classification=site_photo&tag_key=room&tag_value=kitchen", None),
    ("PUT", f"/v1/documents/{ID}/tags", {"tags": {"room": "kitchen", "old": None}}),
    ("GET", "/v1/analytics/overview", None),
]
IDS = [f"{m} {p.split('?')[0]}" for m, p, _ in ROUTES]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=IDS)
async def test_ops_routes_need_a_token(local, method, path, body):
    resp = await local.request(method, path, json=body, headers={"authorization": ""})
    assert_problem(resp, 401, "TOKEN_MISSING")
    # checked before the body is looked at
    resp = await local.request(method, path, json={"nonsense": True}, headers={"authorization": ""})
    assert_problem(resp, 401, "TOKEN_MISSING")


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=IDS)
async def test_valid_requests_reach_ops(local, method, path, body):
    resp = await local.request(method, path, json=body, headers=key() if method == "POST" else {})
    problem = assert_problem(resp, 503, "UNAVAILABLE")
    assert "ops" in problem["detail"]


async def test_file_urls_need_no_bearer_token(local):
    # The signed token in the path is the authorisation: these reach ops without a bearer token.
    token = "eyJ2IjoxfQ.c2ln"
    resp = await local.put(f"/v1/files/{token}", content=b"%PDF-1.7", headers={"authorization": ""})
    assert_problem(resp, 503, "UNAVAILABLE")
    resp = await local.get(f"/v1/files/{token}", headers={"authorization": ""})
    assert_problem(resp, 503, "UNAVAILABLE")
    # a token that cannot be one is refused before any RPC
    for bad in ("has space", "a" * 4097, "semi;colon"):
        resp = await local.get(f"/v1/files/{bad}")
        assert set(fields(resp)) == {"path.token"}, bad


async def test_idempotency_key_header_is_validated(local):
    for method, path, body in ROUTES:
        if method != "POST" or path.endswith(("/verify", "/done", "/confirm")):
            continue
        for bad in ("", "has space", "k" * 201):
            resp = await local.post(path, json=body, headers={"idempotency-key": bad})
            assert set(fields(resp)) == {KEY_FIELD}, (path, bad)


async def test_master_data_bodies_and_queries_are_validated(local):
    errors = fields(await local.post("/v1/banks", json={"code": "x" * 21, "name": "", "swift": "SBININBB"}))
    assert set(errors) == {"code", "name", "swift"}, errors
    assert set(fields(await local.post("/v1/banks", json={}))) == {"code", "name"}
    resp = await local.get("/v1/banks", params={"verification": "pending", "limit": 0, "q": "q" * 201})
    assert set(fields(resp)) == {"query.verification", "query.limit", "query.q"}
    resp = await local.get("/v1/banks", params={"cursor": "c" * 2000})
    assert set(fields(resp)) == {"query.cursor"}

    resp = await local.post(
        "/v1/banks/not-a-bank/branches", json={"ifsc": "SBIN00012345", "state": "Maharashtra", "address": "a" * 501}
    )
    errors = fields(resp)
    assert set(errors) == {"path.bank_id", "name", "ifsc", "city", "state", "address"}, errors
    assert set(fields(await local.get("/v1/banks/7/branches?verification=x"))) == {"path.bank_id", "query.verification"}

    errors = fields(await local.post("/v1/client-orgs", json={"org_type": "alien", "gstin": "27AB", "state": "M"}))
    assert set(errors) == {"name", "org_type", "gstin", "state"}, errors
    errors = fields(
        await local.post(
            "/v1/contacts",
            json={"name": "", "phone": "9" * 33, "email": "e" * 321, "client_org_id": "acme", "designation": 5},
        )
    )
    assert set(errors) == {"name", "phone", "email", "client_org_id", "designation"}, errors
    assert set(fields(await local.get("/v1/contacts?client_org_id=acme"))) == {"query.client_org_id"}

    bad_property = {
        "address_line1": "",
        "address_line2": "a" * 201,
        "city": "Mumbai",
        "state": "MAH",
        "pin_code": "4000501",
        "property_type": "castle",
        "latitude": "north",
        "longitude": 200,
    }
    errors = fields(await local.post("/v1/properties", json=bad_property))
    assert set(errors) == {
        "address_line1",
        "address_line2",
        "state",
        "pin_code",
        "property_type",
        "latitude",
        "longitude",
    }, errors
    for latitude in (True, "NaN", "Infinity", "1" * 33, [19.0]):
        errors = fields(await local.post("/v1/properties", json={**PROPERTY, "latitude": latitude, "longitude": 72}))
        assert set(errors) == {"latitude"}, (latitude, errors)
    errors = fields(await local.get("/v1/properties", params={"state": "Maharashtra", "pin_code": "4000"}))
    assert set(errors) == {"query.state", "query.pin_code"}

    assert set(fields(await local.post("/v1/branch-contacts", json={"branch_id": "b"}))) == {
        "branch_id",
        "contact_id",
        "role",
    }
    resp = await local.post("/v1/master-data/widgets/not-an-id/verify")
    assert set(fields(resp)) == {"path.kind", "path.record_id"}
    # proto spellings are not URL kinds
    assert set(fields(await local.post(f"/v1/master-data/bank_branch/{ID}/verify"))) == {"path.kind"}


async def test_channel_bodies_are_validated(local):
    errors = fields(
        await local.post(
            "/v1/channels",
            json={
                "name": "",
                "channel_type": "broker",
                "commission_mode": "percentage",
                "commission_value": "250",
                "billing_account_id": "acc-1",
                "default_credits": -1,
                "portal_user_ids": ["someone"],
            },
        )
    )
    assert set(errors) == {
        "name",
        "channel_type",
        "commission_mode",
        "commission_value",
        "billing_account_id",
        "default_credits",
        "portal_user_ids[0]",
    }, errors
    assert set(fields(await local.post("/v1/channels", json={"name": "A", "commission_value": 1.5}))) == {
        "channel_type",
        "commission_mode",
        "commission_value",
    }
    patch = {"name": None, "is_active": "yes", "commission_mode": None, "owner": "me"}
    errors = fields(await local.patch(f"/v1/channels/{ID}", json=patch))
    assert set(errors) == {"name", "is_active", "commission_mode", "owner"}, errors
    assert errors["name"] == "May not be null"
    assert set(fields(await local.get("/v1/channels?is_active=sometimes&channel_type=x"))) == {
        "query.is_active",
        "query.channel_type",
    }
    assert set(fields(await local.get("/v1/channels/acme"))) == {"path.channel_id"}


async def test_assignment_bodies_and_queries_are_validated(local):
    resp = await local.post(
        "/v1/assignments",
        json={
            "source_type": "walk_in",
            "bank_id": "sbi",
            "due_at": "2030-01-01T00:00:00",  # no offset: ambiguous, refused
            "priority": "urgent",
            "fee_paise": 1.5,
            "assignee_ids": [str(uuid.uuid4()) for _ in range(21)],
            "notes": "n" * 5001,
            "status": "delivered",
        },
    )
    errors = fields(resp)
    assert set(errors) == {
        "source_type",
        "bank_id",
        "due_at",
        "priority",
        "fee_paise",
        "assignee_ids",
        "notes",
        "status",
    }, errors
    assert "n" * 50 not in resp.text  # values are not echoed
    for fee in ("100", -1, 10**19, True):
        assert set(fields(await local.post("/v1/assignments", json={"source_type": "direct", "fee_paise": fee}))) == {
            "fee_paise"
        }
    resp = await local.get(
        "/v1/assignments",
        params=[("status", "collecting"), ("status", "open"), ("due_after", "tomorrow"), ("assignee_id", "me")],
    )
    assert set(fields(resp)) == {"query.status[1]", "query.due_after", "query.assignee_id"}
    resp = await local.get("/v1/assignments", params={"due_before": "2030-01-01T00:00:00"})
    assert set(fields(resp)) == {"query.due_before"}

    patch = {"priority": None, "fee_paise": None, "expected_version": 0, "status": "delivered", "reference_number": "x"}
    errors = fields(await local.patch(f"/v1/assignments/{ID}", json=patch))
    assert set(errors) == {"priority", "fee_paise", "expected_version", "status", "reference_number"}, errors
    assert set(fields(await local.patch("/v1/assignments/ZA-2026-000001", json={}))) == {"path.assignment_id"}

    errors = fields(await local.post(f"/v1/assignments/{ID}/transitions", json={"to": "archived", "reason": ""}))
    assert set(errors) == {"to", "reason"}
    assert set(fields(await local.post(f"/v1/assignments/{ID}/transitions", json={}))) == {"to"}
    assert set(fields(await local.get(f"/v1/assignments/{ID}/history?limit=501"))) == {"query.limit"}


async def test_task_bodies_and_queries_are_validated(local):
    errors = fields(
        await local.post("/v1/tasks", json={"title": "", "assignee_id": "me", "due_at": "soon", "priority": "urgent"})
    )
    assert set(errors) == {"title", "assignee_id", "due_at", "priority"}, errors
    errors = fields(await local.patch(f"/v1/tasks/{ID}", json={}))
    assert set(errors) == {"body"} and "at least one" in errors["body"]
    errors = fields(await local.patch(f"/v1/tasks/{ID}", json={"title": None, "status": "closed", "done_at": "x"}))
    assert set(errors) == {"title", "status", "done_at"}, errors
    resp = await local.get("/v1/tasks", params={"assigned_to_me": "maybe", "status": "closed", "assignment_id": "a"})
    assert set(fields(resp)) == {"query.assigned_to_me", "query.status", "query.assignment_id"}
    assert set(fields(await local.post("/v1/tasks/7/done"))) == {"path.task_id"}


async def test_channel_request_bodies_are_validated(local):
    resp = await local.post(
        "/v1/channel-requests",
        json={
            "borrower_name": "",
            "property": {"pin_code": "1", "latitude": 91},
            "requested_service": "audit",
            "credits": 0,
            "channel_id": "mine",
        },
    )
    errors = fields(resp)
    assert set(errors) == {
        "borrower_name",
        "property.address_line1",
        "property.city",
        "property.state",
        "property.pin_code",
        "property.property_type",
        "property.latitude",
        "requested_service",
        "credits",
        "channel_id",
    }, errors
    assert set(fields(await local.post("/v1/channel-requests", json={}))) == {
        "borrower_name",
        "property",
        "requested_service",
    }
    errors = fields(
        await local.post(
            f"/v1/channel-requests/{ID}/accept",
            json={"fee_paise": -1, "priority": "asap", "due_at": "2030-01-01", "assignee_ids": ["x"]},
        )
    )
    assert set(errors) == {"fee_paise", "priority", "due_at", "assignee_ids[0]"}, errors
    assert set(fields(await local.post(f"/v1/channel-requests/{ID}/reject", json={}))) == {"reason"}
    resp = await local.post(f"/v1/channel-requests/{ID}/reject", json={"reason": "r" * 1001})
    assert set(fields(resp)) == {"reason"}
    assert set(fields(await local.get("/v1/channel-requests/x"))) == {"path.channel_request_id"}
    assert set(fields(await local.get("/v1/channel-requests?status=pending&channel_id=c"))) == {
        "query.status",
        "query.channel_id",
    }


async def test_document_bodies_and_queries_are_validated(local):
    resp = await local.post(
        "/v1/documents/presign-upload",
        json={
            "filename": "",
            "content_type": "x" * 256,
            "size": 0,
            "sha256": "abc",
            "classification": "photo",
            "source": "scanner",
            "sensitivity": "secret",
            "assignment_id": "a-1",
            "captured_at": "yesterday",
            "metadata": {"k": "v" * 1001},
        },
    )
    errors = fields(resp)
    assert set(errors) == {
        "filename",
        "content_type",
        "size",
        "sha256",
        "classification",
        "source",
        "sensitivity",
        "assignment_id",
        "captured_at",
        "metadata.k",
    }, errors
    too_many = {f"k{i}": "v" for i in range(51)}
    body = {"filename": "a.pdf", "content_type": "application/pdf", "size": "12", "sha256": SHA}
    errors = fields(await local.post("/v1/documents/presign-upload", json={**body, "metadata": too_many}))
    assert set(errors) == {"size", "classification", "metadata"}, errors

    errors = fields(await local.put(f"/v1/documents/{ID}/tags", json={"tags": {"room": "", "x" * 64: "v"}}))
    assert len(errors) == 2 and all(f.startswith("tags.") for f in errors), errors
    assert set(fields(await local.put(f"/v1/documents/{ID}/tags", json={}))) == {"tags"}
    assert set(fields(await local.put("/v1/documents/d-1/tags", json={"tags": {}}))) == {"path.document_id"}
    resp = await local.get(
        "/v1/documents",
        params={"classification": "photo", "status": "deleted", "assignment_id": "a", "tag_key": "k" * 64},
    )
    assert set(fields(resp)) == {"query.classification", "query.status", "query.assignment_id", "query.tag_key"}
    for path in ("/v1/documents/x", "/v1/documents/x/download"):
        assert set(fields(await local.get(path))) == {"path.document_id"}
    assert set(fields(await local.post("/v1/documents/x/confirm"))) == {"path.document_id"}


async def test_body_limits(local):
    # the API's limit: 1 MiB, declared or streamed
    big = b"{" + b" " * (MiB + 1) + b"}"
    assert_problem(await local.post("/v1/banks", content=big, headers={"content-type": "application/json"}), 413)

    async def stream(n: int):
        for _ in range(n):
            yield b" " * (256 * 1024)

    resp = await local.post("/v1/banks", content=stream(5), headers={"content-type": "application/json"})
    assert_problem(resp, 413, "PAYLOAD_TOO_LARGE")
    # file uploads have their own limit (here 3 MiB): 2 MiB passes the middleware (ops is down: 503) …
    resp = await local.put("/v1/files/tok.sig", content=b"x" * (2 * MiB))
    assert_problem(resp, 503)
    # … a declared length over it is refused before a byte is read
    resp = await local.put("/v1/files/tok.sig", content=b"x" * (3 * MiB + 1))
    problem = assert_problem(resp, 413, "PAYLOAD_TOO_LARGE")
    assert str(3 * MiB) in problem["detail"]
    # the upload limit is only for file uploads
    resp = await local.put(f"/v1/documents/{ID}/tags", content=b" " * (2 * MiB))
    assert_problem(resp, 413)


def test_field_renaming():
    table = {"details": "", "links": "", "size_bytes": "size", "page": "query", "query": "query.q", "id": "path.x"}
    assert rename_field("details.pin_code", table) == "pin_code"
    assert rename_field("links.assignment_id", table) == "assignment_id"
    assert rename_field("links", table) == "body"
    assert rename_field("size_bytes", table) == "size"
    assert rename_field("page.cursor", table) == "query.cursor"
    assert rename_field("query", table) == "query.q"
    assert rename_field("id", table) == "path.x"
    assert rename_field("ids[0]", table) == "ids[0]"  # whole segments only
    assert rename_field("identity", table) == "identity"
    assert rename_field("property.city", table) == "property.city"


def test_file_response_headers():
    assert content_disposition("deed.pdf") == 'attachment; filename="deed.pdf"'
    assert content_disposition('a"b\\c.pdf') == "attachment; filename=\"a_b_c.pdf\"; filename*=UTF-8''a%22b_c.pdf"
    assert content_disposition("सेल डीड.pdf") == (
        "attachment; filename=\"___ ___.pdf\"; filename*=UTF-8''%E0%A4%B8%E0%A5%87%E0%A4%B2"
        "%20%E0%A4%A1%E0%A5%80%E0%A4%A1.pdf"
    )
    assert content_disposition("") == 'attachment; filename="download"'
    assert safe_content_type("application/pdf") == "application/pdf"
    assert safe_content_type("text/plain; charset=utf-8") == "text/plain; charset=utf-8"
    for bad in ("text/html\r\nx-evil: 1", "pdf", "", "a/b; c"):
        assert safe_content_type(bad) == "application/octet-stream", bad


async def test_openapi_documents_the_ops_routes(local):
    spec = (await local.get("/v1/openapi.json")).json()
    paths = spec["paths"]
    documented = {(m.upper(), p) for p, item in paths.items() for m in item}
    templates = {
        "/v1/banks/{bank_id}/branches",
        "/v1/master-data/{kind}/{record_id}/verify",
        "/v1/channels/{channel_id}",
        "/v1/assignments/{assignment_id}",
        "/v1/assignments/{assignment_id}/transitions",
        "/v1/assignments/{assignment_id}/history",
        "/v1/tasks/{task_id}",
        "/v1/tasks/{task_id}/done",
        "/v1/channel-requests/{channel_request_id}",
        "/v1/channel-requests/{channel_request_id}/accept",
        "/v1/channel-requests/{channel_request_id}/reject",
        "/v1/documents/{document_id}",
        "/v1/documents/{document_id}/confirm",
        "/v1/documents/{document_id}/download",
        "/v1/documents/{document_id}/tags",
    }
    for method, path, _ in ROUTES:
        path = path.split("?")[0]
        if ID in path:
            matches = [t for t in templates if t.count("/") == path.count("/") and t.split("{")[0] in path]
            assert matches, path
            assert any((method, t) in documented for t in matches), (method, path)
        else:
            assert (method, path) in documented, (method, path)
        operation = next(
            paths[t][method.lower()]
            for t in [path, *templates]
            if t in paths and method.lower() in paths[t] and (t == path or t.split("{")[0] in path)
        )
        assert operation["security"] == [{"bearer": []}], path
        assert "application/problem+json" in operation["responses"]["401"]["content"], path
    for method in ("put", "get"):
        operation = paths["/v1/files/{token}"][method]
        assert operation["security"] == []  # public: the signed URL is the authorisation
        assert "application/problem+json" in operation["responses"]["404"]["content"]
    assert "application/octet-stream" in paths["/v1/files/{token}"]["put"]["requestBody"]["content"]
    assert "application/octet-stream" in paths["/v1/files/{token}"]["get"]["responses"]["200"]["content"]

    create = paths["/v1/assignments"]["post"]
    header = next(p for p in create["parameters"] if p["in"] == "header")
    assert header["name"] == "Idempotency-Key" and header["required"] is False
    assert "location" in {h.lower() for h in create["responses"]["201"]["headers"]}
    for patched in ("/v1/assignments/{assignment_id}", "/v1/channels/{channel_id}", "/v1/tasks/{task_id}"):
        assert "application/merge-patch+json" in paths[patched]["patch"]["requestBody"]["content"]
    statuses = paths["/v1/assignments"]["get"]["parameters"]
    status = next(p for p in statuses if p["name"] == "status")
    assert status["schema"]["anyOf"][0]["type"] == "array"
    schemas = spec["components"]["schemas"]
    assert set(schemas["Assignment"]["properties"]["status"]["enum"]) == {
        "draft",
        "collecting",
        "site_visit",
        "under_review",
        "delivered",
        "cancelled",
    }
    assert "bank_kyc" in schemas["PresignUploadBody"]["properties"]["classification"]["enum"]
    assert schemas["Bank"]["properties"]["verification"]["enum"] == ["unverified", "verified"]
