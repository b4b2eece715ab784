"""Idempotent JetStream consumers.

A durable pull consumer is created (or updated) at start-up with its intended config, and
the config the server reports is asserted (nats-py's `pull_subscribe` silently keeps an
existing consumer's old config). Each message is handled in one database transaction that
also records its `event_id` in the inbox, so a redelivery is acknowledged without a second
effect. Failures are retried with backoff; after `max_deliver` attempts the message is
written to `dead_letters` and acknowledged, and the consumer goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops.events.v1 import envelope_pb2

from .bus import EventBus
from .streams import ensure_stream, stream_name

log = logging.getLogger("zenops.events.consumer")
tracer = trace.get_tracer("zenops.events")

Handler = Callable[[AsyncConnection, envelope_pb2.EventEnvelope], Awaitable[None]]

_INBOX = text(
    "INSERT INTO inbox (consumer, event_id) VALUES (:consumer, CAST(:event_id AS uuid)) "
    "ON CONFLICT DO NOTHING RETURNING 1"
)
_SET_TENANT = text("SELECT set_config('app.tenant_id', :tenant_id, true)")
_DEAD = text(
    "INSERT INTO dead_letters (consumer, event_id, subject, event_type, envelope, headers, error, deliveries, "
    "stream_sequence) VALUES (:consumer, CAST(NULLIF(:event_id, '') AS uuid), :subject, :event_type, :envelope, "
    "CAST(:headers AS jsonb), :error, :deliveries, :seq)"
)


class ConsumerConfigMismatch(RuntimeError):
    """The server holds a consumer whose config differs from what this code declares."""


@dataclass(frozen=True)
class ConsumerSpec:
    """What a consumer declares. `name` is the durable name, unique per (service, purpose)."""

    name: str
    producer: str  # whose stream to read
    subjects: tuple[str, ...]  # filter subjects, e.g. ("zenops.ops.channel_request.accepted",)
    max_deliver: int = 5
    ack_wait: float = 30.0
    backoff: tuple[float, ...] = (1.0, 5.0, 15.0, 60.0)
    max_ack_pending: int = 256
    batch: int = 32
    heartbeat_interval: float | None = None  # default: ack_wait / 3

    def nats_config(self) -> ConsumerConfig:
        # The server never gives up on its own (max_deliver=-1): the kit counts deliveries and
        # dead-letters after `max_deliver`, so a message is never dropped while the database
        # that records the dead letter is unavailable.
        return ConsumerConfig(
            durable_name=self.name,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=-1,
            max_ack_pending=self.max_ack_pending,
            filter_subjects=list(self.subjects),
        )


@dataclass
class ConsumerStats:
    handled: int = 0
    duplicates: int = 0
    failures: int = 0
    dead_lettered: int = 0
    invalid: int = 0


class EventConsumer:
    def __init__(
        self,
        engine: AsyncEngine,
        bus: EventBus,
        spec: ConsumerSpec,
        handler: Handler,
        *,
        stream_replicas: int = 1,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.spec = spec
        self.handler = handler
        self.stream_replicas = stream_replicas
        self.stats = ConsumerStats()

    async def ensure(self) -> None:
        """Create or update the durable consumer, then assert the server holds our config."""
        js = await self.bus.ready()
        stream = stream_name(self.spec.producer)
        await ensure_stream(js, self.spec.producer, self.stream_replicas)
        wanted = self.spec.nats_config()
        # CONSUMER.CREATE on an existing durable updates its editable fields (or fails loudly).
        await js.add_consumer(stream, wanted)
        info = await js.consumer_info(stream, self.spec.name)
        got = info.config
        checks = {
            "ack_policy": (got.ack_policy, wanted.ack_policy),
            "ack_wait": (got.ack_wait, wanted.ack_wait),
            "max_deliver": (got.max_deliver, wanted.max_deliver),
            "max_ack_pending": (got.max_ack_pending, wanted.max_ack_pending),
            "filter_subjects": (
                sorted(got.filter_subjects or ([got.filter_subject] if got.filter_subject else [])),
                sorted(wanted.filter_subjects),
            ),
        }
        wrong = {k: v for k, v in checks.items() if v[0] != v[1]}
        if wrong:
            raise ConsumerConfigMismatch(
                f"consumer {stream}/{self.spec.name} config differs: "
                + ", ".join(f"{k}: server={a!r} declared={b!r}" for k, (a, b) in wrong.items())
            )

    async def run(self) -> None:
        """Fetch and handle messages until cancelled."""
        await self.ensure()
        js = self.bus.js
        sub = await js.pull_subscribe_bind(durable=self.spec.name, stream=stream_name(self.spec.producer))
        try:
            while True:
                try:
                    msgs = await sub.fetch(self.spec.batch, timeout=1.0)
                except (TimeoutError, NatsTimeoutError):
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - NATS reconnecting: try again shortly
                    log.warning("consumer fetch failed", extra={"consumer": self.spec.name, "error": repr(exc)})
                    await asyncio.sleep(0.5)
                    continue
                for msg in msgs:
                    await self.handle(msg)
        finally:
            try:
                await sub.unsubscribe()
            except Exception:  # noqa: BLE001 - connection already gone
                pass

    async def handle(self, msg) -> None:
        headers = dict(msg.headers or {})
        deliveries = msg.metadata.num_delivered
        try:
            env = envelope_pb2.EventEnvelope.FromString(msg.data)
            if not env.event_id:
                raise DecodeError("envelope has no event_id")
        except DecodeError as exc:
            # A payload that can never parse is not retried: record it and move on.
            self.stats.invalid += 1
            await self._dead_letter(msg, None, f"invalid envelope: {exc}", deliveries)
            await msg.ack()
            return

        producer_ctx = propagate.extract(headers)
        producer_span = trace.get_current_span(producer_ctx).get_span_context()
        links = [Link(producer_span)] if producer_span.is_valid else []
        with tracer.start_as_current_span(
            f"{msg.subject} process",
            context=producer_ctx,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": msg.subject,
                "messaging.message.id": env.event_id,
                "messaging.consumer.group.name": self.spec.name,
                "messaging.operation.type": "process",
            },
        ) as span:
            heartbeat = asyncio.create_task(self._heartbeat(msg))
            try:
                applied = await self._apply(env)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - handler failure: retry or dead-letter
                span.record_exception(exc)
                self.stats.failures += 1
                if deliveries >= self.spec.max_deliver:
                    log.error(
                        "event dead-lettered",
                        extra={"consumer": self.spec.name, "event_id": env.event_id, "error": repr(exc)},
                    )
                    await self._dead_letter(msg, env, repr(exc), deliveries)
                    self.stats.dead_lettered += 1
                    await msg.ack()
                else:
                    delay = self.spec.backoff[min(deliveries - 1, len(self.spec.backoff) - 1)]
                    log.warning(
                        "event handler failed; will retry",
                        extra={"consumer": self.spec.name, "event_id": env.event_id, "delivery": deliveries,
                               "retry_in": delay, "error": repr(exc)},
                    )
                    await msg.nak(delay=delay)
                return
            finally:
                heartbeat.cancel()
            if applied:
                self.stats.handled += 1
            else:
                self.stats.duplicates += 1
            await msg.ack()

    async def _apply(self, env: envelope_pb2.EventEnvelope) -> bool:
        """Run the handler and record the inbox row in one transaction; False for a duplicate."""
        async with self.engine.begin() as conn:
            first = (await conn.execute(_INBOX, {"consumer": self.spec.name, "event_id": env.event_id})).first()
            if first is None:
                return False
            if env.tenant_id:
                await conn.execute(_SET_TENANT, {"tenant_id": env.tenant_id})
            await self.handler(conn, env)
        return True

    async def _heartbeat(self, msg) -> None:
        interval = self.spec.heartbeat_interval or self.spec.ack_wait / 3
        while True:
            await asyncio.sleep(interval)
            await msg.in_progress()

    async def _dead_letter(self, msg, env, error: str, deliveries: int) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                _DEAD,
                {
                    "consumer": self.spec.name,
                    "event_id": env.event_id if env is not None else "",
                    "subject": msg.subject,
                    "event_type": env.event_type if env is not None else None,
                    "envelope": msg.data,
                    "headers": json.dumps(dict(msg.headers or {})),
                    "error": error[:2000],
                    "deliveries": deliveries,
                    "seq": msg.metadata.sequence.stream,
                },
            )

    async def replay_dead_letter(self, dead_letter_id: int) -> bool:
        """Operator replay: run the handler on a dead letter now (still idempotent via the inbox)."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    text("SELECT envelope FROM dead_letters WHERE id = :id AND consumer = :c AND replayed_at IS NULL "
                         "FOR UPDATE"),
                    {"id": dead_letter_id, "c": self.spec.name},
                )
            ).first()
            if row is None:
                return False
            env = envelope_pb2.EventEnvelope.FromString(bytes(row.envelope))
        await self._apply(env)
        async with self.engine.begin() as conn:
            await conn.execute(text("UPDATE dead_letters SET replayed_at = now() WHERE id = :id"), {"id": dead_letter_id})
        return True
