"""Idempotent JetStream consumers.

A durable pull consumer is created (or updated) at start-up with its intended config, and
the config the server reports is asserted (nats-py's `pull_subscribe` silently keeps an
existing consumer's old config). Each message is handled in one database transaction that
also records its `event_id` in the inbox, so a redelivery is acknowledged without a second
effect. A handler's failure is retried with backoff; after `max_deliver` failures the
message is written to `dead_letters` and acknowledged, and the consumer goes on.

An infrastructure error (`is_infrastructure_error`: the database or NATS unreachable, a
connection lost, a service UNAVAILABLE) says nothing about the message: it is never counted
toward `max_deliver`. The message (and the rest of its batch) is handed back at once, and
`run()` raises `InfrastructureUnavailable` so that its supervisor restarts the consumer
after a backoff: the consumer pauses instead of dead-lettering, and resumes by itself.

Handler failures are counted per event in this process's memory, not from JetStream's
delivery count, which also grows with every redelivery the handler never saw fail (an
infrastructure pause, an expired ack_wait). A restart forgets the counts: a poison message
then gets up to `max_deliver` more attempts, never fewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops.events.v1 import envelope_pb2

from .. import metrics
from ..errors import DomainError
from ..infrastructure import is_infrastructure_error
from .bus import EventBus
from .dead_letters import replay
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


# How many events' handler-failure counts a consumer remembers (oldest forgotten first).
_FAILURE_MEMORY = 10_000
# Consecutive failed fetches (0.5 s apart) before the consumer hands over to its supervisor,
# which binds it again (the durable may have been deleted under it).
_FETCH_FAILURES_BEFORE_RESTART = 20


class InfrastructureUnavailable(RuntimeError):
    """A consumer paused on an infrastructure error; its supervisor restarts it after a backoff."""


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
    infra_failures: int = 0  # handler runs that met an infrastructure error (not counted as failures)
    redeliveries: int = 0


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
        self.service = ""  # metric attribute; set by the ServiceApp that runs it
        # event_id → handler failures so far (see the module docstring)
        self._failures: OrderedDict[str, int] = OrderedDict()

    @property
    def stream(self) -> str:
        return stream_name(self.spec.producer)

    def _count(self, outcome: str) -> None:
        metrics.CONSUMER_MESSAGES.add(1, {"service": self.service, "consumer": self.spec.name, "outcome": outcome})

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
        """Fetch and handle messages until cancelled. Raises (for the supervisor to restart it)
        when `ensure()` fails, when an infrastructure error pauses it, or when fetching keeps
        failing."""
        await self.ensure()
        js = self.bus.js
        sub = await js.pull_subscribe_bind(durable=self.spec.name, stream=self.stream)
        fetch_failures = 0
        try:
            while True:
                try:
                    msgs = await sub.fetch(self.spec.batch, timeout=1.0)
                except (TimeoutError, NatsTimeoutError):
                    fetch_failures = 0
                    continue
                except asyncio.CancelledError:
                    raise
                except NotFoundError:
                    raise  # the durable is gone: the supervisor's restart creates it again
                except Exception as exc:  # noqa: BLE001 - NATS reconnecting: try again shortly
                    fetch_failures += 1
                    if fetch_failures >= _FETCH_FAILURES_BEFORE_RESTART:
                        raise
                    log.warning("consumer fetch failed", extra={"consumer": self.spec.name, "error": repr(exc)})
                    await asyncio.sleep(0.5)
                    continue
                fetch_failures = 0
                for i, msg in enumerate(msgs):
                    try:
                        await self.handle(msg)
                    except BaseException:
                        # Hand the rest of the batch back now rather than after ack_wait.
                        for rest in msgs[i + 1 :]:
                            with contextlib.suppress(Exception):
                                await rest.nak()
                        raise
        finally:
            try:
                await sub.unsubscribe()
            except Exception:  # noqa: BLE001 - connection already gone
                pass

    async def handle(self, msg) -> None:
        headers = dict(msg.headers or {})
        deliveries = msg.metadata.num_delivered
        if deliveries > 1:
            self.stats.redeliveries += 1
            metrics.CONSUMER_REDELIVERIES.add(1, {"service": self.service, "consumer": self.spec.name})
        try:
            env = envelope_pb2.EventEnvelope.FromString(msg.data)
            if not env.event_id:
                raise DecodeError("envelope has no event_id")
        except DecodeError as exc:
            # A payload that can never parse is not retried: record it and move on.
            await self._dead_letter_or_pause(msg, None, f"invalid envelope: {exc}", deliveries)
            self.stats.invalid += 1
            self._count("invalid")
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
                if is_infrastructure_error(exc):
                    await self._pause(msg, env.event_id, exc)
                failures = self._failures.pop(env.event_id, 0) + 1
                self.stats.failures += 1
                self._count("failed")
                if failures >= self.spec.max_deliver:
                    log.error(
                        "event dead-lettered",
                        extra={
                            "consumer": self.spec.name,
                            "event_id": env.event_id,
                            "failures": failures,
                            "error": repr(exc),
                        },
                    )
                    self._remember(env.event_id, failures)  # kept should recording the dead letter fail
                    await self._dead_letter_or_pause(msg, env, repr(exc), deliveries)
                    self._failures.pop(env.event_id, None)
                    self.stats.dead_lettered += 1
                    self._count("dead_lettered")
                    await msg.ack()
                else:
                    self._remember(env.event_id, failures)
                    delay = self.spec.backoff[min(failures - 1, len(self.spec.backoff) - 1)]
                    log.warning(
                        "event handler failed; will retry",
                        extra={
                            "consumer": self.spec.name,
                            "event_id": env.event_id,
                            "failures": failures,
                            "delivery": deliveries,
                            "retry_in": delay,
                            "error": repr(exc),
                        },
                    )
                    await msg.nak(delay=delay)
                return
            finally:
                heartbeat.cancel()
            self._failures.pop(env.event_id, None)
            if applied:
                self.stats.handled += 1
                self._count("handled")
            else:
                self.stats.duplicates += 1
                self._count("duplicate")
            await msg.ack()

    def _remember(self, event_id: str, failures: int) -> None:
        self._failures[event_id] = failures
        while len(self._failures) > _FAILURE_MEMORY:
            self._failures.popitem(last=False)

    async def _pause(self, msg, event_id: str | None, exc: BaseException) -> None:
        """An infrastructure error: hand the message back uncounted and stop (the supervisor
        restarts the consumer after a backoff)."""
        self.stats.infra_failures += 1
        self._count("infra_error")
        log.warning(
            "consumer paused: infrastructure unavailable",
            extra={"consumer": self.spec.name, "event_id": event_id, "error": repr(exc)[:300]},
        )
        with contextlib.suppress(Exception):  # NATS may be the thing that is down: then ack_wait redelivers
            await msg.nak()
        raise InfrastructureUnavailable(f"consumer {self.spec.name}: {exc!r}"[:500]) from exc

    async def _dead_letter_or_pause(self, msg, env, error: str, deliveries: int) -> None:
        try:
            await self._dead_letter(msg, env, error, deliveries)
        except Exception as exc:  # noqa: BLE001 - classified below
            if is_infrastructure_error(exc):
                await self._pause(msg, env.event_id if env is not None else None, exc)
            raise
        metrics.CONSUMER_DEAD_LETTERS.add(1, {"service": self.service, "consumer": self.spec.name})

    async def _apply(self, env: envelope_pb2.EventEnvelope) -> bool:
        """Run the handler and record the inbox row in one transaction; False for a duplicate."""
        async with self.engine.begin() as conn:
            return await self.apply_in(conn, env)

    async def apply_in(self, conn: AsyncConnection, env: envelope_pb2.EventEnvelope) -> bool:
        """The inbox row and the handler in the caller's transaction; False for a duplicate."""
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
            with contextlib.suppress(Exception):  # NATS away: the redelivery after ack_wait is harmless
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
        """Operator replay of one of this consumer's dead letters (see `dead_letters.replay`):
        True when replayed now, False when it has no open dead letter with that id."""
        try:
            await replay(self.engine, {self.spec.name: self}, dead_letter_id)
        except DomainError:
            return False
        return True
