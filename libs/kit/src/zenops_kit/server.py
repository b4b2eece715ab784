"""The grpc.aio service bootstrap: one shape for every domain service.

    app = ServiceApp(settings, name="billing", register=register_servicers, ...)
    app.main()        # uvloop, serve until SIGTERM/SIGINT, then shut down in order

Start-up: telemetry → engine → NATS (in the background) → gRPC server with the standard
health servicer, reflection, the service's servicers and the EventsAdminService → the
supervised workers: revocation follower, outbox relay, consumers, the events view sampler.
Shutdown: health NOT_SERVING → `server.stop(grace)` (in-flight RPCs complete) → stop the
workers → close the JWKS source → drain NATS → dispose the engine.

Health (the standard service; Kubernetes probes ask it):
- `zenops.liveness`: liveness — SERVING while the process serves (NOT_SERVING only during
  graceful shutdown). It never looks at a dependency: a restart cures none of them.
- `""` and every servicer's full name: readiness — the database answers `SELECT 1` on the
  probe's own connection (outside the request pool, so a busy pool is not "not ready")
  within `READINESS_TIMEOUT`. NATS never counts: the outbox keeps writes going while the
  broker is away, and a broker blip must not pull every pod out of its Service.
- `zenops.worker.<name>`: each supervised worker (zenops_kit.supervisor), for operators.
NATS and consumer state are reported in metrics and GetEventStats instead.

Every RPC but health and reflection (and the app's `public_methods`) needs a bearer token;
unless the app brings its own verifier, it is checked against identity's JWKS.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.metrics import Observation
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops.common.v1 import common_pb2
from zenops.events.v1 import envelope_pb2

from . import metrics, tls
from .auth import JwksKeySource, JwtVerifier, RevocationList
from .context import TokenVerifier
from .db import autocommit, create_engine
from .events import ConsumerSpec, EventBus, EventConsumer, OutboxRelay, ensure_stream
from .events import admin as events_admin
from .heap import settle_heap
from .interceptors import ServiceInterceptor
from .logging import setup_logging
from .settings import ServiceSettings
from .supervisor import Supervisor, cancel_all
from .telemetry import instrument_engine, setup_telemetry

log = logging.getLogger("zenops.server")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
LIVENESS = "zenops.liveness"
READINESS_TIMEOUT = 2.0

_SCHEMA_REVISION = text("SELECT version_num FROM alembic_version")

EventHandler = Callable[[AsyncConnection, envelope_pb2.EventEnvelope], Awaitable[None]]


@dataclass
class Subscription:
    spec: ConsumerSpec
    handler: EventHandler


@dataclass
class Runtime:
    """What servicers and workers get: the process's shared resources."""

    settings: ServiceSettings
    name: str
    engine: AsyncEngine
    bus: EventBus
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    async def service_info(self) -> common_pb2.ServiceInfo:
        async with autocommit(self.engine) as conn:
            revision = (await conn.execute(_SCHEMA_REVISION)).scalar() or ""
        info = common_pb2.ServiceInfo()
        info.CopyFrom(self._build_info)
        info.schema_revision = revision
        return info

    @functools.cached_property
    def _build_info(self) -> common_pb2.ServiceInfo:
        """What never changes while the process runs (the schema revision can: a migration
        may run meanwhile), made once."""
        info = common_pb2.ServiceInfo(
            name=self.name,
            version=self.settings.version,
            git_sha=self.settings.git_sha,
            environment=self.settings.environment,
        )
        built = datetime.fromisoformat(self.settings.build_time) if self.settings.build_time else self.started_at
        info.build_time.FromDatetime(built.astimezone(UTC))
        return info


Register = Callable[[grpc.aio.Server, Runtime], list[str]]
"""Adds the service's servicers to the server; returns their full service names."""


class DatabaseProbe:
    """Readiness's own database connection: outside the request pool (an exhausted pool is
    load, not an outage) and bounded by a short timeout; reopened after any failure."""

    def __init__(self, database_url: str, application_name: str, timeout: float = READINESS_TIMEOUT) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self.application_name = application_name
        self.timeout = timeout
        self._conn: asyncpg.Connection | None = None

    async def check(self) -> str | None:
        """None when the database answers, else the reason."""
        try:
            async with asyncio.timeout(self.timeout):  # not wait_for: it can swallow a cancel (gh-86296)
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(
                        self._dsn, timeout=self.timeout, server_settings={"application_name": self.application_name}
                    )
                await self._conn.fetchval("SELECT 1")
            return None
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            self.close()
            return repr(exc)[:200]

    def close(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            self._conn.terminate()
        self._conn = None


class ServiceApp:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        name: str,
        register: Register,
        public_methods: set[str] | None = None,
        verifier: TokenVerifier | None = None,
        subscriptions: list[Subscription] | None = None,
        produces_events: bool = True,
    ) -> None:
        self.settings = settings
        self.name = name
        self.register = register
        self.public_methods = set(public_methods or ())
        # The default: identity's JWKS, and identity's revocation events (followed by every
        # process that serves RPCs, workers or not: the list lives in each process's memory).
        self.key_source: JwksKeySource | None = None
        self.revocations: RevocationList | None = None
        if verifier is None:
            self.key_source = JwksKeySource.from_identity(settings.identity_addr)
            self.revocations = RevocationList()
            verifier = JwtVerifier(self.key_source, issuer=settings.jwt_issuer, revocations=self.revocations)
        self.verifier = verifier
        self.subscriptions = list(subscriptions or ())
        self.produces_events = produces_events
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.runtime: Runtime | None = None
        self.port: int | None = None
        self.probe_server: grpc.aio.Server | None = None
        self.relay: OutboxRelay | None = None
        self.consumers: list[EventConsumer] = []
        self.supervisor = Supervisor(name, health=self.health)
        self.events: events_admin.EventsView | None = None
        self.probe: DatabaseProbe | None = None
        self._service_names: list[str] = []
        self._tasks: list[asyncio.Task] = []
        self._unobserve: list[Callable[[], None]] = []
        self._stopping = asyncio.Event()
        self._draining = False  # signalled: not ready from now on, still serving
        self._last_status: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> int:
        """Start everything; returns the bound gRPC port."""
        s = self.settings
        setup_telemetry(self.name, s.version, metrics_port=s.metrics_port)
        engine = create_engine(
            s.database_url.get_secret_value(), pool_size=s.database_pool_size, application_name=self.name
        )
        instrument_engine(engine)
        bus = EventBus(s.nats_url, name=f"zenops-{self.name}", options=tls.nats_options(s))
        bus.start()
        self.runtime = Runtime(settings=s, name=self.name, engine=engine, bus=bus)
        self.probe = DatabaseProbe(s.database_url.get_secret_value(), f"{self.name}-health")
        # Every process knows its consumers (GetEventStats, replay); only workers run them.
        self.consumers = [
            EventConsumer(engine, bus, sub.spec, sub.handler, stream_replicas=s.nats_stream_replicas)
            for sub in self.subscriptions
        ]
        for consumer in self.consumers:
            consumer.service = self.name
        self.events = events_admin.EventsView(
            self.name,
            engine,
            bus,
            self.consumers,
            produces_events=self.produces_events,
            workers=self.supervisor.statuses,
        )

        self.server = grpc.aio.server(
            interceptors=[ServiceInterceptor(self.name, verifier=self.verifier, public_methods=self.public_methods)],
            options=[
                ("grpc.so_reuseport", 0),  # a second process must fail to bind, not share the port
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.max_receive_message_length", 8 * 1024 * 1024),
                *tls.SERVER_OPTIONS,  # max_connection_age: clients re-resolve, new replicas get calls
            ],
        )
        self._service_names = [
            *self.register(self.server, self.runtime),
            events_admin.register(self.server, self.events),
        ]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        self.port = tls.bind_grpc(self.server, s)
        self.probe_server = tls.probe_server(s, self.health)
        await self._set_health(NOT_SERVING)
        await self.server.start()
        if self.probe_server is not None:
            await self.probe_server.start()
        await self.health.set(LIVENESS, SERVING)
        await self._check_health()
        self._tasks.append(asyncio.create_task(self._health_loop(), name="health"))
        self._observe()
        if self.revocations is not None:
            revocations = self.revocations
            self.supervisor.add("revocations", lambda: revocations.follow(bus))
        if s.run_workers:
            self._start_workers()
        log.info("service started", extra={"service": self.name, "port": self.port})
        return self.port

    def _start_workers(self) -> None:
        rt = self.runtime
        assert rt is not None
        if self.produces_events:
            self.relay = OutboxRelay(
                rt.engine, rt.bus, database_url=self.settings.database_url.get_secret_value(), service=self.name
            )
            self.supervisor.add("ensure-stream", self._ensure_own_stream)
            self.supervisor.add("outbox-relay", self.relay.run)
        for consumer in self.consumers:
            self.supervisor.add(f"consumer-{consumer.spec.name}", consumer.run)
        events = self.events
        self.supervisor.add("events-sampler", lambda: events.run(self.settings.events_sample_interval))

    async def _ensure_own_stream(self) -> None:
        js = await self.runtime.bus.ready()
        while True:
            try:
                await ensure_stream(js, self.name, self.settings.nats_stream_replicas)
                return
            except Exception as exc:  # noqa: BLE001 - JetStream not ready yet
                log.warning("cannot ensure stream yet", extra={"error": repr(exc)})
                await asyncio.sleep(1)

    async def stop(self) -> None:
        """Graceful shutdown, in order."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        await self.health.enter_graceful_shutdown()
        if self.server is not None:
            await self.server.stop(self.settings.shutdown_grace)
        if self.probe_server is not None:
            await self.probe_server.stop(None)
        await self.supervisor.stop()
        await cancel_all(self._tasks)
        for remove in self._unobserve:
            remove()
        if self.probe is not None:
            self.probe.close()
        if self.key_source is not None:
            await self.key_source.close()
        if self.runtime is not None:
            await self.runtime.bus.drain()
            await self.runtime.engine.dispose()
        log.info("service stopped", extra={"service": self.name})

    async def serve_until_signal(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        settle_heap()  # the process is a server from here on (tests' in-process apps keep the defaults)
        await stop.wait()
        log.info("signal received; draining", extra={"service": self.name, "seconds": self.settings.shutdown_drain})
        # Not ready first, still serving: callers move away before the server refuses calls.
        self._draining = True
        await self._set_health(NOT_SERVING)
        await asyncio.sleep(self.settings.shutdown_drain)
        await self.stop()

    def main(self) -> None:
        setup_logging(self.name, self.settings.log_level)
        uvloop.run(self.serve_until_signal())

    # -- health ------------------------------------------------------------------------------

    async def _set_health(self, status) -> None:
        """Readiness: the server as a whole and each servicer."""
        for name in ("", *self._service_names):
            await self.health.set(name, status)

    async def _check_health(self) -> None:
        if self._draining or self._stopping.is_set():
            return
        problem = await self.probe.check()
        status = NOT_SERVING if problem else SERVING
        if status != self._last_status:
            log.log(
                logging.INFO if status == SERVING else logging.WARNING,
                "readiness changed",
                extra={"ready": status == SERVING, "database": problem},
            )
            self._last_status = status
        await self._set_health(status)

    # -- metrics -----------------------------------------------------------------------------

    def _observe(self) -> None:
        """Gauges of this app: the request pool, NATS, and the events view's sample."""
        rt, attrs = self.runtime, {"service": self.name}
        pool = rt.engine.sync_engine.pool

        def connections() -> list[Observation]:
            used = pool.checkedout()
            return [
                Observation(used, {**attrs, "state": "used"}),
                Observation(max(pool.checkedin(), 0), {**attrs, "state": "idle"}),
            ]

        self._unobserve += [
            metrics.observe("zenops.db.pool.connections", connections),
            metrics.observe("zenops.db.pool.limit", lambda: [Observation(pool.size(), attrs)]),
            metrics.observe("zenops.nats.connected", lambda: [Observation(int(rt.bus.connected), attrs)]),
        ]
        self.events.observe()
        self._unobserve.append(self.events.unobserve)

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_interval)
            await self._check_health()
