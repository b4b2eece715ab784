"""RevocationList: in-memory rules, and following identity's events on the real NATS."""

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import nats
import pytest
from nats.js.errors import NotFoundError

from zenops.events.v1 import identity_pb2
from zenops_devstack.proxy import TcpProxy
from zenops_devstack.testing import poll
from zenops_kit.auth import RevocationList
from zenops_kit.events import EventBus, ensure_stream, new_event, subject_for


def test_revoke_until_then_expire():
    rl = RevocationList()
    now = time.time()
    rl.revoke(["s1", "s2"], until=now + 60)
    rl.revoke(["s3"], until=now - 1)  # already harmless: not even stored
    assert rl.is_revoked("s1") and rl.is_revoked("s2")
    assert not rl.is_revoked("s3") and not rl.is_revoked("other")
    assert not rl.is_revoked(None) and not rl.is_revoked("")
    assert len(rl) == 2


def test_a_later_bound_wins():
    rl = RevocationList()
    now = time.time()
    rl.revoke(["s1"], until=now + 600)
    rl.revoke(["s1"], until=now + 60)
    rl.prune(now + 120)
    assert rl.is_revoked("s1")


def test_prune_by_time():
    rl = RevocationList()
    now = time.time()
    rl.revoke(["short"], until=now + 10)
    rl.revoke(["long"], until=now + 1000)
    rl.prune(now + 100)
    assert len(rl) == 1 and rl.is_revoked("long") and not rl.is_revoked("short")


def test_expired_entries_stop_counting_and_leave():
    rl = RevocationList()
    rl._until["gone"] = time.time() - 1  # as if its bound passed since it was revoked
    assert not rl.is_revoked("gone")
    assert len(rl) == 0


def test_apply_reads_both_event_payloads():
    rl = RevocationList()
    valid_until = datetime.now(UTC) + timedelta(minutes=10)
    revoked = identity_pb2.SessionsRevoked(session_ids=["a", "b"], user_id="u", reason="logout")
    revoked.access_valid_until.FromDatetime(valid_until)
    rl.apply(identity_event("identity.session.revoked", revoked))
    rl.apply(identity_event("identity.user.disabled", identity_pb2.UserDisabled(user_id="u", session_ids=["c"])))
    assert all(rl.is_revoked(s) for s in "abc")
    assert abs(rl._until["a"] - valid_until.timestamp()) < 1
    # without access_valid_until, the lookback (the longest token life) bounds it
    assert time.time() + 800 < rl._until["c"] <= time.time() + 900
    assert rl.events_applied == 2


def identity_event(event_type: str, payload, *, occurred_at: datetime | None = None):
    return new_event(
        event_type=event_type,
        payload=payload,
        producer="identity",
        producer_version="test",
        aggregate_type="session",
        aggregate_id=str(uuid.uuid4()),
        aggregate_version=1,
        occurred_at=occurred_at,
    )


async def publish_revocation(js, session_ids: list[str], *, valid_for: float = 600, **kwargs) -> None:
    msg = identity_pb2.SessionsRevoked(session_ids=session_ids, user_id=str(uuid.uuid4()), reason="revoked")
    msg.access_valid_until.FromDatetime(datetime.now(UTC) + timedelta(seconds=valid_for))
    env = identity_event("identity.session.revoked", msg, **kwargs)
    await js.publish(subject_for(env.event_type), env.SerializeToString(), headers={"Nats-Msg-Id": env.event_id})


@pytest.fixture
async def js(nats_server):
    nc = await nats.connect(nats_server.url)
    yield nc.jetstream()
    await nc.close()


async def stop(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_follow_waits_for_the_stream_then_applies_events(bus, js, caplog):
    caplog.set_level(logging.DEBUG, logger="zenops.auth.revocation")
    # identity has not started yet: no stream
    try:
        await js.delete_stream("ZENOPS_IDENTITY")
    except NotFoundError:
        pass
    rl = RevocationList()
    task = asyncio.create_task(rl.follow(bus))
    try:
        await poll(
            lambda: [r for r in caplog.records if "cannot follow" in r.getMessage()],
            what="the follower to find no stream",
        )
        assert not rl.following and not task.done()
        await ensure_stream(js, "identity")
        sid = str(uuid.uuid4())
        await publish_revocation(js, [sid])
        await poll(lambda: rl.is_revoked(sid), timeout=20, what="the published revocation to be applied")
        # a disabled user's sessions too
        disabled = [str(uuid.uuid4()), str(uuid.uuid4())]
        env = identity_event("identity.user.disabled", identity_pb2.UserDisabled(user_id="u", session_ids=disabled))
        await js.publish(subject_for(env.event_type), env.SerializeToString())
        await poll(lambda: all(rl.is_revoked(s) for s in disabled), what="the user.disabled event")
    finally:
        await stop(task)


async def test_follow_replays_the_lookback_window_only(bus, js):
    await ensure_stream(js, "identity")
    old_sid, recent_sid, marker = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    # both still within their access_valid_until, but only one was published within the lookback
    await publish_revocation(js, [old_sid])
    await asyncio.sleep(1.2)  # the lookback boundary has to lie between the two publishes
    await publish_revocation(js, [recent_sid])
    await publish_revocation(js, [marker])
    rl = RevocationList()
    task = asyncio.create_task(rl.follow(bus, lookback=1.0))
    try:
        await poll(lambda: rl.is_revoked(marker), what="the replayed revocations")
        assert rl.is_revoked(recent_sid)
        assert not rl.is_revoked(old_sid)
    finally:
        await stop(task)


async def test_follow_ignores_unreadable_events(bus, js):
    await ensure_stream(js, "identity")
    rl = RevocationList()
    task = asyncio.create_task(rl.follow(bus))
    try:
        await poll(lambda: rl.following, what="the follower to subscribe")
        await js.publish("zenops.identity.session.revoked", b"\xff not a protobuf envelope")
        sid = str(uuid.uuid4())
        await publish_revocation(js, [sid])
        await poll(lambda: rl.is_revoked(sid), what="the event after the unreadable one")
        assert not task.done()
    finally:
        await stop(task)


async def test_follow_survives_a_lost_connection(nats_server, js):
    await ensure_stream(js, "identity")
    proxy = TcpProxy(nats_server.port)
    await proxy.start()
    bus = EventBus(f"nats://127.0.0.1:{proxy.port}", "revocation-reconnect")
    bus.start()
    await asyncio.wait_for(bus.ready(), 10)
    rl = RevocationList()
    task = asyncio.create_task(rl.follow(bus))
    try:
        await poll(lambda: rl.following, what="the follower to subscribe")
        before = str(uuid.uuid4())
        await publish_revocation(js, [before])
        await poll(lambda: rl.is_revoked(before), what="a revocation before the cut")

        await proxy.cut()
        await poll(lambda: not bus.connected, what="the bus to notice the cut")
        during = str(uuid.uuid4())
        await publish_revocation(js, [during])  # published while this process is cut off
        await proxy.restore()
        after = str(uuid.uuid4())
        await publish_revocation(js, [after])
        await poll(
            lambda: rl.is_revoked(during) and rl.is_revoked(after),
            timeout=30,
            what="revocations published during and after the outage",
        )
    finally:
        await stop(task)
        await bus.drain()
        await proxy.cut()


async def test_follow_recovers_when_its_consumer_is_lost(bus, js):
    """As after a NATS restart (ordered consumers live in memory) or a long outage: the
    server-side consumer disappears; missed heartbeats make it come back where it left off."""
    await ensure_stream(js, "identity")
    rl = RevocationList()
    task = asyncio.create_task(rl.follow(bus))
    try:
        first = str(uuid.uuid4())
        await publish_revocation(js, [first])
        await poll(lambda: rl.is_revoked(first), what="the first revocation")
        for info in await js.consumers_info("ZENOPS_IDENTITY"):
            await js.delete_consumer("ZENOPS_IDENTITY", info.name)
        lost = str(uuid.uuid4())
        await publish_revocation(js, [lost])  # while no consumer exists
        await poll(lambda: rl.is_revoked(lost), timeout=30, what="the follower to recreate its consumer")
        assert not task.done()
    finally:
        await stop(task)
