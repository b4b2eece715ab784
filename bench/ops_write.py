"""Ops write-path benchmark: `POST /v1/tasks` through Envoy, and the event lag of partner
intake under that load.

(a) the suite: `POST /v1/tasks` through Envoy → gateway → ops `CreateTask` (gRPC) → one
    PostgreSQL transaction (task row), the bootstrap admin's token, 10% trace sampling;
(b) the baseline, in the same run: one Starlette + asyncpg process (`bench/baseline_app.py`
    `POST /v1/tasks`) validating the same body and inserting the same row in the same
    database (explicit transaction: tenant setting + INSERT);
(c) while (a) runs, channel requests are accepted at a fixed rate through Envoy
    (`POST /v1/channel-requests/{id}/accept`): each acceptance commits
    `ops.channel_request.accepted` to ops' outbox; billing's consumer reserves the credits.
    The event lag of each is billing's inbox `processed_at` − ops' outbox `created_at` for
    the same event id (both PostgreSQL `now()`: transaction start times on one server's
    clock, so the figure includes the rest of the accept's transaction — an upper bound of
    commit → effect applied).

Reported: req/s, p50/p99, errors and CPU ms per request of (a) and (b) and their ratio;
p50/p99/max event lag and lost events (accepted requests whose reservation never
appeared). A benchmark measures and reports; it never fails on a figure.

    .venv/bin/python bench/ops_write.py            # 3 s warm-up + 10 s
    .venv/bin/python bench/ops_write.py --quick    # 1 s warm-up + 3 s smoke run

Figures also go to `.bench/ops_write.json`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

from zenops_devstack.suite import Ports, Suite

sys.path.insert(0, str(Path(__file__).resolve().parent))
from skeleton_path import (  # noqa: E402 - the shared measuring code of the benchmarks
    Measurement,
    cpu_snapshot,
    ensure_wrk,
    machine_busy_seconds,
    machine_info,
    parse_wrk,
    reaped_children_seconds,
    start_baseline,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT_PATH = REPO_ROOT / ".bench" / "ops_write.json"
TARGETS = {
    "write path through Envoy (e.g. create task), 10% trace sampling": ">= 600 req/s sustained, 0 errors",
    "event lag, commit -> consumer effect applied, under the write load": "p99 <= 250 ms, never a lost event",
}

LUA = r"""
local token = "%(token)s"
local run = "%(run)s"
local counter = 0
function request()
  counter = counter + 1
  local body = '{"title":"bench task ' .. run .. ' ' .. counter .. '","priority":"medium"}'
  return wrk.format("POST", "/v1/tasks", {["Authorization"] = "Bearer " .. token,
                                          ["Content-Type"] = "application/json"}, body)
end
"""


def say(msg: str = "") -> None:
    print(msg, flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def run_wrk_post(wrk: str, url: str, script: Path, *, seconds: float, connections: int, threads: int) -> str:
    cmd = [
        wrk,
        f"-t{max(1, min(threads, connections))}",
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


def login(suite: Suite) -> str:
    email, password = suite.admin_credentials
    # straight to the gateway: Envoy limits logins per address, which is not what is measured
    r = httpx.post(
        f"http://127.0.0.1:{suite.ports.gateway}/v1/auth/login",
        json={"email": email, "password": password, "aud": "web"},
        timeout=30,
    )
    if r.status_code != 200:
        raise SystemExit(f"login failed: {r.status_code} {r.text[:300]}")
    return r.json()["access_token"]


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30, headers={"authorization": f"Bearer {token}"})

    def post(self, path: str, body: dict | None = None, expect: int = 201) -> dict:
        r = self.http.post(path, json=body or {}, headers={"idempotency-key": str(uuid.uuid4())})
        if r.status_code != expect:
            raise SystemExit(f"POST {path} → {r.status_code} {r.text[:500]}")
        return r.json()


def prepare_intake(api: Api, requests: int) -> list[str]:
    """A CREDIT billing account with credits, a channel charged to it, and `requests`
    submitted channel requests (staff submit naming the channel)."""
    account = api.post("/v1/billing/accounts", {"display_name": "bench channel account", "policy": "credit"})
    api.post(
        f"/v1/billing/accounts/{account['id']}/credits/grant", {"amount": requests * 2, "reason": "bench"}, expect=200
    )
    channel = api.post(
        "/v1/channels",
        {
            "name": f"bench channel {uuid.uuid4().hex[:8]}",
            "channel_type": "agent",
            "commission_mode": "percent",
            "commission_value": 250,
            "billing_account_id": account["id"],
        },
    )
    ids = []
    for i in range(requests):
        ids.append(
            api.post(
                "/v1/channel-requests",
                {
                    "channel_id": channel["id"],
                    "borrower_name": f"Borrower {i}",
                    "requested_service": "valuation_report",
                    "credits": 1,
                    "property": {
                        "address_line1": f"{i} MG Road",
                        "city": "Pune",
                        "state": "MH",
                        "pin_code": "411001",
                        "property_type": "residential_flat",
                    },
                },
            )["id"]
        )
    return ids


def accept_at_rate(
    api: Api, ids: list[str], rate: float, stop: threading.Event, accepted: list[str], errors: list[str]
) -> None:
    """Open loop: one accept every 1/rate seconds (never waiting on the previous answer's
    lateness to schedule the next)."""
    start = time.monotonic()
    for n, rid in enumerate(ids):
        due = start + n / rate
        while (now := time.monotonic()) < due:
            if stop.wait(due - now):
                return
        if stop.is_set():
            return
        r = api.http.post(f"/v1/channel-requests/{rid}/accept", json={})
        (accepted if r.status_code == 200 else errors).append(rid if r.status_code == 200 else str(r.status_code))


def event_lags(suite: Suite, timeout: float = 30.0) -> tuple[list[float], int, int]:
    """(lags in ms, events published, events not applied by billing within `timeout`)."""

    def rows(database: str, sql: str) -> dict[str, float]:
        out = suite.pg.psql(sql, database)
        return {line.split("|")[0]: float(line.split("|")[1]) for line in out.splitlines() if "|" in line}

    produced = rows(
        "ops", "SELECT id, extract(epoch FROM created_at) FROM outbox WHERE event_type = 'ops.channel_request.accepted'"
    )
    deadline = time.monotonic() + timeout
    while True:
        applied = rows(
            "billing", "SELECT event_id, extract(epoch FROM processed_at) FROM inbox WHERE consumer = 'billing-ops'"
        )
        missing = [e for e in produced if e not in applied]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    lags = [(applied[e] - produced[e]) * 1e3 for e in produced if e in applied]
    return lags, len(produced), len(missing)


def measure(label: str, wrk: str, url: str, script: Path, groups: dict[str, int], args) -> Measurement:
    say(f"\n[{label}] warm-up {args.warmup:g}s ... {url}")
    run_wrk_post(wrk, url, script, seconds=args.warmup, connections=args.connections, threads=args.threads)
    say(f"[{label}] measuring {args.duration:g}s, {args.connections} connections ...")
    before = cpu_snapshot(groups)
    wrk0, busy0, t0 = reaped_children_seconds(), machine_busy_seconds(), time.monotonic()
    out = run_wrk_post(wrk, url, script, seconds=args.duration, connections=args.connections, threads=args.threads)
    wall = time.monotonic() - t0
    after = cpu_snapshot(groups)
    m = Measurement(
        label=label,
        url=url,
        wrk=parse_wrk(out),
        wall_seconds=wall,
        cpu_seconds={k: max(0.0, after[k] - before[k]) for k in groups},
        wrk_cpu_seconds=reaped_children_seconds() - wrk0,
        machine_busy_seconds=machine_busy_seconds() - busy0,
    )
    say(
        f"[{label}] {m.wrk.rps:,.0f} req/s, p50 {m.wrk.p50_ms:.2f} ms, p99 {m.wrk.p99_ms:.2f} ms, "
        f"{m.wrk.errors} errors, {m.cpu_ms_per_request:.3f} ms CPU/request"
    )
    return m


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--accept-rate", type=float, default=20.0, help="channel requests accepted per second")
    p.add_argument("--sampling", default="0.1", help="trace sampling ratio of the suite (OTEL_TRACES_SAMPLER_ARG)")
    p.add_argument("--quick", action="store_true", help="1 s warm-up, 3 s measured")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 3.0, 1.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = ensure_wrk()
    data = Path(tempfile.mkdtemp(prefix="zenops-bench-ops-"))
    # 10% sampling, spans made and dropped (no collector): the cost of tracing is counted.
    suite = Suite(
        data,
        Ports.free(),
        extra_env={"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": args.sampling},
    )
    say("starting the suite ...")
    suite.up(say=say)
    baseline = None
    try:
        token = login(suite)
        api = Api(f"http://127.0.0.1:{suite.ports.gateway}", token)
        accepts = int(args.accept_rate * (args.duration + args.warmup)) + 10
        say(f"preparing {accepts} channel requests ...")
        ids = prepare_intake(api, accepts)
        script = data / "tasks.lua"
        script.write_text(LUA % {"token": token, "run": uuid.uuid4().hex[:8]})
        pg = suite.pg.proc.pid
        groups = {
            "envoy": suite.procs["envoy"].pid,
            "gateway": suite.procs["gateway"].pid,
            "ops": suite.procs["ops"].pid,
            "postgres": pg,
            "nats": suite.nats.proc.pid,
        }

        stop, accepted, accept_errors = threading.Event(), [], []
        acceptor = threading.Thread(
            target=accept_at_rate,
            args=(Api(suite.url, token), ids, args.accept_rate, stop, accepted, accept_errors),
            daemon=True,
        )
        acceptor.start()
        suite_m = measure("suite: POST /v1/tasks via Envoy", wrk, suite.url, script, groups, args)
        stop.set()
        acceptor.join()
        lags, produced, lost = event_lags(suite)

        tenant = suite.pg.psql("SELECT tenant_id FROM tasks LIMIT 1", "ops").strip()
        baseline, base_url = start_baseline(suite, data, pool_size=4, extra_env={"BASELINE_TENANT_ID": tenant})
        base_m = measure(
            "baseline: Starlette + asyncpg", wrk, base_url, script, {"baseline": baseline.pid, "postgres": pg}, args
        )
    finally:
        if baseline is not None:
            baseline.terminate()
            baseline.wait(10)
        suite.down()
        shutil.rmtree(data, ignore_errors=True)

    ratio = suite_m.cpu_ms_per_request / base_m.cpu_ms_per_request
    say("\n" + "=" * 100)
    say(f"ops write path — POST /v1/tasks, {args.connections} connections, trace sampling {args.sampling}")
    say(f"  {'target':<36} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU ms/req':>11}")
    for m in (suite_m, base_m):
        say(
            f"  {m.label:<36} {m.wrk.rps:>9,.0f} {m.wrk.p50_ms:>8.2f} {m.wrk.p99_ms:>8.2f} {m.wrk.errors:>7} "
            f"{m.cpu_ms_per_request:>11.3f}"
        )
    say(f"  CPU per request: {ratio:.2f}x the baseline; throughput {suite_m.wrk.rps / base_m.wrk.rps:.2f}x")
    say(
        "  suite CPU ms/request by process: "
        + ", ".join(f"{k} {v * 1e3 / max(suite_m.wrk.requests, 1):.3f}" for k, v in suite_m.cpu_seconds.items())
    )
    say(
        f"  event lag accept → billing reservation ({len(accepted)} accepted at {args.accept_rate:g}/s, "
        f"{len(accept_errors)} accept errors): p50 {pct(lags, 50):.1f} ms, p99 {pct(lags, 99):.1f} ms, "
        f"max {max(lags, default=float('nan')):.1f} ms; {produced} events, {lost} not applied"
    )
    for name, target in TARGETS.items():
        say(f"  target: {name}: {target}")
    OUT_PATH.parent.mkdir(exist_ok=True)
    OUT_PATH.write_text(
        json.dumps(
            {
                "suite": suite_m.to_json(),
                "baseline": base_m.to_json(),
                "cpu_ratio": round(ratio, 3),
                "event_lag_ms": {
                    "p50": pct(lags, 50),
                    "p99": pct(lags, 99),
                    "max": max(lags, default=None),
                    "events": produced,
                    "not_applied": lost,
                    "accepted": len(accepted),
                    "accept_errors": len(accept_errors),
                    "rate_per_s": args.accept_rate,
                },
                "machine": machine_info(),
                "targets": TARGETS,
            },
            indent=2,
        )
    )
    say(f"\nfigures written to {OUT_PATH.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
