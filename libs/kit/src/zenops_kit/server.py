"""The grpc.aio service bootstrap: one shape for every domain service.

    app = ServiceApp(settings, name="billing", register=register_servicers, ...)
    app.main()        # uvloop, serve until SIGTERM/SIGINT, then shut down in order

Start-up: telemetry → engine → NATS (in the background) → gRPC server with the standard
health servicer (flipped by real checks: database `SELECT 1`, NATS connected), reflection
and the service's servicers → revocation follower, outbox relay and consumers.
Shutdown: health NOT_SERVING → `server.stop(grace)` (in-flight RPCs complete) → stop the
workers → close the JWKS source → drain NATS → dispose the engine.

Every RPC but health and reflection (and the app's `public_methods`) needs a bearer token;
unless the app brings its own verifier, it is checked against identity's JWKS.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops.common.v1 import common_pb2
from zenops.events.v1 import envelope_pb2

from .auth import JwksKeySource, JwtVerifier, RevocationList
from .context import TokenVerifier
from .db import autocommit, create_engine, ping
from .events import ConsumerSpec, EventBus, EventConsumer, OutboxRelay, ensure_stream
from .interceptors import ServiceInterceptor
from .logging import setup_logging
from .settings import ServiceSettings
from .telemetry import instrument_engine, setup_telemetry

log = logging.getLogger("zenops.server")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

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
        info = common_pb2.ServiceInfo(
            name=self.name,
            version=self.settings.version,
            git_sha=self.settings.git_sha,
            environment=self.settings.environment,
            schema_revision=revision,
        )
        built = datetime.fromisoformat(self.settings.build_time) if self.settings.build_time else self.started_at
        info.build_time.FromDatetime(built.astimezone(UTC))
        return info


Register = Callable[[grpc.aio.Server, Runtime], list[str]]
"""Adds the service's servicers to the server; returns their full service names."""


async def _cancel_all(tasks: list[asyncio.Task]) -> None:
    """Cancel `tasks` and wait for them, cancelling again while any is still running:
    nats-py's fetch() waits with asyncio.wait_for, which on Python 3.11 can swallow a
    cancellation (gh-86296), and a consumer would then keep stop() waiting forever."""
    for task in tasks:
        task.cancel()
    while pending := [t for t in tasks if not t.done()]:
        await asyncio.wait(pending, timeout=0.5)
        for task in pending:
            if not task.done():
                task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


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
        self.relay: OutboxRelay | None = None
        self.consumers: list[EventConsumer] = []
        self._service_names: list[str] = []
        self._tasks: list[asyncio.Task] = []
        self._stopping = asyncio.Event()
        self._last_status: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> int:
        """Start everything; returns the bound gRPC port."""
        s = self.settings
        setup_telemetry(self.name, s.version)
        engine = create_engine(s.database_url.get_secret_value(), pool_size=s.database_pool_size,
                               application_name=self.name)
        instrument_engine(engine)
        bus = EventBus(s.nats_url, name=f"zenops-{self.name}")
        bus.start()
        self.runtime = Runtime(settings=s, name=self.name, engine=engine, bus=bus)

        self.server = grpc.aio.server(
            interceptors=[ServiceInterceptor(self.name, verifier=self.verifier, public_methods=self.public_methods)],
            options=[
                ("grpc.so_reuseport", 0),  # a second process must fail to bind, not share the port
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ],
        )
        self._service_names = self.register(self.server, self.runtime)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        self.port = self.server.add_insecure_port(f"{s.grpc_host}:{s.grpc_port}")
        if self.port == 0:
            raise OSError(f"cannot bind gRPC port {s.grpc_host}:{s.grpc_port}")
        await self._set_health(NOT_SERVING)
        await self.server.start()
        await self._check_health()
        self._tasks.append(asyncio.create_task(self._health_loop(), name="health"))
        if self.revocations is not None:
            self._tasks.append(asyncio.create_task(self.revocations.follow(bus), name="revocations"))
        if s.run_workers:
            self._start_workers()
        log.info("service started", extra={"service": self.name, "port": self.port})
        return self.port

    def _start_workers(self) -> None:
        rt = self.runtime
        assert rt is not None
        if self.produces_events:
            self.relay = OutboxRelay(rt.engine, rt.bus, database_url=self.settings.database_url.get_secret_value())
            self._tasks.append(asyncio.create_task(self._ensure_own_stream(), name="ensure-stream"))
            self._tasks.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))
        for sub in self.subscriptions:
            consumer = EventConsumer(rt.engine, rt.bus, sub.spec, sub.handler,
                                     stream_replicas=self.settings.nats_stream_replicas)
            self.consumers.append(consumer)
            self._tasks.append(asyncio.create_task(consumer.run(), name=f"consumer-{sub.spec.name}"))

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
        await _cancel_all(self._tasks)
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
        await stop.wait()
        log.info("signal received; shutting down", extra={"service": self.name})
        await self.stop()

    def main(self) -> None:
        setup_logging(self.name, self.settings.log_level)
        uvloop.run(self.serve_until_signal())

    # -- health ------------------------------------------------------------------------------

    async def _set_health(self, status) -> None:
        for name in ("", *self._service_names):
            await self.health.set(name, status)

    async def check_dependencies(self) -> dict[str, str | None]:
        """Each dependency → None when healthy, else the reason."""
        rt = self.runtime
        result: dict[str, str | None] = {"database": None, "nats": None}
        try:
            async with asyncio.timeout(2):  # not wait_for: it can swallow a cancel (gh-86296)
                await ping(rt.engine)
        except Exception as exc:  # noqa: BLE001 - any failure means not serving
            result["database"] = repr(exc)[:200]
        if not rt.bus.connected:
            result["nats"] = "not connected"
        return result

    async def _check_health(self) -> None:
        if self._stopping.is_set():
            return
        problems = {k: v for k, v in (await self.check_dependencies()).items() if v}
        status = NOT_SERVING if problems else SERVING
        if status != self._last_status:
            log.log(logging.INFO if status == SERVING else logging.WARNING, "health changed",
                    extra={"serving": status == SERVING, "problems": problems})
            self._last_status = status
        await self._set_health(status)

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_interval)
            await self._check_health()
