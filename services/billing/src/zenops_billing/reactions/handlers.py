"""What billing does when ops and repogen report progress.

Each handler runs in the kit's transaction (the inbox row commits with the effect), scoped
to the envelope's tenant first (RLS). Outcomes that are facts about the wallet are not
failures: a shortfall, a suspended or unknown account become `billing.reservation.failed`
in the outbox (same transaction); an existing ACTIVE reservation for the ref means the
acceptance was billed already. Only unexpected errors raise (the kit retries, then
dead-letters).

- ops.channel_request.accepted: CREDIT → reserve the request's credits (ref
  channel_request); POSTPAID → billing.invoice.line_due and a line for the ref (the
  assignment's fee) on the account's open DRAFT invoice for the channel, created if there is
  none (once per ref; the place of supply is settled at issue).
- repogen.work_order.accepted: the same for work orders not born from a channel request
  (ref work_order); one born from a channel request was billed at its acceptance.
- ops.channel_request.rejected, repogen.work_order.cancelled: release the ref's ACTIVE
  reservation (a work order born from a channel request uses the request's); none: nothing.
- repogen.work_order.ready_for_render / repogen.deliverable.released: usage events
  report_planned / report_released, idempotent by the envelope's event id.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from zenops.events.v1 import billing_pb2 as billing_events
from zenops.events.v1 import envelope_pb2, ops_pb2, repogen_pb2
from zenops_kit.db import set_tenant
from zenops_kit.errors import AlreadyExists, DomainError, FailedPrecondition, NotFound
from zenops_kit.events import ConsumerSpec, append_event, new_event, subject_for, unpack_payload
from zenops_kit.server import Subscription

from .. import usage
from ..domain.wallet import (
    ACCOUNT_NOT_FOUND,
    ACCOUNT_SUSPENDED,
    CREDIT,
    INSUFFICIENT_CREDITS,
    POSTPAID,
    RESERVATION_EXISTS,
    is_uuid,
)
from ..invoicing import invoices
from ..settings import BillingSettings
from ..wallet import operations as wallet

log = logging.getLogger("zenops.billing.reactions")

CHANNEL_REQUEST_ACCEPTED = "ops.channel_request.accepted"
CHANNEL_REQUEST_REJECTED = "ops.channel_request.rejected"
WORK_ORDER_ACCEPTED = "repogen.work_order.accepted"
WORK_ORDER_READY = "repogen.work_order.ready_for_render"
WORK_ORDER_CANCELLED = "repogen.work_order.cancelled"
DELIVERABLE_RELEASED = "repogen.deliverable.released"

RESERVATION_FAILED = "billing.reservation.failed"
INVOICE_LINE_DUE = "billing.invoice.line_due"

# The durable consumers (one per producer stream).
OPS_CONSUMER = "billing-ops"
REPOGEN_CONSUMER = "billing-repogen"

# A reservation that is already settled: releasing it is nothing left to do.
_SETTLED = ("RESERVATION_ALREADY_CONSUMED", "RESERVATION_ALREADY_RELEASED", "RESERVATION_EXPIRED")

Handler = Callable[[AsyncConnection, envelope_pb2.EventEnvelope], Awaitable[None]]


def _actor(env: envelope_pb2.EventEnvelope) -> str:
    return f"event:{env.event_type}"


@dataclass(frozen=True)
class _Line:
    """What a POSTPAID acceptance bills: the draft invoice line's description and price, and
    the channel whose partners see the invoice."""

    description: str
    fee_paise: int
    channel_id: str | None


class Reactions:
    def __init__(self, settings: BillingSettings) -> None:
        self.settings = settings
        self.handlers: dict[str, Handler] = {
            CHANNEL_REQUEST_ACCEPTED: self.channel_request_accepted,
            CHANNEL_REQUEST_REJECTED: self.channel_request_rejected,
            WORK_ORDER_ACCEPTED: self.work_order_accepted,
            WORK_ORDER_READY: self.work_order_ready_for_render,
            WORK_ORDER_CANCELLED: self.work_order_cancelled,
            DELIVERABLE_RELEASED: self.deliverable_released,
        }

    async def handle(self, conn: AsyncConnection, env: envelope_pb2.EventEnvelope) -> None:
        handler = self.handlers.get(env.event_type)
        if handler is None:  # a subject we filter on but do not (yet) act on
            return
        if not is_uuid(env.tenant_id):
            # billing data is per tenant: an event without one cannot be applied (dead-lettered, visible)
            raise ValueError(f"{env.event_type} {env.event_id} carries no tenant id")
        await set_tenant(conn, env.tenant_id)
        await handler(conn, env)

    # -- acceptance billing ------------------------------------------------------------------

    async def channel_request_accepted(self, conn: AsyncConnection, env: envelope_pb2.EventEnvelope) -> None:
        p = unpack_payload(env, ops_pb2.ChannelRequestAccepted)
        service = p.requested_service.replace("_", " ") if p.requested_service else "valuation"
        description = f"Professional fees: {service}" + (f" ({p.reference_number})" if p.reference_number else "")
        await self._accept(
            conn,
            env,
            account_id=p.billing_account_id,
            ref_type="channel_request",
            ref_id=p.channel_request_id,
            credits=p.credits,
            assignment_id=p.assignment_id,
            line=_Line(description, p.fee_paise, p.channel_id if is_uuid(p.channel_id) else None),
        )

    async def work_order_accepted(self, conn: AsyncConnection, env: envelope_pb2.EventEnvelope) -> None:
        p = unpack_payload(env, repogen_pb2.WorkOrderAccepted)
        if p.channel_request_id:
            return  # billed when its channel request was accepted
        await self._accept(
            conn,
            env,
            account_id=p.billing_account_id,
            ref_type="work_order",
            ref_id=p.work_order_id,
            credits=p.credits,
            assignment_id="",
            line=_Line(f"Professional fees: valuation report (work order {p.work_order_id})", 0, None),
        )

    async def _accept(
        self,
        conn: AsyncConnection,
        env: envelope_pb2.EventEnvelope,
        *,
        account_id: str,
        ref_type: str,
        ref_id: str,
        credits: int,
        assignment_id: str,
        line: _Line,
    ) -> None:
        tenant_id = env.tenant_id
        account = await wallet.get_account(conn, account_id)
        if account is None:
            await self._failed(conn, env, account_id, ref_type, ref_id, credits, 0, ACCOUNT_NOT_FOUND)
            return
        if account.policy == POSTPAID:
            await self._emit(
                conn,
                env,
                INVOICE_LINE_DUE,
                billing_events.InvoiceLineDue(
                    billing_account_id=account.id, ref_type=ref_type, ref_id=ref_id, assignment_id=assignment_id
                ),
                aggregate_id=account.id,
            )
            # ... and the draft invoice line for the ref (once per ref: a redelivery adds none)
            added = await invoices.add_acceptance_line(
                conn,
                tenant_id=tenant_id,
                account=account,
                ref_type=ref_type,
                ref_id=ref_id,
                assignment_id=assignment_id,
                channel_id=line.channel_id,
                description=line.description,
                unit_price_paise=line.fee_paise,
                actor=_actor(env),
                trace_id=env.trace_context.traceparent,
            )
            log.info("postpaid acceptance", extra={"event_id": env.event_id, "ref_id": ref_id, "line_added": added})
            return
        assert account.policy == CREDIT
        if credits <= 0:
            log.warning(
                "acceptance without credits: nothing to reserve",
                extra={"event_id": env.event_id, "ref_type": ref_type, "ref_id": ref_id},
            )
            return
        expires_at = datetime.now(UTC) + timedelta(seconds=self.settings.reservation_ttl_seconds)
        try:
            # a savepoint: the refusal must not take the inbox row and the failure event with it
            async with conn.begin_nested():
                await wallet.reserve(
                    conn,
                    tenant_id=tenant_id,
                    account_id=account.id,
                    amount=credits,
                    ref_type=ref_type,
                    ref_id=ref_id,
                    expires_at=expires_at,
                    actor=_actor(env),
                )
        except AlreadyExists as err:
            if err.reason != RESERVATION_EXISTS:
                raise
            log.info("acceptance already reserved", extra={"event_id": env.event_id, "ref_id": ref_id})
        except (FailedPrecondition, NotFound) as err:
            if err.reason not in (INSUFFICIENT_CREDITS, ACCOUNT_SUSPENDED, ACCOUNT_NOT_FOUND):
                raise
            available = int(err.metadata.get("available", account.wallet.available))
            await self._failed(conn, env, account.id, ref_type, ref_id, credits, available, err.reason)

    async def _failed(
        self, conn, env, account_id: str, ref_type: str, ref_id: str, requested: int, available: int, reason: str
    ) -> None:
        log.info("reservation failed", extra={"event_id": env.event_id, "ref_id": ref_id, "reason": reason})
        await self._emit(
            conn,
            env,
            RESERVATION_FAILED,
            billing_events.ReservationFailed(
                billing_account_id=account_id,
                ref_type=ref_type,
                ref_id=ref_id,
                requested=requested,
                available=max(available, 0),
                reason=reason,
            ),
            aggregate_id=account_id if is_uuid(account_id) else ref_id,
        )

    async def _emit(
        self,
        conn: AsyncConnection,
        env: envelope_pb2.EventEnvelope,
        event_type: str,
        payload: Message,
        *,
        aggregate_id: str,
    ) -> None:
        # Derived from the event it answers: a (theoretical) second handling could not publish
        # a second, different event (the outbox id is the event id).
        await append_event(
            conn,
            new_event(
                event_type=event_type,
                payload=payload,
                producer="billing",
                producer_version=self.settings.version,
                aggregate_type="billing_account",
                aggregate_id=aggregate_id,
                aggregate_version=1,
                tenant_id=env.tenant_id,
                event_id=_derived_id(env.event_id, event_type),
            ),
        )

    # -- release on reject / cancel ------------------------------------------------------------

    async def channel_request_rejected(self, conn: AsyncConnection, env: envelope_pb2.EventEnvelope) -> None:
        p = unpack_payload(env, ops_pb2.ChannelRequestRejected)
        await self._release(
            conn,
            env,
            p.billing_account_id,
            [("channel_request", p.channel_request_id)],
            reason=f"channel request rejected: {p.reason}" if p.reason else "channel request rejected",
        )

    async def work_order_cancelled(self, conn: AsyncConnection, env: envelope_pb2.EventEnvelope) -> None:
        p = unpack_payload(env, repogen_pb2.WorkOrderCancelled)
        refs = [("work_order", p.work_order_id)]
        if p.channel_request_id:
            refs.append(("channel_request", p.channel_request_id))
        await self._release(
            conn,
            env,
            p.billing_account_id,
            refs,
            reason=f"work order cancelled: {p.reason}" if p.reason else "work order cancelled",
        )

    async def _release(
        self,
        conn: AsyncConnection,
        env: envelope_pb2.EventEnvelope,
        account_id: str,
        refs: list[tuple[str, str]],
        *,
        reason: str,
    ) -> None:
        for ref_type, ref_id in refs:
            if not ref_id:
                continue
            active = await wallet.active_reservation(conn, account_id=account_id, ref_type=ref_type, ref_id=ref_id)
            if active is None:
                continue
            try:
                async with conn.begin_nested():
                    await wallet.release(
                        conn, tenant_id=env.tenant_id, reservation_id=active.id, reason=reason[:500], actor=_actor(env)
                    )
            except FailedPrecondition as err:
                if err.reason not in _SETTLED:
                    raise
                log.info("reservation settled meanwhile", extra={"event_id": env.event_id, "reservation_id": active.id})

    # -- usage -------------------------------------------------------------------------------

    async def work_order_ready_for_render(self, conn: AsyncConnection, env: envelope_pb2.EventEnvelope) -> None:
        p = unpack_payload(env, repogen_pb2.WorkOrderReadyForRender)
        await self._usage(conn, env, usage.REPORT_PLANNED, p.billing_account_id, p.work_order_id)

    async def deliverable_released(self, conn: AsyncConnection, env: envelope_pb2.EventEnvelope) -> None:
        p = unpack_payload(env, repogen_pb2.DeliverableReleased)
        await self._usage(conn, env, usage.REPORT_RELEASED, p.billing_account_id, p.work_order_id)

    async def _usage(
        self, conn: AsyncConnection, env: envelope_pb2.EventEnvelope, kind: str, account_id: str, work_order_id: str
    ) -> None:
        try:
            async with conn.begin_nested():
                await usage.record(
                    conn,
                    tenant_id=env.tenant_id,
                    source=env.event_type,
                    usage=usage.UsageInput(
                        event_id=env.event_id,
                        account_id=account_id,
                        kind=kind,
                        quantity=1,
                        ref_type="work_order",
                        ref_id=work_order_id,
                        occurred_at=env.occurred_at.ToDatetime(tzinfo=UTC),
                    ),
                )
        except DomainError as err:
            # usage for an account billing does not know (or a malformed ref) cannot be recorded;
            # retrying will not change that
            log.warning("usage not recorded", extra={"event_id": env.event_id, "kind": kind, "reason": err.reason})


def _derived_id(event_id: str, event_type: str) -> str:
    return str(uuid.uuid5(uuid.UUID(event_id), event_type))


def subscriptions(settings: BillingSettings) -> list[Subscription]:
    reactions = Reactions(settings)
    ops = (CHANNEL_REQUEST_ACCEPTED, CHANNEL_REQUEST_REJECTED)
    repogen = (WORK_ORDER_ACCEPTED, WORK_ORDER_READY, WORK_ORDER_CANCELLED, DELIVERABLE_RELEASED)
    return [
        Subscription(
            ConsumerSpec(name=OPS_CONSUMER, producer="ops", subjects=tuple(subject_for(t) for t in ops)),
            reactions.handle,
        ),
        Subscription(
            ConsumerSpec(name=REPOGEN_CONSUMER, producer="repogen", subjects=tuple(subject_for(t) for t in repogen)),
            reactions.handle,
        ),
    ]
