"""HTTP models of the operators' events view (GET /v1/control/events) and the dead-letter
replay, from zenops.common.v1.EventsAdminService.

A dead letter's id names its service: `<service>:<number>` (e.g. `ops:42`), because each
service keeps its dead letters in its own database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from zenops.common.v1 import events_admin_pb2 as pb

from .common import or_none, timestamp

EventService = Literal["identity", "ops", "billing", "repogen"]
DEAD_LETTER_ID_PATTERN = r"^(identity|ops|billing|repogen):[1-9][0-9]{0,17}$"


class OutboxStats(BaseModel):
    backlog: int = Field(description="Committed events not yet acknowledged by JetStream.")
    oldest_age_seconds: float = Field(description="Age of the oldest of them (0 when none wait).")


class ConsumerStats(BaseModel):
    name: str = Field(description="Durable consumer name.")
    stream: str
    jetstream_available: bool = Field(description="False when JetStream did not answer: the three figures are null.")
    pending: int | None = Field(None, description="Messages in the stream not yet delivered (the consumer's lag).")
    ack_pending: int | None = Field(None, description="Delivered, not yet acknowledged.")
    redelivered: int | None = Field(None, description="Redelivered and not yet acknowledged.")
    dead_letters_open: int
    dead_letters_total: int

    @classmethod
    def from_proto(cls, m: pb.ConsumerStats) -> ConsumerStats:
        live = m.jetstream_available
        return cls(
            name=m.name,
            stream=m.stream,
            jetstream_available=live,
            pending=m.pending if live else None,
            ack_pending=m.ack_pending if live else None,
            redelivered=m.redelivered if live else None,
            dead_letters_open=m.dead_letters_open,
            dead_letters_total=m.dead_letters_total,
        )


class DeadLetter(BaseModel):
    id: str = Field(description="`<service>:<number>`, e.g. `ops:42`: what the replay route takes.")
    service: EventService
    consumer: str
    event_id: str | None = Field(None, description="Null when the payload could not be parsed.")
    event_type: str | None = None
    subject: str
    error: str = Field(description="The handler's last error.")
    deliveries: int
    created_at: datetime
    replayed_at: datetime | None = None

    @classmethod
    def from_proto(cls, service: str, m: pb.DeadLetter) -> DeadLetter:
        return cls(
            id=f"{service}:{m.id}",
            service=service,
            consumer=m.consumer,
            event_id=or_none(m.event_id),
            event_type=or_none(m.event_type),
            subject=m.subject,
            error=m.error,
            deliveries=m.deliveries,
            created_at=timestamp(m, "created_at"),
            replayed_at=timestamp(m, "replayed_at"),
        )


class WorkerStatus(BaseModel):
    name: str
    state: Literal["running", "backoff", "stopped"]
    restarts: int
    last_error: str | None = None


class ServiceEvents(BaseModel):
    status: Literal["OK", "UNAVAILABLE"]
    code: str | None = Field(None, description="Why the service did not answer (when UNAVAILABLE).")
    nats_connected: bool | None = None
    outbox: OutboxStats | None = Field(None, description="Null for a service that publishes no events.")
    consumers: list[ConsumerStats] = Field(default_factory=list)
    dead_letters: list[DeadLetter] = Field(default_factory=list, description="Open dead letters, newest first.")
    workers: list[WorkerStatus] = Field(default_factory=list, description="The answering replica's workers.")

    @classmethod
    def from_proto(cls, service: str, m: pb.GetEventStatsResponse) -> ServiceEvents:
        return cls(
            status="OK",
            nats_connected=m.nats_connected,
            outbox=OutboxStats(backlog=m.outbox.backlog, oldest_age_seconds=m.outbox.oldest_age_seconds)
            if m.HasField("outbox")
            else None,
            consumers=[ConsumerStats.from_proto(c) for c in m.consumers],
            dead_letters=[DeadLetter.from_proto(service, d) for d in m.dead_letters],
            workers=[
                WorkerStatus(name=w.name, state=w.state, restarts=w.restarts, last_error=or_none(w.last_error))
                for w in m.workers
            ],
        )


class EventsView(BaseModel):
    services: dict[str, ServiceEvents] = Field(description="identity, ops, billing, repogen.")


class ReplayResult(BaseModel):
    dead_letter: DeadLetter = Field(description="The dead letter, now with `replayed_at`.")
    applied: bool = Field(description="False when the consumer had already handled the event: no second effect.")
