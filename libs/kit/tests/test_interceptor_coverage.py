"""Every kind of handler goes through the ServiceInterceptor (a token is required, errors are
translated), and an unreachable dependency is UNAVAILABLE — never INTERNAL — whether the
handler meets it or the token verifier does (identity's session check reads its database)."""

import asyncpg
import grpc
import pytest

from zenops_kit.context import RequestContext
from zenops_kit.errors import NotFound, Unauthenticated
from zenops_kit.interceptors import ServiceInterceptor

SERVICE = "zenops.test.v1.Kinds"
GOOD = "good-token"
DB_DOWN = "token-while-db-down"


class Verifier:
    async def verify(self, token: str, _aud) -> RequestContext:
        if token == DB_DOWN:
            raise ConnectionRefusedError(111, "connection refused")
        if token != GOOD:
            raise Unauthenticated("bad token", reason="TOKEN_INVALID")
        return RequestContext(request_id="", tenant_id="t", user_id="u")


def fail(request: bytes) -> None:
    if request == b"missing":
        raise NotFound("no such thing", reason="THING_NOT_FOUND")
    if request == b"db-down":
        raise asyncpg.CannotConnectNowError("the database system is shutting down")
    if request == b"bug":
        raise ZeroDivisionError("a bug")


async def unary(request: bytes, context) -> bytes:
    fail(request)
    return request


async def server_stream(request: bytes, context):
    fail(request)
    yield request
    yield request


async def client_stream(requests, context) -> bytes:
    out = b""
    async for request in requests:
        fail(request)
        out += request
    return out


async def bidi(requests, context):
    async for request in requests:
        fail(request)
        yield request


@pytest.fixture
async def channel():
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    }
    srv = grpc.aio.server(interceptors=[ServiceInterceptor("test", verifier=Verifier(), public_methods=set())])
    srv.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch
    await srv.stop(0)


async def invoke(ch, kind: str, payload: bytes, token: str | None) -> list[bytes]:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    path = f"/{SERVICE}/{kind}"
    if kind == "Unary":
        return [await ch.unary_unary(path)(payload, metadata=metadata, timeout=5)]
    if kind == "ServerStream":
        return [item async for item in ch.unary_stream(path)(payload, metadata=metadata, timeout=5)]
    if kind == "ClientStream":
        return [await ch.stream_unary(path)(iter([payload]), metadata=metadata, timeout=5)]
    return [item async for item in ch.stream_stream(path)(iter([payload]), metadata=metadata, timeout=5)]


KINDS = ("Unary", "ServerStream", "ClientStream", "Bidi")


@pytest.mark.parametrize("kind", KINDS)
async def test_every_kind_answers_with_a_token(channel, kind):
    assert all(item == b"hi" for item in await invoke(channel, kind, b"hi", GOOD))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("payload", "token", "code"),
    [
        (b"hi", None, grpc.StatusCode.UNAUTHENTICATED),
        (b"hi", "forged", grpc.StatusCode.UNAUTHENTICATED),
        (b"hi", DB_DOWN, grpc.StatusCode.UNAVAILABLE),
        (b"missing", GOOD, grpc.StatusCode.NOT_FOUND),
        (b"db-down", GOOD, grpc.StatusCode.UNAVAILABLE),
        (b"bug", GOOD, grpc.StatusCode.INTERNAL),
    ],
)
async def test_every_kind_translates_failures(channel, kind, payload, token, code):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await invoke(channel, kind, payload, token)
    assert err.value.code() == code
    if code == grpc.StatusCode.INTERNAL:
        assert "a bug" not in (err.value.details() or "")  # no internals leak


async def test_text_the_database_cannot_store_is_the_callers_fault_not_an_internal_error(engine):
    """A backstop behind field validation: PostgreSQL refuses a NUL in text (22021, through
    SQLAlchemy) and in jsonb (22P05, asyncpg directly); either is INVALID_ARGUMENT, not INTERNAL."""
    from sqlalchemy import text

    from zenops_kit.errors import parse_rpc_error

    async def store(request: bytes, context) -> bytes:
        if request == b"text":
            async with engine.connect() as conn:
                await conn.execute(text("SELECT CAST(:v AS text)"), {"v": "a\x00b"})
        else:
            async with engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                await raw.fetchval("SELECT $1::jsonb", '{"a": "\\u0000"}')
        return b"stored"

    srv = grpc.aio.server(interceptors=[ServiceInterceptor("test", verifier=Verifier(), public_methods=set())])
    srv.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(SERVICE, {"Store": grpc.unary_unary_rpc_method_handler(store)})]
    )
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            for payload in (b"text", b"jsonb"):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await ch.unary_unary(f"/{SERVICE}/Store")(
                        payload, metadata=(("authorization", f"Bearer {GOOD}"),), timeout=5
                    )
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, payload
                assert parse_rpc_error(err.value).reason == "INVALID_CHARACTER"
    finally:
        await srv.stop(0)
