"""R2–R8 drivers: each runs one scenario against a live suite and returns its figures (a dict).
The fast form (pytest) and the full form (`make reliability`) differ only in the sizes passed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
from chaos_harness import (
    Api,
    Chaos,
    Refused,
    World,
    count_effects,
    db_now,
    events_since,
    poll,
    render_and_release,
    restart,
    run_concurrently,
    settle,
    submit_and_accept,
    unpublished,
)

# -- R2: crash safety --------------------------------------------------------------------------------


def r2_crash_safety(
    suite,
    world: World,
    *,
    requests: int,
    reports: int,
    workers: int = 6,
    every: tuple[float, float] = (1.0, 3.0),
    seed: int | None = None,
) -> dict:
    """`requests` channel requests accepted (and `reports` of them taken to the release) while
    the chaos kill -9s ops, billing or repogen; afterwards every effect is counted."""
    since = db_now(suite)
    accepted: list[tuple[str, str]] = []
    released: list[tuple[str, str]] = []

    def one(i: int) -> None:
        request_id, assignment_id = submit_and_accept(world)
        accepted.append((request_id, assignment_id))
        if i < reports:
            released.append((assignment_id, render_and_release(world, assignment_id)))

    started = time.monotonic()
    chaos = Chaos(suite, every=every, seed=seed)
    run_concurrently(one, requests, workers, chaos)
    suite.wait_healthy()
    effects = settle(suite, [r for r, _ in accepted], [a for a, _ in released], [w for _, w in released])
    return {
        "events": events_since(suite, since),
        "lost": effects.lost,
        "duplicated": effects.duplicated,
        "kills": dict(chaos.kills),
        "effects": effects.by_kind(),
        "seconds": round(time.monotonic() - started, 1),
    }


# -- R3: broker outage ---------------------------------------------------------------------------------


@dataclass
class Load:
    """Workers calling `step` until stopped; each outcome recorded with its start and end."""

    step: object
    workers: int

    def __post_init__(self) -> None:
        self.outcomes: list[tuple[float, float, int | str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.workers)]

    def _run(self, i: int) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                status = self.step(i)
            except httpx.TransportError as exc:
                status = type(exc).__name__
            self.outcomes.append((t0, time.monotonic(), status))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def r3_broker_outage(suite, world: World, *, outage: float, workers: int = 4) -> dict:
    """NATS stopped `outage` seconds while channel requests are submitted and accepted: every
    write must succeed (no retry needed), and every event arrive once NATS is back."""
    since = db_now(suite)
    accepted: list[str] = []
    failures: Counter = Counter()
    portal = [world.partner.portal.clone(patience=0) for _ in range(workers)]
    manager = [world.manager.clone(patience=0) for _ in range(workers)]

    def step(i: int) -> int:
        try:
            request = portal[i].must(
                "POST",
                "/v1/channel-requests",
                {
                    "borrower_name": "Broker Outage",
                    "property": {
                        "address_line1": "1 FC Road",
                        "city": "Pune",
                        "state": "MH",
                        "pin_code": "411004",
                        "property_type": "residential_flat",
                    },
                    "bank_id": world.bank_id,
                    "branch_id": world.branch_id,
                    "requested_service": "valuation_report",
                    "credits": 1,
                },
            )
            manager[i].must("POST", f"/v1/channel-requests/{request['id']}/accept", {})
        except (Refused, TimeoutError) as exc:
            failures[getattr(getattr(exc, "response", None), "status_code", "timeout")] += 1
            return 0
        accepted.append(request["id"])
        return 200

    with Load(step, workers) as load:
        time.sleep(1.0)  # writes flowing before the outage
        suite.stop_nats()
        down_at = time.monotonic()
        time.sleep(outage)
        during = len([o for o in load.outcomes if o[0] >= down_at])
        suite.start_nats()
        back_at = time.monotonic()
        time.sleep(1.0)
    effects = settle(suite, accepted)
    poll(lambda: unpublished(suite) == 0, "the outboxes to drain", timeout=120)
    drain = time.monotonic() - back_at
    return {
        "events": events_since(suite, since),
        "lost": effects.lost,
        "duplicated": effects.duplicated,
        "writes": len(accepted) * 2,
        "writes_during_outage": during * 2,
        "write_failures": sum(failures.values()),
        "outage_s": outage,
        "drain_s": round(drain, 2),
    }


# -- R4: database restart ------------------------------------------------------------------------------


PROBES = {
    "ops": "/v1/assignments",
    "billing": "/v1/billing/accounts",
    "repogen": "/v1/work-orders",
    "identity": "/v1/users",
}


def r4_database_restart(suite, world: World, *, outage: float, workers: int = 4) -> dict:
    """PostgreSQL stopped `outage` seconds under reads and writes: callers get 503 (never 500),
    and the services serve again by themselves (no process restarted)."""
    pids = {name: proc.pid for name, proc in suite.procs.items()}
    clients = [world.manager.clone(patience=0) for _ in range(workers)]
    routes = list(PROBES.values())

    by_route: Counter = Counter()

    def step(i: int) -> int:
        api = clients[i]
        if i % 2:
            method, path = "POST", "/v1/tasks"
            status = api.send(method, path, {"title": "R4 task"}, key=str(uuid.uuid4())).status_code
        else:
            method, path = "GET", routes[int(time.monotonic() * 10) % len(routes)]
            status = api.send(method, path).status_code
        if status >= 500:
            by_route[f"{status} {method} {path}"] += 1
        return status

    with Load(step, workers) as load:
        time.sleep(1.0)
        down_at = time.monotonic()
        suite.pg.stop()
        time.sleep(outage)
        suite.pg.start()
        up_at = time.monotonic()
        probe = world.manager.clone(patience=0)
        poll(
            lambda: all(probe.send("GET", path).status_code == 200 for path in PROBES.values()),
            "every service to read from PostgreSQL again",
            timeout=120,
            interval=0.1,
        )
        recovered = time.monotonic() - up_at
        time.sleep(1.0)
    during = Counter(status for t0, _, status in load.outcomes if t0 >= down_at and t0 < up_at + recovered)
    after = Counter(status for t0, _, status in load.outcomes if t0 >= up_at + recovered)
    restarted = sorted(name for name, proc in suite.procs.items() if pids.get(name) != proc.pid or proc.poll())
    server_errors = sum(n for status, n in (during + after).items() if status in (500, 501, 502))
    return {
        "server_errors": server_errors,
        "during": {str(k): v for k, v in during.items()},
        "failures_after_recovery": sum(n for s, n in after.items() if s not in (200, 201)),
        "errors_by_route": dict(by_route),
        "outage_s": outage,
        "recovery_s": round(recovered, 2),
        "restarted": restarted,
    }


# -- R5: fuzzing the OpenAPI document -----------------------------------------------------------------

# Operations that would end the fuzzing principal's own session (the run goes on with its token).
SELF_ENDING = ["/v1/auth/logout", "/v1/auth/sessions/{session_id}", "/v1/auth/password"]


def r5_fuzzing(
    suite, world: World, *, max_examples: int, max_time: int, workers: int = 2, report_dir: Path | None = None
) -> dict:
    """schemathesis on /v1/openapi.json through Envoy, as a super admin of its own: the
    examples, coverage, fuzzing and stateful phases (links carry real ids). Figures from its
    JSON report: cases run, server errors, responses outside the schema."""
    fuzzer, _ = world.user(["super_admin"])
    report_dir = report_dir or Path(tempfile.mkdtemp(prefix="zenops-r5-"))
    report = report_dir / "schemathesis.json"
    cmd = [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{suite.url}/v1/openapi.json",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--checks",
        "not_a_server_error,response_schema_conformance,content_type_conformance",
        "-H",
        f"Authorization: Bearer {fuzzer.token}",
        "--max-examples",
        str(max_examples),
        "--max-time",
        str(max_time),
        "--workers",
        str(workers),
        "--seed",
        "1212",
        "--no-color",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        *(a for path in SELF_ENDING for a in ("--exclude-path", path)),
    ]
    logs = {path: path.stat().st_size for path in Path(suite.logs).glob("*.log")}
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max_time * 3 + 300)
    figures = read_schemathesis_report(report)
    figures |= {"exit_code": proc.returncode, "seconds": round(time.monotonic() - started, 1)}
    if proc.returncode != 0:
        # schemathesis' FAILURES section names each failing request (with a curl to replay it)
        failures = proc.stdout.find("FAILURES")
        figures["output_tail"] = (proc.stdout[failures : failures + 6000] if failures >= 0 else proc.stdout[-6000:]) + (
            proc.stderr[-2000:]
        )
    if figures["server_errors"]:
        # schemathesis' report may not name the request; the services' own warnings do.
        figures["service_warnings"] = warnings_since(logs)[:40]
    return figures


def _brief(line: str) -> str:
    """A JSON log line, its traceback cut to the exception's last lines."""
    try:
        entry = json.loads(line)
    except ValueError:
        return line.strip()[:600]
    exc = entry.pop("exc", "") if isinstance(entry, dict) else ""
    return json.dumps(entry)[:600] + (f" exc: ...{exc[-1200:]}" if exc else "")


def warnings_since(offsets: dict[Path, int]) -> list[str]:
    """What each suite log gained after `offsets` (its size then): ERROR lines and Envoy's
    access-log lines of 5xx answers first, then WARNING lines."""
    errors: list[str] = []
    warnings: list[str] = []
    for path, offset in offsets.items():
        with path.open(errors="replace") as f:
            f.seek(offset)
            for ln in f:
                if '"level": "ERROR"' in ln or '"status":5' in ln or '"status": 5' in ln:
                    errors.append(f"{path.stem}: {_brief(ln)}")
                elif '"level": "WARNING"' in ln:
                    warnings.append(f"{path.stem}: {_brief(ln)}")
    return errors + warnings


def read_schemathesis_report(path: Path) -> dict:
    """schemathesis' JSON run report: cases generated; failures by type (a `ServerError` is a
    5xx; every other failure of the checks run is an answer outside the document)."""
    data = json.loads(path.read_text())
    failures = {
        f"{f['code']} {f['title']}": {"count": f["count"], "operations": f["operations"]}
        for f in data.get("failures", [])
    }
    server = sum(f["count"] for f in data.get("failures", []) if f["type"] == "ServerError")
    return {
        "cases": data["test_cases"]["generated"],
        "server_errors": server,
        "schema_violations": sum(f["count"] for f in data.get("failures", [])) - server,
        "operations": data["operations"]["tested"],
        "errors": len(data.get("errors", [])),
        "failures": failures,
    }


# -- R7: isolation sweep --------------------------------------------------------------------------------


def r7_isolation(
    suite, world: World, spec: dict, owned: dict[str, str], secret_ids: set[str], principals: dict[str, Api]
) -> dict:
    """Every GET route of the document (list and get), as each principal: a get names the
    owner's ids; a leak is a 2xx whose body holds any of the owner's secret ids."""
    tried = leaked = 0
    leaks: list[str] = []
    for path, item in spec["paths"].items():
        op = item.get("get")
        if op is None or op.get("security") == []:
            continue
        params = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
        if any(name not in owned for name in params):
            continue
        url = path.format(**{name: owned[name] for name in params})
        for who, api in principals.items():
            tried += 1
            r = api.send("GET", url)
            if r.status_code < 300 and any(i in r.text for i in secret_ids):
                leaked += 1
                leaks.append(f"{who} GET {url} → {r.status_code}")
    return {"tried": tried, "leaked": leaked, "leaks": leaks[:20], "principals": sorted(principals)}


# -- R8: graceful shutdown --------------------------------------------------------------------------------

R8_STEPS = {
    "identity": ("GET", "/v1/users", None),
    "ops": ("POST", "/v1/tasks", {"title": "R8 task"}),
    "billing": ("GET", "/v1/billing/accounts", None),
    "repogen": ("GET", "/v1/work-orders", None),
    "gateway": ("GET", "/v1/assignments", None),
}


def r8_graceful_shutdown(
    suite, world: World, *, services=tuple(R8_STEPS), workers: int = 6, warmup: float = 1.0
) -> dict:
    """SIGTERM each service while `workers` clients call it; a request in flight at the signal
    (sent before it, answered after it) must succeed. Requests sent after the signal may be
    refused 503 while the service is away (never 500)."""
    per_service: dict[str, dict] = {}
    for svc in services:
        method, path, body = R8_STEPS[svc]
        clients = [world.manager.clone(patience=0) for _ in range(workers)]

        def step(i: int, method=method, path=path, body=body, clients=clients) -> int:
            key = str(uuid.uuid4()) if method == "POST" else None
            return clients[i].send(method, path, body, key=key).status_code

        with Load(step, workers) as load:
            time.sleep(warmup)
            signalled = time.monotonic()
            code = suite.kill_process(svc, signal.SIGTERM)
            stopped = time.monotonic()
            restart(suite, svc)
            poll(
                lambda m=method, p=path, b=body: (
                    world.manager.clone(patience=0)
                    .send(m, p, b, key=str(uuid.uuid4()) if m == "POST" else None)
                    .status_code
                    in (200, 201)
                ),
                f"{svc} serving again",
                timeout=60,
            )
        in_flight = [o for o in load.outcomes if o[0] < signalled < o[1]]
        failed = [o for o in in_flight if o[2] not in (200, 201)]
        after = Counter(o[2] for o in load.outcomes if o[0] >= signalled)
        per_service[svc] = {
            "in_flight": len(in_flight),
            "failed_in_flight": len(failed),
            "failed_statuses": dict(Counter(o[2] for o in failed)),
            "exit_code": code,
            "stop_s": round(stopped - signalled, 2),
            "server_errors_after": sum(n for s, n in after.items() if s in (500, 501, 502)),
            "statuses_after": dict(after),
        }
    return {
        "failed_in_flight": sum(s["failed_in_flight"] for s in per_service.values()),
        "in_flight": sum(s["in_flight"] for s in per_service.values()),
        "server_errors": sum(s["server_errors_after"] for s in per_service.values()),
        "services": per_service,
    }


def effects_now(suite, requests) -> dict:
    return count_effects(suite, requests).by_kind()
