"""The gateway's repogen routes without repogen running: work orders, contract and snapshots,
readiness, templates, evidence, field links, annexures, comments, export bundle, artifacts,
release, monitor, and the artifact file URL.

Every route but the artifact file route needs a token (401); bodies, queries, paths and the
`Idempotency-Key` header are validated before any RPC (400 naming the field as the request
names it: a patch that is not an object, a missing or negative `expected_version`, a bad enum,
an oversized string); a valid request reaches repogen (here down: 503). The READINESS_NOT_MET
problem carries the readiness report as an object. The OpenAPI documents every route. A
devstack TokenSigner key stands in for identity's JWKS. The same routes against the real
repogen and ops services: test_gateway_repogen_service.py.
"""

from __future__ import annotations

import json
import uuid

import grpc
import httpx
import pytest
from gateway_testing import assert_problem, gateway_settings, running

from zenops.repogen.v1 import repogen_pb2 as pb
from zenops_devstack.testing import TokenSigner
from zenops_gateway.app import USER_AUDIENCES, create_app
from zenops_gateway.errors import UpstreamError
from zenops_gateway.models.repogen import Outputs, Readiness, Snapshot, WorkOrder
from zenops_gateway.routes.repogen import etag_matches, readiness_problem
from zenops_kit.auth import JwtVerifier, RevocationList
from zenops_kit.errors import ErrorDetail, FieldViolation

ISSUER = "zenops-identity"
KEY_FIELD = "header.Idempotency-Key"
ID = str(uuid.uuid4())
WO = f"/v1/work-orders/{ID}"


def fields(resp: httpx.Response, status: int = 400, code: str | None = "VALIDATION_FAILED") -> dict[str, str]:
    body = assert_problem(resp, status, code)
    return {e["field"]: e["message"] for e in body["errors"]}


def key() -> dict[str, str]:
    return {"idempotency-key": str(uuid.uuid4())}


@pytest.fixture
async def local():
    """The gateway with identity and repogen down; its verifier trusts the test's key."""
    app = create_app(gateway_settings())
    signer = TokenSigner()
    async with running(app) as client:
        app.state.runtime.verifier = JwtVerifier(
            signer.key_source(), issuer=ISSUER, audiences=USER_AUDIENCES, revocations=RevocationList()
        )
        client.headers["authorization"] = f"Bearer {signer.token(aud='web')}"
        yield client


# Every repogen route with a valid request (path, query and body): without a token 401, with
# one the request reaches repogen (down here: 503).
ROUTES = [
    ("POST", "/v1/work-orders", {"assignment_id": ID, "billing_account_id": ID, "credits": 2}),
    ("GET", f"/v1/work-orders?status=draft&status=ready_for_render&assignment_id={ID}&limit=5", None),
    ("GET", WO, None),
    ("PATCH", f"{WO}/contract", {"expected_version": 0, "patch": {"parties": {"borrower_name": "Asha Patel"}}}),
    ("GET", f"{WO}/snapshots?limit=10", None),
    ("GET", f"{WO}/snapshots/3", None),
    ("GET", f"{WO}/readiness", None),
    ("POST", f"{WO}/transitions", {"to": "ready_for_render"}),
    ("POST", f"{WO}/template", {"template_id": "SBI_5CR_AND_ABOVE_V1", "reason": "Bank asked for the long form"}),
    ("GET", "/v1/repogen/templates", None),
    ("POST", f"{WO}/evidence", {"document_id": ID, "kind": "site_photo", "caption": "Front elevation"}),
    ("GET", f"{WO}/evidence", None),
    ("DELETE", f"{WO}/evidence/{ID}?reason=wrong%20photo", None),
    ("POST", f"{WO}/field-links", {"field_key": "areas.carpet", "evidence_id": ID, "note": "p. 3"}),
    ("DELETE", f"{WO}/field-links", {"link_id": ID, "reason": "linked to the wrong page"}),
    ("GET", f"{WO}/field-links?include_removed=true", None),
    ("POST", f"{WO}/annexures/auto-order", None),
    ("POST", f"{WO}/comments", {"kind": "justification", "body": "Rates from three registered sales."}),
    ("GET", f"{WO}/comments?kind=notes", None),
    ("GET", f"{WO}/export-bundle", None),
    ("GET", f"{WO}/artifacts", None),
    ("GET", f"/v1/artifacts/{ID}/download", None),
    ("POST", f"{WO}/release", {"override_reason": "Paid by cheque, not yet recorded"}),
    ("GET", "/v1/repogen/monitor?status=rendered&limit=20", None),
]
IDS = [f"{m} {p.split('?')[0].replace(ID, '{id}')}" for m, p, _ in ROUTES]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=IDS)
async def test_repogen_routes_need_a_token(local, method, path, body):
    resp = await local.request(method, path, json=body, headers={"authorization": ""})
    assert_problem(resp, 401, "TOKEN_MISSING")
    # checked before the body is looked at
    resp = await local.request(method, path, json={"nonsense": True}, headers={"authorization": ""})
    assert_problem(resp, 401, "TOKEN_MISSING")


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=IDS)
async def test_valid_requests_reach_repogen(local, method, path, body):
    resp = await local.request(method, path, json=body, headers=key() if method == "POST" else {})
    problem = assert_problem(resp, 503, "UNAVAILABLE")
    assert "repogen" in problem["detail"]


async def test_artifact_file_url_needs_no_bearer_token(local):
    # The signed token in the path is the authorisation: this reaches repogen without a bearer token.
    resp = await local.get("/v1/artifact-files/eyJ2IjoxfQ.c2ln", headers={"authorization": ""})
    problem = assert_problem(resp, 503, "UNAVAILABLE")
    assert "repogen" in problem["detail"]
    # a token that cannot be one is refused before any RPC
    for bad in ("has space", "a" * 4097, "semi;colon"):
        resp = await local.get(f"/v1/artifact-files/{bad}")
        assert set(fields(resp)) == {"path.token"}, bad
    # download only
    assert_problem(await local.put("/v1/artifact-files/tok.sig", content=b"x"), 405)


async def test_idempotency_key_header_is_validated(local):
    # every mutation takes one (sent to repogen in the request, or as metadata where the
    # request has no field for it)
    for method, path, body in ROUTES:
        if method not in ("POST", "PATCH", "DELETE"):
            continue
        for bad in ("", "has space", "k" * 201):
            resp = await local.request(method, path, json=body, headers={"idempotency-key": bad})
            assert set(fields(resp)) == {KEY_FIELD}, (method, path, bad)
    # the release moves money: its key is required
    resp = await local.post(f"{WO}/release", json={})
    errors = fields(resp)
    assert set(errors) == {KEY_FIELD}, errors
    assert_problem(await local.post(f"{WO}/release", headers=key()), 503)  # no body: no override


async def test_work_order_bodies_and_queries_are_validated(local):
    errors = fields(await local.post("/v1/work-orders", json={}))
    assert set(errors) == {"assignment_id"}, errors
    body = {"assignment_id": "ZA-2026-000001", "billing_account_id": "acc", "credits": -1, "bank_code": "SBI"}
    errors = fields(await local.post("/v1/work-orders", json=body))
    assert set(errors) == {"assignment_id", "billing_account_id", "credits", "bank_code"}, errors
    for credits in ("2", 1.5, True, 100_001):
        resp = await local.post("/v1/work-orders", json={"assignment_id": ID, "credits": credits})
        assert set(fields(resp)) == {"credits"}, credits

    resp = await local.get(
        "/v1/work-orders",
        params=[("status", "draft"), ("status", "DRAFT"), ("assignment_id", "a"), ("limit", 0), ("cursor", "c" * 2000)],
    )
    errors = fields(resp)
    assert set(errors) == {"query.status[1]", "query.assignment_id", "query.limit", "query.cursor"}, errors
    assert set(fields(await local.get("/v1/work-orders/not-a-uuid"))) == {"path.work_order_id"}

    errors = fields(await local.post(f"{WO}/transitions", json={"to": "approved", "reason": ""}))
    assert set(errors) == {"to", "reason"}, errors
    assert set(fields(await local.post(f"{WO}/transitions", json={}))) == {"to"}
    assert set(fields(await local.post(f"{WO}/transitions", json={"to": "cancelled", "reason": "r" * 1001}))) == {
        "reason"
    }
    errors = fields(await local.post(f"{WO}/template", json={"template_id": "", "reason": "r" * 1001}))
    assert set(errors) == {"template_id", "reason"}, errors
    assert set(fields(await local.post(f"{WO}/template", json={"template_id": "GENERIC_BANK_V1"}))) == {"reason"}


async def test_contract_patch_is_validated(local):
    path = f"{WO}/contract"
    for patch in ([{"op": "replace"}], "parties", 7, None, True):
        errors = fields(await local.patch(path, json={"expected_version": 0, "patch": patch}))
        assert set(errors) == {"patch"}, (patch, errors)
    for version in (-1, "1", 1.5, None, 2**53 + 1):
        errors = fields(await local.patch(path, json={"expected_version": version, "patch": {}}))
        assert set(errors) == {"expected_version"}, (version, errors)
    errors = fields(await local.patch(path, json={"patch": {}}))
    assert set(errors) == {"expected_version"}, errors
    errors = fields(await local.patch(path, json={"expected_version": 0}))
    assert set(errors) == {"patch"}, errors
    errors = fields(await local.patch(path, json={"expected_version": 0, "patch": {}, "contract": {}}))
    assert set(errors) == {"contract"}, errors
    # numbers JSON cannot carry never reach repogen as `Infinity`
    resp = await local.patch(
        path,
        content=b'{"expected_version": 0, "patch": {"adopted_value": 1e999}}',
        headers={"content-type": "application/json"},
    )
    assert set(fields(resp)) == {"patch"}
    assert set(fields(await local.patch("/v1/work-orders/7/contract", json={"expected_version": 0, "patch": {}}))) == {
        "path.work_order_id"
    }
    # not JSON at all
    resp = await local.patch(path, content=b"{", headers={"content-type": "application/json"})
    assert set(fields(resp)) == {"body"}


async def test_snapshot_and_list_paths_are_validated(local):
    assert set(fields(await local.get(f"{WO}/snapshots/-1"))) == {"path.version"}
    assert set(fields(await local.get(f"{WO}/snapshots/latest"))) == {"path.version"}
    assert set(fields(await local.get(f"{WO}/snapshots?limit=501"))) == {"query.limit"}
    assert set(fields(await local.get("/v1/work-orders/x/readiness"))) == {"path.work_order_id"}
    assert set(fields(await local.get("/v1/repogen/monitor?status=open&limit=0"))) == {"query.status[0]", "query.limit"}
    assert set(fields(await local.get(f"{WO}/field-links?include_removed=sometimes"))) == {"query.include_removed"}
    assert set(fields(await local.get(f"{WO}/comments?kind=remark"))) == {"query.kind"}
    assert set(fields(await local.get("/v1/artifacts/report.docx/download"))) == {"path.artifact_id"}
    assert set(fields(await local.get("/v1/work-orders/x/export-bundle"))) == {"path.work_order_id"}


async def test_evidence_links_and_comments_are_validated(local):
    body = {"document_id": "deed-1", "kind": "photo", "caption": "c" * 501, "order": 1}
    errors = fields(await local.post(f"{WO}/evidence", json=body))
    assert set(errors) == {"document_id", "kind", "caption", "order"}, errors
    assert set(fields(await local.post(f"{WO}/evidence", json={}))) == {"document_id", "kind"}
    # proto spellings are not the API's
    assert set(fields(await local.post(f"{WO}/evidence", json={"document_id": ID, "kind": "SITE_PHOTO"}))) == {"kind"}

    # removing evidence needs a reason, in the query or the body
    remove = f"{WO}/evidence/{ID}"
    assert set(fields(await local.delete(remove))) == {"query.reason"}
    assert set(fields(await local.delete(remove + "?reason="))) == {"query.reason"}
    assert set(fields(await local.request("DELETE", remove, json={"reason": ""}))) == {"reason"}
    resp = await local.request("DELETE", remove + "?reason=a", json={"reason": "b"})
    assert set(fields(resp)) == {"query.reason"}
    assert_problem(await local.request("DELETE", remove, json={"reason": "duplicate photo"}), 503)
    assert set(fields(await local.delete(f"{WO}/evidence/e-1?reason=x"))) == {"path.evidence_id"}

    errors = fields(await local.post(f"{WO}/field-links", json={"field_key": "k" * 201, "evidence_id": "e", "note": 5}))
    assert set(errors) == {"field_key", "evidence_id", "note"}, errors
    errors = fields(await local.request("DELETE", f"{WO}/field-links", json={"link_id": "l-1"}))
    assert set(errors) == {"link_id", "reason"}, errors
    assert set(fields(await local.delete(f"{WO}/field-links"))) == {"body"}

    errors = fields(await local.post(f"{WO}/comments", json={"kind": "remark", "body": ""}))
    assert set(errors) == {"kind", "body"}, errors
    resp = await local.post(f"{WO}/comments", json={"kind": "notes", "body": "b" * 10_001})
    assert set(fields(resp)) == {"body"}
    assert "b" * 50 not in resp.text  # values are not echoed

    errors = fields(await local.post(f"{WO}/release", json={"override_reason": "", "force": True}, headers=key()))
    assert set(errors) == {"override_reason", "force"}, errors
    assert set(fields(await local.post(f"{WO}/release", json={"override_reason": "o" * 501}, headers=key()))) == {
        "override_reason"
    }


def _snapshot(version: int = 1) -> pb.Snapshot:
    s = pb.Snapshot(
        work_order_id=ID,
        version=version,
        contract_json='{"areas":{"carpet":{"unit":"sqft","value":"1000"}},"schema_version":1}',
        outputs=pb.Outputs(
            fair_market_value=4520000,
            realisable_value=4294000,
            distress_value=3616000,
            fair_market_value_in_words="Rupees Forty-Five Lakh Twenty Thousand Only",
            template_id="SBI_UNDER_5CR_V1",
            completeness_score=40,
            areas={"carpet": pb.AreaOutput(value="1000", unit="sqft", sqm="92.90")},
            messages=[pb.RuleMessage(severity="WARNING", code="BELOW_GUIDELINE", message="below")],
            rules_version="1",
        ),
        readiness=pb.Readiness(
            ready=False,
            score=40,
            missing_fields=["parties.borrower_name"],
            missing_evidence=[pb.MissingEvidence(kind="SITE_PHOTO", required=4, present=1)],
        ),
        actor="user-1",
    )
    s.created_at.GetCurrentTime()
    s.readiness.evaluated_at.GetCurrentTime()
    return s


def test_answers_use_the_api_spellings():
    w = pb.WorkOrder(id=ID, assignment_id=ID, status=pb.WORK_ORDER_STATUS_READY_FOR_RENDER, template_id="T")
    work_order = WorkOrder.from_proto(w)
    assert work_order.status == "ready_for_render"
    assert work_order.channel_id is None and work_order.billing_account_id is None

    snapshot = Snapshot.from_proto(_snapshot()).model_dump(mode="json")
    assert snapshot["contract"] == {"areas": {"carpet": {"unit": "sqft", "value": "1000"}}, "schema_version": 1}
    outputs = snapshot["outputs"]
    assert outputs["fair_market_value"] == 4520000 and isinstance(outputs["fair_market_value"], int)
    assert outputs["areas"] == {"carpet": {"value": "1000", "unit": "sqft", "sqm": "92.90"}}
    assert outputs["guideline_value"] is None  # 0 in the proto: none known
    assert outputs["messages"] == [
        {"severity": "warning", "code": "BELOW_GUIDELINE", "field": None, "message": "below"}
    ]
    assert snapshot["readiness"]["missing_evidence"] == [{"kind": "site_photo", "required": 4, "present": 1}]
    assert snapshot["readiness"]["evaluated_at"].endswith("Z")
    # lists leave the contract out
    assert (
        Snapshot.from_proto(pb.Snapshot(work_order_id=ID, outputs=pb.Outputs(), readiness=pb.Readiness())).contract
        is None
    )
    assert set(Outputs.model_json_schema()["properties"]) >= {
        "fair_market_value",
        "realisable_value",
        "distress_value",
        "fair_market_value_in_words",
        "template_id",
        "completeness_score",
        "areas",
    }


def test_readiness_not_met_carries_the_report():
    report = {
        "ready": False,
        "score": 60,
        "missing_fields": ["parties.borrower_name"],
        "missing_evidence": [{"kind": "SITE_PHOTO", "required": 4, "present": 0}],
        "errors": [],
        "warnings": ["inspection is older than 90 days"],
    }
    err = UpstreamError(
        "repogen",
        ErrorDetail(
            code=grpc.StatusCode.FAILED_PRECONDITION,
            message="work order is not ready for render (2 blocking item(s))",
            reason="READINESS_NOT_MET",
            violations=[
                FieldViolation("contract.parties.borrower_name", "is required by the template"),
                FieldViolation("evidence.SITE_PHOTO", "needs at least 4, has 0"),
            ],
            metadata={"readiness": json.dumps(report), "score": "60", "snapshot_version": "3"},
        ),
    )
    resp = readiness_problem(err)
    assert resp.status_code == 409 and resp.media_type == "application/problem+json"
    body = json.loads(resp.body)
    assert body["code"] == "READINESS_NOT_MET" and body["status"] == 409
    assert body["readiness"] == {
        "ready": False,
        "score": 60,
        "missing_fields": ["parties.borrower_name"],
        "missing_evidence": [{"kind": "site_photo", "required": 4, "present": 0}],
        "errors": [],
        "warnings": ["inspection is older than 90 days"],
        "evaluated_at": None,
    }
    assert [e["field"] for e in body["errors"]] == ["contract.parties.borrower_name", "evidence.site_photo"]
    assert body["metadata"] == {"score": "60", "snapshot_version": "3"}  # the report is not repeated as text
    assert Readiness.model_validate(body["readiness"]).score == 60


def test_etag_comparison():
    tag = '"' + "ab" * 32 + '"'
    assert etag_matches(tag, tag)
    assert etag_matches(f'"x", W/{tag}', tag)
    assert etag_matches("*", tag)
    assert not etag_matches(None, tag)
    assert not etag_matches('"ab"', tag)


async def test_openapi_documents_the_repogen_routes(local):
    spec = (await local.get("/v1/openapi.json")).json()
    paths = spec["paths"]
    expected = {
        ("POST", "/v1/work-orders"),
        ("GET", "/v1/work-orders"),
        ("GET", "/v1/work-orders/{work_order_id}"),
        ("PATCH", "/v1/work-orders/{work_order_id}/contract"),
        ("GET", "/v1/work-orders/{work_order_id}/snapshots"),
        ("GET", "/v1/work-orders/{work_order_id}/snapshots/{version}"),
        ("GET", "/v1/work-orders/{work_order_id}/readiness"),
        ("POST", "/v1/work-orders/{work_order_id}/transitions"),
        ("POST", "/v1/work-orders/{work_order_id}/template"),
        ("GET", "/v1/repogen/templates"),
        ("POST", "/v1/work-orders/{work_order_id}/evidence"),
        ("GET", "/v1/work-orders/{work_order_id}/evidence"),
        ("DELETE", "/v1/work-orders/{work_order_id}/evidence/{evidence_id}"),
        ("POST", "/v1/work-orders/{work_order_id}/field-links"),
        ("DELETE", "/v1/work-orders/{work_order_id}/field-links"),
        ("GET", "/v1/work-orders/{work_order_id}/field-links"),
        ("POST", "/v1/work-orders/{work_order_id}/annexures/auto-order"),
        ("POST", "/v1/work-orders/{work_order_id}/comments"),
        ("GET", "/v1/work-orders/{work_order_id}/comments"),
        ("GET", "/v1/work-orders/{work_order_id}/export-bundle"),
        ("GET", "/v1/work-orders/{work_order_id}/artifacts"),
        ("GET", "/v1/artifacts/{artifact_id}/download"),
        ("POST", "/v1/work-orders/{work_order_id}/release"),
        ("GET", "/v1/repogen/monitor"),
    }
    documented = {(m.upper(), p) for p, item in paths.items() for m in item}
    assert expected <= documented, expected - documented
    assert len(expected) == len(ROUTES)
    for method, path in expected:
        operation = paths[path][method.lower()]
        assert operation["security"] == [{"bearer": []}], path
        assert "application/problem+json" in operation["responses"]["401"]["content"], path
    artifact_file = paths["/v1/artifact-files/{token}"]["get"]
    assert artifact_file["security"] == []  # public: the signed URL is the authorisation
    assert "application/octet-stream" in artifact_file["responses"]["200"]["content"]

    create = paths["/v1/work-orders"]["post"]
    header = next(p for p in create["parameters"] if p["in"] == "header")
    assert header["name"] == "Idempotency-Key" and header["required"] is False
    assert "location" in {h.lower() for h in create["responses"]["201"]["headers"]}
    release = paths["/v1/work-orders/{work_order_id}/release"]["post"]
    header = next(p for p in release["parameters"] if p["in"] == "header")
    assert header["name"] == "Idempotency-Key" and header["required"] is True
    bundle = paths["/v1/work-orders/{work_order_id}/export-bundle"]["get"]["responses"]["200"]
    assert "application/json" in bundle["content"] and {"ETag", "X-Content-SHA256"} <= set(bundle["headers"])
    # the READINESS_NOT_MET problem documents its report
    conflict = paths["/v1/work-orders/{work_order_id}/transitions"]["post"]["responses"]["409"]
    ref = conflict["content"]["application/problem+json"]["schema"]["$ref"].rsplit("/", 1)[1]
    schemas = spec["components"]["schemas"]
    assert "readiness" in schemas[ref]["properties"]

    assert set(schemas["WorkOrder"]["properties"]["status"]["enum"]) == {
        "draft",
        "data_pending",
        "ready_for_render",
        "rendered",
        "released",
        "cancelled",
    }
    assert "site_photo" in schemas["AddEvidenceBody"]["properties"]["kind"]["enum"]
    patched = schemas["PatchedContract"]["properties"]
    assert {"version", "outputs", "readiness", "contract", "work_order"} <= set(patched)
