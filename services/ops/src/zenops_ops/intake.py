"""Use cases of partner intake (channel requests) and of billing's questions about refs.

A portal user acts for its channel only: its requests are stored in the firm's tenant with
the channel id, and every read is scoped to the channel in the query and by RLS (the
caller's transaction, zenops_kit.rls.scoped_tx). Staff name the channel.

Accepting locks the request: of two concurrent accepts the second waits, then finds it
ACCEPTED and answers the same request and assignment (no second assignment, no second
event; the event's id is derived from the request's, so even a replayed write could not
publish two). Rejecting likewise.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops.events.v1 import ops_pb2 as events
from zenops_kit.errors import FailedPrecondition, PermissionDenied
from zenops_kit.fields import invalid, is_uuid, not_found, parse_uuid
from zenops_kit.paging import page_limit
from zenops_kit.rls import scoped_tx

from . import assignments, outbox
from .api.caller import Caller
from .domain import assignments as assignment_rules
from .domain import intake as rules
from .domain import masterdata as masterdata_rules
from .store import activity
from .store import assignments as assignment_store
from .store import intake as store
from .store import masterdata as masterdata_store


def _event_id(request_id: str, event_type: str) -> str:
    return str(uuid.uuid5(uuid.UUID(request_id), event_type))


def property_of(row: Row):
    return rules.property_from_json(json.loads(row.property))


# -- submit -----------------------------------------------------------------------------------


def _channel_for(caller: Caller, requested: str | None) -> str:
    """The channel a submission is for: a portal user's own (naming another is refused);
    staff must name one."""
    if caller.is_portal:
        if requested is not None and requested != caller.channel_id:
            raise PermissionDenied(
                "a portal user submits for its own channel only",
                reason="CHANNEL_MISMATCH",
                metadata={"channel_id": requested},
            )
        return caller.channel_id
    if requested is None:
        raise invalid("channel_id", "is required")
    return requested


async def submit(conn: AsyncConnection, caller: Caller, sub: rules.Submission, *, trace_id: str) -> Row:
    channel_id = _channel_for(caller, sub.channel_id)
    channel = await store.channel(conn, channel_id)
    if channel is None:
        raise not_found("channel", channel_id, field="channel_id")
    if not channel.is_active:
        raise FailedPrecondition(
            f"channel {channel.name} is not active", reason="CHANNEL_INACTIVE", metadata={"channel_id": channel_id}
        )
    bank_id = sub.bank_id
    if sub.bank_id or sub.branch_id:
        refs = await assignment_store.missing_references(conn, bank_id=sub.bank_id, branch_id=sub.branch_id)
        if not refs.bank_id:
            raise not_found("bank", sub.bank_id, field="bank_id")
        if not refs.branch_id:
            raise not_found("bank_branch", sub.branch_id, field="branch_id")
        if sub.branch_id:
            if bank_id is None:
                bank_id = refs.branch_bank_id
            elif bank_id != refs.branch_bank_id:
                raise invalid("branch_id", "is a branch of another bank than bank_id")
    credits = sub.credits or channel.default_credits
    row = await store.insert(
        conn,
        tenant_id=caller.tenant_id,
        channel_id=channel_id,
        borrower_name=sub.borrower_name,
        borrower_phone=sub.borrower_phone,
        property=rules.property_json(sub.property),
        bank_id=bank_id,
        branch_id=sub.branch_id,
        requested_service=sub.requested_service,
        credits=credits,
        notes=sub.notes,
        actor=caller.actor,
    )
    await activity.record(
        conn,
        tenant_id=caller.tenant_id,
        kind="channel_request.submitted",
        actor=caller.actor,
        channel_request_id=row.id,
        trace_id=trace_id,
        summary=f"{channel.name} submitted a {sub.requested_service.replace('_', ' ')} request for {sub.borrower_name}",
        detail={
            "channel_id": channel_id,
            "requested_service": sub.requested_service,
            "credits": credits,
            "city": sub.property.city,
            "pin_code": sub.property.pin_code,
        },
    )
    return row


# -- read -------------------------------------------------------------------------------------


async def fetch(engine: AsyncEngine, caller: Caller, request_id: str) -> Row:
    request_id = parse_uuid(request_id, "id")
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        row = await store.get(conn, request_id, channel_id=caller.channel_id)
    if row is None:
        raise not_found("channel_request", request_id)
    return row


async def list_page(
    engine: AsyncEngine, caller: Caller, *, status: str | None, channel_id: str | None, limit: int, cursor: str
) -> tuple[list[Row], str]:
    """Newest first; a portal user's own channel's only (naming another channel finds none)."""
    limit = page_limit(limit)
    before = assignments.cursor_position(cursor, "channel_requests")
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        rows = await store.page(
            conn,
            channel_id=caller.channel_id,
            filter_channel_id=channel_id,
            status=status,
            before=before,
            limit=limit + 1,
        )
    return assignments.next_page("channel_requests", rows, limit)


# -- review -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AcceptOptions:
    """Settings of the assignment an accept creates (checked)."""

    assignee_ids: tuple[str, ...]
    due_at: datetime | None
    priority: str
    fee_paise: int


def accept_options(
    *, assignee_ids, due_at: datetime | None, priority: str, fee_paise: int, now: datetime
) -> AcceptOptions:
    return AcceptOptions(
        assignee_ids=assignment_rules.assignee_ids(assignee_ids),
        due_at=assignment_rules.due_at(due_at, now),
        priority=assignment_rules.priority(priority),
        fee_paise=assignment_rules.fee_paise(fee_paise),
    )


async def _locked(conn: AsyncConnection, caller: Caller, request_id: str) -> Row:
    row = await store.get(conn, request_id, channel_id=caller.channel_id, lock=True)
    if row is None:
        raise not_found("channel_request", request_id)
    return row


async def accept(
    conn: AsyncConnection, caller: Caller, request_id: str, options: dict, *, trace_id: str
) -> tuple[Row, Row]:
    """The request ACCEPTED and its assignment (created, or the one made by the first accept).
    `options`: raw accept_options() arguments, checked only when the request is accepted now
    (accepting again answers as the first accept did, whatever it asks)."""
    row = await _locked(conn, caller, request_id)
    if not rules.check_acceptable(row.status):
        assignment = await assignment_store.get(conn, row.assignment_id)
        return row, assignment
    options = accept_options(**options, now=datetime.now(UTC))
    channel = await store.channel(conn, row.channel_id)
    # the property the partner described, unverified (an approver verifies what partners send)
    prop = await masterdata_store.insert_property(
        conn,
        property_of(row),
        tenant_id=caller.tenant_id,
        actor=caller.actor,
        verification=masterdata_rules.UNVERIFIED,
        trace_id=trace_id,
    )
    details = assignment_rules.Details(
        bank_id=row.bank_id,
        branch_id=row.branch_id,
        property_id=prop.id,
        due_at=options.due_at,
        priority=options.priority,
        assignee_ids=options.assignee_ids,
        fee_paise=options.fee_paise,
        notes=row.notes,
        borrower_name=row.borrower_name,
    )
    # a request accepted after its channel was deactivated is still the firm's work
    assignment = await assignments.create(
        conn,
        tenant_id=caller.tenant_id,
        actor=caller.actor,
        trace_id=trace_id,
        source_type=assignment_rules.CHANNEL,
        details=details,
        channel_id=row.channel_id,
        channel_request_id=row.id,
        require_active_channel=False,
    )
    accepted = await store.accept(conn, row.id, assignment_id=assignment.id, actor=caller.actor)
    await activity.record(
        conn,
        tenant_id=caller.tenant_id,
        kind="channel_request.accepted",
        actor=caller.actor,
        channel_request_id=row.id,
        assignment_id=assignment.id,
        trace_id=trace_id,
        summary=f"Request accepted as assignment {assignment.reference_number}",
        detail={
            "assignment_id": assignment.id,
            "reference_number": assignment.reference_number,
            "credits": row.credits,
            "fee_paise": assignment.fee_paise,
            "billing_account_id": channel.billing_account_id,
        },
    )
    await outbox.emit(
        conn,
        event_type=outbox.CHANNEL_REQUEST_ACCEPTED,
        tenant_id=caller.tenant_id,
        aggregate_type="channel_request",
        aggregate_id=row.id,
        aggregate_version=accepted.version,
        event_id=_event_id(row.id, outbox.CHANNEL_REQUEST_ACCEPTED),
        payload=events.ChannelRequestAccepted(
            channel_request_id=row.id,
            channel_id=row.channel_id,
            assignment_id=assignment.id,
            billing_account_id=channel.billing_account_id or "",
            credits=row.credits,
            report_requested=rules.report_requested(row.requested_service),
            fee_paise=assignment.fee_paise,
            requested_service=row.requested_service,
            reference_number=assignment.reference_number,
        ),
    )
    return accepted, assignment


async def reject(conn: AsyncConnection, caller: Caller, request_id: str, reason: str, *, trace_id: str) -> Row:
    row = await _locked(conn, caller, request_id)
    if not rules.check_rejectable(row.status):
        return row
    channel = await store.channel(conn, row.channel_id)
    rejected = await store.reject(conn, row.id, reason=reason, actor=caller.actor)
    await activity.record(
        conn,
        tenant_id=caller.tenant_id,
        kind="channel_request.rejected",
        actor=caller.actor,
        channel_request_id=row.id,
        trace_id=trace_id,
        summary=f"Request rejected: {reason}",
        detail={"reason": reason, "billing_account_id": channel.billing_account_id},
    )
    await outbox.emit(
        conn,
        event_type=outbox.CHANNEL_REQUEST_REJECTED,
        tenant_id=caller.tenant_id,
        aggregate_type="channel_request",
        aggregate_id=row.id,
        aggregate_version=rejected.version,
        event_id=_event_id(row.id, outbox.CHANNEL_REQUEST_REJECTED),
        payload=events.ChannelRequestRejected(
            channel_request_id=row.id,
            channel_id=row.channel_id,
            billing_account_id=channel.billing_account_id or "",
            reason=reason,
        ),
    )
    return rejected


# -- billing --------------------------------------------------------------------------------


async def flag_credits_short(
    conn: AsyncConnection, *, tenant_id: str, request_id: str, actor: str, reason: str, detail: dict, summary: str
) -> bool:
    """Mark the request (and its assignment, if any) "credits short" with one activity entry
    on both; False when there is no such request."""
    row = await store.get(conn, request_id, lock=True)
    if row is None:
        return False
    await store.flag_credits_short(conn, request_id, reason)
    if row.assignment_id is not None:
        await assignment_store.flag_credits_short(conn, row.assignment_id)
    await activity.record(
        conn,
        tenant_id=tenant_id,
        kind="billing.credits_short",
        actor=actor,
        channel_request_id=request_id,
        assignment_id=row.assignment_id,
        summary=summary,
        detail=detail,
    )
    return True


async def billing_ref_state(engine: AsyncEngine, *, tenant_id: str, ref_type: str, ref_id: str) -> str:
    """Where a ref billing holds a reservation for stands (domain.intake: OPEN, DELIVERED,
    CANCELLED, NOT_FOUND)."""
    ref_type = rules.ref_type(ref_type)
    if not is_uuid(ref_id):
        return rules.NOT_FOUND
    async with scoped_tx(engine, tenant_id) as conn:
        if ref_type == "channel_request":
            row = await store.ref_state(conn, ref_id.lower())
            return (
                rules.NOT_FOUND if row is None else rules.channel_request_ref_state(row.status, row.assignment_status)
            )
        row = await assignment_store.get(conn, ref_id.lower())
        return rules.NOT_FOUND if row is None else rules.assignment_ref_state(row.status)
