"""Operators' view of a service's events: the figures behind GET /v1/control/events and the
`zenops.outbox.*` / `zenops.consumer.*` gauges, and the EventsAdminService every service serves.

The gauges are observed synchronously at collection time, so `EventsView.run` (a supervised
worker) samples what needs I/O — the outbox backlog, dead-letter counts, JetStream's consumer
info — every `interval` seconds; GetEventStats reads everything afresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nats.js.api import ConsumerInfo
from opentelemetry.metrics import Observation
from sqlalchemy.ext.asyncio import AsyncEngine

from zenops.common.v1 import events_admin_pb2 as pb
from zenops.common.v1 import events_admin_pb2_grpc

from .. import metrics
from ..auth import requires
from ..errors import Unavailable
from ..infrastructure import is_infrastructure_error
from .bus import EventBus
from .consumer import EventConsumer
from .dead_letters import DeadLetterRow, dead_letter_counts, open_dead_letters, outbox_backlog, replay

log = logging.getLogger("zenops.events.admin")

JETSTREAM_TIMEOUT = 2.0
DEFAULT_DEAD_LETTERS, MAX_DEAD_LETTERS = 20, 100


class EventsView:
    def __init__(
        self,
        service: str,
        engine: AsyncEngine,
        bus: EventBus,
        consumers: list[EventConsumer],
        *,
        produces_events: bool,
        workers: Callable[[], list] = list,
    ) -> None:
        self.service = service
        self.engine = engine
        self.bus = bus
        self.consumers = consumers
        self.by_name = {c.spec.name: c for c in consumers}
        self.produces_events = produces_events
        self.workers = workers
        # The last sample (None: not sampled yet, or the source did not answer).
        self.outbox: tuple[int, float] | None = None
        self.dead_letters: dict[str, tuple[int, int]] | None = None
        self.infos: dict[str, ConsumerInfo | None] = {}
        self._unobserve: list[Callable[[], None]] = []

    # -- reading ---------------------------------------------------------------------------------

    async def consumer_info(self, consumer: EventConsumer) -> ConsumerInfo | None:
        if not self.bus.connected:
            return None
        try:
            async with asyncio.timeout(JETSTREAM_TIMEOUT):
                return await self.bus.js.consumer_info(consumer.stream, consumer.spec.name)
        except Exception as exc:  # noqa: BLE001 - NATS away, or the consumer not created yet
            log.debug("consumer info unavailable", extra={"consumer": consumer.spec.name, "error": repr(exc)})
            return None

    async def sample(self) -> None:
        infos = await asyncio.gather(*(self.consumer_info(c) for c in self.consumers))
        self.infos = {c.spec.name: info for c, info in zip(self.consumers, infos, strict=True)}
        try:
            self.outbox = await outbox_backlog(self.engine) if self.produces_events else None
            self.dead_letters = await dead_letter_counts(self.engine)
        except Exception as exc:  # noqa: BLE001 - the database is away: no figures rather than stale ones
            self.outbox = self.dead_letters = None
            if not is_infrastructure_error(exc):
                raise

    async def run(self, interval: float) -> None:
        """Sample every `interval` seconds until cancelled (a supervised worker)."""
        while True:
            await self.sample()
            await asyncio.sleep(interval)

    async def snapshot(self, dead_letter_limit: int) -> pb.GetEventStatsResponse:
        limit = min(dead_letter_limit or DEFAULT_DEAD_LETTERS, MAX_DEAD_LETTERS)
        infos = await asyncio.gather(*(self.consumer_info(c) for c in self.consumers))
        try:
            backlog = await outbox_backlog(self.engine) if self.produces_events else None
            counts = await dead_letter_counts(self.engine)
            dead = await open_dead_letters(self.engine, limit)
        except Exception as exc:
            if is_infrastructure_error(exc):
                raise Unavailable("the service's database is unavailable", reason="DATABASE_UNAVAILABLE") from exc
            raise
        resp = pb.GetEventStatsResponse(service=self.service, nats_connected=self.bus.connected)
        if backlog is not None:
            resp.outbox.backlog, resp.outbox.oldest_age_seconds = backlog
        for consumer, info in zip(self.consumers, infos, strict=True):
            open_, total = counts.get(consumer.spec.name, (0, 0))
            stats = resp.consumers.add(
                name=consumer.spec.name, stream=consumer.stream, dead_letters_open=open_, dead_letters_total=total
            )
            if info is not None:
                stats.jetstream_available = True
                stats.pending = info.num_pending or 0
                stats.ack_pending = info.num_ack_pending or 0
                stats.redelivered = info.num_redelivered or 0
        resp.dead_letters.extend(dead_letter_pb(row) for row in dead)
        resp.workers.extend(
            pb.WorkerStatus(name=w.name, state=w.state, restarts=w.restarts, last_error=w.last_error)
            for w in self.workers()
        )
        return resp

    # -- gauges ----------------------------------------------------------------------------------

    def observe(self) -> None:
        for name, source in {
            "zenops.outbox.backlog": lambda: self._outbox(0),
            "zenops.outbox.oldest_age": lambda: self._outbox(1),
            "zenops.consumer.lag": lambda: self._jetstream("num_pending"),
            "zenops.consumer.ack_pending": lambda: self._jetstream("num_ack_pending"),
            "zenops.consumer.redelivered": lambda: self._jetstream("num_redelivered"),
            "zenops.consumer.dead_letters.open": self._dead_open,
        }.items():
            self._unobserve.append(metrics.observe(name, source))

    def unobserve(self) -> None:
        for remove in self._unobserve:
            remove()
        self._unobserve.clear()

    def _outbox(self, index: int) -> list[Observation]:
        return [] if self.outbox is None else [Observation(self.outbox[index], {"service": self.service})]

    def _jetstream(self, field: str) -> list[Observation]:
        return [
            Observation(
                getattr(info, field) or 0,
                {"service": self.service, "consumer": name, "stream": self.by_name[name].stream},
            )
            for name, info in self.infos.items()
            if info is not None
        ]

    def _dead_open(self) -> list[Observation]:
        if self.dead_letters is None:
            return []
        return [
            Observation(
                self.dead_letters.get(c.spec.name, (0, 0))[0], {"service": self.service, "consumer": c.spec.name}
            )
            for c in self.consumers
        ]


def dead_letter_pb(row: DeadLetterRow) -> pb.DeadLetter:
    msg = pb.DeadLetter(
        id=row.id,
        consumer=row.consumer,
        event_id=row.event_id or "",
        event_type=row.event_type or "",
        subject=row.subject,
        error=row.error,
        deliveries=row.deliveries,
    )
    msg.created_at.FromDatetime(row.created_at)
    if row.replayed_at is not None:
        msg.replayed_at.FromDatetime(row.replayed_at)
    return msg


class EventsAdminServicer(events_admin_pb2_grpc.EventsAdminServiceServicer):
    """Translates EventsAdminService to the view and the replay."""

    def __init__(self, view: EventsView) -> None:
        self.view = view

    @requires("control.read")
    async def GetEventStats(self, request, context):
        return await self.view.snapshot(request.dead_letter_limit)

    @requires("control.write")
    async def ReplayDeadLetter(self, request, context):
        row, applied = await replay(self.view.engine, self.view.by_name, request.id)
        log.info("dead letter replayed", extra={"dead_letter": row.id, "consumer": row.consumer, "applied": applied})
        return pb.ReplayDeadLetterResponse(dead_letter=dead_letter_pb(row), applied=applied)


SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EventsAdminService"].full_name


def register(server, view: EventsView) -> str:
    events_admin_pb2_grpc.add_EventsAdminServiceServicer_to_server(EventsAdminServicer(view), server)
    return SERVICE_NAME
