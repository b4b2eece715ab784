"""`make reliability`: the full form of R2–R8 (shared/spec/quality.md) on a suite of its own.

Starts the suite as `make run` does (free ports, a temp data dir, multi-tenant, the fake
payment providers), runs the drivers at full size — R2 ≥ 1,000 workflow events under kill -9,
R3 NATS down 30 s, R4 PostgreSQL down, R5 schemathesis, R7 the isolation sweep, R8 SIGTERM of
every service — prints the table and writes `.reliability/summary.json`. Exit 1 unless every
bar's zero figures are 0. `--fast` runs the sizes `make test` uses.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "services" / "billing" / "tests"))

from chaos_drivers import (  # noqa: E402
    r2_crash_safety,
    r3_broker_outage,
    r4_database_restart,
    r5_fuzzing,
    r8_graceful_shutdown,
)
from chaos_harness import sbi_world, suite_env  # noqa: E402
from fake_providers import FakeProviders  # noqa: E402
from reliability_summary import passed, print_table, write_summary  # noqa: E402
from test_reliability_fast import test_r5_envoys_own_errors_are_problems_matching_the_schema  # noqa: E402

from zenops_devstack.suite import REPO_ROOT, Ports, Suite  # noqa: E402

FULL = {
    "r2": {"requests": 520, "reports": 12, "workers": 6},  # ≈ 2.1 outbox events a request: ≥ 1,000
    "r3": {"outage": 30.0, "workers": 4},
    "r4": {"outage": 10.0, "workers": 6},
    "r5": {"max_examples": 25, "max_time": 600},
    "r8": {"workers": 8, "warmup": 2.0},
}
FAST = {
    "r2": {"requests": 60, "reports": 2, "workers": 4},
    "r3": {"outage": 5.0, "workers": 3},
    "r4": {"outage": 3.0, "workers": 4},
    "r5": {"max_examples": 3, "max_time": 60},
    "r8": {"workers": 4, "warmup": 0.5},
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="make reliability")
    parser.add_argument("--fast", action="store_true", help="the sizes `make test` uses")
    parser.add_argument("--only", default="r7,r3,r4,r8,r2,r5", help="which bars, in this order (the fuzzer last)")
    args = parser.parse_args()
    sizes = FAST if args.fast else FULL
    figures: dict[str, dict] = {}
    data = Path(tempfile.mkdtemp(prefix="zenops-reliability-"))
    with FakeProviders() as providers:
        suite = Suite(data, Ports.free(), extra_env=suite_env(providers))
        print(f"starting the suite in {data} ...", flush=True)
        suite.up(say=lambda *_: None)
        try:
            world = sbi_world(suite)
            for bar in args.only.split(","):
                print(f"running {bar.upper()} ...", flush=True)
                try:
                    figures[bar] = run(bar, suite, world, sizes)
                except Exception:  # noqa: BLE001 - one bar's crash is reported, the others still run
                    figures[bar] = {"error": traceback.format_exc()[-3000:]}
                print(f"  {json.dumps(figures[bar], default=str)[:2000]}", flush=True)
                suite.wait_healthy(120)
        finally:
            suite.down()
            shutil.rmtree(data, ignore_errors=True)
    write_summary(REPO_ROOT / ".reliability" / "summary.json", figures, form="fast" if args.fast else "full")
    print_table(figures)
    print(f"\nwritten to {REPO_ROOT / '.reliability' / 'summary.json'}")
    return 0 if passed(figures) and not any("error" in f for f in figures.values()) else 1


def run(bar: str, suite, world, sizes) -> dict:
    if bar == "r2":
        return r2_crash_safety(suite, world, **sizes["r2"])
    if bar == "r3":
        return r3_broker_outage(suite, world, **sizes["r3"])
    if bar == "r4":
        return r4_database_restart(suite, world, **sizes["r4"])
    if bar == "r5":
        got = r5_fuzzing(suite, world, **sizes["r5"])
        try:
            test_r5_envoys_own_errors_are_problems_matching_the_schema(suite, world)
            got["edge_problems"] = "match the schema"
        except AssertionError as exc:
            got["edge_problems"] = str(exc)[:1000]
            got["schema_violations"] += 1
        return got
    if bar == "r7":
        import test_reliability_fast

        recorded: dict = {}
        try:
            test_reliability_fast.test_r7_no_row_leaks_to_another_tenant_or_another_channel(
                suite, world, lambda key, value: recorded.update(value)
            )
        except AssertionError as exc:  # the figures were recorded before the assertion
            recorded["assertion"] = str(exc)[:1000]
        return recorded
    if bar == "r8":
        return r8_graceful_shutdown(suite, world, **sizes["r8"])
    raise ValueError(f"unknown bar {bar}")


if __name__ == "__main__":
    sys.exit(main())
