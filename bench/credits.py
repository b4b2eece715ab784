"""Credit benchmark: reserve + consume throughput and latency, then the wallet invariants.

With the whole suite running on this machine (Envoy, gateway, four services, PostgreSQL,
NATS — `zenops_devstack.suite.Suite` on free ports in a temp dir), 64 concurrent clients each
loop "reserve 1 credit, consume that reservation" (every call with its own idempotency key)
against

  (a) ONE hot account (every operation serialises on its balance row), and
  (b) many accounts (each client's operations spread over --accounts accounts),

each (i) over HTTP through Envoy → gateway → billing (wrk with a Lua script: a reserve's
201 queues its reservation, the thread's next request consumes it), and (ii) straight to
billing over gRPC (grpc.aio in this process, the same access token from identity).

One **op** is a full reserve + consume cycle (two requests, two transactions); req/s counts
requests. quality.md: ≥ 400 ops/s on one account with 64 clients, zero invariant violations.

Then the invariant check:
  - the API: every account's GetAccountStatus and the tenant aggregate satisfy
    granted − consumed − reserved = available, and the aggregate equals the sum of accounts;
  - the database (as the superuser, past RLS): each balance row equals its ledger sums per
    kind (granted = GRANT+TOPUP+REFILL+ADJUSTMENT without reservation, consumed = CONSUME,
    reserved = RESERVE − CONSUME − RELEASE − EXPIRE, overdraft = ADJUSTMENT tied to a
    reservation), reserved equals the sum of ACTIVE reservations, the ledger has exactly
    `entries` rows with seq 1..entries, and every CONSUMED reservation has its CONSUME entry;
  - no lost update: credits consumed in the database ≥ consumes the clients saw succeed
    (more only by the requests wrk left in flight when it stopped);
  - billing's own check (Reconcile dry run: its `violations`).

    .venv/bin/python bench/credits.py            # 2 s warm-up, 10 s per target
    .venv/bin/python bench/credits.py --quick    # smoke run: 1 s warm-up, 3 s per target

Figures also go to `.bench/credits.json`. A benchmark measures and reports; it exits
non-zero only when it cannot run (or, with --strict, when an invariant is violated).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import httpx
import psutil
from openloop import OpenLoopResult, run_open_loop, run_sequential
from skeleton_path import (
    cpu_snapshot,
    db_counters,
    ensure_wrk,
    machine_busy_seconds,
    machine_info,
    measure,
    parse_wrk,
    reaped_children_seconds,
    start_baseline,
)

from zenops.billing.v1 import billing_pb2 as pb
from zenops.billing.v1 import billing_pb2_grpc
from zenops.common.v1 import common_pb2
from zenops_devstack.suite import Ports, Suite
from zenops_kit.errors import parse_rpc_error

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_PATH = REPO_ROOT / ".bench" / "credits.json"
TARGET_OPS = 400  # quality.md: reserve+consume on one account, 64 concurrent clients
# quality.md: latency at 400 req/s offered on a write path; issue 13: unloaded one-row GET.
OPEN_RATE, OPEN_P50_MS, OPEN_P99_MS = 400, 5.0, 25.0
UNLOADED_P50_MS, UNLOADED_COUNT, TRICKLE_RATE = 3.0, 500, 20
HOT_GRANT = 100_000_000
MANY_GRANT = 10_000_000


def say(msg: str = "") -> None:
    print(msg, flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


# -- setup over gRPC ---------------------------------------------------------------------------


class Billing:
    """A grpc.aio stub of billing with the caller's token on every call."""

    def __init__(self, addr: str, token: str) -> None:
        self.channel = grpc.aio.insecure_channel(addr)
        self.stub = billing_pb2_grpc.BillingServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),)

    async def close(self) -> None:
        await self.channel.close()

    async def account(self, name: str, grant: int) -> str:
        acc = (
            await self.stub.CreateAccount(
                pb.CreateAccountRequest(
                    display_name=name, policy=pb.BILLING_POLICY_CREDIT, external_key=f"bench-{uuid.uuid4().hex}"
                ),
                metadata=self.metadata,
                timeout=10,
            )
        ).account
        await self.stub.GrantCredits(
            pb.GrantCreditsRequest(
                account_id=acc.id,
                amount=grant,
                kind=pb.LEDGER_KIND_GRANT,
                reason="bench",
                idempotency_key=f"bench-grant-{acc.id}",
            ),
            metadata=self.metadata,
            timeout=10,
        )
        return acc.id


async def login(suite: Suite) -> str:
    """A fresh access token of the bootstrap admin (straight to the gateway: Envoy limits
    logins per address, which is not what is measured here)."""
    email, password = suite.admin_credentials
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{suite.ports.gateway}", timeout=30) as http:
        r = await http.post("/v1/auth/login", json={"email": email, "password": password, "aud": "web"})
        if r.status_code != 200:
            raise SystemExit(f"login failed: {r.status_code} {r.text[:300]}")
        return r.json()["access_token"]


# -- (i) HTTP through Envoy: wrk + Lua ------------------------------------------------------------

LUA = r"""
-- reserve → consume cycles; a thread's 201s queue reservations, its next request consumes one.
local token = "%(token)s"
local run = "%(run)s"
local accounts = {%(accounts)s}
local threads = {}
local next_tid = 0

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
  table.insert(threads, thread)
end

function init(args)
  counter, cycles, reserves, conflicts, client_errors, server_errors = 0, 0, 0, 0, 0, 0
  pending = {}
end

local function headers(key)
  return {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json",
          ["Idempotency-Key"] = key}
end

function request()
  counter = counter + 1
  local key = run .. "-" .. tid .. "-" .. counter
  local n = #pending
  if n > 0 then
    local rid = pending[n]
    pending[n] = nil
    return wrk.format("POST", "/v1/billing/credits/reservations/" .. rid .. "/consume", headers(key), "{}")
  end
  local account = accounts[(counter * 7 + tid) %% #accounts + 1]
  local body = '{"account_id":"' .. account .. '","amount":1,"ref_type":"manual","ref_id":"' .. key .. '"}'
  return wrk.format("POST", "/v1/billing/credits/reserve", headers(key), body)
end

function response(status, headers, body)
  if status == 201 then
    local rid = body:match('"reservation":{"id":"([^"]+)"')
    if rid then
      reserves = reserves + 1
      table.insert(pending, rid)
    end
  elseif status == 200 then
    cycles = cycles + 1
  elseif status == 409 then
    conflicts = conflicts + 1
  elseif status < 500 then
    client_errors = client_errors + 1
  else
    server_errors = server_errors + 1
  end
end

function done(summary, latency, requests)
  local t = {cycles = 0, reserves = 0, conflicts = 0, client_errors = 0, server_errors = 0}
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do
      t[k] = t[k] + (thread:get(k) or 0)
    end
  end
  io.write(string.format("CREDITS cycles=%%d reserves=%%d conflicts=%%d client_errors=%%d server_errors=%%d\n",
    t.cycles, t.reserves, t.conflicts, t.client_errors, t.server_errors))
end
"""


def lua_script(path: Path, token: str, run: str, accounts: list[str]) -> Path:
    path.write_text(LUA % {"token": token, "run": run, "accounts": ",".join(f'"{a}"' for a in accounts)})
    return path


def run_wrk_lua(wrk: str, url: str, script: Path, *, seconds: float, connections: int, threads: int) -> str:
    cmd = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def wrk_counts(out: str) -> dict[str, int]:
    line = next((x for x in out.splitlines() if x.startswith("CREDITS ")), None)
    if line is None:
        raise RuntimeError(f"the Lua script printed no counts:\n{out}")
    return {k: int(v) for k, v in (part.split("=") for part in line.split()[1:])}


@dataclass
class Result:
    label: str
    path: str
    accounts: int
    clients: int
    seconds: float
    cycles: int
    requests: int
    latency_ms: dict[str, float]
    errors: dict[str, int]
    cpu_seconds: dict[str, float]
    machine_busy_cores: float
    # Cores used meanwhile by the load generator (wrk, or this process for gRPC), by the suite's
    # processes not on the path, and by anything else on the machine (> 0.25: noisy figures).
    load_generator_cores: float = 0.0
    idle_suite_cores: float = 0.0
    # Consumes outside `cycles` that may have reached the database: the warm-up's, and requests
    # in flight when wrk stopped or that failed without an answer (their effect is unknown).
    warmup_cycles: int = 0
    uncertain: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def other_cores(self) -> float:
        counted = sum(self.cpu_seconds.values()) / self.seconds if self.seconds else 0.0
        return max(0.0, self.machine_busy_cores - counted - self.load_generator_cores - self.idle_suite_cores)

    @property
    def ops(self) -> float:
        return self.cycles / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_op(self) -> float:
        return sum(self.cpu_seconds.values()) * 1e3 / self.cycles if self.cycles else float("nan")

    def to_json(self) -> dict:
        return {
            "label": self.label,
            "path": self.path,
            "accounts": self.accounts,
            "clients": self.clients,
            "seconds": round(self.seconds, 3),
            "ops": self.cycles,
            "ops_per_s": round(self.ops, 1),
            "requests": self.requests,
            "requests_per_s": round(self.requests / self.seconds, 1),
            "latency_ms": self.latency_ms,
            "errors": self.errors,
            "cpu_ms_per_op": round(self.cpu_ms_per_op, 3),
            "cpu_ms_per_op_by_process": {
                k: round(v * 1e3 / max(self.cycles, 1), 3) for k, v in self.cpu_seconds.items()
            },
            "cores_busy": round(sum(self.cpu_seconds.values()) / self.seconds, 3),
            "machine_busy_cores": round(self.machine_busy_cores, 3),
            "load_generator_cores": round(self.load_generator_cores, 3),
            "idle_suite_cores": round(self.idle_suite_cores, 3),
            "other_cores": round(self.other_cores, 3),
            **self.extra,
        }


def sleeps(groups: dict[str, int]) -> dict[str, int]:
    """Voluntary context switches so far of each group's processes and all their threads: one
    each time a thread waits for something, so about one per wake-up."""
    out = {}
    for name, pid in groups.items():
        total = 0
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            procs = []
        for proc in procs:
            for status in Path(f"/proc/{proc.pid}/task").glob("*/status"):
                try:
                    text = status.read_text()
                except OSError:  # the thread ended meanwhile
                    continue
                total += int(text.split("voluntary_ctxt_switches:")[1].split()[0])
        out[name] = total
    return out


def per_op(before: dict[str, int], after: dict[str, int], cycles: int) -> dict[str, float]:
    return {k: round((after[k] - before[k]) / max(cycles, 1), 1) for k in before}


def idle_groups(suite: Suite, groups: dict[str, int]) -> dict[str, int]:
    """The suite's processes that are not on the measured path."""
    return {name: p.pid for name, p in suite.procs.items() if name not in groups}


def measure_http(
    label: str, suite: Suite, wrk: str, token: str, accounts: list[str], args, groups, tmp: Path
) -> Result:
    say(f"\n[{label}] wrk, {args.clients} connections, warm-up {args.warmup:g}s, measuring {args.duration:g}s ...")
    url = suite.url
    warm = lua_script(tmp / "warm.lua", token, f"w{uuid.uuid4().hex[:8]}", accounts)
    warm_counts = wrk_counts(
        run_wrk_lua(wrk, url, warm, seconds=args.warmup, connections=args.clients, threads=args.threads)
    )
    script = lua_script(tmp / "run.lua", token, f"m{uuid.uuid4().hex[:8]}", accounts)
    db0 = settled_db_counters(suite)
    idle = idle_groups(suite, groups)
    idle0, wrk0 = cpu_snapshot(idle), reaped_children_seconds()
    sleeps0 = sleeps(groups)
    before, busy0, t0 = cpu_snapshot(groups), machine_busy_seconds(), time.monotonic()
    out = run_wrk_lua(wrk, url, script, seconds=args.duration, connections=args.clients, threads=args.threads)
    wall = time.monotonic() - t0
    after, busy1 = cpu_snapshot(groups), machine_busy_seconds()
    sleeps1 = sleeps(groups)
    idle1, wrk1 = cpu_snapshot(idle), reaped_children_seconds()
    db1 = settled_db_counters(suite)
    w, counts = parse_wrk(out), wrk_counts(out)
    errors = {k: counts[k] for k in ("conflicts", "client_errors", "server_errors") if counts[k]}
    errors |= {f"socket_{k}": v for k, v in w.socket_errors.items() if v}
    result = Result(
        label=label,
        path="http",
        accounts=len(accounts),
        clients=args.clients,
        seconds=w.seconds,
        cycles=counts["cycles"],
        requests=w.requests,
        latency_ms={"request_p50": w.p50_ms, "request_p90": w.p90_ms, "request_p99": w.p99_ms, "request_max": w.max_ms},
        errors=errors,
        cpu_seconds={k: max(0.0, after[k] - before[k]) for k in groups},
        machine_busy_cores=(busy1 - busy0) / wall,
        load_generator_cores=(wrk1 - wrk0) / wall,
        idle_suite_cores=sum(idle1[k] - idle0[k] for k in idle) / wall,
        warmup_cycles=warm_counts["cycles"],
        uncertain=2 * args.clients + sum(errors.values()) + warm_counts["server_errors"],
        # reserved but not yet consumed when wrk stopped (they stay ACTIVE; the invariants cover them)
        extra={
            "reservations_left_active": max(0, counts["reserves"] - counts["cycles"]),
            "billing_db_per_op": db_per_op(db0, db1, counts["cycles"]),
            "sleeps_per_op": per_op(sleeps0, sleeps1, counts["cycles"]),
        },
    )
    report(result)
    return result


# -- (ii) gRPC straight to billing --------------------------------------------------------------


async def grpc_cycles(billing: Billing, accounts: list[str], clients: int, seconds: float, run: str) -> dict:
    lat_reserve: list[float] = []
    lat_consume: list[float] = []
    lat_cycle: list[float] = []
    errors: Counter[str] = Counter()
    stop_at = time.monotonic() + seconds
    stub, md = billing.stub, billing.metadata

    async def worker(i: int) -> None:
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            key = f"{run}-{i}-{n}"
            account = accounts[(i + n * 7) % len(accounts)]
            t0 = time.perf_counter()
            try:
                r = await stub.ReserveCredits(
                    pb.ReserveCreditsRequest(
                        account_id=account, amount=1, ref_type="manual", ref_id=key, idempotency_key=f"{key}-r"
                    ),
                    metadata=md,
                    timeout=10,
                )
                t1 = time.perf_counter()
                await stub.ConsumeReservation(
                    pb.ConsumeReservationRequest(reservation_id=r.reservation.id, idempotency_key=f"{key}-c"),
                    metadata=md,
                    timeout=10,
                )
            except grpc.aio.AioRpcError as exc:
                d = parse_rpc_error(exc)
                errors[f"{d.code.name} {d.reason}"] += 1
                continue
            t2 = time.perf_counter()
            lat_reserve.append((t1 - t0) * 1e3)
            lat_consume.append((t2 - t1) * 1e3)
            lat_cycle.append((t2 - t0) * 1e3)

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    return {
        "wall": time.monotonic() - started,
        "reserve": lat_reserve,
        "consume": lat_consume,
        "cycle": lat_cycle,
        "errors": dict(errors),
    }


async def measure_grpc(label: str, suite: Suite, billing: Billing, accounts: list[str], args, groups) -> Result:
    say(f"\n[{label}] grpc.aio, {args.clients} clients, warm-up {args.warmup:g}s, measuring {args.duration:g}s ...")
    warm = await grpc_cycles(billing, accounts, args.clients, args.warmup, f"gw{uuid.uuid4().hex[:8]}")
    db0 = settled_db_counters(suite)
    idle = idle_groups(suite, groups)
    idle0 = cpu_snapshot(idle)
    sleeps0 = sleeps(groups)
    before, busy0 = cpu_snapshot(groups), machine_busy_seconds()
    me = psutil.Process()
    own0 = sum(me.cpu_times()[:2])
    r = await grpc_cycles(billing, accounts, args.clients, args.duration, f"gm{uuid.uuid4().hex[:8]}")
    after, busy1 = cpu_snapshot(groups), machine_busy_seconds()
    sleeps1 = sleeps(groups)
    own = sum(me.cpu_times()[:2]) - own0
    idle1 = cpu_snapshot(idle)
    db1 = settled_db_counters(suite)
    cycles = len(r["cycle"])
    result = Result(
        label=label,
        path="grpc",
        accounts=len(accounts),
        clients=args.clients,
        seconds=r["wall"],
        cycles=cycles,
        requests=2 * cycles + sum(r["errors"].values()),
        latency_ms={
            "reserve_p50": pct(r["reserve"], 0.5),
            "reserve_p99": pct(r["reserve"], 0.99),
            "consume_p50": pct(r["consume"], 0.5),
            "consume_p99": pct(r["consume"], 0.99),
            "op_p50": pct(r["cycle"], 0.5),
            "op_p99": pct(r["cycle"], 0.99),
            "op_mean": round(statistics.fmean(r["cycle"]), 2) if r["cycle"] else float("nan"),
        },
        errors=r["errors"],
        cpu_seconds={k: max(0.0, after[k] - before[k]) for k in groups},
        machine_busy_cores=(busy1 - busy0) / r["wall"],
        load_generator_cores=own / r["wall"],
        idle_suite_cores=sum(idle1[k] - idle0[k] for k in idle) / r["wall"],
        warmup_cycles=len(warm["cycle"]),
        uncertain=sum(r["errors"].values()) + sum(warm["errors"].values()),
        extra={
            "load_generator_cpu_ms_per_op": round(own * 1e3 / max(cycles, 1), 3),
            "billing_db_per_op": db_per_op(db0, db1, cycles),
            "sleeps_per_op": per_op(sleeps0, sleeps1, cycles),
        },
    )
    report(result)
    return result


def settled_db_counters(suite: Suite) -> dict[str, int] | None:
    """The billing database's transaction and session counters (pg_stat_database), after a
    pause: backends flush their statistics about once a second."""
    time.sleep(1.5)
    return db_counters(suite, "billing")


def db_per_op(db0: dict | None, db1: dict | None, ops: int) -> dict[str, float] | None:
    if db0 is None or db1 is None or not ops:
        return None
    return {k: round((db1[k] - db0[k]) / ops, 3) for k in db0}


def report(r: Result) -> None:
    lat = ", ".join(f"{k} {v}" for k, v in r.latency_ms.items())
    say(
        f"  {r.ops:,.1f} ops/s ({r.cycles} reserve+consume in {r.seconds:.1f}s; "
        f"{r.requests / r.seconds:,.1f} req/s), latency ms: {lat}"
    )
    by = ", ".join(f"{k} {v * 1e3 / max(r.cycles, 1):.2f}" for k, v in r.cpu_seconds.items())
    say(f"  errors {sum(r.errors.values())} {r.errors or ''}; CPU ms/op {r.cpu_ms_per_op:.2f} ({by})")
    say(
        f"  machine {r.machine_busy_cores:.2f} cores busy = {r.cpu_seconds and sum(r.cpu_seconds.values()) / r.seconds:.2f} "
        f"counted / {r.load_generator_cores:.2f} load generator / {r.idle_suite_cores:.2f} rest of the suite / "
        f"{r.other_cores:.2f} other"
        + ("   <- another load shared the machine: figures are noisy" if r.other_cores > 0.25 else "")
    )
    waits = r.extra.get("sleeps_per_op")
    if waits:
        say(
            "  thread sleeps per op (voluntary context switches, ~ wake-ups): "
            + ", ".join(f"{k} {v}" for k, v in waits.items())
        )
    db = r.extra.get("billing_db_per_op")
    if db:
        say(
            f"  billing database per op: {db['transactions']:.2f} transactions, {db['sessions']:.3f} new connections "
            "(background work included)"
        )


# -- invariants ----------------------------------------------------------------------------------

LEDGER_VS_WALLETS = """
WITH l AS (
  SELECT account_id,
    coalesce(sum(amount) FILTER (WHERE kind IN ('GRANT', 'TOPUP', 'REFILL')
                                   OR (kind = 'ADJUSTMENT' AND reservation_id IS NULL)), 0) AS granted,
    coalesce(sum(amount) FILTER (WHERE kind = 'CONSUME'), 0) AS consumed,
    coalesce(sum(CASE WHEN kind = 'RESERVE' THEN amount
                      WHEN kind IN ('CONSUME', 'RELEASE', 'EXPIRE') THEN -amount ELSE 0 END), 0) AS reserved,
    coalesce(sum(amount) FILTER (WHERE kind = 'ADJUSTMENT' AND reservation_id IS NOT NULL), 0) AS overdraft,
    count(*) AS entries, count(DISTINCT seq) AS seqs, min(seq) AS min_seq, max(seq) AS max_seq
  FROM credit_ledger GROUP BY account_id),
r AS (
  SELECT account_id, coalesce(sum(amount) FILTER (WHERE status = 'ACTIVE'), 0) AS active
  FROM reservations GROUP BY account_id)
SELECT w.account_id,
  w.granted, l.granted, w.consumed, l.consumed, w.reserved, l.reserved, coalesce(r.active, 0),
  w.overdraft, l.overdraft, w.entries, l.entries, l.seqs, l.min_seq, l.max_seq
FROM wallets w JOIN l USING (account_id) LEFT JOIN r USING (account_id)
WHERE w.granted <> l.granted OR w.consumed <> l.consumed OR w.reserved <> l.reserved
   OR w.reserved <> coalesce(r.active, 0) OR w.overdraft <> l.overdraft
   OR w.entries <> l.entries OR l.seqs <> l.entries OR l.min_seq <> 1 OR l.max_seq <> l.entries
"""

CONSUMED_WITHOUT_ENTRY = """
SELECT count(*) FROM reservations r
WHERE r.status = 'CONSUMED' AND NOT EXISTS (
  SELECT 1 FROM credit_ledger l WHERE l.reservation_id = r.id AND l.kind = 'CONSUME' AND l.amount = r.consumed_amount)
"""

TOTALS = """
SELECT (SELECT count(*) FROM wallets), (SELECT coalesce(sum(consumed), 0) FROM wallets),
       (SELECT count(*) FROM credit_ledger), (SELECT count(*) FROM reservations WHERE status = 'ACTIVE'),
       (SELECT count(*) FROM reservations WHERE status = 'CONSUMED')
"""


async def check_invariants(suite: Suite, billing: Billing, results: list[Result]) -> dict:
    violations: list[str] = []
    stub, md = billing.stub, billing.metadata

    # the API: every account, and the aggregate
    wallets = []
    cursor = ""
    while True:
        page = await stub.ListAccounts(
            pb.ListAccountsRequest(page=common_pb2.PageRequest(limit=500, cursor=cursor)), metadata=md, timeout=30
        )
        for acc in page.accounts:
            st = await stub.GetAccountStatus(pb.GetAccountStatusRequest(account_id=acc.id), metadata=md, timeout=10)
            w = st.account.wallet
            wallets.append(w)
            if w.granted - w.consumed - w.reserved != w.available:
                violations.append(f"api: account {acc.id}: {w.granted} - {w.consumed} - {w.reserved} != {w.available}")
        cursor = page.page.next_cursor
        if not cursor:
            break
    agg = await stub.GetCreditAggregate(pb.GetCreditAggregateRequest(), metadata=md, timeout=30)
    t = agg.total
    if t.granted - t.consumed - t.reserved != t.available:
        violations.append(f"api: aggregate {t.granted} - {t.consumed} - {t.reserved} != {t.available}")
    for name in ("granted", "consumed", "reserved", "available"):
        total = sum(getattr(w, name) for w in wallets)
        if getattr(t, name) != total:
            violations.append(f"api: aggregate {name} {getattr(t, name)} != sum over accounts {total}")
    if agg.accounts != len(wallets):
        violations.append(f"api: aggregate counts {agg.accounts} accounts, the list has {len(wallets)}")

    # the database
    for row in filter(None, suite.pg.psql(LEDGER_VS_WALLETS, "billing").splitlines()):
        violations.append(
            f"db: balance row != ledger (account, wallet/ledger granted, consumed, reserved "
            f"[+active], overdraft, entries [+seqs, min, max]): {row}"
        )
    orphans = int(suite.pg.psql(CONSUMED_WITHOUT_ENTRY, "billing") or 0)
    if orphans:
        violations.append(f"db: {orphans} consumed reservations without their CONSUME ledger entry")
    accounts_n, consumed_db, ledger_rows, active_n, consumed_n = (
        int(x) for x in suite.pg.psql(TOTALS, "billing").split("|")
    )

    # no lost update: every consume a client saw succeed is in the database
    seen = sum(r.cycles + r.warmup_cycles for r in results)
    slack = sum(r.uncertain for r in results)
    if consumed_db < seen:
        violations.append(f"lost update: clients saw {seen} consumes succeed, the wallets record {consumed_db}")
    elif consumed_db > seen + slack:
        violations.append(f"the wallets record {consumed_db} consumed, clients saw {seen} (+{slack} uncertain)")
    if consumed_n != consumed_db:  # every op consumed exactly 1 credit
        violations.append(f"{consumed_n} consumed reservations but {consumed_db} credits consumed")

    # billing's own check, run by reconciliation (dry run: changes nothing)
    try:
        rec = await stub.Reconcile(pb.ReconcileRequest(dry_run=True, limit=1), metadata=md, timeout=60)
        service_check: list[str] | str = list(rec.violations)
        violations += [f"billing: {v}" for v in rec.violations]
    except grpc.aio.AioRpcError as exc:
        d = parse_rpc_error(exc)
        service_check = f"not available ({d.code.name} {d.reason})"

    return {
        "violations": violations,
        "accounts": accounts_n,
        "ledger_entries": ledger_rows,
        "credits_consumed_db": consumed_db,
        "consumes_seen_by_clients": seen,
        "uncertain": slack,
        "reservations_active_left": active_n,
        "aggregate": {
            "granted": t.granted,
            "consumed": t.consumed,
            "reserved": t.reserved,
            "available": t.available,
            "accounts": agg.accounts,
            "active_reservations": agg.active_reservations,
        },
        "billing_reconcile_check": service_check,
    }


# -- main ----------------------------------------------------------------------------------------


async def suite_figures(suite: Suite, args, wrk: str, tmp: Path) -> tuple[list[Result], dict, dict]:
    """The closed-loop targets, the invariants after them, and the rest of the figures (the
    in-run baseline, the open loop)."""
    billing_addr = f"127.0.0.1:{suite.ports.grpc['billing']}"
    pg = suite.pg.proc.pid
    http_groups = {
        "envoy": suite.procs["envoy"].pid,
        "gateway": suite.procs["gateway"].pid,
        "billing": suite.procs["billing"].pid,
        "postgres": pg,
        "nats": suite.nats.proc.pid,
    }
    grpc_groups = {"billing": suite.procs["billing"].pid, "postgres": pg, "nats": suite.nats.proc.pid}

    token = await login(suite)
    setup = Billing(billing_addr, token)
    try:
        t0 = time.monotonic()
        hot = [await setup.account("bench hot account", HOT_GRANT)]
        many: list[str] = []
        for start in range(0, args.accounts, 32):
            many += await asyncio.gather(
                *(setup.account(f"bench account {i}", MANY_GRANT) for i in range(start, min(start + 32, args.accounts)))
            )
        say(
            f"\n1 hot account ({HOT_GRANT:,} credits) and {len(many)} accounts ({MANY_GRANT:,} each) "
            f"created in {time.monotonic() - t0:.1f}s"
        )
    finally:
        await setup.close()

    await asyncio.to_thread(wait_for_quiet, after="the set-up")
    baseline = in_run_baseline(suite, wrk, tmp, args)
    results: list[Result] = []
    for accounts, which in ((hot, "one hot account"), (many, f"{len(many)} accounts")):
        token = await login(suite)  # fresh for each target: access tokens live minutes
        await asyncio.to_thread(wait_for_quiet, after="the last run")
        results.append(measure_http(f"HTTP via Envoy, {which}", suite, wrk, token, accounts, args, http_groups, tmp))
        billing = Billing(billing_addr, token)
        try:
            await asyncio.to_thread(wait_for_quiet, after="the last run")
            results.append(await measure_grpc(f"gRPC to billing, {which}", suite, billing, accounts, args, grpc_groups))
        finally:
            await billing.close()

    open_loop = await open_loop_figures(suite, await login(suite), many, args)

    say("\nchecking the invariants ...")
    billing = Billing(billing_addr, await login(suite))
    try:
        invariants = await check_invariants(suite, billing, results)
    finally:
        await billing.close()
    return results, invariants, {"baseline": baseline, "open_loop": open_loop}


def in_run_baseline(suite: Suite, wrk: str, tmp: Path, args) -> dict:
    """skeleton_path.py's baseline (Starlette + asyncpg answering one trivial query) measured
    in this run: this VM's speed moves by a fifth or more from one run to the next, so each
    target's CPU per op is also shown as a multiple of this, which the machine's mood cancels."""
    proc, root = start_baseline(suite, tmp, pool_size=8)
    try:
        settings = argparse.Namespace(warmup=args.warmup, duration=min(args.duration, 5.0), connections=32, threads=2)
        m = measure(
            "in-run baseline",
            wrk,
            f"{root}/v1/meta/ops",
            {"baseline": proc.pid, "postgres": suite.pg.proc.pid},
            settings,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return {"req_per_s": round(m.wrk.rps), "cpu_ms_per_request": round(m.cpu_ms_per_request, 3)}


# -- (iii) open loop through Envoy: fixed arrival rate, latency from each request's due time --------


def wait_for_quiet(busy_cores: float = 0.15, timeout: float = 90.0, after: str = "the closed-loop targets") -> float:
    """Wait until the machine is quiet (busy < `busy_cores`, one second at a time): the set-up and
    each target leave PostgreSQL checkpointing, vacuuming and analysing thousands of new rows,
    which is not the cost of the next target. Returns the seconds waited (reported)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        before = machine_busy_seconds()
        time.sleep(1.0)
        if machine_busy_seconds() - before < busy_cores:
            break
    waited = time.monotonic() - t0
    say(f"\n(waited {waited:.0f}s for the machine to be quiet after {after})")
    return round(waited, 1)


# PostgreSQL's background work that can stall commits: checkpoints (and their fsync time) on the
# server, autovacuum and autoanalyze runs on the billing database.
PG_BACKGROUND = (
    "SELECT (SELECT num_timed + num_requested FROM pg_stat_checkpointer), "
    "(SELECT round(sync_time) FROM pg_stat_checkpointer), "
    "(SELECT sum(autovacuum_count + autoanalyze_count) FROM pg_stat_all_tables)"
)


def pg_background(suite: Suite) -> tuple[int, int, int] | None:
    try:
        return tuple(int(x or 0) for x in suite.pg.psql(PG_BACKGROUND, "billing").split("|"))
    except (RuntimeError, ValueError):
        return None


def background_during(before: tuple | None, after: tuple | None) -> dict | None:
    """What PostgreSQL did in the background during a run: a stall in the open loop with a
    checkpoint here points at its fsync."""
    if before is None or after is None:
        return None
    names = ("checkpoints", "checkpoint_sync_ms", "autovacuums")
    return {name: a - b for name, a, b in zip(names, after, before, strict=True)}


async def open_loop_figures(suite: Suite, token: str, accounts: list[str], args) -> dict:
    """Reserves (a write: one transaction, a ledger entry, an idempotency key) at `--open-rate`
    req/s over the accounts (wrk is closed-loop; this is not: openloop.py), then the unloaded
    latency of a one-row GET (an account): one client on one kept-alive connection, back to back
    (the issue's measure), and at a trickle of 20 req/s, where every request finds the processes
    idle and their caches cold (shown, not the bar)."""
    host, port = "127.0.0.1", suite.ports.http
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    run = uuid.uuid4().hex[:8]

    def reserve(i: int):
        key = f"open-{run}-{i}"
        body = json.dumps(
            {"account_id": accounts[i % len(accounts)], "amount": 1, "ref_type": "manual", "ref_id": key}
        ).encode()
        return "POST", "/v1/billing/credits/reserve", {**auth, "Idempotency-Key": key}, body

    def get_account(i: int):
        return "GET", f"/v1/billing/accounts/{accounts[i % len(accounts)]}", auth, b""

    out: dict = {"quiet_wait_s": await asyncio.to_thread(wait_for_quiet)}
    runs = (
        ("reserve", args.open_rate, reserve, args.duration),
        ("get account, trickle", TRICKLE_RATE, get_account, max(3.0, args.duration / 2)),
    )
    say(f"\n[unloaded via Envoy: get account] one client, back to back, {UNLOADED_COUNT} requests ...")
    result = await asyncio.to_thread(run_sequential, host, port, count=UNLOADED_COUNT, make_request=get_account)
    say("  " + result.line())
    out["get account, unloaded"] = result.to_json()
    for name, rate, make, seconds in runs:
        say(f"\n[open loop via Envoy: {name}] {rate:g} req/s offered for {seconds:g}s ...")
        pg0 = pg_background(suite)
        result: OpenLoopResult = await asyncio.to_thread(
            run_open_loop, host, port, rate=rate, seconds=seconds, make_request=make
        )
        background = background_during(pg0, pg_background(suite))
        say("  " + result.line())
        if background is not None:
            say(
                f"  PostgreSQL meanwhile: {background['checkpoints']} checkpoint(s) "
                f"({background['checkpoint_sync_ms']} ms of fsync), {background['autovacuums']} autovacuum/analyze run(s)"
            )
        out[name] = {**result.to_json(), "postgres_background": background}
    return out


def print_open_loop(open_loop: dict) -> None:
    w, g, t = open_loop["reserve"], open_loop["get account, unloaded"], open_loop["get account, trickle"]
    ok_w = w["errors"] == 0 and w["latency_ms"]["p50"] <= OPEN_P50_MS and w["latency_ms"]["p99"] <= OPEN_P99_MS
    ok_g = g["errors"] == 0 and g["latency_ms"]["p50"] <= UNLOADED_P50_MS
    say(
        f"  open loop, reserve via Envoy at {w['offered_rps']:g} req/s offered: answered {w['achieved_rps']:,} req/s, "
        f"p50 {w['latency_ms']['p50']:.2f} ms, p99 {w['latency_ms']['p99']:.2f} ms, {w['errors']} errors "
        f"(target p50 ≤ {OPEN_P50_MS:g} ms, p99 ≤ {OPEN_P99_MS:g} ms, 0 errors) — {'met' if ok_w else 'NOT met'}"
    )
    say(
        f"  unloaded GET /v1/billing/accounts/{{id}} via Envoy (one client, back to back): p50 "
        f"{g['latency_ms']['p50']:.2f} ms, p99 {g['latency_ms']['p99']:.2f} ms "
        f"(target p50 ≤ {UNLOADED_P50_MS:g} ms) — {'met' if ok_g else 'NOT met'}"
    )
    say(
        f"  the same at a trickle ({t['offered_rps']:g} req/s, idle processes between requests): p50 "
        f"{t['latency_ms']['p50']:.2f} ms, p99 {t['latency_ms']['p99']:.2f} ms"
    )


def print_summary(results: list[Result], invariants: dict, figures: dict, machine: dict) -> None:
    say("\n" + "=" * 100)
    say(
        f"credits — reserve+consume, {results[0].clients} concurrent clients; "
        f"{machine['cores_logical']} logical cores ({machine['cores_usable']} usable), {machine['cpu']}"
    )
    base = figures["baseline"]["cpu_ms_per_request"]
    say(
        f"  {'target':<40} {'ops/s':>9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU ms/op':>10} "
        f"{'÷ base':>7}"
    )
    for r in results:
        p50 = r.latency_ms.get("op_p50", r.latency_ms.get("request_p50"))
        p99 = r.latency_ms.get("op_p99", r.latency_ms.get("request_p99"))
        say(
            f"  {r.label:<40} {r.ops:>9,.1f} {r.requests / r.seconds:>9,.1f} {p50:>8} {p99:>8} "
            f"{sum(r.errors.values()):>7} {r.cpu_ms_per_op:>10.2f} {r.cpu_ms_per_op / base:>6.1f}×"
        )
    say("  (op = reserve + consume. Latency: per op for gRPC; per HTTP request for wrk, which reports only")
    say("   requests; an op over HTTP is two of them. ÷ base: CPU per op over the in-run baseline's CPU per")
    say(f"   request, {base:.3f} ms — skeleton_path.py's Starlette + asyncpg read, measured in this run.)")
    noisy = [f"{r.label} ({r.other_cores:.2f} cores)" for r in results if r.other_cores > 0.25]
    if noisy:
        say("  NOISY: something outside the suite used CPU during " + "; ".join(noisy) + " — rerun on a quiet machine")
    v = invariants["violations"]
    say(
        f"  invariants: {len(v)} violation(s); {invariants['accounts']} accounts, {invariants['ledger_entries']:,} "
        f"ledger entries, {invariants['credits_consumed_db']:,} credits consumed (clients saw "
        f"{invariants['consumes_seen_by_clients']:,} + ≤{invariants['uncertain']} in flight or failed), "
        f"{invariants['reservations_active_left']} reservations left active by wrk's stop"
    )
    say(f"  billing's own invariant check: {invariants['billing_reconcile_check'] or 'healthy'}")
    for line in v[:20]:
        say(f"    ! {line}")
    hot = [r for r in results if r.accounts == 1]
    best = max((r.ops for r in hot), default=0.0)
    verdict = "met" if best >= TARGET_OPS and not v else "NOT met"
    say(
        f"  quality.md target: ≥ {TARGET_OPS} ops/s on one account with 64 concurrent clients, zero invariant "
        f"violations → one account: " + ", ".join(f"{r.path} {r.ops:,.1f} ops/s" for r in hot) + f" — {verdict}"
    )
    print_open_loop(figures["open_loop"])
    say("=" * 100)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Credit reserve+consume benchmark.")
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured per target (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per target (default 2)")
    p.add_argument("--clients", type=int, default=64, help="concurrent clients / wrk connections (default 64)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--accounts", type=int, default=256, help="accounts of the many-accounts target (default 256)")
    p.add_argument("--trace-sample", type=float, default=0.1, help="OTEL trace sampling ratio (default 0.1)")
    p.add_argument(
        "--no-tracing",
        action="store_true",
        help="OTEL_SDK_DISABLED=true in the suite: no instrumentation at all (to see what tracing costs)",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 1 s warm-up, 3 s measured, 64 accounts")
    p.add_argument("--strict", action="store_true", help="exit 1 when an invariant is violated")
    p.add_argument(
        "--open-rate",
        type=float,
        default=OPEN_RATE,
        help=f"req/s offered in the open-loop reserve run (default {OPEN_RATE})",
    )
    p.add_argument("--out", type=Path, default=OUT_PATH)
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.accounts = 3.0, 1.0, min(args.accounts, 64)
    return args


async def amain(args) -> dict:
    machine = machine_info()
    say(f"machine: {machine['cores_logical']} logical cores ({machine['cores_usable']} usable), {machine['cpu']}")
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="zenops-bench-credits-") as tmp:
        tracing = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": str(args.trace_sample)}
        suite = Suite(Path(tmp), Ports.free(), extra_env={"OTEL_SDK_DISABLED": "true"} if args.no_tracing else tracing)
        say(f"\nstarting the suite in {tmp} ...")
        suite.up(say=say)
        try:
            results, invariants, figures = await suite_figures(suite, args, wrk, Path(tmp))
        finally:
            suite.down()
    print_summary(results, invariants, figures, machine)
    return {
        "benchmark": "credits",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "clients": args.clients,
            "wrk_threads": args.threads,
            "accounts": args.accounts,
            "tracing": "off (OTEL_SDK_DISABLED)" if args.no_tracing else f"sampled at {args.trace_sample:g}",
        },
        "target": {"ops_per_s_one_account": TARGET_OPS, "invariant_violations": 0},
        "results": [r.to_json() for r in results],
        "invariants": invariants,
        **figures,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report_ = asyncio.run(amain(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report_, indent=2))
    say(f"\nfigures written to {args.out}")
    return 1 if args.strict and report_["invariants"]["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
