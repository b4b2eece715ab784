"""Billing's reactions to ops and repogen events, against the real billing service and the
real NATS JetStream: real envelopes published to ZENOPS_OPS / ZENOPS_REPOGEN, consumed by
billing's durable consumers, effects polled with a deadline.

A redelivered acceptance reserves once (the same envelope under another Nats-Msg-Id, and a
redelivery after the effect committed but the ack was lost); a shortfall, a suspended or
unknown account become billing.reservation.failed (outbox → ZENOPS_BILLING); POSTPAID →
billing.invoice.line_due; reject/cancel release; usage events once per event id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import nats
import pytest
from nats.js.errors import NotFoundError

from zenops.billing.v1 import billing_pb2 as pb
from zenops.events.v1 import billing_pb2 as billing_events
from zenops.events.v1 import envelope_pb2, ops_pb2, repogen_pb2
from zenops_billing.reactions import subscriptions
from zenops_billing.reactions.handlers import OPS_CONSUMER, REPOGEN_CONSUMER
from zenops_devstack.testing import poll
from zenops_kit.events import EventConsumer, ensure_stream, new_event, stream_name, subject_for, unpack_payload

AGGREGATES = {"channel_request": "channel_request", "work_order": "work_order", "deliverable": "work_order"}


@pytest.fixture
async def js(nats_server):
    """JetStream with empty ops/repogen streams and no billing consumers yet (the session's
    NATS is shared: earlier tests' events must not reach this test's billing)."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    for producer in ("ops", "repogen"):
        await ensure_stream(js, producer)
        for durable in (OPS_CONSUMER, REPOGEN_CONSUMER):
            try:
                await js.delete_consumer(stream_name(producer), durable)
            except NotFoundError:
                pass
        await js.purge_stream(stream_name(producer))
    yield js
    await nc.close()


def envelope(h, event_type: str, payload, *, tenant: str | None = None) -> envelope_pb2.EventEnvelope:
    producer, aggregate, _ = event_type.split(".")
    return new_event(
        event_type=event_type,
        payload=payload,
        producer=producer,
        producer_version="test",
        aggregate_type=aggregate,
        aggregate_id=str(uuid.uuid4()),
        aggregate_version=1,
        tenant_id=h.tenant if tenant is None else tenant,
    )


async def publish(js, env: envelope_pb2.EventEnvelope, msg_id: str | None = None) -> None:
    # The producer's relay publishes with Nats-Msg-Id = event_id; another id defeats JetStream's
    # de-duplication (a re-publish after its window), leaving only billing's inbox.
    await js.publish(
        subject_for(env.event_type), env.SerializeToString(), headers={"Nats-Msg-Id": msg_id or env.event_id}
    )


def consumer(h, name: str) -> EventConsumer:
    return next(c for c in h.app.consumers if c.spec.name == name)


async def processed(h, name: str, n: int, *, duplicates: int = 0) -> None:
    """Wait until the consumer has handled `n` events (and acked `duplicates` as such)."""
    c = consumer(h, name)

    async def done():
        return c.stats.handled >= n and c.stats.duplicates >= duplicates

    await poll(done, timeout=20, what=f"{name} to handle {n} events")


async def reservations(h, ref_id: str | None = None) -> list:
    rows = await h.sql(
        "SELECT id::text, account_id::text, ref_type, ref_id, amount, status, expires_at, "
        "settle_reason FROM reservations ORDER BY created_at"
    )
    return [r for r in rows if ref_id is None or r.ref_id == ref_id]


async def outbox(h, event_type: str) -> list[envelope_pb2.EventEnvelope]:
    rows = await h.sql(
        "SELECT envelope FROM outbox WHERE event_type = :t ORDER BY created_at", {"t": event_type}, tenant=None
    )
    return [envelope_pb2.EventEnvelope.FromString(bytes(r.envelope)) for r in rows]


async def no_dead_letters(h) -> None:
    assert await h.sql("SELECT consumer, error FROM dead_letters", tenant=None) == []


def accepted(account_id: str, credits: int, cr: str | None = None) -> ops_pb2.ChannelRequestAccepted:
    return ops_pb2.ChannelRequestAccepted(
        channel_request_id=cr or str(uuid.uuid4()),
        channel_id=str(uuid.uuid4()),
        assignment_id=str(uuid.uuid4()),
        billing_account_id=account_id,
        credits=credits,
        report_requested=True,
    )


# -- acceptance --------------------------------------------------------------------------------


async def test_accepted_reserves_once_when_redelivered(billing, js):
    async with billing() as h:
        account = await h.account(credits=10)
        payload = accepted(account.id, 4)
        env = envelope(h, "ops.channel_request.accepted", payload)
        await publish(js, env)
        await processed(h, OPS_CONSUMER, 1)
        [r] = await reservations(h)
        assert (r.account_id, r.ref_type, r.ref_id, r.amount, r.status) == (
            account.id,
            "channel_request",
            payload.channel_request_id,
            4,
            "ACTIVE",
        )
        ttl = timedelta(seconds=h.settings.reservation_ttl_seconds)
        assert abs(r.expires_at - (datetime.now(UTC) + ttl)) < timedelta(minutes=1)

        # the same event again (another Nats-Msg-Id): acked as a duplicate, nothing reserved twice
        await publish(js, env, msg_id=f"again-{uuid.uuid4()}")
        await processed(h, OPS_CONSUMER, 1, duplicates=1)
        assert len(await reservations(h)) == 1
        wallet = await h.wallet(account.id)
        assert (wallet.reserved, wallet.available) == (4, 6)

        # a different event for the same request (ops re-emitted it): the ACTIVE reservation means done
        await publish(js, envelope(h, "ops.channel_request.accepted", payload))
        await processed(h, OPS_CONSUMER, 2)
        assert len(await reservations(h)) == 1
        assert await outbox(h, "billing.reservation.failed") == []
        await no_dead_letters(h)
        assert await h.invariants() == []


async def test_crash_between_commit_and_ack_does_not_reserve_twice(billing, js):
    # no workers in the app: this test drives billing's own consumer (spec + handler) by hand
    async with billing(run_workers=False) as h:
        account = await h.account(credits=10)
        payload = accepted(account.id, 3)
        await publish(js, envelope(h, "ops.channel_request.accepted", payload))

        [ops_sub, _] = subscriptions(h.settings)
        assert ops_sub.spec.name == OPS_CONSUMER
        spec = dataclasses.replace(ops_sub.spec, ack_wait=1.0)  # redeliver quickly
        c = EventConsumer(h.engine, h.app.runtime.bus, spec, ops_sub.handler)
        await c.ensure()
        sub = await h.app.runtime.bus.js.pull_subscribe_bind(durable=spec.name, stream=stream_name("ops"))
        [msg] = await sub.fetch(1, timeout=5)

        async def lost_ack():  # the process died after the commit, before the ack reached NATS
            return None

        msg.ack = lost_ack
        await c.handle(msg)
        assert [r.ref_id for r in await reservations(h)] == [payload.channel_request_id]

        # JetStream redelivers after ack_wait; the inbox makes it a no-op
        task = asyncio.create_task(c.run())
        try:

            async def redelivered():
                return c.stats.duplicates >= 1

            await poll(redelivered, timeout=20, what="the redelivery")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await sub.unsubscribe()
        assert len(await reservations(h)) == 1
        assert (await h.wallet(account.id)).reserved == 3
        assert await h.invariants() == []


async def test_shortfall_emits_reservation_failed_through_the_outbox_to_the_billing_stream(billing, js):
    async with billing() as h:
        account = await h.account(credits=2)
        payload = accepted(account.id, 5)
        env = envelope(h, "ops.channel_request.accepted", payload)
        await publish(js, env)
        await processed(h, OPS_CONSUMER, 1)
        assert await reservations(h) == []
        [failed] = await outbox(h, "billing.reservation.failed")
        body = unpack_payload(failed, billing_events.ReservationFailed)
        assert (body.billing_account_id, body.ref_type, body.ref_id, body.requested, body.available, body.reason) == (
            account.id,
            "channel_request",
            payload.channel_request_id,
            5,
            2,
            "INSUFFICIENT_CREDITS",
        )
        assert failed.tenant_id == h.tenant and failed.producer.name == "billing"

        # the relay publishes it to ZENOPS_BILLING
        async def on_stream():
            try:
                msg = await js.get_last_msg(stream_name("billing"), "zenops.billing.reservation.failed")
            except NotFoundError:
                return None
            got = envelope_pb2.EventEnvelope.FromString(msg.data)
            return got if got.event_id == failed.event_id else None

        published = await poll(on_stream, timeout=15, what="billing.reservation.failed on ZENOPS_BILLING")
        assert unpack_payload(published, billing_events.ReservationFailed) == body

        # redelivered: no second failure event
        await publish(js, env, msg_id=f"again-{uuid.uuid4()}")
        await processed(h, OPS_CONSUMER, 1, duplicates=1)
        assert len(await outbox(h, "billing.reservation.failed")) == 1
        assert (await h.wallet(account.id)).available == 2
        await no_dead_letters(h)


async def test_suspended_and_unknown_accounts_fail_the_reservation(billing, js):
    async with billing() as h:
        account = await h.account(credits=50)
        await h.call(
            "UpdateAccount",
            pb.UpdateAccountRequest(
                id=account.id,
                account=pb.Account(status=pb.ACCOUNT_STATUS_SUSPENDED),
                update_mask={"paths": ["status"]},
                reason="overdue",
            ),
        )
        suspended = accepted(account.id, 5)
        unknown = accepted(str(uuid.uuid4()), 7)
        garbage = accepted("not-an-account", 1)
        for payload in (suspended, unknown, garbage):
            await publish(js, envelope(h, "ops.channel_request.accepted", payload))
        await processed(h, OPS_CONSUMER, 3)
        failures = {
            f.ref_id: f
            for f in (
                unpack_payload(e, billing_events.ReservationFailed)
                for e in await outbox(h, "billing.reservation.failed")
            )
        }
        assert failures[suspended.channel_request_id].reason == "ACCOUNT_SUSPENDED"
        assert failures[suspended.channel_request_id].available == 50
        assert (failures[unknown.channel_request_id].reason, failures[unknown.channel_request_id].requested) == (
            "ACCOUNT_NOT_FOUND",
            7,
        )
        assert failures[garbage.channel_request_id].reason == "ACCOUNT_NOT_FOUND"
        assert await reservations(h) == []
        await no_dead_letters(h)


async def test_postpaid_acceptance_records_an_invoice_line_due(billing, js):
    async with billing() as h:
        account = await h.account(policy=pb.BILLING_POLICY_POSTPAID)
        payload = accepted(account.id, 5)
        await publish(js, envelope(h, "ops.channel_request.accepted", payload))
        await processed(h, OPS_CONSUMER, 1)
        [due] = await outbox(h, "billing.invoice.line_due")
        body = unpack_payload(due, billing_events.InvoiceLineDue)
        assert (body.billing_account_id, body.ref_type, body.ref_id, body.assignment_id) == (
            account.id,
            "channel_request",
            payload.channel_request_id,
            payload.assignment_id,
        )
        assert await reservations(h) == [] and await outbox(h, "billing.reservation.failed") == []


async def test_an_existing_reservation_for_the_ref_counts_as_done(billing, js):
    async with billing() as h:
        account = await h.account(credits=3)
        cr = str(uuid.uuid4())
        # reserved already (e.g. by hand): the acceptance must neither fail nor reserve again,
        # even though what is left would not cover it
        await h.reserve(account.id, 3, cr, ref_type="channel_request")
        await publish(js, envelope(h, "ops.channel_request.accepted", accepted(account.id, 3, cr)))
        await processed(h, OPS_CONSUMER, 1)
        assert len(await reservations(h)) == 1
        assert await outbox(h, "billing.reservation.failed") == []
        await no_dead_letters(h)


# -- release on reject / cancel -----------------------------------------------------------------


async def test_rejected_releases_the_reservation_and_none_is_nothing(billing, js):
    async with billing() as h:
        account = await h.account(credits=10)
        payload = accepted(account.id, 4)
        await publish(js, envelope(h, "ops.channel_request.accepted", payload))
        await processed(h, OPS_CONSUMER, 1)
        rejected = ops_pb2.ChannelRequestRejected(
            channel_request_id=payload.channel_request_id, billing_account_id=account.id, reason="duplicate request"
        )
        await publish(js, envelope(h, "ops.channel_request.rejected", rejected))
        # and a rejection of a request that never reserved anything
        await publish(
            js,
            envelope(
                h,
                "ops.channel_request.rejected",
                ops_pb2.ChannelRequestRejected(channel_request_id=str(uuid.uuid4()), billing_account_id=account.id),
            ),
        )
        await processed(h, OPS_CONSUMER, 3)
        [r] = await reservations(h)
        assert (r.status, r.settle_reason) == ("RELEASED", "channel request rejected: duplicate request")
        assert (await h.wallet(account.id)).available == 10
        await no_dead_letters(h)
        assert await h.invariants() == []


async def test_work_orders_accept_and_cancel(billing, js):
    async with billing() as h:
        account = await h.account(credits=10)
        cr_payload = accepted(account.id, 2)
        await publish(js, envelope(h, "ops.channel_request.accepted", cr_payload))
        await processed(h, OPS_CONSUMER, 1)

        own = repogen_pb2.WorkOrderAccepted(work_order_id=str(uuid.uuid4()), billing_account_id=account.id, credits=3)
        born = repogen_pb2.WorkOrderAccepted(
            work_order_id=str(uuid.uuid4()),
            billing_account_id=account.id,
            channel_request_id=cr_payload.channel_request_id,
            credits=2,
        )
        too_big = repogen_pb2.WorkOrderAccepted(
            work_order_id=str(uuid.uuid4()), billing_account_id=account.id, credits=100
        )
        for payload in (own, born, too_big):
            await publish(js, envelope(h, "repogen.work_order.accepted", payload))
        await processed(h, REPOGEN_CONSUMER, 3)
        active = {r.ref_id: r for r in await reservations(h) if r.status == "ACTIVE"}
        # its own work order reservation; the one born from a channel request was billed at its acceptance
        assert set(active) == {cr_payload.channel_request_id, own.work_order_id}
        assert (active[own.work_order_id].ref_type, active[own.work_order_id].amount) == ("work_order", 3)
        [failed] = [
            unpack_payload(e, billing_events.ReservationFailed) for e in await outbox(h, "billing.reservation.failed")
        ]
        assert (failed.ref_type, failed.ref_id, failed.requested, failed.available, failed.reason) == (
            "work_order",
            too_big.work_order_id,
            100,
            5,
            "INSUFFICIENT_CREDITS",
        )

        # cancelling the work order born from the channel request releases the request's reservation
        for payload in (
            repogen_pb2.WorkOrderCancelled(
                work_order_id=born.work_order_id,
                billing_account_id=account.id,
                channel_request_id=cr_payload.channel_request_id,
                reason="client withdrew",
            ),
            repogen_pb2.WorkOrderCancelled(work_order_id=own.work_order_id, billing_account_id=account.id),
            repogen_pb2.WorkOrderCancelled(work_order_id=too_big.work_order_id, billing_account_id=account.id),
        ):
            await publish(js, envelope(h, "repogen.work_order.cancelled", payload))
        await processed(h, REPOGEN_CONSUMER, 6)
        assert {r.ref_id: r.status for r in await reservations(h)} == {
            cr_payload.channel_request_id: "RELEASED",
            own.work_order_id: "RELEASED",
        }
        assert (await h.wallet(account.id)).available == 10
        await no_dead_letters(h)
        assert await h.invariants() == []


# -- usage ---------------------------------------------------------------------------------------


async def test_ready_for_render_and_released_record_usage_once(billing, js):
    async with billing() as h:
        account = await h.account()
        wo = str(uuid.uuid4())
        ready = envelope(
            h,
            "repogen.work_order.ready_for_render",
            repogen_pb2.WorkOrderReadyForRender(work_order_id=wo, billing_account_id=account.id),
        )
        released = envelope(
            h,
            "repogen.deliverable.released",
            repogen_pb2.DeliverableReleased(
                work_order_id=wo, deliverable_id=str(uuid.uuid4()), billing_account_id=account.id
            ),
        )
        unknown = envelope(
            h,
            "repogen.deliverable.released",
            repogen_pb2.DeliverableReleased(work_order_id=wo, billing_account_id=str(uuid.uuid4())),
        )
        for env in (ready, released, unknown):
            await publish(js, env)
        await publish(js, ready, msg_id=f"again-{uuid.uuid4()}")
        await processed(h, REPOGEN_CONSUMER, 3, duplicates=1)
        rows = await h.sql(
            "SELECT event_id, account_id::text, kind, quantity, ref_type, ref_id, occurred_at, source "
            "FROM usage_events ORDER BY kind"
        )
        assert [(r.event_id, r.account_id, r.kind, r.quantity, r.ref_type, r.ref_id) for r in rows] == [
            (ready.event_id, account.id, "report_planned", 1, "work_order", wo),
            (released.event_id, account.id, "report_released", 1, "work_order", wo),
        ]
        assert rows[0].occurred_at == ready.occurred_at.ToDatetime(tzinfo=UTC)
        assert rows[0].source == "repogen.work_order.ready_for_render"
        # usage for an account billing does not know is not recorded, and not retried forever
        await no_dead_letters(h)
