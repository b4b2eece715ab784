"""Event lag of the workflow under write load: commit → effect applied, per consumer.

A suite of its own (as `make run`), then for `--seconds`: `--writers` clients create tasks
through Envoy as fast as they can (the write load) while the portal user's channel requests are
accepted at `--accept-rate`/s. Every event a consumer applied in that window is matched to its
producer's outbox row: lag = the consumer's inbox `processed_at` − the outbox `created_at` (the
commit that wrote the event; both clocks are PostgreSQL's). Consumers: billing's reactions and
repogen's work-order opener (ops' `ops.channel_request.accepted`), ops' follow-ups of billing and
repogen events. Prints p50/p99/max per consumer and overall, and events never applied (lost).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reliability"))
from chaos_harness import WORKFLOW_SERVICES, db_now, sbi_world, submit_and_accept  # noqa: E402

from zenops_devstack.suite import Ports, Suite  # noqa: E402


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def lags(suite: Suite, since: str) -> tuple[dict[str, list[float]], int, int]:
    """({consumer: lags in ms}, events produced since `since`, events no consumer applied)."""
    produced: dict[str, float] = {}
    for db in WORKFLOW_SERVICES:
        for line in suite.pg.psql(
            f"SELECT id, extract(epoch FROM created_at) FROM outbox WHERE created_at >= '{since}'", db
        ).splitlines():
            event_id, at = line.split("|")
            produced[event_id] = float(at)
    found: dict[str, list[float]] = {}
    applied: set[str] = set()
    for db in WORKFLOW_SERVICES:
        for line in suite.pg.psql(
            f"SELECT consumer, event_id, extract(epoch FROM processed_at) FROM inbox WHERE processed_at >= '{since}'",
            db,
        ).splitlines():
            consumer, event_id, at = line.split("|")
            if event_id in produced:
                applied.add(event_id)
                found.setdefault(f"{db}/{consumer}", []).append((float(at) - produced[event_id]) * 1e3)
    return found, len(produced), len(produced) - len(applied)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/event_lag.py")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--accept-rate", type=float, default=10.0)
    args = parser.parse_args(argv)
    data = Path(tempfile.mkdtemp(prefix="zenops-bench-lag-"))
    suite = Suite(
        data,
        Ports.free(),
        extra_env={"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    )
    print("event lag under write load: starting the suite ...", flush=True)
    suite.up(say=lambda *_: None)
    try:
        world = sbi_world(suite)
        stop = threading.Event()
        writes = [0] * args.writers

        def writer(i: int) -> None:
            api = world.manager.clone(patience=0)
            while not stop.is_set():
                r = api.send("POST", "/v1/tasks", {"title": "lag bench"}, key=str(uuid.uuid4()))
                writes[i] += r.status_code == 201

        since = db_now(suite)
        threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(args.writers)]
        for t in threads:
            t.start()
        started, accepted = time.monotonic(), 0
        while time.monotonic() - started < args.seconds:
            submit_and_accept(world)
            accepted += 1
            time.sleep(max(0.0, started + accepted / args.accept_rate - time.monotonic()))
        stop.set()
        for t in threads:
            t.join(30)
        elapsed = time.monotonic() - started
        time.sleep(3.0)  # let the last events land before reading the inboxes
        found, produced, lost = lags(suite, since)
    finally:
        suite.down()
        shutil.rmtree(data, ignore_errors=True)
    every = [v for values in found.values() for v in values]
    print(
        f"  write load: {sum(writes) / elapsed:.0f} task writes/s; {accepted} requests accepted "
        f"({accepted / elapsed:.1f}/s)"
    )
    for consumer, values in sorted(found.items()):
        print(
            f"  {consumer:<40} n={len(values):<5} p50 {pct(values, 50):7.1f} ms  p99 {pct(values, 99):7.1f} ms  "
            f"max {max(values):7.1f} ms"
        )
    print(
        f"  {'all consumers':<40} n={len(every):<5} p50 {pct(every, 50):7.1f} ms  p99 {pct(every, 99):7.1f} ms; "
        f"{produced} events produced, {lost} never applied (target p99 <= 250 ms, 0 lost)"
    )
    out = ROOT / ".bench" / "event_lag.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "p50_ms": pct(every, 50),
                "p99_ms": pct(every, 99),
                "events": produced,
                "lost": lost,
                "per_consumer": {c: {"p50": pct(v, 50), "p99": pct(v, 99), "n": len(v)} for c, v in found.items()},
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
