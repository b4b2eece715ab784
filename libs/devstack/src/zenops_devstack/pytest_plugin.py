"""pytest fixtures that start real infrastructure from the PyPI wheels.

- `pg_server` / `nats_server` (session): one PostgreSQL and one NATS JetStream per run;
- `make_database(service)`: a fresh database for a service with its owner and DML-only
  runtime roles (no BYPASSRLS), migrated by the owner; the runtime role's URL;
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
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from .nats import USERS as NATS_USERS
from .nats import NatsServer
from .postgres import PostgresServer
from .process import free_port
from .s3 import s3_bucket, s3_server  # noqa: F401 - fixtures

SERVICES = ("identity", "ops", "billing", "repogen")

# What every test relies on, whatever the caller exported (e.g. `make run`'s
# ZENOPS_BOOTSTRAP_ADMIN_PASSWORD): no trace export. Fixtures pass every other setting
# explicitly; anything else from the caller's ZENOPS_*/OTEL_* environment is cleared.
TEST_ENVIRONMENT = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}


def isolate_environment(environ: MutableMapping[str, str] = os.environ) -> None:
    """Clear every ZENOPS_* and OTEL_* variable, then set TEST_ENVIRONMENT."""
    for name in [n for n in environ if n.startswith(("ZENOPS_", "OTEL_"))]:
        del environ[name]
    environ.update(TEST_ENVIRONMENT)


isolate_environment()


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
    # The production users and permissions; test code connecting without credentials is the
    # unrestricted harness user, each service started by `start_service` is its own user.
    server = NatsServer(
        infra_dir / "nats",
        free_port(),
        free_port(),
        passwords={user: uuid.uuid4().hex for user in NATS_USERS},
        harness_password=uuid.uuid4().hex,
    )
    server.start()
    yield server
    server.stop()


def service_module(service: str, attr: str):
    return getattr(importlib.import_module(f"zenops_{service}.app"), attr)


@pytest.fixture(scope="module")
def make_database(pg_server: PostgresServer) -> Callable[[str], str]:
    """Factory: a fresh database for `service`, migrated by its owner role; returns the URL
    of the DML-only runtime role the service connects as (as in production). With
    `migrate=False`: the owner's URL, for tests that run the migrations themselves."""
    from zenops_kit.migrations import upgrade

    created: list[str] = []

    def make(service: str, *, migrate: bool = True) -> str:
        name = f"{service}_{uuid.uuid4().hex[:10]}"
        owner_url = pg_server.provision(name, uuid.uuid4().hex)
        created.append(name)
        runtime_url = pg_server.provision_runtime(name, uuid.uuid4().hex)
        if not migrate:
            return owner_url
        upgrade(service_module(service, "MIGRATIONS"), owner_url)
        return runtime_url

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
            nats_user=overrides.pop("nats_user", service),
            nats_password=overrides.pop("nats_password", nats_server.passwords[service]),
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
