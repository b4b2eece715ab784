"""Client-streaming RPCs get the same request context and error translation as unary ones."""

import grpc
import pytest

from zenops_kit.context import current_context
from zenops_kit.errors import FieldViolation, InvalidArgument, parse_rpc_error
from zenops_kit.interceptors import ServiceInterceptor

SERVICE = "zenops.test.v1.Upload"


@pytest.fixture
async def server():
    seen: list[bytes] = []

    async def upload(request_iterator, context) -> bytes:
        total = 0
        async for chunk in request_iterator:
            seen.append(chunk)
            if chunk == b"too-big":
                raise InvalidArgument("data too large", violations=[FieldViolation("data", "exceeds the size")])
            if chunk == b"bug":
                raise ZeroDivisionError("secret=hunter2")
            total += len(chunk)
        return f"{current_context().request_id}:{total}".encode()

    handlers = {
        "Put": grpc.stream_unary_rpc_method_handler(upload),
        "PublicPut": grpc.stream_unary_rpc_method_handler(upload),
    }
    srv = grpc.aio.server(
        interceptors=[ServiceInterceptor("test", verifier=None, public_methods={f"/{SERVICE}/PublicPut"})]
    )
    srv.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    yield port, seen
    await srv.stop(0)


async def send(port, method: str, chunks: list[bytes], metadata=()) -> bytes:
    async def requests():
        for chunk in chunks:
            yield chunk

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        return await ch.stream_unary(f"/{SERVICE}/{method}")(requests(), metadata=metadata, timeout=5)


async def test_the_handler_reads_the_stream_with_the_request_context(server):
    port, _ = server
    assert await send(port, "PublicPut", [b"abc", b"de"], (("x-request-id", "req-9"),)) == b"req-9:5"


async def test_a_domain_error_mid_stream_becomes_its_status(server):
    port, _ = server
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await send(port, "PublicPut", [b"ok", b"too-big", b"more"])
    detail = parse_rpc_error(info.value)
    assert (detail.code, detail.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_FAILED")
    assert [v.field for v in detail.violations] == ["data"]


async def test_an_unexpected_error_is_internal_without_internals(server):
    port, _ = server
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await send(port, "PublicPut", [b"bug"])
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "hunter2" not in info.value.details() and "trace id" in info.value.details()


async def test_a_non_public_method_is_refused_before_the_stream_is_read(server):
    port, seen = server
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await send(port, "Put", [b"unseen"])
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert parse_rpc_error(info.value).reason == "TOKEN_MISSING"
    assert seen == []
