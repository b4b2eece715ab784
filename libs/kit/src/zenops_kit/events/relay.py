"""The outbox relay: publishes committed outbox rows to JetStream, exactly once in effect.

Rows are claimed with `FOR UPDATE SKIP LOCKED` (never "id > last seen": sequences commit
out of order), published with `Nats-Msg-Id = event_id`, and marked published only after
JetStream acknowledged them, in the same transaction that claimed them. A relay that dies
between publish and mark leaves the rows unmarked; the next run publishes them again and
JetStream drops the duplicates within its window (consumers' inbox covers the rest).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from .. import metrics
from .bus import EventBus
from .schema import OUTBOX_CHANNEL

log = logging.getLogger("zenops.events.relay")
tracer = trace.get_tracer("zenops.events")

_CLAIM = text(
    "SELECT id::text AS id, subject, event_type, envelope, traceparent, tracestate FROM outbox "
    "WHERE published_at IS NULL ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_MARK = text("UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE id = ANY(CAST(:ids AS uuid[]))")
_FAILED = text("UPDATE outbox SET attempts = attempts + 1, last_error = :error WHERE id = ANY(CAST(:ids AS uuid[]))")
_PRUNE = text("DELETE FROM outbox WHERE published_at < now() - make_interval(days => :days)")
_PRUNE_INBOX = text("DELETE FROM inbox WHERE processed_at < now() - make_interval(days => :days)")


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        bus: EventBus,
        *,
        database_url: str,
        batch_size: int = 200,
        poll_interval: float = 1.0,
        publish_timeout: float = 2.0,
        retention_days: int = 7,
        inbox_retention_days: int = 30,
        service: str = "",
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.publish_timeout = publish_timeout
        self.retention_days = retention_days
        self.inbox_retention_days = inbox_retention_days
        self.service = service  # metric attribute
        url = make_url(database_url).set(drivername="postgresql")
        self._listen_dsn = url.render_as_string(hide_password=False)
        self._wakeup = asyncio.Event()
        # Fault-injection point for tests: awaited after the publish acks, before the mark.
        self.after_publish: Callable[[list[str]], Awaitable[None]] | None = None
        self.published_total = 0
        self.listening = False

    async def publish_batch(self) -> int:
        """Publish one batch of unpublished rows; returns how many were marked published."""
        js = self.bus.js
        async with self.engine.begin() as conn:
            rows = (await conn.execute(_CLAIM, {"limit": self.batch_size})).mappings().all()
            if not rows:
                return 0
            results = await asyncio.gather(*(self._publish(js, row) for row in rows), return_exceptions=True)
            ok = [row["id"] for row, res in zip(rows, results, strict=True) if not isinstance(res, BaseException)]
            failed = [row["id"] for row, res in zip(rows, results, strict=True) if isinstance(res, BaseException)]
            if self.after_publish is not None:
                await self.after_publish(ok)
            if ok:
                await conn.execute(_MARK, {"ids": ok})
            if failed:
                first = next(r for r in results if isinstance(r, BaseException))
                await conn.execute(_FAILED, {"ids": failed, "error": repr(first)[:500]})
                log.warning("outbox publish failed", extra={"failed": len(failed), "error": repr(first)})
        self.published_total += len(ok)
        if ok:
            metrics.OUTBOX_PUBLISHED.add(len(ok), {"service": self.service})
        if failed and not ok:
            raise ConnectionError(f"could not publish {len(failed)} outbox rows")
        return len(ok)

    async def _publish(self, js, row) -> None:
        carrier = {"traceparent": row["traceparent"]} if row["traceparent"] else {}
        if row["tracestate"]:
            carrier["tracestate"] = row["tracestate"]
        parent = propagate.extract(carrier)
        with tracer.start_as_current_span(
            f"{row['subject']} publish",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": row["subject"],
                "messaging.message.id": row["id"],
                "messaging.operation.type": "publish",
            },
        ):
            headers = {"Nats-Msg-Id": row["id"], "Zenops-Event-Type": row["event_type"]}
            propagate.inject(headers)
            await js.publish(row["subject"], bytes(row["envelope"]), timeout=self.publish_timeout, headers=headers)

    async def prune(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(_PRUNE, {"days": self.retention_days})
            await conn.execute(_PRUNE_INBOX, {"days": self.inbox_retention_days})

    async def run(self) -> None:
        """Publish until cancelled; woken by NOTIFY at commit, polling as a fallback."""
        await self.bus.ready()
        listener = asyncio.create_task(self._listen(), name="outbox-listen")
        backoff = 0.1
        last_prune = 0.0
        loop = asyncio.get_running_loop()
        try:
            while True:
                # Cleared before the scan, so a commit notified during the scan is not lost.
                self._wakeup.clear()
                try:
                    token = otel_context.attach(otel_context.Context())  # relay work is not part of a request
                    try:
                        n = await self.publish_batch()
                    finally:
                        otel_context.detach(token)
                    backoff = 0.1
                    if loop.time() - last_prune > 3600:
                        await self.prune()
                        last_prune = loop.time()
                    if n >= self.batch_size:
                        continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - database or NATS down: retry with backoff
                    log.warning("outbox relay iteration failed", extra={"error": repr(exc)})
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel
                # that lands as the event fires (gh-86296), and stop() would hang.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_interval):
                        await self._wakeup.wait()
        finally:
            listener.cancel()

    async def _listen(self) -> None:
        def on_notify(*_args) -> None:
            self._wakeup.set()

        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self._listen_dsn, timeout=5)
                closed = asyncio.Event()
                conn.add_termination_listener(lambda *_, closed=closed: closed.set())
                await conn.add_listener(OUTBOX_CHANNEL, on_notify)
                self.listening = True
                self._wakeup.set()  # catch up on anything committed while we were not listening
                while not conn.is_closed():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(5):
                            await closed.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - polling continues meanwhile
                log.debug("outbox listener reconnecting", extra={"error": repr(exc)})
                await asyncio.sleep(self.poll_interval)
            finally:
                self.listening = False
                if conn is not None and not conn.is_closed():
                    conn.terminate()
