"""Fixtures for the Envoy edge tests: a tiny upstream HTTP server and a real Envoy.

Envoy runs with the configuration rendered from the canonical ``deploy/envoy/envoy.yaml``
(only addresses differ), so these tests exercise the production edge behaviour.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

try:  # the devstack package may not be installed into the venv yet
    import zenops_devstack.envoy  # noqa: F401
except ModuleNotFoundError:  # pragma: no cover - depends on the environment
    sys.path.insert(0, str(REPO_ROOT / "libs" / "devstack" / "src"))

from zenops_devstack.envoy import envoy_binary, render_envoy_config, self_signed_certificate  # noqa: E402

STARTUP_DEADLINE_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.05, what: str) -> Any:
    """Poll *predicate* until it returns something truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last one
            last_exc = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}") from last_exc
        time.sleep(interval)  # poll interval, not synchronisation


# --------------------------------------------------------------------------- upstream


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body_len: int


@dataclass
class Upstream:
    server: ThreadingHTTPServer
    hits: list[Hit] = field(default_factory=list)
    health_checks: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def count(self, path: str | None = None, method: str | None = None) -> int:
        with self.lock:
            return sum(
                1
                for h in self.hits
                if (path is None or h.path.split("?", 1)[0] == path) and (method is None or h.method == method)
            )


def _make_handler(upstream_ref: list[Upstream]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle plus
        # delayed ACKs would add ~40 ms to every keep-alive response.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep test output clean

        def _read_body(self) -> int:
            """Read (and count) the whole request body, sized or chunked: a body left unread
            would be taken for the next request on the kept-alive connection."""
            if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
                total = 0
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return total
                    total += len(self.rfile.read(size))
                    self.rfile.readline()  # the CRLF after the chunk
            length = int(self.headers.get("content-length") or 0)
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
            return length

        def _handle(self) -> None:
            upstream = upstream_ref[0]
            length = self._read_body()
            if self.path == "/v1/livez":
                with upstream.lock:
                    upstream.health_checks += 1
                payload: dict[str, Any] = {"status": "ok"}
            else:
                headers = {k.lower(): v for k, v in self.headers.items()}
                with upstream.lock:
                    upstream.hits.append(Hit(self.command, self.path, headers, length))
                payload = {
                    "method": self.command,
                    "path": self.path,
                    "headers": headers,
                    "body_length": length,
                }
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    return Handler


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    ref: list[Upstream] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(ref))
    server.daemon_threads = True
    up = Upstream(server=server)
    ref.append(up)
    thread = threading.Thread(target=server.serve_forever, name="edge-upstream", daemon=True)
    thread.start()
    try:
        yield up
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --------------------------------------------------------------------------- envoy


@dataclass
class EnvoyProcess:
    proc: subprocess.Popen[bytes]
    listen_port: int
    admin_port: int
    config_path: Path
    config_text: str
    stdout_path: Path
    stderr_path: Path
    tls_port: int | None = None
    tls_cert: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def access_log(self) -> list[dict[str, Any]]:
        entries = []
        for line in self.stdout_path.read_text(errors="replace").splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError:
                    pass  # a partially flushed line; the poller retries
        return entries

    def counter(self, name: str) -> int:
        resp = httpx.get(
            f"{self.admin_url}/stats",
            params={"filter": f"^{name}$", "format": "json"},
            timeout=5,
            trust_env=False,
        )
        resp.raise_for_status()
        for stat in resp.json().get("stats", []):
            if stat.get("name") == name:
                return int(stat.get("value", 0))
        return 0

    def stderr_tail(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def start_envoy(tmp_dir: Path, *, gateway_port: int, tls: bool = False) -> EnvoyProcess:
    """With `tls`, the TLS listener runs too (on `tls_port`, a throwaway certificate)."""
    listen_port = free_port()
    admin_port = free_port()
    tls_args: dict[str, Any] = {}
    if tls:
        cert, key = self_signed_certificate(tmp_dir / "tls")
        tls_args = {"tls_port": free_port(), "tls_cert_file": cert, "tls_key_file": key}
    text = render_envoy_config(
        listen_port=listen_port,
        gateway_host="127.0.0.1",
        gateway_port=gateway_port,
        admin_port=admin_port,
        **tls_args,
    )
    tmp_dir.mkdir(parents=True, exist_ok=True)
    config_path = tmp_dir / "envoy.yaml"
    config_path.write_text(text)
    stdout_path = tmp_dir / "envoy.stdout.log"
    stderr_path = tmp_dir / "envoy.stderr.log"
    cmd = [
        envoy_binary(),
        "-c",
        str(config_path),
        "--base-id",
        str(random.randint(1_000, 2_000_000_000)),
        "--concurrency",
        "1",
        "--disable-hot-restart",
        "--log-level",
        "warn",
        # Flush the access log (stdout) quickly so tests can read it; production keeps
        # Envoy's default (10s or when the buffer fills).
        "--file-flush-interval-msec",
        "100",
    ]
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    envoy = EnvoyProcess(
        proc,
        listen_port,
        admin_port,
        config_path,
        text,
        stdout_path,
        stderr_path,
        tls_port=tls_args.get("tls_port"),
        tls_cert=tls_args.get("tls_cert_file"),
    )

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"envoy exited with {proc.returncode} during startup:\n{envoy.stderr_tail()}")
        admin = httpx.get(f"{envoy.admin_url}/ready", timeout=2, trust_env=False)
        if admin.status_code != 200:
            return False
        # The listener answers its own readiness endpoint once it is serving.
        public = httpx.get(f"{envoy.url}/ready", timeout=2, trust_env=False)
        return public.status_code == 200

    try:
        wait_until(ready, timeout=STARTUP_DEADLINE_S, what="envoy to become ready")
    except BaseException:
        stop_envoy(envoy)
        raise
    return envoy


def stop_envoy(envoy: EnvoyProcess) -> None:
    if envoy.proc.poll() is None:
        envoy.proc.terminate()  # SIGTERM: Envoy shuts down cleanly
        try:
            envoy.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            envoy.proc.kill()
            envoy.proc.wait(timeout=15)


@pytest.fixture(scope="module")
def envoy(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvoyProcess]:
    """A real Envoy with the rendered production config in front of ``upstream``."""
    proc = start_envoy(tmp_path_factory.mktemp("envoy"), gateway_port=upstream.port)
    try:
        yield proc
    finally:
        stop_envoy(proc)


@pytest.fixture()
def envoy_factory(tmp_path: Path) -> Iterator[Callable[..., EnvoyProcess]]:
    """Start extra Envoys (e.g. in front of a dead upstream); all stopped at teardown."""
    started: list[EnvoyProcess] = []

    def factory(*, gateway_port: int, tls: bool = False) -> EnvoyProcess:
        proc = start_envoy(tmp_path / f"envoy-{len(started)}", gateway_port=gateway_port, tls=tls)
        started.append(proc)
        return proc

    try:
        yield factory
    finally:
        for proc in started:
            stop_envoy(proc)


@pytest.fixture()
def client(envoy: EnvoyProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=envoy.url, timeout=20, trust_env=False) as c:
        yield c
