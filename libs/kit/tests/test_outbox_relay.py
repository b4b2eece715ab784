"""Transactional outbox + relay: every committed event is published, exactly once in effect."""

import asyncio
from collections import Counter

import pytest
from google.protobuf import wrappers_pb2
from sqlalchemy import text

from zenops_devstack.testing import poll
from zenops_kit.events import EventBus, OutboxRelay, append_event, ensure_stream, new_event, stream_name

from eventing import effects, make_consumer, unique_producer, write_events


def relay_for(engine, bus, url, **kw) -> OutboxRelay:
    return OutboxRelay(engine, bus, database_url=url, poll_interval=0.2, **kw)


async def stream_count(bus, producer) -> int:
    return (await bus.js.stream_info(stream_name(producer))).state.messages


async def unpublished(engine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))).scalar()


async def test_rolled_back_transaction_publishes_nothing(engine, bus, kit_db_url, clean):
    producer = unique_producer()
    await ensure_stream(bus.js, producer)
    with pytest.raises(RuntimeError, match="boom"):
        async with engine.begin() as conn:
            await append_event(
                conn,
                new_event(
                    event_type=f"{producer}.note.created",
                    payload=wrappers_pb2.StringValue(value="x"),
                    producer=producer,
                    producer_version="t",
                    aggregate_type="note",
                    aggregate_id="1",
                    aggregate_version=1,
                ),
            )
            raise RuntimeError("boom")
    relay = relay_for(engine, bus, kit_db_url)
    assert await relay.publish_batch() == 0
    assert await unpublished(engine) == 0
    assert await stream_count(bus, producer) == 0


async def test_relay_killed_between_publish_and_mark_yields_each_event_once(engine, bus, kit_db_url, clean):
    producer = unique_producer()
    await ensure_stream(bus.js, producer)
    ids = await write_events(engine, producer, 50)

    class Killed(BaseException):
        """Stands for the process dying: nothing after the publish acks runs."""

    crashing = relay_for(engine, bus, kit_db_url, batch_size=20)

    async def die(published_ids):
        raise Killed()

    crashing.after_publish = die
    with pytest.raises(Killed):
        await crashing.publish_batch()
    # the first 20 reached JetStream, yet none is marked: the claim transaction rolled back
    assert await stream_count(bus, producer) == 20
    assert await unpublished(engine) == 50

    # a fresh relay publishes everything; JetStream drops the 20 re-publishes (Nats-Msg-Id)
    relay = relay_for(engine, bus, kit_db_url, batch_size=20)
    while await relay.publish_batch():
        pass
    assert await unpublished(engine) == 0
    assert await stream_count(bus, producer) == 50

    consumer = make_consumer(engine, bus, producer)
    task = asyncio.create_task(consumer.run())
    try:
        got = await poll(lambda: _n_effects(engine, consumer.spec.name, 50), what="50 effects")
    finally:
        task.cancel()
    counts = Counter(got)
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1


async def _n_effects(engine, name, n):
    got = await effects(engine, name)
    return got if len(got) >= n else None


async def test_concurrent_relays_publish_each_row_once(engine, bus, kit_db_url, clean):
    """SKIP LOCKED: two relays never claim the same row."""
    producer = unique_producer()
    await ensure_stream(bus.js, producer)
    await write_events(engine, producer, 120)
    relays = [relay_for(engine, bus, kit_db_url, batch_size=10) for _ in range(3)]

    async def drain(r):
        while await r.publish_batch():
            pass

    await asyncio.gather(*(drain(r) for r in relays))
    assert sum(r.published_total for r in relays) == 120
    assert await stream_count(bus, producer) == 120


async def test_writes_commit_while_nats_is_down_and_arrive_after_it_returns(engine, nats_server, kit_db_url, clean):
    producer = unique_producer()
    bus = EventBus(nats_server.url, "kit-outage")
    bus.start()
    await asyncio.wait_for(bus.ready(), 10)
    await ensure_stream(bus.js, producer)
    relay = relay_for(engine, bus, kit_db_url)
    relay_task = asyncio.create_task(relay.run())
    consumer = make_consumer(engine, bus, producer)
    await consumer.ensure()
    consumer_task = asyncio.create_task(consumer.run())
    try:
        before = await write_events(engine, producer, 5, body="before")
        await poll(lambda: _n_effects(engine, consumer.spec.name, 5), what="events before the outage")

        nats_server.stop()
        await poll(lambda: not bus.connected, what="client to notice the outage")
        during = await write_events(engine, producer, 20, body="during")  # commits regardless
        assert await unpublished(engine) >= 1
        nats_server.start()

        got = await poll(lambda: _n_effects(engine, consumer.spec.name, 25), timeout=30, what="events after restart")
        assert sorted(got) == sorted(before + during)
        assert await unpublished(engine) == 0
    finally:
        if nats_server.proc is None:
            nats_server.start()
        relay_task.cancel()
        consumer_task.cancel()
        await asyncio.gather(relay_task, consumer_task, return_exceptions=True)
        await bus.drain()


async def test_relay_is_woken_by_commit_not_by_polling(engine, bus, kit_db_url, clean):
    producer = unique_producer()
    await ensure_stream(bus.js, producer)
    relay = OutboxRelay(engine, bus, database_url=kit_db_url, poll_interval=30)  # polling would take 30 s
    task = asyncio.create_task(relay.run())
    try:
        await poll(lambda: relay.listening, what="relay listening")
        await write_events(engine, producer, 3)
        await poll(lambda: relay.published_total == 3, timeout=5, what="NOTIFY-driven publish")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
