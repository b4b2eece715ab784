"""Domain errors cross gRPC as status + google.rpc details; nothing internal leaks."""

import grpc
import pytest
from sqlalchemy.exc import OperationalError

from zenops_kit.context import current_context
from zenops_kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    parse_rpc_error,
)
from zenops_kit.interceptors import ServiceInterceptor

RAISES = {
    "invalid": InvalidArgument("bad input", violations=[FieldViolation("amount", "must be positive")]),
    "missing": NotFound("no such account", reason="ACCOUNT_NOT_FOUND"),
    "exists": AlreadyExists("duplicate", reason="IDEMPOTENCY_KEY_REUSED", metadata={"mismatched": "amount"}),
    "broke": FailedPrecondition("not enough credit", reason="INSUFFICIENT_CREDITS"),
    "denied": PermissionDenied("nope", reason="MISSING_CAPABILITY"),
    "slow": ResourceExhausted("slow down", retry_after=2.5),
    "db": OperationalError("SELECT secret_column FROM t", {}, ConnectionRefusedError("refused")),
    "bug": ZeroDivisionError("password=hunter2 in a traceback"),
}


@pytest.fixture
async def server():
    async def behave(request: bytes, context) -> bytes:
        what = request.decode()
        if what == "whoami":
            return (current_context().request_id or "").encode()
        raise RAISES[what]

    handlers = {
        "Call": grpc.unary_unary_rpc_method_handler(behave),
        "Public": grpc.unary_unary_rpc_method_handler(behave),
    }
    srv = grpc.aio.server(
        interceptors=[ServiceInterceptor("test", verifier=None, public_methods={"/zenops.test.v1.T/Public"})]
    )
    srv.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("zenops.test.v1.T", handlers)])
    # Port 0: the kernel picks an unused port (a pre-picked one can still be held by the
    # previous test's server while it closes, and grpc shares ports by default).
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    yield port
    await srv.stop(0)


async def call(port, method, body: str, metadata=()):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        return await ch.unary_unary(f"/zenops.test.v1.T/{method}")(body.encode(), metadata=metadata, timeout=5)


@pytest.mark.parametrize(
    ("what", "code", "reason"),
    [
        ("invalid", grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_FAILED"),
        ("missing", grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND"),
        ("exists", grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED"),
        ("broke", grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_CREDITS"),
        ("denied", grpc.StatusCode.PERMISSION_DENIED, "MISSING_CAPABILITY"),
        ("db", grpc.StatusCode.UNAVAILABLE, "DEPENDENCY_UNAVAILABLE"),
    ],
)
async def test_domain_errors_map_to_status_and_reason(server, what, code, reason):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(server, "Public", what)
    detail = parse_rpc_error(info.value)
    assert (detail.code, detail.reason) == (code, reason)
    assert "secret_column" not in detail.message


async def test_field_violations_and_metadata_travel(server):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(server, "Public", "invalid")
    assert [(v.field, v.description) for v in parse_rpc_error(info.value).violations] == [
        ("amount", "must be positive")
    ]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(server, "Public", "exists")
    assert parse_rpc_error(info.value).metadata == {"mismatched": "amount"}


async def test_unexpected_errors_are_internal_without_internals(server):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(server, "Public", "bug")
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "hunter2" not in info.value.details() and "ZeroDivision" not in info.value.details()
    assert "trace id" in info.value.details()


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ((), "TOKEN_MISSING"),
        ((("authorization", "Basic abc"),), "TOKEN_MALFORMED"),
        ((("authorization", "Bearer a.b.c"),), "TOKEN_UNVERIFIABLE"),
    ],
)
async def test_non_public_methods_need_a_verifiable_token(server, metadata, reason):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(server, "Call", "whoami", metadata)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert parse_rpc_error(info.value).reason == reason


async def test_request_id_reaches_the_handler(server):
    assert await call(server, "Public", "whoami", (("x-request-id", "req-123"),)) == b"req-123"


async def test_retry_delay_travels_as_retry_info(server):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(server, "Public", "slow")
    detail = parse_rpc_error(info.value)
    assert (detail.code, detail.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert detail.retry_after == 2.5 and detail.retry_after_seconds == 3
