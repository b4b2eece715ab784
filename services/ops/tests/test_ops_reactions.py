"""Ops' reactions, against the real ops service and the real NATS JetStream (and, for the
flows across services, the real billing service started with the same token verifier):

- billing.reservation.failed → the request and its assignment show "credits short", with an
  activity entry saying what was requested and what was available;
- repogen.deliverable.released (hand-made: repogen does not exist yet) → the assignment is
  DELIVERED once, however often the event comes;
- accept on a CREDIT channel → billing's reservation for (channel_request, id) appears; on
  an empty wallet billing's refusal comes back as "credits short".
"""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager

import grpc
import nats
import pytest
from nats.js.errors import NotFoundError
from ops_harness import running_ops

from zenops.billing.v1 import billing_pb2 as bpb
from zenops.billing.v1 import billing_pb2_grpc
from zenops.events.v1 import billing_pb2 as billing_events
from zenops.events.v1 import envelope_pb2, repogen_pb2
from zenops.events.v1 import ops_pb2 as ops_events
from zenops.ops.v1 import ops_pb2 as pb
from zenops_devstack.testing import TokenSigner, poll
from zenops_kit.events import ensure_stream, new_event, stream_name, subject_for, unpack_payload
from zenops_ops.reactions.handlers import BILLING_CONSUMER, REPOGEN_CONSUMER

DURABLES = {"ops": ("billing-ops",), "billing": (BILLING_CONSUMER,), "repogen": (REPOGEN_CONSUMER, "billing-repogen")}
RELEASED = "repogen.deliverable.released"
BILLING_CAPS = ("billing.read", "billing.write", "billing.credits.write")


@pytest.fixture
async def js(nats_server):
    """JetStream with empty streams and no consumers of ours yet (the session's NATS is
    shared: earlier tests' events must not reach this test's services)."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    for producer, durables in DURABLES.items():
        await ensure_stream(js, producer)
        for durable in durables:
            try:
                await js.delete_consumer(stream_name(producer), durable)
            except NotFoundError:
                pass
        await js.purge_stream(stream_name(producer))
    yield js
    await nc.close()


@pytest.fixture
def ops(start_service):
    return lambda **kw: running_ops(start_service, **kw)


def envelope(tenant: str, event_type: str, payload, *, aggregate_id: str | None = None) -> envelope_pb2.EventEnvelope:
    producer, aggregate, _ = event_type.split(".")
    return new_event(
        event_type=event_type,
        payload=payload,
        producer=producer,
        producer_version="test",
        aggregate_type=aggregate,
        aggregate_id=aggregate_id or str(uuid.uuid4()),
        aggregate_version=1,
        tenant_id=tenant,
    )


async def publish(js, env: envelope_pb2.EventEnvelope, msg_id: str | None = None) -> None:
    # another Nats-Msg-Id than the event id defeats JetStream's de-duplication: only ops' inbox is left
    await js.publish(
        subject_for(env.event_type), env.SerializeToString(), headers={"Nats-Msg-Id": msg_id or env.event_id}
    )


def consumer(h, name: str):
    return next(c for c in h.app.consumers if c.spec.name == name)


async def processed(h, name: str, n: int, *, duplicates: int = 0) -> None:
    c = consumer(h, name)
    await poll(
        lambda: c.stats.handled >= n and c.stats.duplicates >= duplicates,
        timeout=20,
        what=f"{name} to handle {n} events",
    )


async def no_dead_letters(h) -> None:
    assert await h.sql("SELECT consumer, error FROM dead_letters", tenant=None) == []


async def fetch(h, request_id: str) -> pb.ChannelRequest:
    return (await h.call("FetchChannelRequest", pb.FetchChannelRequestRequest(id=request_id))).channel_request


async def get(h, assignment_id: str) -> pb.Assignment:
    return (await h.call("GetAssignment", pb.GetAssignmentRequest(id=assignment_id))).assignment


async def accepted(h, channel: str, **submit) -> pb.AcceptChannelRequestResponse:
    r = await h.submit(h.portal(channel), **submit)
    return await h.call("AcceptChannelRequest", pb.AcceptChannelRequestRequest(id=r.id))


async def under_review(h) -> pb.Assignment:
    a = await h.create_assignment()
    for to in (pb.ASSIGNMENT_STATUS_COLLECTING, pb.ASSIGNMENT_STATUS_SITE_VISIT, pb.ASSIGNMENT_STATUS_UNDER_REVIEW):
        a = await h.transition(a.id, to)
    return a


# -- billing.reservation.failed -----------------------------------------------------------------


async def test_reservation_failed_flags_the_request_and_its_assignment(ops, js):
    async with ops() as h:
        channel = await h.channel()
        acc = await accepted(h, channel, credits=4)
        r, a = acc.channel_request, acc.assignment
        failed = billing_events.ReservationFailed(
            billing_account_id=str(uuid.uuid4()),
            ref_type="channel_request",
            ref_id=r.id,
            requested=4,
            available=1,
            reason="INSUFFICIENT_CREDITS",
        )
        env = envelope(h.tenant, "billing.reservation.failed", failed)
        await publish(js, env)
        await processed(h, BILLING_CONSUMER, 1)
        got = await fetch(h, r.id)
        assert (got.credits_short, got.credits_short_reason) == (True, "INSUFFICIENT_CREDITS")
        flagged = await get(h, a.id)
        assert flagged.credits_short and flagged.version == a.version + 1
        [activity] = [x for x in await h.activities(channel_request_id=r.id) if x["kind"] == "billing.credits_short"]
        assert (activity["actor"], activity["assignment_id"]) == ("event:billing.reservation.failed", a.id)
        assert {k: activity["detail"][k] for k in ("requested", "available", "reason")} == {
            "requested": 4,
            "available": 1,
            "reason": "INSUFFICIENT_CREDITS",
        }
        history = await h.call("GetAssignmentHistory", pb.GetAssignmentHistoryRequest(id=a.id))
        assert history.activity[0].kind == "billing.credits_short"

        # the same event again: acked as a duplicate, no second activity
        await publish(js, env, msg_id=f"again-{uuid.uuid4()}")
        await processed(h, BILLING_CONSUMER, 1, duplicates=1)
        assert (
            len([x for x in await h.activities(channel_request_id=r.id) if x["kind"] == "billing.credits_short"]) == 1
        )

        # ref_type assignment flags the assignment; unknown and foreign refs change nothing
        direct = await h.create_assignment()
        for payload, tenant in [
            (
                billing_events.ReservationFailed(
                    ref_type="assignment", ref_id=direct.id, requested=2, reason="ACCOUNT_SUSPENDED"
                ),
                h.tenant,
            ),
            (
                billing_events.ReservationFailed(
                    ref_type="channel_request", ref_id=str(uuid.uuid4()), requested=1, reason="INSUFFICIENT_CREDITS"
                ),
                h.tenant,
            ),
            (billing_events.ReservationFailed(ref_type="channel_request", ref_id="garbage", requested=1), h.tenant),
            (billing_events.ReservationFailed(ref_type="work_order", ref_id=str(uuid.uuid4()), requested=1), h.tenant),
            (
                billing_events.ReservationFailed(
                    ref_type="assignment", ref_id=direct.id, requested=2, reason="INSUFFICIENT_CREDITS"
                ),
                str(uuid.uuid4()),
            ),
        ]:
            await publish(js, envelope(tenant, "billing.reservation.failed", payload))
        await processed(h, BILLING_CONSUMER, 6)
        d = await get(h, direct.id)
        assert d.credits_short
        assert [
            x["detail"]["reason"]
            for x in await h.activities(assignment_id=direct.id)
            if x["kind"] == "billing.credits_short"
        ] == ["ACCOUNT_SUSPENDED"]
        assert len(await h.sql("SELECT id FROM activities WHERE kind = 'billing.credits_short'")) == 2
        await no_dead_letters(h)


# -- repogen.deliverable.released ---------------------------------------------------------------


async def test_released_report_delivers_once(ops, js):
    async with ops() as h:
        a = await under_review(h)
        released = repogen_pb2.DeliverableReleased(
            work_order_id=str(uuid.uuid4()), deliverable_id=str(uuid.uuid4()), assignment_id=a.id
        )
        env = envelope(h.tenant, RELEASED, released)
        await publish(js, env)
        await publish(js, env)  # the same message twice: JetStream drops the second
        await publish(js, env, msg_id=f"again-{uuid.uuid4()}")  # ops' inbox drops this one
        # and another release of the same assignment (a second deliverable) changes nothing either
        await publish(
            js,
            envelope(
                h.tenant,
                RELEASED,
                repogen_pb2.DeliverableReleased(
                    work_order_id=released.work_order_id, deliverable_id=str(uuid.uuid4()), assignment_id=a.id
                ),
            ),
        )
        await processed(h, REPOGEN_CONSUMER, 2, duplicates=1)

        delivered = await get(h, a.id)
        assert (delivered.status, delivered.version) == (pb.ASSIGNMENT_STATUS_DELIVERED, a.version + 1)
        detail = await h.call("GetAssignment", pb.GetAssignmentRequest(id=a.id))
        last = detail.history[-1]
        assert (last.from_status, last.to_status, last.actor) == (
            pb.ASSIGNMENT_STATUS_UNDER_REVIEW,
            pb.ASSIGNMENT_STATUS_DELIVERED,
            "event:repogen.deliverable.released",
        )
        assert released.work_order_id in last.reason
        changes = [e for e in await h.outbox("ops.assignment.status_changed") if e.aggregate_id == a.id]
        assert [unpack_payload(e, ops_events.AssignmentStatusChanged).to_status for e in changes][-1] == "DELIVERED"
        assert sum(unpack_payload(e, ops_events.AssignmentStatusChanged).to_status == "DELIVERED" for e in changes) == 1
        await no_dead_letters(h)


async def test_release_by_request_from_any_open_state_and_not_of_cancelled(ops, js):
    async with ops() as h:
        channel = await h.channel()
        acc = await accepted(h, channel)
        collecting = await h.transition(acc.assignment.id, pb.ASSIGNMENT_STATUS_COLLECTING)
        cancelled = await h.create_assignment()
        await h.transition(cancelled.id, pb.ASSIGNMENT_STATUS_CANCELLED, "duplicate file")
        # by channel request only; a cancelled one; one ops does not know
        await publish(
            js,
            envelope(
                h.tenant,
                RELEASED,
                repogen_pb2.DeliverableReleased(
                    work_order_id=str(uuid.uuid4()), channel_request_id=acc.channel_request.id
                ),
            ),
        )
        await publish(
            js,
            envelope(
                h.tenant,
                RELEASED,
                repogen_pb2.DeliverableReleased(work_order_id=str(uuid.uuid4()), assignment_id=cancelled.id),
            ),
        )
        await publish(
            js,
            envelope(
                h.tenant,
                RELEASED,
                repogen_pb2.DeliverableReleased(work_order_id=str(uuid.uuid4()), assignment_id=str(uuid.uuid4())),
            ),
        )
        await processed(h, REPOGEN_CONSUMER, 3)

        delivered = await get(h, acc.assignment.id)
        assert (delivered.status, delivered.version) == (pb.ASSIGNMENT_STATUS_DELIVERED, collecting.version + 1)
        still = await get(h, cancelled.id)
        assert still.status == pb.ASSIGNMENT_STATUS_CANCELLED
        kinds = [x["kind"] for x in await h.activities(assignment_id=cancelled.id)]
        assert kinds[-1] == "repogen.deliverable_released"
        # billing's reconciliation now hears the request was delivered
        state = await h.call(
            "GetBillingRefState",
            pb.GetBillingRefStateRequest(ref_type="channel_request", ref_id=acc.channel_request.id, tenant_id=h.tenant),
            h.service_token(),
        )
        assert state.state == pb.BILLING_REF_STATE_DELIVERED
        await no_dead_letters(h)


# -- with the real billing service ---------------------------------------------------------------


@asynccontextmanager
async def suite(start_service):
    """ops and billing, both real, trusting one token signer, on the same NATS."""
    signer = TokenSigner()
    async with running_ops(start_service, signer=signer) as h:
        async with start_service(
            "billing", verifier=signer.verifier(), expiry_sweep_interval=3600.0, reconcile_interval=3600.0
        ) as billing_app:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{billing_app.port}") as ch:
                yield h, billing_pb2_grpc.BillingServiceStub(ch)


async def test_accept_reserves_credits_in_billing_or_flags_a_shortfall(start_service, js):
    async with suite(start_service) as (h, billing):
        md = (("authorization", f"Bearer {h.token(BILLING_CAPS)}"),)
        funded = (
            await billing.CreateAccount(
                bpb.CreateAccountRequest(display_name="Acme Realty", policy=bpb.BILLING_POLICY_CREDIT), metadata=md
            )
        ).account
        await billing.GrantCredits(
            bpb.GrantCreditsRequest(account_id=funded.id, amount=10, reason="opening"), metadata=md
        )
        empty = (
            await billing.CreateAccount(
                bpb.CreateAccountRequest(display_name="Broke Realty", policy=bpb.BILLING_POLICY_CREDIT), metadata=md
            )
        ).account
        rich, poor = await h.channel(billing_account_id=funded.id), await h.channel(billing_account_id=empty.id)

        ok = await accepted(h, rich, credits=3)
        # accepting again is answered, not billed again
        await h.call("AcceptChannelRequest", pb.AcceptChannelRequestRequest(id=ok.channel_request.id))

        async def reservation():
            resp = await billing.ListReservations(
                bpb.ListReservationsRequest(ref_type="channel_request", ref_id=ok.channel_request.id), metadata=md
            )
            return list(resp.reservations)

        [res] = await poll(reservation, timeout=30, what="billing's reservation for the accepted request")
        assert (res.account_id, res.amount, res.status) == (funded.id, 3, bpb.RESERVATION_STATUS_ACTIVE)

        short = await accepted(h, poor, credits=2)

        async def flagged():
            r = await fetch(h, short.channel_request.id)
            return r if r.credits_short else None

        r = await poll(flagged, timeout=30, what="credits short on the request")
        assert r.credits_short_reason == "INSUFFICIENT_CREDITS"
        assert (await get(h, short.assignment.id)).credits_short
        [activity] = [
            x
            for x in await h.activities(channel_request_id=short.channel_request.id)
            if x["kind"] == "billing.credits_short"
        ]
        assert (activity["detail"]["requested"], activity["detail"]["available"]) == (2, 0)
        # the funded one never was short; billing made one reservation only
        assert not (await fetch(h, ok.channel_request.id)).credits_short
        assert len(await reservation()) == 1
        wallet = (await billing.GetAccount(bpb.GetAccountRequest(id=funded.id), metadata=md)).account.wallet
        assert (wallet.reserved, wallet.available) == (3, 7)

        # repogen's release (hand-made: repogen does not exist yet) delivers the assignment once
        for to in (pb.ASSIGNMENT_STATUS_COLLECTING, pb.ASSIGNMENT_STATUS_SITE_VISIT, pb.ASSIGNMENT_STATUS_UNDER_REVIEW):
            await h.transition(ok.assignment.id, to)
        env = envelope(
            h.tenant,
            RELEASED,
            repogen_pb2.DeliverableReleased(
                work_order_id=str(uuid.uuid4()),
                deliverable_id=str(uuid.uuid4()),
                billing_account_id=funded.id,
                channel_request_id=ok.channel_request.id,
                assignment_id=ok.assignment.id,
            ),
        )
        await publish(js, env)
        await publish(js, env, msg_id=f"again-{uuid.uuid4()}")

        async def delivered():
            a = await get(h, ok.assignment.id)
            return a if a.status == pb.ASSIGNMENT_STATUS_DELIVERED else None

        a = await poll(delivered, timeout=30, what="the assignment delivered")
        await processed(h, REPOGEN_CONSUMER, 1, duplicates=1)
        assert (await get(h, ok.assignment.id)).version == a.version
        history = (await h.call("GetAssignment", pb.GetAssignmentRequest(id=a.id))).history
        assert [e.to_status for e in history].count(pb.ASSIGNMENT_STATUS_DELIVERED) == 1
        await no_dead_letters(h)
