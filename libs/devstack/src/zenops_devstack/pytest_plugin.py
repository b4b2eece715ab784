"""pytest fixtures that start real infrastructure from the PyPI wheels.

- `pg_server` / `nats_server` (session): one PostgreSQL and one NATS JetStream per run;
- `make_database(service)`: a fresh database + login role (no BYPASSRLS) for a service,
  with that service's migrations applied (a fresh one per call, so per test module);
- `start_service(service, **settings)`: the real service app, in-process, on a free port;
- `s3_server` (session) / `s3_bucket`: a real S3 wire-protocol server (moto's server mode)
  and a fresh bucket in it (zenops_devstack.s3).
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from .nats import NatsServer
from .postgres import PostgresServer
from .process import free_port
from .s3 import s3_bucket, s3_server  # noqa: F401 - fixtures

SERVICES = ("identity", "ops", "billing", "repogen")

os.environ.setdefault("OTEL_TRACES_EXPORTER", "none")


@pytest.fixture(scope="session")
def infra_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="zenops-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(infra_dir: Path) -> PostgresServer:
    server = PostgresServer(infra_dir / "postgres", free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_server(infra_dir: Path) -> NatsServer:
    server = NatsServer(infra_dir / "nats", free_port(), free_port())
    server.start()
    yield server
    server.stop()


def service_module(service: str, attr: str):
    return getattr(importlib.import_module(f"zenops_{service}.app"), attr)


@pytest.fixture(scope="module")
def make_database(pg_server: PostgresServer) -> Callable[[str], str]:
    """Factory: a fresh, migrated database for `service`; returns its role's URL."""
    from zenops_kit.migrations import upgrade

    created: list[str] = []

    def make(service: str, *, migrate: bool = True) -> str:
        name = f"{service}_{uuid.uuid4().hex[:10]}"
        url = pg_server.provision(name, uuid.uuid4().hex)
        created.append(name)
        if migrate:
            upgrade(service_module(service, "MIGRATIONS"), url)
        return url

    yield make
    for name in created:
        pg_server.drop(name, name)


@pytest.fixture
def start_service(make_database, nats_server: NatsServer):
    """`async with start_service("ops", **overrides) as app:` — the real ServiceApp.

    `verifier` (optional) replaces the app's default token verifier (identity's JWKS), for
    tests that sign their own tokens: it is handed to `build_app(settings, verifier=...)`."""

    @asynccontextmanager
    async def start(service: str, *, database_url: str | None = None, verifier=None, **overrides) -> AsyncIterator:
        settings_cls = getattr(importlib.import_module(f"zenops_{service}.settings"), f"{service.capitalize()}Settings")
        settings = settings_cls(
            database_url=database_url or make_database(service),
            nats_url=overrides.pop("nats_url", nats_server.url),
            grpc_host="127.0.0.1",
            grpc_port=free_port(),
            environment="test",
            health_interval=overrides.pop("health_interval", 0.2),
            **overrides,
        )
        build_app = service_module(service, "build_app")
        app = build_app(settings) if verifier is None else build_app(settings, verifier=verifier)
        await app.start()
        try:
            yield app
        finally:
            await app.stop()

    return start
