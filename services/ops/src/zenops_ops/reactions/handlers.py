"""What ops does when billing and repogen report outcomes.

Each handler runs in the kit's consumer transaction (the inbox row commits with the
effect), scoped to the envelope's tenant (RLS). A ref ops does not know (another tenant's,
a deleted test's, a malformed id) is logged and acknowledged: retrying would not make it
known. Only unexpected errors raise (the kit retries, then dead-letters).

- billing.reservation.failed: the channel request (and the assignment made from it) or the
  assignment is marked "credits short" with the reason, and an activity entry says what was
  requested and what was available.
- repogen.deliverable.released: the report is out, so the assignment is DELIVERED (from any
  open state: domain.lifecycle.RELEASE_FROM), with actor "event:repogen.deliverable.released".
  Already DELIVERED: nothing; CANCELLED: an activity entry only. An event naming only the
  channel request delivers the request's assignment.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncConnection

from zenops.events.v1 import billing_pb2 as billing_events
from zenops.events.v1 import envelope_pb2, repogen_pb2
from zenops_kit.db import set_tenant
from zenops_kit.events import ConsumerSpec, subject_for, unpack_payload
from zenops_kit.fields import is_uuid
from zenops_kit.server import Subscription

from .. import assignments, intake
from ..domain import lifecycle
from ..settings import OpsSettings
from ..store import activity
from ..store import assignments as assignment_store
from ..store import intake as intake_store

log = logging.getLogger("zenops.ops.reactions")

RESERVATION_FAILED = "billing.reservation.failed"
DELIVERABLE_RELEASED = "repogen.deliverable.released"

# The durable consumers (one per producer stream).
BILLING_CONSUMER = "ops-billing"
REPOGEN_CONSUMER = "ops-repogen"

Handler = Callable[[AsyncConnection, envelope_pb2.EventEnvelope], Awaitable[None]]


def _actor(env: envelope_pb2.EventEnvelope) -> str:
    return f"event:{env.event_type}"


def _trace_id() -> str:
    span = trace.get_current_span().get_span_context()
    return format(span.trace_id, "032x") if span.is_valid else ""


class Reactions:
    def __init__(self, settings: OpsSettings) -> None:
        self.settings = settings
        self.handlers: dict[str, Handler] = {
            RESERVATION_FAILED: self.reservation_failed,
            DELIVERABLE_RELEASED: self.deliverable_released,
        }

    async def handle(self, conn: AsyncConnection, env: envelope_pb2.EventEnvelope) -> None:
        handler = self.handlers.get(env.event_type)
        if handler is None:  # a subject we filter on but do not (yet) act on
            return
        if not is_uuid(env.tenant_id):
            # ops data is per tenant: an event without one cannot be applied (dead-lettered, visible)
            raise ValueError(f"{env.event_type} {env.event_id} carries no tenant id")
        await set_tenant(conn, env.tenant_id)
        await handler(conn, env)

    # -- billing ----------------------------------------------------------------------------

    async def reservation_failed(self, conn: AsyncConnection, env: envelope_pb2.EventEnvelope) -> None:
        p = unpack_payload(env, billing_events.ReservationFailed)
        if p.ref_type not in ("channel_request", "assignment"):
            return  # work orders are repogen's
        if not is_uuid(p.ref_id):
            log.warning(
                "reservation failure for a malformed ref", extra={"event_id": env.event_id, "ref_type": p.ref_type}
            )
            return
        ref_id = p.ref_id.lower()
        reason = "".join(c for c in p.reason if c.isprintable())[:100]  # billing's reason code, bounded
        detail = {
            "requested": p.requested,
            "available": p.available,
            "reason": reason,
            "billing_account_id": p.billing_account_id,
            "event_id": env.event_id,
        }
        summary = f"Billing could not reserve {p.requested} credit(s): {reason} ({p.available} available)"
        if p.ref_type == "channel_request":
            found = await intake.flag_credits_short(
                conn,
                tenant_id=env.tenant_id,
                request_id=ref_id,
                actor=_actor(env),
                reason=reason,
                detail=detail,
                summary=summary,
            )
        else:
            found = await assignments.flag_credits_short(
                conn, tenant_id=env.tenant_id, assignment_id=ref_id, actor=_actor(env), detail=detail, summary=summary
            )
        if not found:
            log.warning(
                "reservation failure for an unknown ref",
                extra={"event_id": env.event_id, "ref_type": p.ref_type, "ref_id": ref_id},
            )

    # -- repogen ----------------------------------------------------------------------------

    async def deliverable_released(self, conn: AsyncConnection, env: envelope_pb2.EventEnvelope) -> None:
        p = unpack_payload(env, repogen_pb2.DeliverableReleased)
        assignment_id = p.assignment_id.lower() if is_uuid(p.assignment_id) else None
        if assignment_id is None and is_uuid(p.channel_request_id):
            request = await intake_store.get(conn, p.channel_request_id.lower())
            assignment_id = request.assignment_id if request is not None else None
        row = await assignment_store.get(conn, assignment_id, lock=True) if assignment_id else None
        if row is None:
            log.warning(
                "released deliverable of an unknown assignment",
                extra={
                    "event_id": env.event_id,
                    "assignment_id": p.assignment_id,
                    "channel_request_id": p.channel_request_id,
                },
            )
            return
        reason = "report released" + (f" (work order {p.work_order_id})" if is_uuid(p.work_order_id) else "")
        if row.status == lifecycle.DELIVERED:
            log.info("assignment already delivered", extra={"event_id": env.event_id, "assignment_id": row.id})
            return
        if row.status not in lifecycle.RELEASE_FROM:
            await activity.record(
                conn,
                tenant_id=env.tenant_id,
                kind="repogen.deliverable_released",
                actor=_actor(env),
                assignment_id=row.id,
                trace_id=_trace_id(),
                summary=f"A report was released for {row.reference_number}, which stays {row.status}",
                detail={
                    "work_order_id": p.work_order_id,
                    "deliverable_id": p.deliverable_id,
                    "status": row.status,
                    "event_id": env.event_id,
                },
            )
            return
        await assignments.transition(
            conn,
            tenant_id=env.tenant_id,
            actor=_actor(env),
            trace_id=_trace_id(),
            assignment_id=row.id,
            to_status=lifecycle.DELIVERED,
            reason=reason,
            released=True,
        )


def subscriptions(settings: OpsSettings) -> list[Subscription]:
    reactions = Reactions(settings)
    return [
        Subscription(
            ConsumerSpec(name=BILLING_CONSUMER, producer="billing", subjects=(subject_for(RESERVATION_FAILED),)),
            reactions.handle,
        ),
        Subscription(
            ConsumerSpec(name=REPOGEN_CONSUMER, producer="repogen", subjects=(subject_for(DELIVERABLE_RELEASED),)),
            reactions.handle,
        ),
    ]
