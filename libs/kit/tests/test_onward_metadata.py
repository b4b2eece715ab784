"""A service's call to another service carries the caller's trace and request id through
`onward_metadata` (the kit's channels have no tracing interceptor), and its deadline is cut to
what the call being served has left (`onward_timeout`): two real grpc.aio servers, the first
calling the second from its handler."""

import asyncio
import time

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

from zenops_kit import interceptors
from zenops_kit.caller import ONWARD_MARGIN, TENANT_METADATA, metadata, onward_metadata, onward_timeout
from zenops_kit.interceptors import ServiceInterceptor

SERVICE = "zenops.test.v1.Onward"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TENANT = "7d2b5c1e-0000-4000-8000-000000000001"


@pytest.fixture(autouse=True)
def sdk_tracer(monkeypatch):
    monkeypatch.setattr(interceptors, "_tracer", TracerProvider(sampler=ParentBased(ALWAYS_ON)).get_tracer("t"))


async def _server(handler) -> tuple[grpc.aio.Server, int]:
    srv = grpc.aio.server(interceptors=[ServiceInterceptor("test", verifier=None, public_methods={f"/{SERVICE}/Hop"})])
    srv.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {"Hop": handler})])
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    return srv, port


async def test_the_callee_continues_the_callers_trace_and_request_id():
    received: list[dict] = []

    async def callee(request: bytes, context) -> bytes:
        span = trace.get_current_span().get_span_context()
        received.append({**metadata(context), "trace_id": format(span.trace_id, "032x")})
        return b"ok"

    async def caller(request: bytes, context) -> bytes:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{second}") as ch:
            return await ch.unary_unary(f"/{SERVICE}/Hop")(
                b"", metadata=onward_metadata("service-token", TENANT), timeout=5
            )

    srv2, second = await _server(grpc.unary_unary_rpc_method_handler(callee))
    srv1, first = await _server(grpc.unary_unary_rpc_method_handler(caller))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{first}") as ch:
            for flags in ("01", "00"):  # sampled and not: the trace goes on either way
                inbound = (("traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-{flags}"), ("x-request-id", f"req-{flags}"))
                assert await ch.unary_unary(f"/{SERVICE}/Hop")(b"", metadata=inbound, timeout=5) == b"ok"
    finally:
        await srv1.stop(0)
        await srv2.stop(0)
    assert [r["trace_id"] for r in received] == [TRACE_ID, TRACE_ID]
    assert [r["traceparent"][-2:] for r in received] == ["01", "00"]
    assert [r["x-request-id"] for r in received] == ["req-01", "req-00"]
    assert all(r["authorization"] == "Bearer service-token" and r[TENANT_METADATA] == TENANT for r in received)


def test_outside_any_call_only_the_token_and_tenant_go():
    assert onward_metadata("t") == (("authorization", "Bearer t"),)
    assert onward_metadata("t", TENANT) == (("authorization", "Bearer t"), (TENANT_METADATA, TENANT))


async def test_an_onward_call_ends_before_its_callers_deadline_so_the_service_answers_first():
    """The caller gives the first service 1 s; that service's client would wait 5 s for a peer
    that never answers. The onward call is cut to the caller's remaining time less the margin,
    so the service answers (here: which peer failed) before its caller's deadline."""
    hung = asyncio.Event()

    async def callee(request: bytes, context) -> bytes:
        await hung.wait()
        return b"late"

    onward: list[float] = []

    async def caller(request: bytes, context) -> bytes:
        timeout = onward_timeout(5.0)
        onward.append(timeout)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{second}") as ch:
            try:
                await ch.unary_unary(f"/{SERVICE}/Hop")(b"", timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                return f"peer: {exc.code().name}".encode()
        return b"ok"

    srv2, second = await _server(grpc.unary_unary_rpc_method_handler(callee))
    srv1, first = await _server(grpc.unary_unary_rpc_method_handler(caller))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{first}") as ch:
            started = time.monotonic()
            answer = await ch.unary_unary(f"/{SERVICE}/Hop")(b"", timeout=1.0)
            took = time.monotonic() - started
    finally:
        hung.set()
        await srv1.stop(0)
        await srv2.stop(0)
    assert answer == b"peer: DEADLINE_EXCEEDED"
    # gRPC rounds the deadline it sends up a little: the cut is the caller's 1 s less the margin, give or take.
    assert abs(onward[0] - (1.0 - ONWARD_MARGIN)) < 0.05
    assert took < 1.0


def test_outside_any_call_an_onward_call_keeps_its_own_deadline():
    assert onward_timeout(5.0) == 5.0
