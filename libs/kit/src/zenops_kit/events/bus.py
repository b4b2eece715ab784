"""The process's NATS connection, established in the background.

A service must start (and keep committing writes) while NATS is down: the outbox holds
the events until the bus is back. So the first connection is retried in the background,
and nats-py reconnects forever after that.
"""

from __future__ import annotations

import asyncio
import logging

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

log = logging.getLogger("zenops.events.bus")


class EventBus:
    def __init__(self, url: str, name: str, *, retry_interval: float = 0.5, options: dict | None = None) -> None:
        self.url = url
        # credentials, inbox prefix, TLS: zenops_kit.tls.nats_options(settings)
        self.options = dict(options or {})
        self.name = name
        self.retry_interval = retry_interval
        self.nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task | None = None

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("NATS is not connected yet; await bus.ready()")
        return self._js

    async def ready(self) -> JetStreamContext:
        await self._ready.wait()
        return self.js

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect_forever(), name=f"nats-connect-{self.name}")

    async def _connect_forever(self) -> None:
        while True:
            try:
                self.nc = await nats.connect(
                    self.url,
                    name=self.name,
                    connect_timeout=2,
                    reconnect_time_wait=0.5,
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                    ping_interval=5,
                    max_outstanding_pings=2,
                    disconnected_cb=self._on_disconnect,
                    reconnected_cb=self._on_reconnect,
                    error_cb=self._on_error,
                    **self.options,
                )
            except Exception as exc:  # noqa: BLE001 - any failure means "retry later"
                log.warning("NATS not reachable yet", extra={"url": self.url, "error": repr(exc)})
                await asyncio.sleep(self.retry_interval)
                continue
            self._js = self.nc.jetstream()
            self._ready.set()
            log.info("NATS connected", extra={"url": self.url})
            return

    async def _on_disconnect(self) -> None:
        log.warning("NATS disconnected")

    async def _on_reconnect(self) -> None:
        log.info("NATS reconnected")

    async def _on_error(self, exc: Exception) -> None:
        log.debug("NATS client error", extra={"error": repr(exc)})

    async def drain(self) -> None:
        """Finish in-flight messages and close (the shutdown step after the gRPC server)."""
        if self._task and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.nc is not None and not self.nc.is_closed:
            try:
                async with asyncio.timeout(5):
                    await self.nc.drain()
            except Exception:  # noqa: BLE001 - shutting down; close regardless
                try:
                    await self.nc.close()
                except Exception as exc:  # noqa: BLE001 - e.g. NATS away: its socket is already gone
                    log.debug("NATS close failed at shutdown", extra={"error": repr(exc)})
