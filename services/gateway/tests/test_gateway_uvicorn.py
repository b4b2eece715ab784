"""The gateway as `python -m zenops_gateway serve` runs it: uvicorn + httptools on a real
socket (the loop is pytest's; `run()` would pick uvloop)."""

from __future__ import annotations

import asyncio
import signal
import socket

import httpx
import pytest
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from gateway_testing import assert_problem, eventually, gateway_settings
from uvicorn.server import ServerState

from zenops_devstack.process import free_port
from zenops_gateway.__main__ import build_server, main
from zenops_gateway.clients import outgoing_metadata
from zenops_gateway.protocol import CoalescingHttpToolsProtocol

LIMIT = 4096

extra_router = APIRouter(prefix="/test")


@extra_router.post("/raw")
async def raw(request: Request) -> dict:
    return {"size": len(await request.body())}


@extra_router.get("/onward-metadata")
async def onward_metadata() -> dict:
    """What a gRPC call made while handling this request would carry."""
    return dict(outgoing_metadata(token="t"))


@extra_router.get("/stream")
async def stream(request: Request, first_waits: bool = False) -> StreamingResponse:
    gate = request.app.state.stream_gate  # released by the test between the chunks

    async def chunks():
        if first_waits:
            await gate.wait()
        yield b"first"
        await gate.wait()
        yield b"second"

    return StreamingResponse(chunks(), media_type="text/plain")


@pytest.fixture
async def served(request):
    params = getattr(request, "param", {})
    port = free_port()
    settings = gateway_settings(
        gateway_host="127.0.0.1",
        gateway_port=port,
        max_body_bytes=LIMIT,
        shutdown_drain_seconds=params.get("drain", 0.0),
        trusted_proxies=[params.get("trust", "127.0.0.1")],
    )
    server = build_server(settings)
    server.config.app.include_router(extra_router)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: asyncio.sleep(0, server.started or task.done()), bool, within=10)
    assert not task.done(), task
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        try:
            yield server, client, task
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 15)


def test_server_config():
    server = build_server(gateway_settings())
    c = server.config
    assert (c.loop, c.access_log, c.server_header, c.log_config) == ("uvloop", False, False, None)
    assert c.http is CoalescingHttpToolsProtocol
    assert c.timeout_graceful_shutdown == 10.0


def test_cli_requires_a_command():
    with pytest.raises(SystemExit):
        main([])


async def test_real_server_headers_and_body_limits(served):
    _, client, _ = served
    resp = await client.get("/v1/livez", headers={"x-request-id": "real-1"})
    assert resp.status_code == 200 and resp.headers["x-request-id"] == "real-1"
    assert resp.headers["x-frame-options"] == "DENY" and "server" not in resp.headers

    assert_problem(await client.post("/test/raw", content=b"x" * (LIMIT + 1)), 413, "PAYLOAD_TOO_LARGE")

    async def chunks(total):
        for _ in range(total // 512):
            yield b"x" * 512

    resp = await client.post("/test/raw", content=chunks(LIMIT + 1024))
    assert resp.request.headers.get("transfer-encoding") == "chunked"
    assert_problem(resp, 413, "PAYLOAD_TOO_LARGE")

    ok = await client.post("/test/raw", content=chunks(LIMIT))
    assert ok.status_code == 200 and ok.json() == {"size": LIMIT}


@pytest.mark.parametrize("served", [{"drain": 0.5}], indirect=True)
async def test_sigterm_drains_with_readyz_503_then_exits(served):
    server, client, task = served
    assert (await client.get("/v1/readyz")).status_code == 200
    server.begin_drain()  # what the first SIGTERM does (see GatewayServer.handle_exit)
    assert_problem(await client.get("/v1/readyz"), 503, "NOT_READY")
    assert (await client.get("/v1/livez")).status_code == 200  # still serving while draining
    await asyncio.wait_for(task, 15)  # exits by itself once the drain period is over
    assert server.should_exit and server.runtime.ready is False


def test_handle_exit_drains_first_then_exits_on_second_signal():
    server = build_server(gateway_settings(shutdown_drain_seconds=30))
    server.runtime.ready = True
    server.handle_exit(signal.SIGTERM, None)
    assert server.runtime.ready is False and not server.should_exit
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit


async def test_client_address_from_a_trusted_proxy(served):
    """Behind Envoy (a trusted peer) the end user's address is X-Forwarded-For's, and it is
    what services receive as `x-client-ip`, with the user agent."""
    _, client, _ = served
    resp = await client.get(
        "/test/onward-metadata", headers={"x-forwarded-for": "203.0.113.9", "user-agent": "portal-app/2.1"}
    )
    md = resp.json()
    assert md["x-client-ip"] == "203.0.113.9" and md["x-client-user-agent"] == "portal-app/2.1"
    assert md["authorization"] == "Bearer t" and md["x-request-id"] == resp.headers["x-request-id"]


@pytest.mark.parametrize("served", [{"trust": "10.9.9.9"}], indirect=True)
async def test_client_address_ignores_untrusted_forwarded_for(served):
    _, client, _ = served
    md = (await client.get("/test/onward-metadata", headers={"x-forwarded-for": "203.0.113.9"})).json()
    assert md["x-client-ip"] == "127.0.0.1"  # the real peer: a client cannot choose its address


class CountingSocket(socket.socket):
    """A real socket that counts the writes the server's transport makes on it."""

    writes = 0

    def send(self, *args):
        self.writes += 1
        return super().send(*args)

    def sendmsg(self, *args):
        self.writes += 1
        return super().sendmsg(*args)


@pytest.fixture
async def connection():
    """(server side socket, client side reader/writer, the stream's gate): one connection to
    the gateway's protocol over a socket pair, the server end counting its writes."""
    server = build_server(gateway_settings())
    server.config.app.include_router(extra_router)
    gate = server.config.app.state.stream_gate = asyncio.Event()
    server.config.load()
    near, far = socket.socketpair()
    counted = CountingSocket(fileno=near.detach())
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(
        lambda: server.config.http_protocol_class(config=server.config, server_state=ServerState(), app_state={}),
        sock=counted,
    )
    reader, writer = await asyncio.open_connection(sock=far)
    try:
        yield counted, reader, writer, gate
    finally:
        gate.set()
        writer.close()
        transport.close()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)


async def test_one_write_per_response(connection):
    """Status line, headers and body leave in one write (uvicorn alone makes two)."""
    counted, reader, writer, _ = connection
    for n in range(1, 4):  # keep-alive: each response on the connection
        writer.write(b"GET /v1/livez HTTP/1.1\r\nhost: gateway\r\n\r\n")
        head = await read_head(reader)
        length = int(next(line for line in head.split(b"\r\n") if line.startswith(b"content-length:")).split(b":")[1])
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"x-request-id:" in head
        assert await reader.readexactly(length) == b'{"status":"alive"}'
        assert counted.writes == n


@pytest.mark.parametrize("first_waits", [False, True])
async def test_a_stream_still_streams(connection, first_waits):
    """A streaming response's head (with its first chunk when that is ready) leaves at once;
    later chunks follow as they come."""
    counted, reader, writer, gate = connection
    writer.write(f"GET /test/stream?first_waits={first_waits} HTTP/1.1\r\nhost: gateway\r\n\r\n".encode())
    head = await read_head(reader)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in head
    if first_waits:
        assert counted.writes == 1  # the head alone: the first chunk is not there yet
        gate.set()
        assert await asyncio.wait_for(reader.readuntil(b"first\r\n"), 5) == b"5\r\nfirst\r\n"
    else:
        assert await asyncio.wait_for(reader.readuntil(b"first\r\n"), 5) == b"5\r\nfirst\r\n"
        assert counted.writes == 1  # head and first chunk together, the stream not finished
        gate.set()
    assert await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5) == b"6\r\nsecond\r\n0\r\n\r\n"
