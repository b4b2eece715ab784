"""Append an event to the outbox inside the caller's transaction."""

from __future__ import annotations

from google.protobuf.message import Message
from opentelemetry import propagate
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from zenops.events.v1 import envelope_pb2

from .envelope import new_event, subject_for

_INSERT = text(
    "INSERT INTO outbox (id, subject, event_type, tenant_id, envelope, traceparent, tracestate) "
    "VALUES (CAST(:id AS uuid), :subject, :event_type, CAST(NULLIF(:tenant_id, '') AS uuid), :envelope, :tp, :ts)"
)


async def append_event(conn: AsyncConnection, env: envelope_pb2.EventEnvelope) -> None:
    """Write `env` to the outbox in `conn`'s transaction: it is published iff this commits."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    env.trace_context.traceparent = carrier.get("traceparent", "")
    env.trace_context.tracestate = carrier.get("tracestate", "")
    await conn.execute(
        _INSERT,
        {
            "id": env.event_id,
            "subject": subject_for(env.event_type),
            "event_type": env.event_type,
            "tenant_id": env.tenant_id,
            "envelope": env.SerializeToString(deterministic=True),
            "tp": env.trace_context.traceparent or None,
            "ts": env.trace_context.tracestate or None,
        },
    )


class Producer:
    """A service's events: each stamped with the service's name and release (the app sets
    `version` at start-up) and appended to the outbox in the caller's transaction."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.version = "0.0.0"

    async def emit(
        self,
        conn: AsyncConnection,
        *,
        event_type: str,
        payload: Message,
        tenant_id: str,
        aggregate_type: str,
        aggregate_id: str,
        aggregate_version: int,
        event_id: str | None = None,
    ) -> str:
        """Append the event to the outbox; returns its id."""
        env = new_event(
            event_type=event_type,
            payload=payload,
            producer=self.name,
            producer_version=self.version,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            aggregate_version=aggregate_version,
            tenant_id=tenant_id,
            event_id=event_id,
        )
        await append_event(conn, env)
        return env.event_id
