"""Repogen write-path benchmark: `PATCH /v1/work-orders/{id}/contract` through Envoy.

(a) the suite, closed loop (wrk): Envoy → gateway → repogen `PatchContract` (gRPC) → one
    PostgreSQL transaction (lock the work order, read the latest snapshot, merge the patch,
    run the rules engine and readiness, write snapshot n+1, its rules run, readiness and the
    work order row), the bootstrap admin's token, 10% trace sampling. Each request patches one
    of N work orders with the right `expected_version`: wrk's Lua script keeps, per thread, a
    queue of idle work orders with their versions; an answer puts its work order back with the
    version it reports (so every patch is a real, non-conflicting write);
(b) the suite, open loop: the same requests from an asyncio generator at a fixed offered rate
    (default 400 req/s, quality.md's latency bar), each patching an idle work order with the
    version read from its previous answer; latency counted from the moment a request was due
    (no coordinated omission);
(c) the baseline, in the same run: one Starlette + asyncpg process (uvicorn, uvloop + httptools,
    one worker, pool of 4; this file, `--serve-baseline`) doing the same JSON merge (RFC 7396,
    `zenops_repogen.rules.merge_patch`) and a row insert on the same PostgreSQL (repogen's
    database, its own two tables): lock the row, check the version, merge, insert the snapshot,
    update the row, in one transaction — no rules engine, no gRPC, no Envoy, no auth. What the
    rules engine itself costs per patch (in-process, `bench/rules.py`'s patch path) is printed
    beside it, so the architecture's share of the difference is visible.

Reported: req/s, p50/p99, errors and CPU ms per request of (a), (b) and (c), the CPU and
throughput ratios of (a) to (c), per-process CPU, repogen database transactions and new
connections per request, and the machine's busy cores. A benchmark measures and reports; it
never fails on a figure.

    .venv/bin/python bench/repogen_write.py            # 3 s warm-up + 10 s per closed-loop target, 10 s open loop
    .venv/bin/python bench/repogen_write.py --quick    # 1 s + 3 s smoke run

Figures also go to `.bench/repogen_write.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import deque
from pathlib import Path

import httpx

from zenops_devstack.postgres import runtime_role
from zenops_devstack.process import free_port, spawn, wait_until
from zenops_devstack.suite import Ports, Suite

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ops_write import login, run_wrk_post  # noqa: E402 - the shared measuring code of the benchmarks
from skeleton_path import (  # noqa: E402
    Measurement,
    cpu_snapshot,
    db_counters,
    ensure_wrk,
    machine_busy_seconds,
    machine_info,
    parse_wrk,
    reaped_children_seconds,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUT_PATH = REPO_ROOT / ".bench" / "repogen_write.json"
TARGETS = {
    "write path through Envoy (e.g. patch contract), 10% trace sampling": ">= 600 req/s sustained, 0 errors",
    "latency at 400 req/s offered on that path": "p50 <= 5 ms, p99 <= 25 ms",
}

# What each request changes: the rate of the first valuation line and the inspection remarks,
# so every patch makes a new snapshot with new outputs.
PATCH_TEMPLATE = (
    '{"expected_version":%d,"patch":{"valuation_lines":[{"description":"Flat, carpet area","area":'
    '{"value":"1012.5","unit":"sqft"},"rate_per_sqm":"%d"}],"inspection":{"remarks":"bench %s %d"}}}'
)

# Per thread: the work orders it owns, a queue of the idle ones with their versions. An answer
# (200) names its work order (`"work_order_id"`) and the version it is now at
# (`"snapshot_version"`): back in the queue. A lost answer (an error) leaves its work order out;
# when the queue is empty the oldest of those (out for 2 s or more) is re-read with a GET, whose
# answer names it too — counted as `recovered` (0 in a clean run).
LUA = r"""
local token = "%(token)s"
local run = "%(run)s"
local nthreads = %(threads)d
local ids = {%(ids)s}
local versions = {%(versions)s}
local patch = '%(patch)s'
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  idle, version, outstanding = {}, {}, {}
  counter, recovered, failed = 0, 0, 0
  headers = {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}
  for i, id in ipairs(ids) do
    if (i - 1) %% nthreads == tid then
      table.insert(idle, id)
      version[id] = versions[i]
    end
  end
end

function request()
  local id = table.remove(idle, 1)
  if id == nil then
    local now, oldest, at = os.time(), nil, nil
    for k, t in pairs(outstanding) do
      if at == nil or t < at then oldest, at = k, t end
    end
    if oldest ~= nil and now - at >= 2 then
      recovered = recovered + 1
      outstanding[oldest] = now
      return wrk.format("GET", "/v1/work-orders/" .. oldest, headers)
    end
    -- every work order of this thread is in flight (too few for the connections): re-read one
    return wrk.format("GET", "/v1/work-orders/" .. ids[tid + 1], headers)
  end
  outstanding[id] = os.time()
  counter = counter + 1
  local body = string.format(patch, version[id], 118500 + (counter %% 997), run, counter)
  return wrk.format("PATCH", "/v1/work-orders/" .. id .. "/contract", headers, body)
end

function response(status, headers, body)
  if status ~= 200 then
    failed = failed + 1
    if first_error == nil then first_error = status .. " " .. string.sub(body, 1, 400) end
    return
  end
  local id = string.match(body, '"work_order_id":"([%%x%%-]+)"')
  local v = string.match(body, '"snapshot_version":(%%d+)')
  if id ~= nil and v ~= nil and outstanding[id] ~= nil then
    outstanding[id] = nil
    version[id] = tonumber(v)
    table.insert(idle, id)
  end
end

function done(summary, latency, requests)
  local r, f = 0, 0
  for _, thread in ipairs(threads) do
    r = r + (thread:get("recovered") or 0)
    f = f + (thread:get("failed") or 0)
    local e = thread:get("first_error")
    if e ~= nil then io.write("lua-first-error " .. string.gsub(e, "\n", " ") .. "\n") end
  end
  io.write(string.format("lua-stats recovered=%%d failed=%%d\n", r, f))
end
"""


def say(msg: str = "") -> None:
    print(msg, flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


# -- the baseline app (run as `repogen_write.py --serve-baseline --port N`) -------------------------

BASELINE_TABLES = """
CREATE TABLE IF NOT EXISTS bench_contracts (
  id uuid PRIMARY KEY, version bigint NOT NULL, contract jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS bench_snapshots (
  work_order_id uuid NOT NULL, version bigint NOT NULL, contract jsonb NOT NULL, actor text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (work_order_id, version));
GRANT SELECT, INSERT, UPDATE ON bench_contracts, bench_snapshots TO {role};
"""


def serve_baseline(port: int) -> None:
    """`PATCH /v1/work-orders/{id}/contract` without the architecture: the same body checks as
    the gateway (expected_version a non-negative integer, patch an object), then one
    transaction: lock the row, check the version (409 otherwise), merge (RFC 7396), insert
    the snapshot, update the row; the answer names the work order and its new version."""
    from contextlib import asynccontextmanager

    import asyncpg
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from zenops_repogen.rules import merge_patch

    actor = str(uuid.uuid4())

    @asynccontextmanager
    async def lifespan(app: Starlette):
        size = int(os.environ.get("BASELINE_POOL_SIZE", "4"))
        app.state.pool = await asyncpg.create_pool(os.environ["BASELINE_DATABASE_URL"], min_size=size, max_size=size)
        try:
            yield
        finally:
            await app.state.pool.close()

    async def patch_contract(request: Request) -> Response:
        try:
            work_order_id = uuid.UUID(request.path_params["id"])
            body = json.loads(await request.body())
            expected, patch = body["expected_version"], body["patch"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"status": 400, "code": "VALIDATION_FAILED"}, status_code=400)
        if type(expected) is not int or expected < 0 or not isinstance(patch, dict):
            return JSONResponse({"status": 400, "code": "VALIDATION_FAILED"}, status_code=400)
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT version, contract FROM bench_contracts WHERE id = $1 FOR UPDATE", work_order_id
            )
            if row is None:
                return JSONResponse({"status": 404, "code": "NOT_FOUND"}, status_code=404)
            if row["version"] != expected:
                return JSONResponse({"status": 409, "code": "VERSION_CONFLICT"}, status_code=409)
            merged = merge_patch(json.loads(row["contract"]), patch)
            text = json.dumps(merged, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            version = expected + 1
            await conn.execute(
                "INSERT INTO bench_snapshots (work_order_id, version, contract, actor) VALUES ($1, $2, $3::jsonb, $4)",
                work_order_id,
                version,
                text,
                actor,
            )
            await conn.execute(
                "UPDATE bench_contracts SET version = $2, contract = $3::jsonb, updated_at = now() WHERE id = $1",
                work_order_id,
                version,
                text,
            )
        return JSONResponse(
            {"work_order_id": str(work_order_id), "version": version, "contract": merged, "snapshot_version": version}
        )

    async def livez(request: Request) -> JSONResponse:
        return JSONResponse({"status": "alive"})

    app = Starlette(
        routes=[
            Route("/v1/work-orders/{id}/contract", patch_contract, methods=["PATCH"]),
            Route("/v1/livez", livez),
        ],
        lifespan=lifespan,
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        workers=1,
        access_log=False,
        log_level="warning",
        lifespan="on",
    )


def start_baseline(suite: Suite, data_dir: Path, pool_size: int):
    port = free_port()
    env = {
        **os.environ,
        "BASELINE_DATABASE_URL": suite.database_url("repogen"),
        "BASELINE_POOL_SIZE": str(pool_size),
        "PYTHONUNBUFFERED": "1",
    }
    log_path = data_dir / "logs" / "baseline.log"
    proc = spawn(
        [sys.executable, str(Path(__file__).resolve()), "--serve-baseline", "--port", str(port)],
        log_path=log_path,
        env=env,
        cwd=REPO_ROOT,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/v1/livez", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout=30, what="the baseline app", proc=proc, log_path=log_path, interval=0.1)
    return proc, url


# -- preparing the work orders ------------------------------------------------------------------------


def prepare(base: str, token: str, count: int, contract: dict) -> list[str]:
    """An SBI bank, `count` assignments of it and a work order for each, its contract filled
    (snapshot 1): the state a valuer patches all day."""
    http = httpx.Client(base_url=base, timeout=60, headers={"authorization": f"Bearer {token}"})

    def ok(method: str, path: str, expect: int, **kw) -> dict:
        r = http.request(method, path, **kw)
        if r.status_code != expect:
            raise SystemExit(f"{method} {path} → {r.status_code} {r.text[:500]}")
        return r.json()

    banks = ok("GET", "/v1/banks", 200, params={"q": "SBI"})["items"]
    bank = next((b for b in banks if b["code"] == "SBI"), None) or ok(
        "POST", "/v1/banks", 201, json={"code": "SBI", "name": "State Bank of India"}
    )
    ids = []
    for i in range(count):
        a = ok(
            "POST",
            "/v1/assignments",
            201,
            json={"source_type": "bank", "bank_id": bank["id"], "borrower_name": f"Borrower {i}"},
        )
        wo = ok("POST", "/v1/work-orders", 201, json={"assignment_id": a["id"]})
        ok("PATCH", f"/v1/work-orders/{wo['id']}/contract", 200, json={"expected_version": 0, "patch": contract})
        ids.append(wo["id"])
    return ids


def settled(read, timeout: float = 15.0) -> dict[str, int]:
    """The versions once no more requests are landing: wrk stops with requests in flight,
    which the server still commits after wrk has exited."""
    deadline = time.monotonic() + timeout
    last = read()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = read()
        if now == last:
            return now
        last = now
    return last


def suite_versions(suite: Suite, ids: list[str]) -> dict[str, int]:
    listed = ",".join(f"'{i}'" for i in ids)

    def read() -> dict[str, int]:
        out = suite.pg.psql(f"SELECT id, snapshot_version FROM work_orders WHERE id IN ({listed})", "repogen")
        return {line.split("|")[0]: int(line.split("|")[1]) for line in out.splitlines() if "|" in line}

    return settled(read)


def baseline_versions(suite: Suite, ids: list[str]) -> dict[str, int]:
    def read() -> dict[str, int]:
        out = suite.pg.psql("SELECT id, version FROM bench_contracts", "repogen")
        found = {line.split("|")[0]: int(line.split("|")[1]) for line in out.splitlines() if "|" in line}
        return {i: found[i] for i in ids}

    return settled(read)


def write_script(path: Path, token: str, versions: dict[str, int], threads: int) -> Path:
    ids = list(versions)
    path.write_text(
        LUA
        % {
            "token": token,
            "run": uuid.uuid4().hex[:8],
            "threads": threads,
            "ids": ", ".join(f'"{i}"' for i in ids),
            "versions": ", ".join(str(versions[i]) for i in ids),
            "patch": PATCH_TEMPLATE,
        }
    )
    return path


# -- closed loop (wrk) --------------------------------------------------------------------------------


def measure(label: str, wrk: str, url: str, script_for, groups: dict[str, int], args, db=None) -> Measurement:
    """`script_for()`: a Lua script with the work orders' current versions (re-read before each
    wrk run: the warm-up moves them on)."""
    say(f"\n[{label}] warm-up {args.warmup:g}s ... {url}")
    run_wrk_post(wrk, url, script_for(), seconds=args.warmup, connections=args.connections, threads=args.threads)
    script = script_for()  # waits for the warm-up's last requests to land
    say(f"[{label}] measuring {args.duration:g}s, {args.connections} connections, {args.threads} threads ...")
    time.sleep(1.0)  # let the warm-up's statistics reach pg_stat_database
    db0 = db() if db else None
    before = cpu_snapshot(groups)
    wrk0, busy0, t0 = reaped_children_seconds(), machine_busy_seconds(), time.monotonic()
    out = run_wrk_post(wrk, url, script, seconds=args.duration, connections=args.connections, threads=args.threads)
    wall = time.monotonic() - t0
    wrk1, busy1 = reaped_children_seconds(), machine_busy_seconds()
    after = cpu_snapshot(groups)
    result = parse_wrk(out)
    stats = re.search(r"lua-stats recovered=(\d+) failed=(\d+)", out)
    first_errors = re.findall(r"^lua-first-error (.*)$", out, re.MULTILINE)
    db_per_request = None
    if db and db0 is not None:
        time.sleep(1.5)  # backends flush their statistics about once a second when idle
        db1 = db()
        if db1 is not None and result.requests:
            db_per_request = {k: (db1[k] - db0[k]) / result.requests for k in db0}
    m = Measurement(
        label=label,
        url=url,
        wrk=result,
        wall_seconds=wall,
        cpu_seconds={k: max(0.0, after[k] - before[k]) for k in groups},
        wrk_cpu_seconds=wrk1 - wrk0,
        machine_busy_seconds=busy1 - busy0,
        db_per_request=db_per_request,
    )
    m.recovered = int(stats.group(1)) if stats else -1  # type: ignore[attr-defined]
    m.first_errors = first_errors  # type: ignore[attr-defined]
    say(
        f"[{label}] {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
        f"{result.errors} errors, {m.cpu_ms_per_request:.3f} ms CPU/request"
        + (f", {m.recovered} lost answers re-read" if m.recovered else "")
    )  # type: ignore[attr-defined]
    for line in first_errors:
        say(f"[{label}]   first error of a wrk thread: {line}")
    return m


# -- open loop (asyncio, fixed rate) ------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection, one request at a time: a minimal client, so that the
    load generator costs a few tens of µs per request instead of httpx's near millisecond
    (its CPU is on the same two cores as the suite)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            data = bytearray()
            while (size := int((await self.reader.readline()).split(b";")[0], 16)) > 0:
                data += await self.reader.readexactly(size + 2)
                del data[-2:]
            await self.reader.readline()
            payload = bytes(data)
        else:
            payload = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def open_loop(url: str, token: str, versions: dict[str, int], *, rate: float, seconds: float) -> dict:
    """One request every 1/rate s, each patching an idle work order (over its own keep-alive
    connection) with the version its last answer reported; latency from the time the request
    was due. A due request with no idle work order is counted as `skipped` (the offered load
    exceeded what the pool of work orders can carry: the path is saturated)."""
    host, port = url.removeprefix("http://").split(":")
    connections = {work_order_id: Connection(host, int(port)) for work_order_id in versions}
    idle = deque(versions.items())
    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    skipped = 0
    run = uuid.uuid4().hex[:8]
    auth = f"Authorization: Bearer {token}\r\n".encode()

    async def one(n: int, due: float, work_order_id: str, version: int) -> None:
        body = (PATCH_TEMPLATE % (version, 118500 + n % 997, run, n)).encode()
        head = (
            (
                f"PATCH /v1/work-orders/{work_order_id}/contract HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            ).encode()
            + auth
            + b"\r\n"
        )
        conn = connections[work_order_id]
        try:
            status, payload = await asyncio.wait_for(conn.request(head, body), 10)
        except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError) as exc:
            conn.close()
            status, payload = type(exc).__name__, b""
        latencies.append((time.monotonic() - due) * 1e3)
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            idle.append((work_order_id, json.loads(payload)["version"]))
        # an error leaves the work order out: its version is no longer known

    start = time.monotonic()
    tasks = set()
    n = 0
    while (due := start + n / rate) < start + seconds:
        delay = due - time.monotonic()
        await asyncio.sleep(max(delay, 0))  # also lets answers in when behind schedule
        if idle:
            work_order_id, version = idle.popleft()
            task = asyncio.create_task(one(n, due, work_order_id, version))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        else:
            skipped += 1
        n += 1
    if tasks:
        await asyncio.wait(tasks, timeout=15)
    wall = time.monotonic() - start
    for conn in connections.values():
        conn.close()
    ok = statuses.get(200, 0)
    return {
        "offered_rate": rate,
        "seconds": round(wall, 3),
        "due": n,
        "sent": n - skipped,
        "skipped": skipped,
        "ok": ok,
        "errors": sum(v for k, v in statuses.items() if k != 200),
        "statuses": statuses,
        "achieved_rps": round(ok / wall, 1) if wall else 0.0,
        "latencies": latencies,
    }


def run_loop(coro):
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def measure_open_loop(url: str, token: str, versions: dict[str, int], groups: dict[str, int], args) -> dict:
    say(f"\n[suite, open loop] {args.rate:g} req/s offered for {args.latency_duration:g}s ...")
    before = cpu_snapshot(groups)
    busy0, self0 = machine_busy_seconds(), resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    result = run_loop(open_loop(url, token, versions, rate=args.rate, seconds=args.latency_duration))
    wall = time.monotonic() - t0
    after, busy1, self1 = cpu_snapshot(groups), machine_busy_seconds(), resource.getrusage(resource.RUSAGE_SELF)
    lat = result.pop("latencies")
    cpu = {k: max(0.0, after[k] - before[k]) for k in groups}
    result |= {
        "latency_ms": {
            "p50": pct(lat, 50),
            "p90": pct(lat, 90),
            "p99": pct(lat, 99),
            "max": max(lat, default=None),
            "mean": statistics.fmean(lat) if lat else None,
        },
        "cpu_ms_per_request": round(sum(cpu.values()) * 1e3 / max(result["ok"], 1), 4),
        "cpu_ms_per_request_by_process": {k: round(v * 1e3 / max(result["ok"], 1), 4) for k, v in cpu.items()},
        "generator_cpu_seconds": round((self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime), 3),
        "machine_busy_cores": round((busy1 - busy0) / wall, 3),
    }
    say(
        f"[suite, open loop] {result['achieved_rps']:,.0f} req/s answered, p50 {result['latency_ms']['p50']:.2f} ms, "
        f"p99 {result['latency_ms']['p99']:.2f} ms, {result['errors']} errors, {result['skipped']} skipped, "
        f"{result['cpu_ms_per_request']:.3f} ms CPU/request"
    )
    return result


# -- the rules engine's share -------------------------------------------------------------------------


def rules_cost_us(contract: dict) -> float:
    """µs of CPU the rules engine and readiness take per patch in this process (what
    PatchContract does besides the database and the hops)."""
    from datetime import date

    from zenops_repogen import rules

    patch = json.loads(PATCH_TEMPLATE % (1, 119000, "x", 1))["patch"]

    def once() -> None:
        merged = rules.merge_patch(contract, patch)
        e = rules.evaluate(rules.parse_contract(merged), bank_code="SBI")
        r = rules.readiness(e, evidence_counts={}, linked_fields=(), today=date.today())
        for value in (merged, rules.outputs_json(e), rules.readiness_json(r)):
            json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    for _ in range(50):
        once()
    n, t = 500, time.process_time()
    for _ in range(n):
        once()
    return (time.process_time() - t) / n * 1e6


# -- main ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds of each closed-loop run")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work-orders", type=int, default=0, help="work orders patched (default: 4 per connection)")
    p.add_argument("--rate", type=float, default=400.0, help="offered req/s of the open-loop run (0: skip it)")
    p.add_argument("--latency-duration", type=float, default=10.0, help="seconds of the open-loop run")
    p.add_argument("--sampling", default="0.1", help="trace sampling ratio of the suite (OTEL_TRACES_SAMPLER_ARG)")
    p.add_argument("--pool-size", type=int, default=4, help="the baseline's asyncpg pool")
    p.add_argument("--quick", action="store_true", help="1 s warm-up, 3 s measured, 3 s open loop")
    p.add_argument("--out", type=Path, default=OUT_PATH)
    p.add_argument("--serve-baseline", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.latency_duration = 3.0, 1.0, 3.0
    args.work_orders = args.work_orders or max(16, 4 * args.connections)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_baseline:
        serve_baseline(args.port)
        return 0
    from rules import CONTRACT  # bench/rules.py: the typical contract (an SBI flat, every section filled)

    wrk = ensure_wrk()
    data = Path(tempfile.mkdtemp(prefix="zenops-bench-repogen-"))
    # 10% sampling, spans made and dropped (no collector): the cost of tracing is counted.
    suite = Suite(
        data,
        Ports.free(),
        extra_env={"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": args.sampling},
    )
    say("starting the suite ...")
    suite.up(say=say)
    baseline = None
    open_result = None
    try:
        token = login(suite)
        say(f"preparing {args.work_orders} work orders (assignment → work order → full contract) ...")
        ids = prepare(f"http://127.0.0.1:{suite.ports.gateway}", token, args.work_orders, CONTRACT)
        pg = suite.pg.proc.pid
        groups = {
            "envoy": suite.procs["envoy"].pid,
            "gateway": suite.procs["gateway"].pid,
            "repogen": suite.procs["repogen"].pid,
            "postgres": pg,
            "nats": suite.nats.proc.pid,
        }
        script = data / "patch.lua"

        def suite_script() -> Path:
            return write_script(script, token, suite_versions(suite, ids), args.threads)

        suite_m = measure(
            "suite: PATCH contract via Envoy",
            wrk,
            suite.url,
            suite_script,
            groups,
            args,
            db=lambda: db_counters(suite, "repogen"),
        )
        if args.rate > 0:
            open_result = measure_open_loop(suite.url, token, suite_versions(suite, ids), groups, args)

        # the baseline: its own two tables in repogen's database, the same contracts
        # the baseline connects as repogen's runtime role, as the service does
        suite.pg.psql(BASELINE_TABLES.format(role=runtime_role("repogen")), "repogen")
        base_ids = [str(uuid.uuid4()) for _ in ids]
        literal = json.dumps(CONTRACT).replace("'", "''")
        listed = ",".join(f"'{i}'" for i in base_ids)
        suite.pg.psql(
            f"INSERT INTO bench_contracts (id, version, contract) SELECT unnest(ARRAY[{listed}]::uuid[]), "
            f"1, '{literal}'::jsonb",
            "repogen",
        )
        baseline, base_url = start_baseline(suite, data, args.pool_size)

        def baseline_script() -> Path:
            return write_script(script, token, baseline_versions(suite, base_ids), args.threads)

        base_m = measure(
            "baseline: Starlette + asyncpg",
            wrk,
            base_url,
            baseline_script,
            {"baseline": baseline.pid, "postgres": pg},
            args,
            db=lambda: db_counters(suite, "repogen"),
        )
        rules_us = rules_cost_us(CONTRACT)
        crashed = suite.crashed()
    finally:
        if baseline is not None:
            baseline.terminate()
            baseline.wait(10)
        suite.down()
        shutil.rmtree(data, ignore_errors=True)

    ratio = suite_m.cpu_ms_per_request / base_m.cpu_ms_per_request
    say("\n" + "=" * 100)
    say(
        f"repogen write path — PATCH /v1/work-orders/{{id}}/contract on {args.work_orders} work orders, "
        f"{args.connections} connections, trace sampling {args.sampling}"
    )
    say(f"  {'target':<36} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU ms/req':>11}")
    for m in (suite_m, base_m):
        say(
            f"  {m.label:<36} {m.wrk.rps:>9,.0f} {m.wrk.p50_ms:>8.2f} {m.wrk.p99_ms:>8.2f} {m.wrk.errors:>7} "
            f"{m.cpu_ms_per_request:>11.3f}"
        )
    if open_result is not None:
        lat = open_result["latency_ms"]
        say(
            f"  {'suite, open loop @ ' + format(args.rate, 'g') + ' req/s':<36} {open_result['achieved_rps']:>9,.0f} "
            f"{lat['p50']:>8.2f} {lat['p99']:>8.2f} {open_result['errors']:>7} "
            f"{open_result['cpu_ms_per_request']:>11.3f}   ({open_result['skipped']} skipped, generator "
            f"{open_result['generator_cpu_seconds']:.1f} s CPU)"
        )
    if base_m.wrk.errors:
        # a baseline that fails answers fast: its figures compare with nothing
        say(f"  the baseline answered {base_m.wrk.errors} errors: no ratio")
    else:
        say(f"  CPU per request: {ratio:.2f}x the baseline; throughput {suite_m.wrk.rps / base_m.wrk.rps:.2f}x")
    say(
        f"  of the suite's CPU per request, the rules engine + readiness + canonical JSON take ≈ {rules_us / 1e3:.3f} ms "
        "(in-process, one core); the baseline does none of it"
    )
    say(
        "  suite CPU ms/request by process: "
        + ", ".join(f"{k} {v * 1e3 / max(suite_m.wrk.requests, 1):.3f}" for k, v in suite_m.cpu_seconds.items())
    )
    if suite_m.db_per_request:
        say("  repogen database per request: " + ", ".join(f"{k} {v:.2f}" for k, v in suite_m.db_per_request.items()))
    say(
        f"  machine busy cores: suite {suite_m.machine_busy_seconds / suite_m.wall_seconds:.2f} "
        f"(wrk {suite_m.wrk_cpu_seconds / suite_m.wall_seconds:.2f}), baseline "
        f"{base_m.machine_busy_seconds / base_m.wall_seconds:.2f}"
    )
    if getattr(suite_m, "recovered", 0):
        say(f"  note: {suite_m.recovered} lost answers were re-read with a GET during the suite run")
    if crashed:
        say(f"  WARNING: suite processes exited during the run: {crashed}")
    for name, target in TARGETS.items():
        say(f"  target: {name}: {target}")
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "suite": suite_m.to_json() | {"lost_answers_reread": getattr(suite_m, "recovered", None)},
                "baseline": base_m.to_json(),
                "open_loop": open_result,
                "cpu_ratio": round(ratio, 3),
                "throughput_ratio": round(suite_m.wrk.rps / base_m.wrk.rps, 3),
                "rules_us_per_patch": round(rules_us, 1),
                "work_orders": args.work_orders,
                "machine": machine_info(),
                "targets": TARGETS,
            },
            indent=2,
        )
    )
    say(f"\nfigures written to {args.out.relative_to(REPO_ROOT) if args.out.is_relative_to(REPO_ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
