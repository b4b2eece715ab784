"""Authentication benchmark: what logging in, refreshing and verifying tokens cost.

In one process run:
(1) argon2id cost: hash and verify times of identity's PasswordHasher at its parameters —
    login is deliberately expensive, and this is why;
(2) token verification in a service, in-process: the kit's JwtVerifier (EdDSA) on a token
    it has not seen (signature checked) and on a token it has (claims cache), against a
    baseline in the same run: a bare PyJWT decode with the key in hand;
(3) with the whole suite running on this machine:
    - `POST /v1/auth/login` straight to the gateway (Envoy would rate-limit a single load
      generator to 10/s, which is the point of Envoy's login limit, not a cost figure);
    - `POST /v1/auth/refresh`, each client rotating its own session's refresh token;
    - `GET /v1/me` through Envoy with wrk: gateway verifies the token, identity verifies it
      again and checks the session in its database.
    For each: requests/s, p50, p99, errors and CPU per request of the serving processes.

    .venv/bin/python bench/auth.py            # 2 s warm-up, 10 s per target
    .venv/bin/python bench/auth.py --quick    # smoke run

Figures also go to `.bench/auth.json`. A benchmark measures and reports; it never fails on
a figure.
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
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from skeleton_path import cpu_snapshot, ensure_wrk, machine_info, parse_wrk

from zenops_devstack.suite import Ports, Suite
from zenops_identity.credentials.hashing import PasswordHasher
from zenops_kit.auth import JwksKeySource, JwtVerifier

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_PATH = REPO_ROOT / ".bench" / "auth.json"
ISSUER = "zenops-identity"


def say(msg: str = "") -> None:
    print(msg, flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- (1) argon2id ----------------------------------------------------------------------------


async def argon2_cost(rounds: int) -> dict:
    hasher = PasswordHasher()
    password = "correct horse battery staple"
    hashes, verifies = [], []
    stored = await hasher.hash(password)
    for _ in range(rounds):
        t = time.perf_counter()
        await hasher.hash(password)
        hashes.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        assert await hasher.verify(stored, password)
        verifies.append((time.perf_counter() - t) * 1e3)
    return {
        "parameters": hasher.parameters,
        "hash_ms_median": round(statistics.median(hashes), 2),
        "verify_ms_median": round(statistics.median(verifies), 2),
    }


# -- (2) verification in-process -------------------------------------------------------------


async def verification_cost(n: int) -> dict:
    key = Ed25519PrivateKey.generate()
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    jwk |= {"kid": "bench", "alg": "EdDSA", "use": "sig"}

    async def fetch() -> list[dict]:
        return [jwk]

    now = int(time.time())
    tokens = [
        jwt.encode(
            {
                "iss": ISSUER,
                "sub": str(uuid.uuid4()),
                "aud": "web",
                "tid": str(uuid.uuid4()),
                "sid": str(uuid.uuid4()),
                "roles": ["valuer"],
                "caps": ["assignments.read", "tasks.read"],
                "cv": 1,
                "jti": uuid.uuid4().hex,
                "iat": now,
                "nbf": now,
                "exp": now + 900,
            },
            key,
            algorithm="EdDSA",
            headers={"kid": "bench"},
        )
        for _ in range(n)
    ]
    verifier = JwtVerifier(JwksKeySource(fetch), issuer=ISSUER)
    await verifier.verify(tokens[0])  # load the key

    t = time.perf_counter()
    for token in tokens:
        await verifier.verify(token)
    cold_us = (time.perf_counter() - t) * 1e6 / n

    t = time.perf_counter()
    for _ in range(n):
        await verifier.verify(tokens[0])
    cached_us = (time.perf_counter() - t) * 1e6 / n

    public = key.public_key()
    t = time.perf_counter()
    for token in tokens:
        jwt.decode(token, public, algorithms=["EdDSA"], audience="web", issuer=ISSUER)
    baseline_us = (time.perf_counter() - t) * 1e6 / n
    return {
        "tokens": n,
        "kit_unseen_token_us": round(cold_us, 1),
        "kit_seen_token_us": round(cached_us, 1),
        "baseline_pyjwt_decode_us": round(baseline_us, 1),
        "kit_unseen_over_baseline": round(cold_us / baseline_us, 2),
    }


# -- (3) the suite ---------------------------------------------------------------------------


class Load:
    """Closed-loop load from `clients` coroutines for `seconds`; each calls `step(i)`."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.errors: dict[str, int] = {}

    async def run(self, step, clients: int, seconds: float) -> float:
        stop_at = time.monotonic() + seconds

        async def worker(i: int) -> None:
            while time.monotonic() < stop_at:
                t = time.perf_counter()
                try:
                    await step(i)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    key = type(exc).__name__ + (f" {exc}" if isinstance(exc, AssertionError) else "")
                    self.errors[key[:80]] = self.errors.get(key[:80], 0) + 1
                    continue
                self.latencies_ms.append((time.perf_counter() - t) * 1e3)

        started = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        return time.monotonic() - started


async def measure_http(label: str, make_step, clients: int, args, groups: dict[str, int]) -> dict:
    say(f"\n[{label}] {clients} clients, warm-up {args.warmup:g}s, measuring {args.duration:g}s ...")
    step = await make_step(clients)
    await Load().run(step, clients, args.warmup)
    load = Load()
    before = cpu_snapshot(groups)
    wall = await load.run(step, clients, args.duration)
    after = cpu_snapshot(groups)
    n = len(load.latencies_ms)
    cpu = {k: after[k] - before[k] for k in groups}
    result = {
        "label": label,
        "clients": clients,
        "requests": n,
        "rps": round(n / wall, 1),
        "p50_ms": round(pct(load.latencies_ms, 0.50), 2),
        "p99_ms": round(pct(load.latencies_ms, 0.99), 2),
        "errors": load.errors,
        "cpu_ms_per_request": {k: round(v * 1e3 / max(n, 1), 3) for k, v in cpu.items()},
        "cpu_ms_per_request_total": round(sum(cpu.values()) * 1e3 / max(n, 1), 3),
    }
    say(
        f"  {result['rps']:,.1f} req/s, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
        f"errors {sum(load.errors.values())} {load.errors or ''}"
    )
    say(f"  CPU ms/request {result['cpu_ms_per_request_total']}: {result['cpu_ms_per_request']}")
    return result


def measure_wrk(label: str, wrk: str, url: str, token: str, args, groups: dict[str, int]) -> dict:
    say(f"\n[{label}] wrk {args.connections} connections, warm-up {args.warmup:g}s, measuring {args.duration:g}s ...")
    base = [
        wrk,
        "-t2",
        f"-c{args.connections}",
        "--timeout",
        "10s",
        "--latency",
        "-H",
        f"Authorization: Bearer {token}",
    ]
    subprocess.run([*base, f"-d{args.warmup:g}s", url], capture_output=True, check=True)
    before = cpu_snapshot(groups)
    out = subprocess.run([*base, f"-d{args.duration:g}s", url], capture_output=True, text=True, check=True).stdout
    after = cpu_snapshot(groups)
    r = parse_wrk(out)
    cpu = {k: after[k] - before[k] for k in groups}
    result = {
        "label": label,
        "connections": args.connections,
        "requests": r.requests,
        "rps": round(r.rps, 1),
        "p50_ms": r.p50_ms,
        "p99_ms": r.p99_ms,
        "errors": r.errors,
        "non_2xx": r.non_2xx_3xx,
        "cpu_ms_per_request": {k: round(v * 1e3 / max(r.requests, 1), 3) for k, v in cpu.items()},
        "cpu_ms_per_request_total": round(sum(cpu.values()) * 1e3 / max(r.requests, 1), 3),
    }
    say(
        f"  {result['rps']:,.1f} req/s, p50 {r.p50_ms} ms, p99 {r.p99_ms} ms, errors {r.errors}, "
        f"non-2xx {r.non_2xx_3xx}"
    )
    say(f"  CPU ms/request {result['cpu_ms_per_request_total']}: {result['cpu_ms_per_request']}")
    return result


async def suite_figures(suite: Suite, args, wrk: str) -> list[dict]:
    email, password = suite.admin_credentials
    gateway = f"http://127.0.0.1:{suite.ports.gateway}"
    pg_pid = suite.pg.proc.pid
    groups = {"gateway": suite.procs["gateway"].pid, "identity": suite.procs["identity"].pid, "postgres": pg_pid}
    login_body = {"email": email, "password": password, "aud": "web"}
    results = []
    async with httpx.AsyncClient(
        base_url=gateway, timeout=30, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)
    ) as http:

        async def login() -> dict:
            r = await http.post("/v1/auth/login", json=login_body)
            assert r.status_code == 200, r.status_code
            return r.json()

        async def make_login_step(clients: int):
            async def step(_: int) -> None:
                await login()

            return step

        async def make_refresh_step(clients: int):
            chains = [(await login())["refresh_token"] for _ in range(clients)]

            async def step(i: int) -> None:
                r = await http.post("/v1/auth/refresh", json={"refresh_token": chains[i]})
                assert r.status_code == 200, r.status_code
                chains[i] = r.json()["refresh_token"]

            return step

        results.append(
            await measure_http(
                "login (gateway → identity, argon2id verify)", make_login_step, args.login_clients, args, groups
            )
        )
        results.append(
            await measure_http(
                "refresh (gateway → identity, rotation)", make_refresh_step, args.refresh_clients, args, groups
            )
        )
        token = (await login())["access_token"]
    groups["envoy"] = suite.procs["envoy"].pid
    results.append(
        measure_wrk(
            "GET /v1/me through Envoy (verify at gateway + identity, session check)",
            wrk,
            f"{suite.url}/v1/me",
            token,
            args,
            groups,
        )
    )
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Authentication benchmark.")
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured per target (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per target (default 2)")
    p.add_argument("--login-clients", type=int, default=8, help="concurrent login clients (default 8)")
    p.add_argument("--refresh-clients", type=int, default=16, help="concurrent refresh clients (default 16)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections for GET /v1/me (default 32)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 s warm-up, 3 s measured")
    p.add_argument("--out", type=Path, default=OUT_PATH)
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 3.0, 1.0
    return args


async def amain(args) -> dict:
    machine = machine_info()
    say(f"machine: {machine['cores_logical']} logical cores ({machine['cores_usable']} usable), {machine['cpu']}")
    argon = await argon2_cost(5 if args.quick else 15)
    say(
        f"\n[argon2id] {argon['parameters']}: hash {argon['hash_ms_median']} ms, "
        f"verify {argon['verify_ms_median']} ms (median)"
    )
    verification = await verification_cost(500 if args.quick else 3000)
    say(
        f"\n[token verification, in-process] unseen token {verification['kit_unseen_token_us']} µs, "
        f"seen token {verification['kit_seen_token_us']} µs; baseline PyJWT decode "
        f"{verification['baseline_pyjwt_decode_us']} µs ({verification['kit_unseen_over_baseline']}× baseline)"
    )
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="zenops-bench-auth-") as tmp:
        suite = Suite(
            Path(tmp),
            Ports.free(),
            extra_env={"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
        )
        say(f"\nstarting the suite in {tmp} ...")
        suite.up(say=say)
        try:
            http = await suite_figures(suite, args, wrk)
        finally:
            suite.down()
    return {
        "benchmark": "auth",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "settings": {"duration_s": args.duration, "warmup_s": args.warmup},
        "argon2id": argon,
        "verification_in_process": verification,
        "http": http,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = asyncio.run(amain(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    say(f"\nfigures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
