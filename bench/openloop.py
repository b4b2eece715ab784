"""An open-loop HTTP load generator: requests are due at a fixed arrival rate, whatever the
server does, and each latency is measured from when its request was DUE — so a stall shows
up in every request it delayed (no coordinated omission, unlike wrk or any closed loop).

wrk2 and vegeta are not packaged for this machine; this is a small asyncio + uvloop tool
with a hand-written HTTP/1.1 keep-alive client (no httpx: its ~1 ms of CPU per request
would take the core the suite needs). A request that finds no idle connection opens
another (up to `max_connections`; beyond that it waits, and the wait counts in its latency).

    from openloop import run_open_loop
    result = run_open_loop("127.0.0.1", 8080, rate=400, seconds=10, make_request=lambda i: (...))

    .venv/bin/python bench/openloop.py --url http://127.0.0.1:8080/v1/livez --rate 400 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import uvloop

# (method, path, headers, body) of request number i
Request = tuple[str, str, dict[str, str], bytes]


@dataclass
class OpenLoopResult:
    rate: float
    seconds: float
    sent: int = 0
    answered: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    socket_errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    connections: int = 0
    max_dispatch_lag_ms: float = 0.0  # how late the generator itself dispatched (should be ~0)
    elapsed: float = 0.0  # first request due → last answer
    sequential: bool = False  # run_sequential: one client, back to back (rate = achieved)

    @property
    def errors(self) -> int:
        """Not answered (socket errors, timeouts) + 4xx/5xx answers."""
        return (self.sent - self.answered) + sum(n for s, n in self.statuses.items() if s >= 400)

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        s = sorted(self.latencies_ms)
        return s[min(len(s) - 1, int(q * len(s)))]

    def to_json(self) -> dict:
        return {
            "offered_rps": self.rate,
            "seconds": self.seconds,
            "sent": self.sent,
            "answered": self.answered,
            "achieved_rps": round(self.answered / self.elapsed, 1) if self.elapsed else 0.0,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "socket_errors": self.socket_errors,
            "errors": self.errors,
            "connections": self.connections,
            "latency_ms": {
                "p50": round(self.pct(0.50), 3),
                "p90": round(self.pct(0.90), 3),
                "p99": round(self.pct(0.99), 3),
                "max": round(max(self.latencies_ms, default=0), 3),
            },
            "max_dispatch_lag_ms": round(self.max_dispatch_lag_ms, 3),
        }

    def line(self) -> str:
        j = self.to_json()
        lat = j["latency_ms"]
        offered = "one client, back to back" if self.sequential else f"offered {self.rate:g} req/s"
        return (
            f"{offered} for {self.seconds:.3g}s: answered {j['achieved_rps']:,} req/s, "
            f"p50 {lat['p50']:.2f} ms, p90 {lat['p90']:.2f} ms, p99 {lat['p99']:.2f} ms, max {lat['max']:.1f} ms, "
            f"errors {self.errors} (statuses {j['statuses']}), {self.connections} connections"
        )


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = await self.reader.readexactly(length) if length else b""
        if close:
            raise ConnectionResetError("server closed the connection")
        return status, body


def _raw(host: str, req: Request) -> bytes:
    method, path, headers, body = req
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _run(
    host: str,
    port: int,
    rate: float,
    seconds: float,
    make_request: Callable[[int], Request],
    max_connections: int,
    check: Callable[[int, bytes], None] | None,
) -> OpenLoopResult:
    result = OpenLoopResult(rate=rate, seconds=seconds)
    idle: list[_Conn] = []
    slots = asyncio.Semaphore(max_connections)
    total = int(rate * seconds)
    tasks: set[asyncio.Task] = set()

    async def one(i: int, due: float) -> None:
        raw = _raw(host, make_request(i))
        async with slots:
            conn = idle.pop() if idle else None
            try:
                if conn is None:
                    conn = _Conn(*await asyncio.open_connection(host, port))
                    result.connections += 1
                status, body = await conn.exchange(raw)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                result.socket_errors += 1
                if conn is not None:
                    conn.writer.close()
                return
            idle.append(conn)
        result.latencies_ms.append((time.perf_counter() - due) * 1e3)
        result.answered += 1
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if check is not None:
            check(status, body)

    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            result.max_dispatch_lag_ms = max(result.max_dispatch_lag_ms, -delay * 1e3)
        task = asyncio.create_task(one(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        result.sent += 1
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    result.elapsed = time.perf_counter() - start
    for conn in idle:
        conn.writer.close()
    return result


async def _run_sequential(
    host: str, port: int, count: int, make_request: Callable[[int], Request], warmup: int
) -> OpenLoopResult:
    result = OpenLoopResult(rate=0.0, seconds=0.0, sequential=True)
    conn = _Conn(*await asyncio.open_connection(host, port))
    result.connections = 1
    start = time.perf_counter()
    try:
        for i in range(warmup + count):
            raw = _raw(host, make_request(i))
            t0 = time.perf_counter()
            status, _ = await conn.exchange(raw)
            if i < warmup:
                start = time.perf_counter()
                continue
            result.latencies_ms.append((time.perf_counter() - t0) * 1e3)
            result.sent += 1
            result.answered += 1
            result.statuses[status] = result.statuses.get(status, 0) + 1
    finally:
        conn.writer.close()
    result.elapsed = time.perf_counter() - start
    result.seconds = result.elapsed
    result.rate = round(count / result.elapsed, 1) if result.elapsed else 0.0
    return result


def run_sequential(
    host: str, port: int, *, count: int, make_request: Callable[[int], Request], warmup: int = 20
) -> OpenLoopResult:
    """One client on one kept-alive connection, each request sent when the previous answer has
    arrived (closed loop of one): the unloaded latency of the path, the client's own cost
    minimal (no httpx)."""
    return uvloop.run(_run_sequential(host, port, count, make_request, warmup))


def run_open_loop(
    host: str,
    port: int,
    *,
    rate: float,
    seconds: float,
    make_request: Callable[[int], Request],
    max_connections: int = 256,
    check: Callable[[int, bytes], None] | None = None,
) -> OpenLoopResult:
    """Send `rate` × `seconds` requests at a fixed rate; latency from each request's due time."""
    return uvloop.run(_run(host, port, rate, seconds, make_request, max_connections, check))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Open-loop (fixed arrival rate) HTTP load.")
    p.add_argument("--url", required=True)
    p.add_argument("--rate", type=float, default=400.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--method", default="GET")
    p.add_argument("--header", action="append", default=[], help="'name: value' (repeatable)")
    p.add_argument("--body", default="", help="request body; {i} is replaced by the request number")
    args = p.parse_args(argv)
    url = urlsplit(args.url)
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    path = url.path + (f"?{url.query}" if url.query else "")
    result = run_open_loop(
        url.hostname or "127.0.0.1",
        url.port or 80,
        rate=args.rate,
        seconds=args.seconds,
        make_request=lambda i: (args.method, path, headers, args.body.replace("{i}", str(i)).encode()),
    )
    print(result.line())
    print(json.dumps(result.to_json()))
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
