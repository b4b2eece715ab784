"""What repogen does when ops reports progress.

- ops.channel_request.accepted with a report requested: a work order for the request's
  assignment, accepted at once (DATA_PENDING, emitting repogen.work_order.accepted — billing
  ignores that one for a work order born from a channel request: the request was billed when
  ops accepted it). The tenant is the envelope's; the bank code is the assignment's, asked of
  ops (GetAssignment, repogen's service token); the billing account and credits are the
  payload's; actor "event:ops.channel_request.accepted".

Runs in the kit's consumer transaction (the inbox row commits with the effect). Idempotent
twice over: the inbox drops a redelivered event, and a channel request that already has a
work order (the unique index on it) — or an assignment that already has a live one, made by
hand before the event arrived — creates nothing. What cannot succeed by retrying (a request
ops no longer knows, a closed assignment) is logged and acknowledged; ops being unreachable
raises, so the kit retries with backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncConnection

from zenops.events.v1 import envelope_pb2
from zenops.events.v1 import ops_pb2 as ops_events
from zenops_kit.db import set_tenant
from zenops_kit.errors import DomainError, Unavailable
from zenops_kit.events import ConsumerSpec, subject_for, unpack_payload
from zenops_kit.fields import is_uuid
from zenops_kit.server import Subscription

from .. import work_orders
from ..domain import lifecycle
from ..ops_client import OpsClient
from ..settings import RepogenSettings
from ..store import work_orders as store

log = logging.getLogger("zenops.repogen.reactions")

CHANNEL_REQUEST_ACCEPTED = "ops.channel_request.accepted"
# The durable consumer of ops' stream.
OPS_CONSUMER = "repogen-ops"

Handler = Callable[[AsyncConnection, envelope_pb2.EventEnvelope], Awaitable[None]]


def _actor(env: envelope_pb2.EventEnvelope) -> str:
    return f"event:{env.event_type}"


def _trace_id() -> str:
    span = trace.get_current_span().get_span_context()
    return format(span.trace_id, "032x") if span.is_valid else ""


class Reactions:
    def __init__(self, settings: RepogenSettings, *, ops: Callable[[], OpsClient]) -> None:
        self.settings = settings
        self.ops = ops
        self.handlers: dict[str, Handler] = {CHANNEL_REQUEST_ACCEPTED: self.channel_request_accepted}

    async def handle(self, conn: AsyncConnection, env: envelope_pb2.EventEnvelope) -> None:
        handler = self.handlers.get(env.event_type)
        if handler is None:  # a subject we filter on but do not (yet) act on
            return
        if not is_uuid(env.tenant_id):
            # work orders are per tenant: an event without one cannot be applied (dead-lettered, visible)
            raise ValueError(f"{env.event_type} {env.event_id} carries no tenant id")
        await set_tenant(conn, env.tenant_id)
        await handler(conn, env)

    async def channel_request_accepted(self, conn: AsyncConnection, env: envelope_pb2.EventEnvelope) -> None:
        p = unpack_payload(env, ops_events.ChannelRequestAccepted)
        if not p.report_requested:
            return
        if not (is_uuid(p.channel_request_id) and is_uuid(p.assignment_id)):
            log.warning("accepted channel request with malformed ids", extra={"event_id": env.event_id})
            return
        request_id, assignment_id = p.channel_request_id.lower(), p.assignment_id.lower()
        tenant = env.tenant_id.lower()
        extra = {"event_id": env.event_id, "channel_request_id": request_id, "assignment_id": assignment_id}
        if await store.by_channel_request(conn, request_id) is not None:
            log.info("channel request has its work order already", extra=extra)
            return
        if await store.live_for_assignment(conn, assignment_id) is not None:
            log.info("assignment has a live work order already (made by hand)", extra=extra)
            return
        try:
            assignment = await self.ops().assignment(tenant_id=tenant, assignment_id=assignment_id)
        except Unavailable:
            raise  # the kit retries with backoff
        except DomainError as err:
            log.warning("ops does not know the accepted request's assignment", extra={**extra, "reason": err.reason})
            return
        if p.channel_id and is_uuid(p.channel_id):
            assignment = replace(assignment, channel_id=p.channel_id.lower())
        actor, trace_id = _actor(env), _trace_id()
        try:
            async with conn.begin_nested():  # a refusal leaves nothing behind
                created = await work_orders.create(
                    conn,
                    tenant_id=tenant,
                    actor=actor,
                    trace_id=trace_id,
                    assignment=assignment,
                    billing_account_id=p.billing_account_id.lower()
                    if is_uuid(p.billing_account_id)
                    else assignment.billing_account_id,
                    credits=max(0, min(p.credits, work_orders.MAX_CREDITS)),
                    channel_request_id=request_id,
                    inspection_max_age_days=self.settings.inspection_max_age_days,
                )
                await work_orders.transition(
                    conn,
                    tenant_id=tenant,
                    actor=actor,
                    trace_id=trace_id,
                    work_order_id=created.work_order.id,
                    to_status=lifecycle.DATA_PENDING,
                    reason="channel request accepted",
                    inspection_max_age_days=self.settings.inspection_max_age_days,
                )
        except Unavailable:
            raise
        except DomainError as err:
            log.warning(
                "no work order for the accepted request", extra={**extra, "reason": err.reason, "error": err.message}
            )
            return
        log.info(
            "work order opened for an accepted channel request", extra={**extra, "work_order_id": created.work_order.id}
        )


def subscriptions(settings: RepogenSettings, *, ops: Callable[[], OpsClient]) -> list[Subscription]:
    reactions = Reactions(settings, ops=ops)
    return [
        Subscription(
            ConsumerSpec(name=OPS_CONSUMER, producer="ops", subjects=(subject_for(CHANNEL_REQUEST_ACCEPTED),)),
            reactions.handle,
        ),
    ]
