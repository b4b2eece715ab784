"""The floors of the hops: what Envoy, a Python HTTP → gRPC relay and a grpc.aio server cost on
this machine when they do nothing but pass a request on (issue 13: is a bar reachable with
this architecture at all, and which hop is furthest above its floor?).

Processes, all started here on free ports, no suite and no database:

- `grpc`: a grpc.aio server (uvloop) with one unary method answering fixed bytes — the least a
  service can cost per call (no interceptor, no protobuf, no database);
- `relay`: uvicorn (uvloop + httptools, no access log) with a bare ASGI app that makes one gRPC
  call to `grpc` per request and answers its bytes as JSON — the least the gateway can cost;
- `relay-fastapi`: the same relay as one FastAPI route with one async dependency (what the
  framework adds on top);
- `envoy`: Envoy (one worker, as the suite runs it) routing everything to `relay`, no access log
  and no filters but the router — the least the edge can cost; then the edge's own
  configuration (deploy/envoy/envoy.yaml, as `make run` renders it, less its 2,000 req/s flood
  limit) in front of the same relay;
- the in-run baseline: uvicorn with a bare ASGI app answering the same JSON without any call.

For each target, wrk (closed loop, 32 connections, 2 threads) and the CPU per request of each
process on the path (psutil, user + sys), like skeleton_path.py.

    .venv/bin/python bench/floors.py            # 2 s warm-up + 10 s per target
    .venv/bin/python bench/floors.py --quick    # 1 s + 3 s
"""

# No `from __future__ import annotations`: FastAPI resolves the relay route's annotations, and
# names local to a function cannot be resolved from strings.
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from skeleton_path import ensure_wrk, parse_wrk, run_wrk

from zenops_devstack.process import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_PATH = REPO_ROOT / ".bench" / "floors.json"
BODY = json.dumps(
    {"name": "ops", "status": "OK", "version": "0.1.0", "git_sha": "0" * 12, "schema_revision": "0005"}
).encode()
METHOD = "/floor.Floor/Info"
SHORT = ("relay", "FastAPI relay", "Envoy + relay", "edge config + relay")


def say(msg: str = "") -> None:
    print(msg, flush=True)


# -- the processes (this file run with --serve KIND) ------------------------------------------


def serve_grpc(port: int) -> None:
    import grpc
    import uvloop

    async def info(request: bytes, context) -> bytes:
        return BODY

    async def main() -> None:
        server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler(
            "floor.Floor", {"Info": grpc.unary_unary_rpc_method_handler(info)}
        )
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    uvloop.run(main())


def _relay_call(upstream: int):
    import grpc

    state: dict = {}

    async def call() -> bytes:
        if "info" not in state:  # the channel belongs to the server's loop: made on first use
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{upstream}")
            state["info"] = channel.unary_unary(METHOD)
        return await state["info"](b"", timeout=5)

    return call


def serve_http(port: int, kind: str, upstream: int) -> None:
    import uvicorn

    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
    if kind == "baseline":

        async def app(scope, receive, send) -> None:
            if scope["type"] != "http":
                return
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": BODY})

    elif kind == "relay":
        call = _relay_call(upstream)

        async def app(scope, receive, send) -> None:
            if scope["type"] != "http":
                return
            body = await call()
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    else:  # relay-fastapi
        from typing import Annotated

        from fastapi import Depends, FastAPI, Request
        from fastapi.responses import Response

        call = _relay_call(upstream)
        app = FastAPI()

        async def caller(request: Request) -> str:
            return request.headers.get("authorization", "")

        @app.get("/v1/meta/{service}")
        async def meta(service: str, who: Annotated[str, Depends(caller)]) -> Response:
            return Response(await call(), media_type="application/json")

    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", access_log=False, log_level="warning"
    )


# -- the run ----------------------------------------------------------------------------------


def envoy_config(path: Path, port: int, upstream: int, admin: int) -> None:
    path.write_text(
        json.dumps(
            {
                "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
                "static_resources": {
                    "listeners": [
                        {
                            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                            "filter_chains": [
                                {
                                    "filters": [
                                        {
                                            "name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": {
                                                "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                                "http_connection_manager.v3.HttpConnectionManager",
                                                "stat_prefix": "floor",
                                                "route_config": {
                                                    "virtual_hosts": [
                                                        {
                                                            "name": "all",
                                                            "domains": ["*"],
                                                            "routes": [
                                                                {
                                                                    "match": {"prefix": "/"},
                                                                    "route": {"cluster": "relay"},
                                                                }
                                                            ],
                                                        }
                                                    ]
                                                },
                                                "http_filters": [
                                                    {
                                                        "name": "envoy.filters.http.router",
                                                        "typed_config": {
                                                            "@type": "type.googleapis.com/envoy.extensions.filters."
                                                            "http.router.v3.Router"
                                                        },
                                                    }
                                                ],
                                            },
                                        }
                                    ]
                                }
                            ],
                        }
                    ],
                    "clusters": [
                        {
                            "name": "relay",
                            "type": "STATIC",
                            "load_assignment": {
                                "cluster_name": "relay",
                                "endpoints": [
                                    {
                                        "lb_endpoints": [
                                            {
                                                "endpoint": {
                                                    "address": {
                                                        "socket_address": {
                                                            "address": "127.0.0.1",
                                                            "port_value": upstream,
                                                        }
                                                    }
                                                }
                                            }
                                        ]
                                    }
                                ],
                            },
                        }
                    ],
                },
            }
        )
    )


def edge_config(port: int, upstream: int, admin: int) -> str:
    """The edge's configuration as `make run` renders it, less its listener-wide flood limit
    (2,000 req/s: the bare relay goes faster and would be answered 429)."""
    import yaml

    from zenops_devstack.envoy import render_envoy_config

    config = yaml.safe_load(
        render_envoy_config(listen_port=port, gateway_host="127.0.0.1", gateway_port=upstream, admin_port=admin)
    )
    for listener in config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for f in chain["filters"]:
                hcm = f["typed_config"]
                hcm["http_filters"] = [h for h in hcm.get("http_filters", []) if h["name"] != "local_ratelimit_global"]
    return yaml.safe_dump(config, sort_keys=False)


def distinct_ports(n: int) -> list[int]:
    """`n` free ports, all different (free_port can hand out a port it just handed out)."""
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def cpu_seconds(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def wait_http(port: int, path: str = "/v1/meta/ops", timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered on port {port} within {timeout:g}s")


def measure(label: str, wrk: str, port: int, pids: dict[str, int], args) -> dict:
    url = f"http://127.0.0.1:{port}/v1/meta/ops"
    run_wrk(wrk, url, seconds=args.warmup, connections=32, threads=2)
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    out = run_wrk(wrk, url, seconds=args.duration, connections=32, threads=2)
    after = {k: cpu_seconds(p) for k, p in pids.items()}
    r = parse_wrk(out)
    per = {k: (after[k] - before[k]) * 1e3 / max(1, r.requests) for k in pids}
    total = sum(per.values())
    say(
        f"  {label:<44} {r.rps:>8,.0f} req/s  {r.errors:>3} errors  {total:6.3f} ms CPU/request  ("
        + ", ".join(f"{k} {v:.3f}" for k, v in per.items())
        + ")"
    )
    return {"label": label, "rps": r.rps, "errors": r.errors, "cpu_ms_per_request": per, "total": total}


def run(args) -> int:
    from zenops_devstack.envoy import envoy_binary

    wrk = ensure_wrk()
    procs: list[subprocess.Popen] = []

    def start(*argv: str) -> int:
        p = subprocess.Popen([sys.executable, __file__, *argv], stdout=subprocess.DEVNULL)
        procs.append(p)
        return p.pid

    try:
        grpc_port, base_port, relay_port, fast_port, envoy_port, admin, edge_port, edge_admin = distinct_ports(8)
        grpc_pid = start("--serve", "grpc", "--port", str(grpc_port))
        base_pid = start("--serve", "baseline", "--port", str(base_port))
        relay_pid = start("--serve", "relay", "--port", str(relay_port), "--upstream", str(grpc_port))
        fast_pid = start("--serve", "relay-fastapi", "--port", str(fast_port), "--upstream", str(grpc_port))
        for port in (base_port, relay_port, fast_port):
            wait_http(port)
        with tempfile.TemporaryDirectory(prefix="zenops-floors-") as tmp:
            config = Path(tmp) / "envoy.json"
            envoy_config(config, envoy_port, relay_port, admin)
            edge = Path(tmp) / "edge.yaml"
            edge.write_text(edge_config(edge_port, relay_port, edge_admin))
            proxies = {}
            for name, cfg, port in (("envoy", config, envoy_port), ("edge", edge, edge_port)):
                proc = subprocess.Popen(
                    [envoy_binary(), "-c", str(cfg), "--concurrency", "1", "--disable-hot-restart"]
                    + ["--base-id", str(port), "--log-level", "warn"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                procs.append(proc)
                proxies[name] = proc.pid
                wait_http(port)
            say(f"floors — {os.cpu_count()} logical cores; wrk 32 connections, {args.duration:g}s per target")
            results = [
                measure("(b) baseline: uvicorn, bare ASGI, fixed JSON", wrk, base_port, {"app": base_pid}, args),
                measure("relay: bare ASGI → grpc.aio", wrk, relay_port, {"relay": relay_pid, "grpc": grpc_pid}, args),
                measure(
                    "relay: FastAPI route + dependency → grpc.aio",
                    wrk,
                    fast_port,
                    {"relay": fast_pid, "grpc": grpc_pid},
                    args,
                ),
                measure(
                    "Envoy → relay (bare ASGI) → grpc.aio",
                    wrk,
                    envoy_port,
                    {"envoy": proxies["envoy"], "relay": relay_pid, "grpc": grpc_pid},
                    args,
                ),
                measure(
                    "Envoy (the edge's config) → relay → grpc.aio",
                    wrk,
                    edge_port,
                    {"envoy": proxies["edge"], "relay": relay_pid, "grpc": grpc_pid},
                    args,
                ),
            ]
        base = results[0]["total"]
        say(
            "  CPU per request ÷ the baseline's: "
            + ", ".join(f"{name} {r['total'] / base:.1f}×" for name, r in zip(SHORT, results[1:], strict=True))
        )
        OUT_PATH.parent.mkdir(exist_ok=True)
        OUT_PATH.write_text(json.dumps({"results": results}, indent=2))
        say(f"figures written to {OUT_PATH}")
        return 0
    finally:
        for p in reversed(procs):  # proxies first, the gRPC server last: no request meets a stopped hop
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="The floors of the hops (Envoy, HTTP → gRPC relay, grpc.aio).")
    p.add_argument("--serve", choices=("grpc", "baseline", "relay", "relay-fastapi"))
    p.add_argument("--port", type=int)
    p.add_argument("--upstream", type=int, default=0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--quick", action="store_true", help="1 s warm-up + 3 s per target")
    args = p.parse_args(argv)
    if args.serve == "grpc":
        serve_grpc(args.port)
        return 0
    if args.serve:
        serve_http(args.port, args.serve, args.upstream)
        return 0
    if args.quick:
        args.duration, args.warmup = 3.0, 1.0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
