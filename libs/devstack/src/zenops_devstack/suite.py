"""The whole ZenOps suite on one machine: `make run` and the end-to-end tests use this.

One PostgreSQL (a database per service, migrated by its owner role, used by its DML-only
runtime role), NATS JetStream, the four domain services, the gateway and Envoy, as child
processes, with data under one directory.
Start order: PostgreSQL → NATS → migrations (one step per service) → services → gateway →
Envoy; stop order is the reverse.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from .envoy import envoy_binary, render_envoy_config, validate_envoy_config
from .nats import USERS as NATS_USERS
from .nats import NatsServer
from .postgres import PostgresServer, runtime_role
from .process import free_port, spawn, stop, wait_until

DOMAIN_SERVICES = ("identity", "ops", "billing", "repogen")
# Processes that authenticate to identity with a client secret (IssueServiceToken).
SERVICE_CLIENTS = ("gateway", "ops", "billing", "repogen")
DEFAULT_ADMIN_EMAIL = "admin@zenops.local"
REPO_ROOT = Path(__file__).resolve().parents[4]


@dataclass
class Ports:
    http: int = 8080
    envoy_admin: int = 9901
    gateway: int = 8000
    postgres: int = 15432
    nats: int = 14222
    nats_monitor: int = 18222
    grpc: dict[str, int] = field(
        default_factory=lambda: {"identity": 50051, "ops": 50052, "billing": 50053, "repogen": 50054}
    )

    @classmethod
    def from_env(cls) -> Ports:
        ports = cls()
        ports.http = int(os.environ.get("ZENOPS_HTTP_PORT", ports.http))
        return ports

    @classmethod
    def free(cls) -> Ports:
        return cls(
            http=free_port(),
            envoy_admin=free_port(),
            gateway=free_port(),
            postgres=free_port(),
            nats=free_port(),
            nats_monitor=free_port(),
            grpc={s: free_port() for s in DOMAIN_SERVICES},
        )


def _git_sha() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class Suite:
    def __init__(self, data_dir: Path, ports: Ports | None = None, *, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.ports = ports or Ports.from_env()
        self.logs = self.data_dir / "logs"
        self.pg = PostgresServer(self.data_dir / "postgres", self.ports.postgres)
        self.nats = NatsServer(self.data_dir / "nats", self.ports.nats, self.ports.nats_monitor)
        self.procs: dict[str, subprocess.Popen] = {}
        self._commands: dict[str, tuple[list[str], dict[str, str]]] = {}
        self.extra_env = extra_env or {}
        # Set when this run generated the bootstrap admin's password (`make run` prints it once).
        self.new_admin_password = False
        self.base_env = {
            **os.environ,
            "ZENOPS_ENVIRONMENT": "local",
            "ZENOPS_NATS_URL": self.nats.url,
            "ZENOPS_GIT_SHA": _git_sha(),
            "ZENOPS_BUILD_TIME": datetime.now(UTC).isoformat(timespec="seconds"),
            "OTEL_TRACES_EXPORTER": os.environ.get("OTEL_TRACES_EXPORTER", "none"),
            "OTEL_METRICS_EXPORTER": os.environ.get("OTEL_METRICS_EXPORTER", "none"),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    # -- secrets kept in the data directory (local only; production takes them from the env) ----

    def _secrets(self) -> dict[str, str]:
        """Generated once per data directory: database passwords, service client secrets,
        identity's key-encryption secret and the bootstrap admin (unless the environment
        gives ZENOPS_BOOTSTRAP_ADMIN_EMAIL / _PASSWORD)."""
        path = self.data_dir / "secrets.json"
        known = json.loads(path.read_text()) if path.exists() else {}
        wanted = {f"db_password_{svc}": None for svc in DOMAIN_SERVICES}
        wanted |= {f"db_runtime_password_{svc}": None for svc in DOMAIN_SERVICES}
        wanted |= {f"service_secret_{client}": None for client in SERVICE_CLIENTS}
        wanted |= {f"nats_password_{user}": None for user in NATS_USERS}
        wanted |= {
            "identity_key_encryption_secret": None,
            "ops_storage_signing_key": None,
            "repogen_storage_signing_key": None,
            "bootstrap_admin_email": self.base_env.get("ZENOPS_BOOTSTRAP_ADMIN_EMAIL") or DEFAULT_ADMIN_EMAIL,
            "bootstrap_admin_password": self.base_env.get("ZENOPS_BOOTSTRAP_ADMIN_PASSWORD") or None,
        }
        changed = False
        for key, given in wanted.items():
            if key not in known:
                known[key] = given or secrets.token_urlsafe(24)
                changed = True
                if key == "bootstrap_admin_password":
                    self.new_admin_password = True
        if changed:
            path.write_text(json.dumps(known, indent=2))
            path.chmod(0o600)
        return known

    @property
    def admin_credentials(self) -> tuple[str, str]:
        """(email, password) of the bootstrap super admin."""
        s = self._secrets()
        return s["bootstrap_admin_email"], s["bootstrap_admin_password"]

    def database_url(self, svc: str) -> str:
        """The DML-only runtime role's URL: what the service connects as."""
        return self.pg.url(runtime_role(svc), self._secrets()[f"db_runtime_password_{svc}"], svc)

    def owner_database_url(self, svc: str) -> str:
        """The owner role's URL: what the migrations run as."""
        return self.pg.url(svc, self._secrets()[f"db_password_{svc}"], svc)

    def _auth_env(self, client: str | None) -> dict[str, str]:
        env = {"ZENOPS_IDENTITY_ADDR": f"127.0.0.1:{self.ports.grpc['identity']}"}
        if client is not None:
            env["ZENOPS_SERVICE_CLIENT_SECRET"] = self._secrets()[f"service_secret_{client}"]
        return env

    def nats_credentials(self, user: str) -> dict[str, str]:
        """`nats.connect(**...)` keywords for acting as `user` (tests publishing as a relay):
        its password and its own inbox prefix, the only one its replies may reach."""
        return {"user": user, "password": self._secrets()[f"nats_password_{user}"], "inbox_prefix": f"_INBOX_{user}"}

    def _nats_env(self, user: str) -> dict[str, str]:
        """Each process connects to NATS as its own user (deploy/k8s/base/nats/permissions.conf)."""
        creds = self.nats_credentials(user)
        return {"ZENOPS_NATS_USER": creds["user"], "ZENOPS_NATS_PASSWORD": creds["password"]}

    def service_env(self, svc: str) -> dict[str, str]:
        env = {
            **self.base_env,
            "ZENOPS_DATABASE_URL": self.database_url(svc),
            "ZENOPS_GRPC_HOST": "127.0.0.1",
            "ZENOPS_GRPC_PORT": str(self.ports.grpc[svc]),
            "OTEL_SERVICE_NAME": svc,
            **self._auth_env(svc if svc in SERVICE_CLIENTS else None),
            **self._nats_env(svc),
        }
        # Where the other services listen (billing asks ops and repogen about refs; ops asks billing).
        for peer in DOMAIN_SERVICES:
            if peer != svc:
                env[f"ZENOPS_{peer.upper()}_ADDR"] = f"127.0.0.1:{self.ports.grpc[peer]}"
        if svc in ("ops", "repogen"):  # documents / report artifacts on local disk, each with its own key
            env |= {
                "ZENOPS_STORAGE_DIR": str(self.data_dir / ("files" if svc == "ops" else "artifacts")),
                "ZENOPS_STORAGE_SIGNING_KEY": self._secrets()[f"{svc}_storage_signing_key"],
            }
        if svc == "identity":
            s = self._secrets()
            env |= {
                "ZENOPS_SERVICE_CLIENT_SECRETS": json.dumps({c: s[f"service_secret_{c}"] for c in SERVICE_CLIENTS}),
                "ZENOPS_KEY_ENCRYPTION_SECRET": s["identity_key_encryption_secret"],
                "ZENOPS_BOOTSTRAP_ADMIN_EMAIL": s["bootstrap_admin_email"],
                "ZENOPS_BOOTSTRAP_ADMIN_PASSWORD": s["bootstrap_admin_password"],
            }
        return env

    def gateway_env(self) -> dict[str, str]:
        env = {
            **self.base_env,
            "ZENOPS_GATEWAY_HOST": "127.0.0.1",
            "ZENOPS_GATEWAY_PORT": str(self.ports.gateway),
            "OTEL_SERVICE_NAME": "gateway",
            **self._auth_env("gateway"),
            **self._nats_env("gateway"),
        }
        for svc in DOMAIN_SERVICES:
            env[f"ZENOPS_{svc.upper()}_ADDR"] = f"127.0.0.1:{self.ports.grpc[svc]}"
        return env

    # -- lifecycle ---------------------------------------------------------------------------

    def up(self, *, say=print) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            self.pg.start()
            for svc in DOMAIN_SERVICES:
                self.pg.provision(svc, self._secrets()[f"db_password_{svc}"])
                self.pg.provision_runtime(svc, self._secrets()[f"db_runtime_password_{svc}"])
            say(f"  postgres   127.0.0.1:{self.ports.postgres}   (data {self.pg.pgdata})")
            self.nats.passwords = {user: self._secrets()[f"nats_password_{user}"] for user in NATS_USERS}
            self.nats.start()
            say(f"  nats       {self.nats.url}   (JetStream, sync_interval: always)")
            self._migrate_all()
            for svc in DOMAIN_SERVICES:
                self._start(svc, [sys.executable, "-m", f"zenops_{svc}", "serve"], self.service_env(svc))
            self._start("gateway", [sys.executable, "-m", "zenops_gateway", "serve"], self.gateway_env())
            self._start_envoy()
            self.wait_healthy()
        except BaseException:
            self.down()
            raise
        say(f"  ready in {time.monotonic() - started:.1f}s")

    def _migrate_all(self) -> None:
        procs = {
            svc: subprocess.run(
                [sys.executable, "-m", f"zenops_{svc}", "migrate"],
                env={**self.service_env(svc), "ZENOPS_DATABASE_URL": self.owner_database_url(svc)},
                capture_output=True,
                text=True,
            )
            for svc in DOMAIN_SERVICES
        }
        failed = {svc: p.stderr[-2000:] for svc, p in procs.items() if p.returncode != 0}
        if failed:
            raise RuntimeError(f"migrations failed: {failed}")

    def _start(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        self._commands[name] = (cmd, env)
        self.procs[name] = spawn(cmd, log_path=self.logs / f"{name}.log", env=env, cwd=REPO_ROOT)

    def stop_process(self, name: str) -> int | None:
        """Stop one process (SIGTERM, graceful) — each service can be stopped alone."""
        return stop(self.procs.pop(name, None), timeout=20)

    def start_process(self, name: str) -> None:
        cmd, env = self._commands[name]
        self._start(name, cmd, env)

    # -- chaos (the reliability suite): crash, stop and restart one part ----------------------

    def kill_process(self, name: str, sig: int = signal.SIGKILL) -> int | None:
        """Signal one process and wait for it to exit: SIGKILL is a crash (no shutdown code
        runs), SIGTERM the graceful stop an orchestrator sends. `start_process` brings it back."""
        return stop(self.procs.pop(name, None), sig=sig, timeout=30)

    def restart_postgres(self, down_for: float = 0.0) -> None:
        """Stop PostgreSQL (fast shutdown: sessions are cut), keep it down `down_for` seconds,
        start it again on the same port and data. The services are left running."""
        self.pg.stop()
        time.sleep(down_for)
        self.pg.start()

    def stop_nats(self) -> None:
        self.nats.stop()

    def start_nats(self) -> None:
        self.nats.start()

    def _start_envoy(self) -> None:
        config = self.data_dir / "envoy.yaml"
        config.write_text(
            render_envoy_config(
                listen_port=self.ports.http,
                gateway_host="127.0.0.1",
                gateway_port=self.ports.gateway,
                admin_port=self.ports.envoy_admin,
            )
        )
        validate_envoy_config(config)
        self._start(
            "envoy",
            [
                envoy_binary(),
                "-c",
                str(config),
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "--base-id",
                str(self.ports.http),
                "--log-level",
                "warn",
                "--drain-time-s",
                "2",
                "--drain-strategy",
                "immediate",
            ],
            self.base_env,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}"

    def health(self) -> tuple[int, dict]:
        r = httpx.get(f"{self.url}/v1/health", timeout=3)
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, {}

    def wait_healthy(self, timeout: float = 60.0) -> None:
        def ok() -> bool:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")
            try:
                return self.health()[0] == 200
            except httpx.HTTPError:
                return False

        wait_until(ok, timeout=timeout, what="the suite (/v1/health through Envoy)", interval=0.2)

    def crashed(self) -> dict[str, int]:
        return {name: p.returncode for name, p in self.procs.items() if p.poll() is not None}

    def down(self) -> None:
        for name in ("envoy", "gateway", *reversed(DOMAIN_SERVICES)):
            stop(self.procs.pop(name, None), timeout=20)
        self.nats.stop()
        self.pg.stop()
