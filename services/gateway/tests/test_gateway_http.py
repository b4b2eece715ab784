"""The HTTP surface in-process (ASGI): problem+json, validation, body limit, request ids,
security headers, CORS, probes, OpenAPI. Upstreams point at closed ports here."""

from __future__ import annotations

import uuid

import pytest
from fastapi import APIRouter, Query, Request
from gateway_testing import assert_problem, gateway_settings, running
from pydantic import BaseModel, Field

from zenops_devstack.testing import TokenSigner
from zenops_gateway.app import USER_AUDIENCES, create_app
from zenops_gateway.middleware import API_CSP

LIMIT = 1024


class Item(BaseModel):
    name: str = Field(min_length=1)


class Order(BaseModel):
    amount: int = Field(gt=0)
    items: list[Item] = []


# Test-only routes, mounted on the test app (never in production code).
extra_router = APIRouter(prefix="/test")


@extra_router.post("/orders")
async def create_order(order: Order, limit: int = Query(10, le=100)) -> dict:
    return {"amount": order.amount, "limit": limit}


@extra_router.post("/raw")
async def raw(request: Request) -> dict:
    return {"size": len(await request.body())}


@extra_router.get("/boom")
async def boom() -> dict:
    raise RuntimeError("password=hunter2 at /srv/zenops/secret.py line 42")


def make_app(**overrides):
    app = create_app(gateway_settings(max_body_bytes=LIMIT, **overrides))
    app.include_router(extra_router)
    return app


@pytest.fixture
async def client():
    async with running(make_app()) as c:
        yield c


async def test_unknown_route_is_404_problem(client):
    body = assert_problem(await client.get("/v1/nope"), 404, "NOT_FOUND")
    assert body["type"] == "urn:zenops:problem:not-found" and body["title"] == "Not Found"


async def test_wrong_method_is_405_problem(client):
    resp = await client.delete("/v1/livez")
    assert_problem(resp, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in resp.headers["allow"]


async def test_validation_error_is_400_naming_fields(client):
    resp = await client.post("/test/orders?limit=1000", json={"amount": 0, "items": [{"name": ""}]})
    body = assert_problem(resp, 400, "VALIDATION_FAILED")
    fields = {e["field"]: e["message"] for e in body["errors"]}
    assert set(fields) == {"amount", "items[0].name", "query.limit"}, body
    assert "greater than 0" in fields["amount"]


async def test_missing_field_and_invalid_json(client):
    body = assert_problem(await client.post("/test/orders", json={}), 400, "VALIDATION_FAILED")
    assert [e["field"] for e in body["errors"]] == ["amount"]
    resp = await client.post("/test/orders", content=b'{"amount": ', headers={"content-type": "application/json"})
    body = assert_problem(resp, 400, "VALIDATION_FAILED")
    assert body["errors"][0]["field"] == "body" and "Invalid JSON" in body["errors"][0]["message"]


async def test_valid_body_passes(client):
    resp = await client.post("/test/orders", json={"amount": 5, "items": [{"name": "a"}]})
    assert resp.status_code == 200 and resp.json() == {"amount": 5, "limit": 10}


async def test_declared_body_over_limit_is_413_without_reading(client):
    resp = await client.post("/test/orders", content=b"x" * (LIMIT + 1), headers={"content-type": "application/json"})
    body = assert_problem(resp, 413, "PAYLOAD_TOO_LARGE")
    assert str(LIMIT) in body["detail"]


async def _chunks(total: int, size: int = 100):
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b"x" * n


@pytest.mark.parametrize("path", ["/test/orders", "/test/raw"])
async def test_chunked_body_over_limit_is_413(client, path):
    resp = await client.post(path, content=_chunks(LIMIT + 50), headers={"content-type": "application/json"})
    assert "content-length" not in resp.request.headers  # really streamed
    assert_problem(resp, 413, "PAYLOAD_TOO_LARGE")


async def test_chunked_body_under_limit_passes(client):
    resp = await client.post("/test/raw", content=_chunks(LIMIT))
    assert resp.status_code == 200 and resp.json() == {"size": LIMIT}


async def test_unhandled_exception_is_500_without_internals(client):
    resp = await client.get("/test/boom", headers={"x-request-id": "boom-1"})
    body = assert_problem(resp, 500, "INTERNAL")
    assert body["request_id"] == "boom-1"
    assert body["trace_id"] and len(body["trace_id"]) == 32
    for leak in ("hunter2", "secret.py", "RuntimeError", "Traceback"):
        assert leak not in resp.text
    assert resp.headers["x-content-type-options"] == "nosniff"  # still gets the headers


async def test_request_id_generated_when_absent(client):
    resp = await client.get("/v1/livez")
    assert uuid.UUID(resp.headers["x-request-id"])


async def test_request_id_reused_when_sane(client):
    resp = await client.get("/v1/livez", headers={"x-request-id": "envoy-abc_123.4"})
    assert resp.headers["x-request-id"] == "envoy-abc_123.4"


@pytest.mark.parametrize("bad", ["a" * 200, "has space", "new\tline", "<script>", ""])
async def test_insane_request_id_replaced(client, bad):
    resp = await client.get("/v1/livez", headers={"x-request-id": bad})
    assert resp.headers["x-request-id"] != bad
    assert uuid.UUID(resp.headers["x-request-id"])


async def test_security_headers(client):
    for resp in (await client.get("/v1/livez"), await client.get("/v1/nope")):
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["x-frame-options"] == "DENY"
        assert resp.headers["referrer-policy"] == "no-referrer"
        assert resp.headers["content-security-policy"] == API_CSP
        assert "strict-transport-security" not in resp.headers  # not production
        assert "server" not in resp.headers


async def test_hsts_in_production():
    # production refuses shipped default secrets: give the gateway its own client secret
    async with running(make_app(environment="production", service_client_secret="gw-" + uuid.uuid4().hex)) as c:
        resp = await c.get("/v1/livez")
    assert resp.headers["strict-transport-security"].startswith("max-age=")


async def test_docs_page_has_relaxed_but_strict_csp(client):
    resp = await client.get("/v1/docs")
    assert resp.status_code == 200 and "swagger-ui" in resp.text
    csp = resp.headers["content-security-policy"]
    assert "script-src https://cdn.jsdelivr.net 'sha256-" in csp
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp


async def test_openapi_documents_problem_json(client):
    resp = await client.get("/v1/openapi.json")
    assert resp.status_code == 200
    spec = resp.json()
    assert {"/v1/health", "/v1/meta", "/v1/livez", "/v1/readyz"} <= set(spec["paths"])
    health = spec["paths"]["/v1/health"]["get"]["responses"]
    assert health["503"]["content"]["application/problem+json"]["schema"]["$ref"].endswith("/HealthProblem")
    assert "application/problem+json" in spec["paths"]["/v1/meta"]["get"]["responses"]["500"]["content"]
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code", "errors", "trace_id", "request_id"} <= set(
        problem["properties"]
    )
    # request validation is documented as 400 problem+json, not FastAPI's 422
    orders = spec["paths"]["/test/orders"]["post"]["responses"]
    assert "422" not in orders and "application/problem+json" in orders["400"]["content"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]


async def test_cors_only_for_configured_origins():
    async with running(make_app()) as c:  # none configured: no CORS headers at all
        resp = await c.get("/v1/livez", headers={"origin": "https://portal.example"})
        assert "access-control-allow-origin" not in resp.headers
    async with running(make_app(cors_origins=["https://portal.example"])) as c:
        ok = await c.options(
            "/v1/meta",
            headers={
                "origin": "https://portal.example",
                "access-control-request-method": "GET",
                "access-control-request-headers": "authorization",
            },
        )
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://portal.example"
        bad = await c.options(
            "/v1/meta", headers={"origin": "https://evil.example", "access-control-request-method": "GET"}
        )
        assert bad.status_code == 400 and "access-control-allow-origin" not in bad.headers
        simple = await c.get("/v1/livez", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in simple.headers


def test_cors_origins_from_env(monkeypatch):
    monkeypatch.setenv("ZENOPS_CORS_ORIGINS", "https://a.example, https://b.example")
    assert gateway_settings().cors_origins == ["https://a.example", "https://b.example"]
    monkeypatch.setenv("ZENOPS_CORS_ORIGINS", '["https://c.example"]')
    assert gateway_settings().cors_origins == ["https://c.example"]


async def test_livez_and_readyz():
    app = make_app()
    async with running(app) as c:
        assert (await c.get("/v1/livez")).json() == {"status": "alive"}
        ready = await c.get("/v1/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        app.state.runtime.ready = False  # what shutdown (or the SIGTERM drain) does first
        assert_problem(await c.get("/v1/readyz"), 503, "NOT_READY")
        assert (await c.get("/v1/livez")).status_code == 200
    assert app.state.runtime.ready is False  # lifespan shutdown leaves it not ready


async def test_health_is_503_naming_everything_when_nothing_runs(control_reader):
    client, token = control_reader
    # Anonymous callers learn only "down".
    body = assert_problem(await client.get("/v1/health"), 503, "UNHEALTHY")
    assert "checks" not in body and body["detail"] == "Down."
    # A control.read token sees every check.
    body = assert_problem(await client.get("/v1/health", headers=token), 503, "UNHEALTHY")
    checks = body["checks"]
    assert set(checks) == {"identity", "ops", "billing", "repogen", "nats", "gateway"}
    for name in ("identity", "ops", "billing", "repogen", "nats"):
        assert checks[name]["status"] == "UNREACHABLE" and checks[name]["reason"], checks
    for name in ("identity", "ops", "billing", "repogen"):  # NATS never makes it "down"
        assert name in body["detail"]
    assert checks["gateway"]["status"] == "SERVING"


@pytest.fixture
async def control_reader():
    """(client, headers of a control.read user): the gateway's verifier trusts a test key."""
    app, signer = make_app(), TokenSigner()
    async with running(app) as c:
        app.state.runtime.verifier = signer.verifier(audiences=USER_AUDIENCES)
        yield c, {"authorization": f"Bearer {signer.token(aud='web', caps=['control.read'])}"}


async def test_meta_lists_five_services_even_when_upstreams_are_down(control_reader):
    client, token = control_reader
    assert_problem(await client.get("/v1/meta"), 401, "TOKEN_MISSING")
    resp = await client.get("/v1/meta", headers=token)
    assert resp.status_code == 200, resp.text
    meta = resp.json()
    assert meta["app"] == "zenops" and meta["environment"] == "test"
    assert list(meta["services"]) == ["identity", "ops", "billing", "repogen", "gateway"]
    # services answer GetServiceInfo only with a token; identity (the token issuer) is down too
    for name in ("identity", "ops", "billing", "repogen"):
        assert meta["services"][name]["status"] == "UNAVAILABLE"
        assert meta["services"][name]["code"] == "SERVICE_TOKEN_UNAVAILABLE"
    gw = meta["services"]["gateway"]
    assert gw["status"] == "OK" and gw["version"] == meta["version"] and gw["build_time"].endswith("Z")


async def test_one_service_meta_is_503_without_a_service_token(control_reader):
    client, token = control_reader
    # identity (which issues the gateway's service token) is down: no service can be asked
    body = assert_problem(await client.get("/v1/meta/ops", headers=token), 503, "SERVICE_TOKEN_UNAVAILABLE")
    assert "identity" in body["detail"]
