"""@requires through a real grpc.aio server with the real ServiceInterceptor and JwtVerifier."""

import base64
import json
import time

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from zenops_devstack.testing import TokenSigner
from zenops_kit.auth import requires
from zenops_kit.context import current_context
from zenops_kit.errors import parse_rpc_error
from zenops_kit.interceptors import ServiceInterceptor

SERVICE = "zenops.test.v1.Guarded"


class Guarded:
    @requires("orders.read")
    async def Read(self, request: bytes, context) -> bytes:
        """Answers who called."""
        ctx = current_context()
        who = {"subject": ctx.subject, "tenant": ctx.tenant_id, "request_id": ctx.request_id}
        return json.dumps({**who, "client": [ctx.client_ip, ctx.user_agent], "caps": sorted(ctx.capabilities)}).encode()

    @requires("orders.read", "orders.export")
    async def Export(self, request: bytes, context):
        for i in range(3):
            yield f"row-{i}".encode()


@pytest.fixture
def signer():
    return TokenSigner("EdDSA")


@pytest.fixture
async def channel(signer):
    servicer = Guarded()
    server = grpc.aio.server(
        interceptors=[ServiceInterceptor("guarded", verifier=signer.verifier(), public_methods=set())]
    )
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "Read": grpc.unary_unary_rpc_method_handler(servicer.Read),
                    "Export": grpc.unary_stream_rpc_method_handler(servicer.Export),
                },
            )
        ]
    )
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch
    await server.stop(None)


def bearer(token: str, **extra) -> tuple:
    return (("authorization", f"Bearer {token}"), *extra.items())


async def call(channel, method: str, metadata=()) -> list[bytes]:
    if method == "Read":
        return [await channel.unary_unary(f"/{SERVICE}/Read")(b"", metadata=metadata, timeout=5)]
    return [item async for item in channel.unary_stream(f"/{SERVICE}/Export")(b"", metadata=metadata, timeout=5)]


async def failure(channel, method: str, metadata=()):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(channel, method, metadata)
    return parse_rpc_error(info.value)


async def test_token_with_the_capabilities_is_served(channel, signer):
    token = signer.token(aud="studio", caps=["orders.read", "orders.export"])
    client = {"x-client-ip": "203.0.113.9", "x-client-user-agent": "portal-app/2.1"}
    [answer] = await call(channel, "Read", bearer(token, **{"x-request-id": "r-1"}, **client))
    claims = json.loads(answer)
    assert claims["subject"] and claims["tenant"] and claims["request_id"] == "r-1"
    assert claims["client"] == ["203.0.113.9", "portal-app/2.1"]
    assert claims["caps"] == ["orders.export", "orders.read"]
    # the verified context is cached per token: the next call has its own request id and client
    [again] = await call(channel, "Read", bearer(token, **{"x-request-id": "r-2"}))
    assert json.loads(again) == {**claims, "request_id": "r-2", "client": [None, None]}
    assert await call(channel, "Export", bearer(token)) == [b"row-0", b"row-1", b"row-2"]


@pytest.mark.parametrize("method", ["Read", "Export"])
async def test_token_without_the_capability_is_permission_denied(channel, signer, method):
    detail = await failure(channel, method, bearer(signer.token(aud="web", caps=["users.read"])))
    assert detail.code == grpc.StatusCode.PERMISSION_DENIED
    assert detail.reason == "MISSING_CAPABILITY"
    assert "orders.read" in detail.metadata["missing"]


async def test_every_named_capability_is_needed(channel, signer):
    detail = await failure(channel, "Export", bearer(signer.token(aud="web", caps=["orders.read"])))
    assert (detail.code, detail.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_CAPABILITY")
    assert detail.metadata["missing"] == "orders.export"


@pytest.mark.parametrize("method", ["Read", "Export"])
async def test_no_token_is_unauthenticated(channel, method):
    detail = await failure(channel, method)
    assert (detail.code, detail.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")


@pytest.mark.parametrize("auth", ["Bearer garbage", "Bearer a.b.c", "Basic dXNlcjpwdw==", "Bearer "])
async def test_garbage_is_malformed(channel, auth):
    detail = await failure(channel, "Read", (("authorization", auth),))
    assert (detail.code, detail.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MALFORMED")


async def test_rejections_carry_their_reason_over_grpc(channel, signer):
    past = int(time.time()) - 3600
    expired = signer.token(caps=["orders.read"], iat=past, nbf=past, exp=past + 900)
    b64 = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    unsigned = f"{b64({'alg': 'none', 'kid': signer.kid})}.{b64(signer.claims(caps=['orders.read']))}."
    stranger = TokenSigner("ES256").token(caps=["orders.read"])
    for token, reason in (
        (expired, "TOKEN_EXPIRED"),
        (unsigned, "TOKEN_ALGORITHM_NOT_ALLOWED"),
        (stranger, "TOKEN_KEY_UNKNOWN"),
    ):
        detail = await failure(channel, "Read", bearer(token))
        assert (detail.code, detail.reason) == (grpc.StatusCode.UNAUTHENTICATED, reason)
        assert token not in detail.message


async def test_health_needs_no_token(channel):
    resp = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_requires_keeps_the_method_metadata():
    assert Guarded.Read.__name__ == "Read"
    assert Guarded.Read.__doc__ == "Answers who called."
    assert Guarded.Read.required_capabilities == {"orders.read"}
    assert Guarded.Export.required_capabilities == {"orders.read", "orders.export"}
    assert Guarded.Read.__wrapped__.__name__ == "Read"


def test_requires_refuses_misuse():
    with pytest.raises(ValueError):
        requires()
    with pytest.raises(ValueError):
        requires("")
    with pytest.raises(TypeError):
        requires("x")(lambda request, context: None)
