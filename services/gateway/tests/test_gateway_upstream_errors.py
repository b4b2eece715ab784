"""Error mapping end to end: a real grpc.aio server with the kit's ServiceInterceptor raises
DomainErrors; the gateway's typed client and central handler turn them into problem+json."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc
import pytest
from fastapi import APIRouter
from gateway_testing import assert_problem, gateway_settings, running
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry import trace

from zenops.common.v1 import common_pb2
from zenops.ops.v1 import ops_pb2
from zenops_devstack.testing import TokenSigner
from zenops_gateway.app import USER_AUDIENCES, create_app
from zenops_gateway.deps import OpsDep
from zenops_kit import errors as kit
from zenops_kit.interceptors import ServiceInterceptor
from zenops_kit.telemetry import setup_telemetry

OPS_SERVICE = "zenops.ops.v1.OpsService"
BUILD_TIME = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

ADMIN_PASSWORD = "Quiet-Harbour-Lantern-42"


class FakeOps:
    """GetServiceInfo that answers, raises what the test sets, or hangs."""

    def __init__(self) -> None:
        self.error: Exception | None = None
        self.hang = False
        self.release = asyncio.Event()
        self.calls: list[dict[str, str]] = []
        self.trace_ids: list[str] = []

    async def get_service_info(self, request, context):
        self.calls.append({k: v for k, v in context.invocation_metadata() if isinstance(v, str)})
        self.trace_ids.append(format(trace.get_current_span().get_span_context().trace_id, "032x"))
        if self.hang:
            await self.release.wait()
        if self.error is not None:
            raise self.error
        info = common_pb2.ServiceInfo(name="ops", version="9.9.9", git_sha="abc1234", environment="test")
        info.build_time.FromDatetime(BUILD_TIME)
        return ops_pb2.GetServiceInfoResponse(info=info)


@pytest.fixture
async def fake_ops():
    setup_telemetry("gateway")
    fake = FakeOps()
    server = grpc.aio.server(
        interceptors=[ServiceInterceptor("ops", verifier=None, public_methods={f"/{OPS_SERVICE}/GetServiceInfo"})]
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                OPS_SERVICE,
                {
                    "GetServiceInfo": grpc.unary_unary_rpc_method_handler(
                        fake.get_service_info,
                        request_deserializer=ops_pb2.GetServiceInfoRequest.FromString,
                        response_serializer=ops_pb2.GetServiceInfoResponse.SerializeToString,
                    ),
                },
            ),
        )
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    fake.address = f"127.0.0.1:{port}"
    try:
        yield fake
    finally:
        fake.release.set()
        await server.stop(None)


# A test-only route through the production typed client (as later feature routes will be).
extra_router = APIRouter(prefix="/test")


@extra_router.get("/ops-info")
async def ops_info(ops: OpsDep) -> dict:
    info = await ops.get_service_info(token=None)
    return {"name": info.name, "version": info.version}


@extra_router.get("/ops-info-as-user")
async def ops_info_as_user(ops: OpsDep) -> dict:
    resp = await ops.call(ops.stub.GetServiceInfo, ops_pb2.GetServiceInfoRequest(), token="user-token")
    return {"name": resp.info.name}


def make_app(fake: FakeOps, **overrides):
    app = create_app(gateway_settings(ops_addr=fake.address, **overrides))
    app.include_router(extra_router)
    return app


CASES = [
    (
        kit.InvalidArgument("bad input", violations=[kit.FieldViolation("amount", "must be positive")]),
        400,
        "VALIDATION_FAILED",
    ),
    (kit.Unauthenticated("token expired", reason="TOKEN_EXPIRED"), 401, "TOKEN_EXPIRED"),
    (kit.PermissionDenied("missing capability: ops.read", reason="MISSING_CAPABILITY"), 403, "MISSING_CAPABILITY"),
    (kit.NotFound("assignment not found", reason="ASSIGNMENT_NOT_FOUND"), 404, "ASSIGNMENT_NOT_FOUND"),
    (kit.AlreadyExists("key reused", reason="IDEMPOTENCY_KEY_REUSED"), 409, "IDEMPOTENCY_KEY_REUSED"),
    (kit.Aborted("version conflict"), 409, "VERSION_CONFLICT"),
    (
        kit.FailedPrecondition(
            "not enough credits",
            reason="INSUFFICIENT_CREDITS",
            violations=[kit.FieldViolation("amount", "exceeds the available 3 credits")],
        ),
        409,
        "INSUFFICIENT_CREDITS",
    ),
    (kit.ResourceExhausted("too many requests", retry_after=7), 429, "RATE_LIMITED"),
    (kit.Unavailable("database unavailable"), 503, "DEPENDENCY_UNAVAILABLE"),
]


@pytest.mark.parametrize(("error", "status", "code"), CASES, ids=[type(c[0]).__name__ for c in CASES])
async def test_domain_error_through_the_gateway(fake_ops, error, status, code):
    fake_ops.error = error
    async with running(make_app(fake_ops)) as client:
        resp = await client.get("/test/ops-info", headers={"x-request-id": "req-e2e-1"})
    body = assert_problem(resp, status, code)
    assert body["request_id"] == "req-e2e-1"
    assert fake_ops.calls[-1]["x-request-id"] == "req-e2e-1"  # forwarded in gRPC metadata
    if status < 500:
        assert body["detail"] == error.message
    assert body["errors"] == [{"field": v.field, "message": v.description} for v in error.violations]
    if status == 429:
        assert resp.headers["retry-after"] == "7"
    if status == 401:
        assert resp.headers["www-authenticate"].startswith("Bearer")


async def test_unexpected_service_error_is_500_with_trace_id_and_no_internals(fake_ops):
    fake_ops.error = RuntimeError("relation credits_ledger: SELECT balance FROM credits_ledger WHERE 1=1")
    async with running(make_app(fake_ops)) as client:
        resp = await client.get("/test/ops-info")
    body = assert_problem(resp, 500, "INTERNAL")
    for leak in ("credits_ledger", "SELECT", "RuntimeError", "Traceback", "internal error (trace id"):
        assert leak not in resp.text
    assert body["trace_id"] and len(body["trace_id"]) == 32
    # the trace crosses gateway → service: the service logged the same trace id
    assert fake_ops.trace_ids[-1] == body["trace_id"]


async def test_slow_service_is_504(fake_ops):
    fake_ops.hang = True
    async with running(make_app(fake_ops, rpc_timeout=0.3)) as client:
        resp = await client.get("/test/ops-info")
    assert_problem(resp, 504, "DEADLINE_EXCEEDED")


async def test_success_and_token_forwarding(fake_ops):
    async with running(make_app(fake_ops)) as client:
        ok = await client.get("/test/ops-info", headers={"user-agent": "zenops-test/1.0"})
        assert ok.status_code == 200 and ok.json() == {"name": "ops", "version": "9.9.9"}
        assert "authorization" not in fake_ops.calls[-1]
        # the end user's address (the peer, or the edge's X-Forwarded-For: edge.py)
        # and user agent travel on every onward call, authenticated or not
        assert fake_ops.calls[-1]["x-client-ip"] == "127.0.0.1"
        assert fake_ops.calls[-1]["x-client-user-agent"] == "zenops-test/1.0"
        ok = await client.get("/test/ops-info-as-user", headers={"user-agent": b"evil\xff\x01agent" + b"x" * 600})
        assert ok.status_code == 200
        assert fake_ops.calls[-1]["authorization"] == "Bearer user-token"
        # metadata must be printable ASCII: an attacker's user agent is made safe and bounded
        sent = fake_ops.calls[-1]["x-client-user-agent"]
        assert sent.startswith("evil??agent") and len(sent) == 512


async def test_meta_shows_a_failing_service_without_failing(fake_ops, start_service):
    # /v1/meta asks every service with the gateway's service token: a real identity issues it
    async with (
        start_service("identity", bootstrap_admin_password=ADMIN_PASSWORD) as identity,
        running(make_app(fake_ops, identity_addr=f"127.0.0.1:{identity.port}")) as client,
    ):
        login = await client.post(
            "/v1/auth/login", json={"email": "admin@zenops.local", "password": ADMIN_PASSWORD, "aud": "web"}
        )
        admin = {"authorization": f"Bearer {login.json()['access_token']}"}  # control.read
        ok = (await client.get("/v1/meta", headers=admin)).json()["services"]["ops"]
        assert ok == {
            "name": "ops",
            "status": "OK",
            "version": "9.9.9",
            "git_sha": "abc1234",
            "build_time": "2025-01-02T03:04:05Z",
            "environment": "test",
            "schema_revision": "",
            "code": None,
        }
        assert fake_ops.calls[-1]["authorization"].startswith("Bearer ey")  # the service token
        fake_ops.error = kit.FailedPrecondition("nope", reason="INSUFFICIENT_CREDITS")
        resp = await client.get("/v1/meta", headers=admin)
    assert resp.status_code == 200
    services = resp.json()["services"]
    assert services["ops"]["status"] == "UNAVAILABLE" and services["ops"]["code"] == "INSUFFICIENT_CREDITS"
    assert set(services) == {"identity", "ops", "billing", "repogen", "gateway"}


async def test_health_reports_the_serving_fake_and_the_rest(fake_ops):
    app, signer = make_app(fake_ops), TokenSigner()
    async with running(app) as client:
        app.state.runtime.verifier = signer.verifier(audiences=USER_AUDIENCES)  # a test key stands in
        token = signer.token(aud="web", caps=["control.read"])
        body = (await client.get("/v1/health", headers={"authorization": f"Bearer {token}"})).json()
    assert body["checks"]["ops"] == {"status": "SERVING"}
    assert body["checks"]["identity"]["status"] == "UNREACHABLE"
