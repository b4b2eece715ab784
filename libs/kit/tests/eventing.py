"""Helpers for the event tests: a producer that writes rows + events, and a counting consumer."""

from __future__ import annotations

import uuid

from google.protobuf import wrappers_pb2
from sqlalchemy import text

from zenops_kit.events import ConsumerSpec, EventConsumer, append_event, new_event

PRODUCER = "kittest"


def unique_producer() -> str:
    # one stream per test keeps tests independent on the shared NATS server
    return f"kt{uuid.uuid4().hex[:8]}"


async def write_events(engine, producer: str, n: int, tenant_id: str | None = None, *, body: str = "e") -> list[str]:
    """Commit `n` events, each in its own transaction with a domain row (as a service would)."""
    tenant_id = tenant_id or str(uuid.uuid4())
    ids = []
    for i in range(n):
        env = new_event(
            event_type=f"{producer}.note.created",
            payload=wrappers_pb2.StringValue(value=f"{body}-{i}"),
            producer=producer,
            producer_version="test",
            aggregate_type="note",
            aggregate_id=str(i),
            aggregate_version=1,
            tenant_id=tenant_id,
        )
        async with engine.begin() as conn:
            await conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": tenant_id})
            await conn.execute(
                text("INSERT INTO notes (tenant_id, body) VALUES (:t, :b)"), {"t": tenant_id, "b": env.event_id}
            )
            await append_event(conn, env)
        ids.append(env.event_id)
    return ids


def recording_handler(consumer_name: str, fail_on: set[str] | None = None):
    async def handler(conn, env) -> None:
        value = wrappers_pb2.StringValue()
        env.payload.Unpack(value)
        if fail_on and value.value in fail_on:
            raise RuntimeError(f"poison {value.value}")
        await conn.execute(
            text("INSERT INTO effects (event_id, consumer, body) VALUES (CAST(:e AS uuid), :c, :b)"),
            {"e": env.event_id, "c": consumer_name, "b": value.value},
        )

    return handler


def make_consumer(
    engine, bus, producer: str, name: str | None = None, fail_on: set[str] | None = None, **spec
) -> EventConsumer:
    name = name or f"c{uuid.uuid4().hex[:8]}"
    spec.setdefault("backoff", (0.05,))
    return EventConsumer(
        engine,
        bus,
        ConsumerSpec(name=name, producer=producer, subjects=(f"zenops.{producer}.>",), **spec),
        recording_handler(name, fail_on),
    )


async def effects(engine, consumer: str) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT event_id::text FROM effects WHERE consumer = :c"), {"c": consumer})
        return [r[0] for r in rows]
