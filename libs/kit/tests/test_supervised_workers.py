"""Supervised workers: a consumer that meets an infrastructure error pauses and resumes by
itself without losing or dead-lettering anything; a handler's own bug still dead-letters after
max_deliver; a worker whose start-up (`ensure()`) fails is restarted with backoff and reported
in health."""

import asyncio
import uuid

from grpc_health.v1 import health, health_pb2
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import text
from sqlalchemy.engine import make_url

from zenops_devstack.proxy import TcpProxy
from zenops_devstack.testing import poll
from zenops_kit.db import create_engine
from zenops_kit.errors import Unavailable
from zenops_kit.events import ConsumerSpec, EventConsumer, OutboxRelay, ensure_stream, stream_name
from zenops_kit.infrastructure import is_infrastructure_error
from zenops_kit.supervisor import BACKOFF, RUNNING, Supervisor

from eventing import effects, recording_handler, unique_producer, write_events

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def publish_all(engine, bus, url):
    relay = OutboxRelay(engine, bus, database_url=url)
    while await relay.publish_batch():
        pass


async def dead_letters(engine, consumer: str) -> list:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT event_id::text, deliveries FROM dead_letters WHERE consumer = :c"), {"c": consumer}
        )
        return rows.all()


def fast_supervisor(**kw) -> Supervisor:
    return Supervisor("kit-test", min_backoff=0.05, max_backoff=0.4, **kw)


def spec(producer: str, name: str, **kw) -> ConsumerSpec:
    kw.setdefault("backoff", (0.05,))
    return ConsumerSpec(name=name, producer=producer, subjects=(f"zenops.{producer}.>",), **kw)


async def worker_health(servicer: health.aio.HealthServicer, name: str) -> int:
    resp = await servicer.Check(health_pb2.HealthCheckRequest(service=f"zenops.worker.{name}"), None)
    return resp.status


async def test_a_database_outage_pauses_the_consumer_and_it_resumes_losing_nothing(kit_db_url, engine, bus, clean):
    producer = unique_producer()
    await ensure_stream(bus.js, producer)
    ids = await write_events(engine, producer, 6)
    await publish_all(engine, bus, kit_db_url)

    # the consumer reaches the database through a proxy the test cuts
    url = make_url(kit_db_url)
    proxy = TcpProxy(url.port)
    await proxy.start()
    consumer_engine = create_engine(url.set(port=proxy.port).render_as_string(hide_password=False), pool_size=2)
    name = f"c{uuid.uuid4().hex[:8]}"
    consumer = EventConsumer(consumer_engine, bus, spec(producer, name, max_deliver=2), recording_handler(name))
    supervisor = fast_supervisor()
    await proxy.cut()
    try:
        supervisor.add("consumer", consumer.run)
        # far more failed attempts than max_deliver: none of them may count
        await poll(lambda: consumer.stats.infra_failures >= 5, timeout=30, what="attempts during the outage")
        assert supervisor.workers["consumer"].restarts >= 4
        assert consumer.stats.failures == 0 and consumer.stats.dead_lettered == 0
        info = await bus.js.consumer_info(stream_name(producer), name)
        assert info.num_redelivered >= 1 or info.num_ack_pending >= 1

        await proxy.restore()
        await poll(lambda: consumer.stats.handled == 6, timeout=30, what="every event once the database is back")
        assert sorted(await effects(engine, name)) == sorted(ids)
        assert await dead_letters(engine, name) == []
        assert supervisor.workers["consumer"].state == RUNNING
    finally:
        await supervisor.stop()
        await consumer_engine.dispose()
        await proxy.cut()


async def test_infrastructure_errors_from_the_handler_do_not_count_but_its_bugs_do(kit_db_url, engine, bus, clean):
    producer = unique_producer()
    await ensure_stream(bus.js, producer)
    ids = await write_events(engine, producer, 3)  # bodies e-0, e-1, e-2
    await publish_all(engine, bus, kit_db_url)
    name = f"c{uuid.uuid4().hex[:8]}"
    record = recording_handler(name, fail_on={"e-2"})  # e-2: the handler's own bug, every time
    unavailable = {"left": 6}  # a dependency (another service) is down for the first six calls

    async def handler(conn, env) -> None:
        if unavailable["left"] > 0:
            unavailable["left"] -= 1
            raise Unavailable("billing is unavailable")
        await record(conn, env)

    consumer = EventConsumer(engine, bus, spec(producer, name, max_deliver=3), handler)
    supervisor = fast_supervisor()
    supervisor.add("consumer", consumer.run)
    try:
        await poll(
            lambda: consumer.stats.handled == 2 and consumer.stats.dead_lettered == 1,
            timeout=30,
            what="two events applied and the poison one dead-lettered",
        )
        assert consumer.stats.infra_failures == 6
        assert consumer.stats.failures == 3  # only the bug counted toward max_deliver
        assert sorted(await effects(engine, name)) == sorted(ids[:2])
        [(dead_id, deliveries)] = await dead_letters(engine, name)
        assert dead_id == ids[2]
        assert deliveries >= 3
    finally:
        await supervisor.stop()


def test_what_counts_as_an_infrastructure_error():
    from sqlalchemy.exc import IntegrityError, OperationalError

    assert is_infrastructure_error(ConnectionRefusedError())
    assert is_infrastructure_error(OperationalError("SELECT 1", {}, ConnectionResetError()))
    assert is_infrastructure_error(Unavailable("billing down"))
    try:
        try:
            raise ConnectionResetError("lost")
        except ConnectionResetError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapped:
        assert is_infrastructure_error(wrapped)
    assert not is_infrastructure_error(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not is_infrastructure_error(ValueError("bad payload"))
    assert not is_infrastructure_error(FileNotFoundError("template.docx"))


async def test_a_worker_whose_ensure_fails_is_restarted_with_backoff_and_reported(engine, bus, kit_db_url, clean):
    producer = unique_producer()
    await ensure_stream(bus.js, producer)
    name = f"c{uuid.uuid4().hex[:8]}"
    # A durable left by someone else with a deliver policy that cannot be changed: ensure() fails.
    await bus.js.add_consumer(
        stream_name(producer),
        ConsumerConfig(
            durable_name=name,
            deliver_policy=DeliverPolicy.NEW,
            ack_policy=AckPolicy.EXPLICIT,
            filter_subjects=[f"zenops.{producer}.>"],
        ),
    )
    ids = await write_events(engine, producer, 2)
    await publish_all(engine, bus, kit_db_url)

    consumer = EventConsumer(engine, bus, spec(producer, name), recording_handler(name))
    attempts: list[float] = []
    loop = asyncio.get_running_loop()

    async def run() -> None:
        attempts.append(loop.time())
        await consumer.run()

    servicer = health.aio.HealthServicer()
    supervisor = fast_supervisor(health=servicer)
    supervisor.add("consumer", run)
    try:
        await poll(lambda: len(attempts) >= 5, timeout=30, what="restarts")
        worker = supervisor.workers["consumer"]
        assert worker.restarts >= 4
        assert "deliver policy can not be updated" in worker.last_error
        gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
        assert gaps[3] > gaps[0] * 2, gaps  # exponential backoff (jitter is ±20 %)
        await poll(
            lambda: _health_is(servicer, "consumer", NOT_SERVING) if worker.state == BACKOFF else False,
            timeout=10,
            what="the worker reported NOT_SERVING while it waits to restart",
        )

        # the operator removes the stray durable: the worker recovers by itself, nothing lost
        await bus.js.delete_consumer(stream_name(producer), name)
        await poll(lambda: consumer.stats.handled == 2, timeout=30, what="events after recovery")
        assert sorted(await effects(engine, name)) == sorted(ids)
        assert worker.state == RUNNING
        assert await worker_health(servicer, "consumer") == SERVING
    finally:
        await supervisor.stop()


async def _health_is(servicer, name: str, status: int) -> bool:
    return await worker_health(servicer, name) == status


async def test_a_worker_that_returns_is_finished_not_restarted():
    done = asyncio.Event()

    async def once() -> None:
        done.set()

    supervisor = fast_supervisor()
    supervisor.add("once", once)
    await asyncio.wait_for(done.wait(), 5)
    await poll(lambda: supervisor.workers["once"].task.done(), what="the worker task to end")
    assert supervisor.workers["once"].state == "stopped" and supervisor.workers["once"].restarts == 0
    await supervisor.stop()
