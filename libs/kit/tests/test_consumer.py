"""Idempotent consumers: redeliveries have no second effect; poison messages dead-letter."""

import asyncio
import uuid

import pytest
from google.protobuf import wrappers_pb2
from nats.js.api import ConsumerConfig
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text

from zenops_devstack.testing import poll
from zenops_kit.events import (
    ConsumerConfigMismatch,
    OutboxRelay,
    append_event,
    ensure_stream,
    new_event,
    stream_name,
)

from eventing import effects, make_consumer, unique_producer, write_events


async def publish_all(engine, bus, url):
    relay = OutboxRelay(engine, bus, database_url=url)
    while await relay.publish_batch():
        pass


async def dead_letters(engine, consumer):
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT event_id::text, deliveries, error FROM dead_letters WHERE consumer = :c ORDER BY id"),
            {"c": consumer},
        )
        return rows.all()


async def run_until(consumer, check, **kw):
    task = asyncio.create_task(consumer.run())
    try:
        return await poll(check, **kw)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_redelivered_event_has_no_second_effect(engine, bus, kit_db_url, clean):
    producer = unique_producer()
    await ensure_stream(bus.js, producer)
    [event_id] = await write_events(engine, producer, 1)
    await publish_all(engine, bus, kit_db_url)
    # the same event again under another Nats-Msg-Id: what a re-publish after JetStream's
    # duplicate window looks like; only the inbox stands between it and a second effect
    async with engine.connect() as conn:
        envelope = (await conn.execute(text("SELECT envelope FROM outbox"))).scalar()
    await bus.js.publish(f"zenops.{producer}.note.created", bytes(envelope), headers={"Nats-Msg-Id": "again"})

    consumer = make_consumer(engine, bus, producer)
    await run_until(consumer, lambda: consumer.stats.duplicates == 1, what="the duplicate to be acked")
    assert await effects(engine, consumer.spec.name) == [event_id]
    assert consumer.stats.handled == 1


async def test_crash_between_commit_and_ack_does_not_apply_twice(engine, bus, kit_db_url, clean):
    producer = unique_producer()
    await ensure_stream(bus.js, producer)
    [event_id] = await write_events(engine, producer, 1)
    await publish_all(engine, bus, kit_db_url)

    consumer = make_consumer(engine, bus, producer, ack_wait=1.0)
    await consumer.ensure()
    sub = await bus.js.pull_subscribe_bind(durable=consumer.spec.name, stream=stream_name(producer))
    [msg] = await sub.fetch(1, timeout=5)

    async def lost_ack():  # the process died after the commit, before the ack reached NATS
        return None

    msg.ack = lost_ack
    await consumer.handle(msg)
    assert await effects(engine, consumer.spec.name) == [event_id]

    # JetStream redelivers after ack_wait; the inbox turns it into a no-op
    await run_until(consumer, lambda: consumer.stats.duplicates >= 1, timeout=20, what="redelivery")
    assert await effects(engine, consumer.spec.name) == [event_id]


async def test_poison_message_is_dead_lettered_after_max_deliver_and_consumer_goes_on(engine, bus, kit_db_url, clean):
    producer = unique_producer()
    await ensure_stream(bus.js, producer)
    ids = await write_events(engine, producer, 5)  # bodies e-0 .. e-4
    await publish_all(engine, bus, kit_db_url)

    consumer = make_consumer(engine, bus, producer, fail_on={"e-2"}, max_deliver=3)
    task = asyncio.create_task(consumer.run())
    try:
        await poll(
            lambda: consumer.stats.dead_lettered == 1 and consumer.stats.handled == 4,
            timeout=20,
            what="4 effects and 1 dead letter",
        )
        assert sorted(await effects(engine, consumer.spec.name)) == sorted(ids[:2] + ids[3:])
        [(dead_id, deliveries, error)] = await dead_letters(engine, consumer.spec.name)
        assert dead_id == ids[2]
        assert deliveries == 3
        assert "poison e-2" in error
        assert consumer.stats.failures == 3

        # later events still flow
        more = await write_events(engine, producer, 2, body="later")
        await publish_all(engine, bus, kit_db_url)
        await poll(lambda: consumer.stats.handled == 6, what="later events")
        assert set(more) <= set(await effects(engine, consumer.spec.name))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    # an operator replays the dead letter once the cause is fixed: applied once
    consumer.handler = make_consumer(engine, bus, producer, name=consumer.spec.name).handler
    async with engine.connect() as conn:
        dl_id = (await conn.execute(text("SELECT id FROM dead_letters"))).scalar()
    assert await consumer.replay_dead_letter(dl_id) is True
    assert await consumer.replay_dead_letter(dl_id) is False
    assert sorted(await effects(engine, consumer.spec.name)) == sorted(ids + more)


async def test_unparseable_message_is_dead_lettered_without_retry(engine, bus, clean):
    producer = unique_producer()
    await ensure_stream(bus.js, producer)
    await bus.js.publish(f"zenops.{producer}.note.created", b"\xff\xfenot a protobuf", headers={"Nats-Msg-Id": "bad"})
    consumer = make_consumer(engine, bus, producer)
    await run_until(consumer, lambda: consumer.stats.invalid == 1, what="invalid payload")
    [(event_id, deliveries, error)] = await dead_letters(engine, consumer.spec.name)
    assert event_id is None and deliveries == 1 and "invalid envelope" in error


async def test_consumer_config_is_applied_and_asserted(engine, bus, clean):
    producer = unique_producer()
    name = f"c{uuid.uuid4().hex[:8]}"
    first = make_consumer(engine, bus, producer, name=name, ack_wait=30.0)
    await first.ensure()
    # a new release declares a different ack_wait: start-up updates the durable consumer
    second = make_consumer(engine, bus, producer, name=name, ack_wait=12.0, max_ack_pending=64)
    await second.ensure()
    info = await bus.js.consumer_info(stream_name(producer), name)
    assert info.config.ack_wait == 12.0
    assert info.config.max_ack_pending == 64


async def test_consumer_config_that_cannot_be_applied_fails_start_up(engine, bus, clean, monkeypatch):
    producer = unique_producer()
    consumer = make_consumer(engine, bus, producer)
    await consumer.ensure()

    async def add_consumer_ignoring_config(stream, config: ConsumerConfig, **kw):
        return None  # what nats-py's pull_subscribe does to an existing consumer: keeps the old config

    monkeypatch.setattr(bus.js, "add_consumer", add_consumer_ignoring_config)
    changed = make_consumer(engine, bus, producer, name=consumer.spec.name, ack_wait=7.0)
    with pytest.raises(ConsumerConfigMismatch, match="ack_wait"):
        await changed.ensure()


async def test_publish_and_consume_spans_join_the_producing_trace(engine, bus, kit_db_url, clean):
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = trace.get_tracer("test")

    producer = unique_producer()
    await ensure_stream(bus.js, producer)
    with tracer.start_as_current_span("request") as request_span:
        env = new_event(
            event_type=f"{producer}.note.created",
            payload=wrappers_pb2.StringValue(value="t"),
            producer=producer,
            producer_version="t",
            aggregate_type="note",
            aggregate_id="1",
            aggregate_version=1,
        )
        async with engine.begin() as conn:
            await append_event(conn, env)
    await publish_all(engine, bus, kit_db_url)
    consumer = make_consumer(engine, bus, producer)
    await run_until(consumer, lambda: consumer.stats.handled == 1, what="handled")

    trace_id = request_span.get_span_context().trace_id
    spans = {s.name: s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id}
    publish = spans[f"zenops.{producer}.note.created publish"]
    process = spans[f"zenops.{producer}.note.created process"]
    assert publish.kind == trace.SpanKind.PRODUCER and process.kind == trace.SpanKind.CONSUMER
    assert publish.parent.span_id == request_span.get_span_context().span_id
    assert process.parent.span_id == publish.context.span_id
    assert [link.context.span_id for link in process.links] == [publish.context.span_id]
