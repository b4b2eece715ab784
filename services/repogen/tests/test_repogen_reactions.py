"""Repogen's reaction to ops.channel_request.accepted, with the REAL ops service and the real
NATS JetStream: a channel request accepted in ops through its RPCs opens an accepted work order
in repogen, once, however often the event comes."""

from __future__ import annotations

import uuid

import nats
import pytest
from nats.js.errors import NotFoundError
from repogen_harness import running_suite
from sqlalchemy import text

from zenops.events.v1 import envelope_pb2
from zenops.events.v1 import ops_pb2 as ops_events
from zenops.events.v1 import repogen_pb2 as events
from zenops.repogen.v1 import repogen_pb2 as pb
from zenops_devstack.testing import poll
from zenops_kit.db import system_tx
from zenops_kit.events import ensure_stream, new_event, stream_name, subject_for, unpack_payload
from zenops_repogen.reactions import OPS_CONSUMER

ACCEPTED = "ops.channel_request.accepted"
# The durables on the streams these tests read (repogen's, and ops' own consumers of others').
DURABLES = {
    "ops": (OPS_CONSUMER, "billing-ops"),
    "repogen": ("ops-repogen", "billing-repogen"),
    "billing": ("ops-billing",),
}


@pytest.fixture
async def js(nats_server):
    """JetStream with empty streams and none of these consumers yet (the session's NATS is
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
def suite(start_service, tmp_path):
    return lambda **kw: running_suite(start_service, tmp_path, ops_workers=True, run_workers=True, **kw)


def consumer(h):
    return next(c for c in h.app.consumers if c.spec.name == OPS_CONSUMER)


async def processed(h, n: int, *, duplicates: int = 0) -> None:
    c = consumer(h)
    await poll(
        lambda: c.stats.handled >= n and c.stats.duplicates >= duplicates,
        timeout=30,
        what=f"{OPS_CONSUMER} to handle {n} events",
    )


async def publish(js, env: envelope_pb2.EventEnvelope, msg_id: str | None = None) -> None:
    # another Nats-Msg-Id than the event id defeats JetStream's de-duplication: only the inbox is left
    await js.publish(
        subject_for(env.event_type), env.SerializeToString(), headers={"Nats-Msg-Id": msg_id or env.event_id}
    )


def accepted_event(tenant: str, **payload) -> envelope_pb2.EventEnvelope:
    return new_event(
        event_type=ACCEPTED,
        payload=ops_events.ChannelRequestAccepted(**payload),
        producer="ops",
        producer_version="test",
        aggregate_type="channel_request",
        aggregate_id=payload.get("channel_request_id") or str(uuid.uuid4()),
        aggregate_version=1,
        tenant_id=tenant,
    )


async def work_orders_of(h, assignment_id: str) -> list[pb.WorkOrder]:
    listed = await h.call("ListWorkOrders", pb.ListWorkOrdersRequest(assignment_id=assignment_id))
    return list(listed.work_orders)


async def test_an_accepted_channel_request_opens_an_accepted_work_order_once(suite, js):
    async with suite() as h:
        account = str(uuid.uuid4())
        channel = await h.channel(billing_account_id=account)
        acc = await h.accepted_request(channel, bank_code="SBI", credits=3)
        request, assignment = acc.channel_request, acc.assignment

        [wo] = await poll(lambda: work_orders_of(h, assignment.id), timeout=30, what="the channel's work order")
        assert (wo.status, wo.channel_request_id, wo.channel_id, wo.bank_code, wo.template_id) == (
            pb.WORK_ORDER_STATUS_DATA_PENDING,
            request.id,
            channel,
            "SBI",
            "SBI_UNDER_5CR_V1",
        )
        assert (wo.billing_account_id, wo.credits, wo.created_by, wo.snapshot_version) == (
            account,
            3,
            "event:ops.channel_request.accepted",
            0,
        )
        moves = [(e["kind"], e["to"], e["actor"]) for e in await h.audit(wo.id)]
        assert moves == [
            ("work_order.created", "DRAFT", "event:ops.channel_request.accepted"),
            ("work_order.status_changed", "DATA_PENDING", "event:ops.channel_request.accepted"),
        ]
        [env] = await h.outbox("repogen.work_order.accepted")
        p = unpack_payload(env, events.WorkOrderAccepted)
        # billing ignores this one (the request was billed when ops accepted it): it names the request
        assert (p.work_order_id, p.channel_request_id, p.billing_account_id, p.credits) == (
            wo.id,
            request.id,
            account,
            3,
        )

        # ops' event, delivered again (another message id: JetStream cannot drop it, the inbox does)
        [ops_env] = [e for e in await ops_outbox(h, ACCEPTED)]
        await publish(js, ops_env, msg_id=f"again-{uuid.uuid4()}")
        await processed(h, 1, duplicates=1)
        # a fresh event about the same request (a new event id): the request's work order exists, nothing new
        copy = envelope_pb2.EventEnvelope()
        copy.CopyFrom(ops_env)
        copy.event_id = str(uuid.uuid4())
        await publish(js, copy)
        await processed(h, 2, duplicates=1)
        assert [w.id for w in await work_orders_of(h, assignment.id)] == [wo.id]
        assert len(await h.outbox("repogen.work_order.accepted")) == 1

        # by hand, the assignment has its work order already
        twice = await h.fails("CreateWorkOrder", pb.CreateWorkOrderRequest(assignment_id=assignment.id))
        assert twice.reason == "WORK_ORDER_EXISTS"
        # repogen learnt the channel's firm: a portal role reading work orders would see this one
        portal = h.portal(channel, caps=("repogen.read",))
        assert [w.id for w in (await h.call("ListWorkOrders", pb.ListWorkOrdersRequest(), portal)).work_orders] == [
            wo.id
        ]

        # cancelled, the assignment may get a new work order by hand: billed on its own (no request named)
        await h.transition(wo.id, pb.WORK_ORDER_STATUS_CANCELLED, "partner withdrew the report")
        fresh = (await h.work_order(assignment_id=assignment.id, idempotency_key="after-cancel")).work_order
        assert (fresh.channel_id, fresh.channel_request_id, fresh.billing_account_id, fresh.credits) == (
            channel,
            "",
            account,
            0,
        )
        assert await dead_letters(h) == []


async def test_what_opens_no_work_order(suite, js):
    async with suite() as h:
        channel = await h.channel()
        # a site inspection only: no report requested
        inspection = await h.accepted_request(channel, requested_service="site_inspection")
        # a work order made by hand before the event came
        by_hand_assignment = await h.assignment("SBI")
        by_hand = (await h.work_order(assignment_id=by_hand_assignment.id)).work_order
        await publish(
            js,
            accepted_event(
                h.tenant,
                channel_request_id=str(uuid.uuid4()),
                channel_id=channel,
                assignment_id=by_hand_assignment.id,
                report_requested=True,
                credits=1,
            ),
        )
        # an assignment ops does not know (another firm's, say); malformed ids
        await publish(
            js,
            accepted_event(
                h.tenant,
                channel_request_id=str(uuid.uuid4()),
                channel_id=channel,
                assignment_id=str(uuid.uuid4()),
                report_requested=True,
            ),
        )
        await publish(
            js, accepted_event(h.tenant, channel_request_id="cr-1", assignment_id="a-1", report_requested=True)
        )
        await processed(h, 4)
        assert await work_orders_of(h, inspection.assignment.id) == []
        assert [w.id for w in await work_orders_of(h, by_hand_assignment.id)] == [by_hand.id]
        assert [w.id for w in (await h.call("ListWorkOrders", pb.ListWorkOrdersRequest())).work_orders] == [by_hand.id]
        assert await h.outbox("repogen.work_order.accepted") == []
        assert await dead_letters(h) == []


async def ops_outbox(h, event_type: str) -> list[envelope_pb2.EventEnvelope]:
    async with system_tx(h.ops_engine) as conn:
        rows = list(
            await conn.execute(
                text("SELECT envelope FROM outbox WHERE event_type = :t ORDER BY created_at"), {"t": event_type}
            )
        )
    return [envelope_pb2.EventEnvelope.FromString(bytes(r.envelope)) for r in rows]


async def dead_letters(h) -> list:
    return [(r.consumer, r.error) for r in await h.sql("SELECT consumer, error FROM dead_letters", tenant=None)]
