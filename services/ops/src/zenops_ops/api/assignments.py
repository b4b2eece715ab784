"""RPCs of assignments and their lifecycle: proto ↔ use cases (zenops_ops.assignments).

Capabilities: assignments.read for reads, assignments.write to create and edit,
assignments.transition to move along the lifecycle, plus repogen.release for a manual move
to DELIVERED. Mutations run through `idempotent_as()` (the request's `idempotency_key`, else
metadata `idempotency-key`); their input is checked inside it, so a retry days later gets
the original answer, not a new verdict on a due date that has passed meanwhile.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.engine import Row

from zenops.common.v1 import common_pb2
from zenops.ops.v1 import ops_pb2 as pb
from zenops_kit.fields import choice, invalid, optional_uuid, parse_uuid
from zenops_kit.idempotency import idempotent_as

from .. import assignments
from ..domain import assignments as rules
from ..domain import lifecycle
from .caller import caller, idempotency_key, trace_id
from .translate import (
    ASSIGNMENT_STATUS_OF,
    ASSIGNMENT_STATUS_PB,
    PRIORITY_OF,
    PRIORITY_PB,
    SOURCE_TYPE_OF,
    SOURCE_TYPE_PB,
    ts,
    when,
)


def assignment_pb(row: Row) -> pb.Assignment:
    a = pb.Assignment(
        id=row.id,
        reference_number=row.reference_number,
        source_type=SOURCE_TYPE_PB[row.source_type],
        status=ASSIGNMENT_STATUS_PB[row.status],
        bank_id=row.bank_id or "",
        branch_id=row.branch_id or "",
        client_org_id=row.client_org_id or "",
        property_id=row.property_id or "",
        contact_id=row.contact_id or "",
        channel_id=row.channel_id or "",
        channel_request_id=row.channel_request_id or "",
        priority=PRIORITY_PB[row.priority],
        assignee_ids=list(row.assignee_ids or ()),
        fee_paise=row.fee_paise,
        notes=row.notes,
        completeness_score=row.completeness_score,
        credits_short=row.credits_short,
        created_by=row.created_by,
        version=row.version,
        borrower_name=row.borrower_name,
        bank_code=row.bank_code,
        billing_account_id=row.billing_account_id,
        property_state=row.property_state,
    )
    ts(a.due_at, row.due_at)
    ts(a.created_at, row.created_at)
    ts(a.updated_at, row.updated_at)
    return a


def history_pb(row: Row) -> pb.StatusHistoryEntry:
    entry = pb.StatusHistoryEntry(
        from_status=ASSIGNMENT_STATUS_PB.get(row.from_status or "", 0),
        to_status=ASSIGNMENT_STATUS_PB[row.to_status],
        actor=row.actor,
        reason=row.reason,
    )
    ts(entry.at, row.created_at)
    return entry


def activity_pb(row: Row) -> pb.ActivityEntry:
    entry = pb.ActivityEntry(id=row.id, kind=row.kind, actor=row.actor, summary=row.summary, detail_json=row.detail)
    ts(entry.at, row.created_at)
    return entry


def _priority(value: int, field: str, *, default: str | None = None) -> str:
    return choice(value, field, PRIORITY_OF, default=default)


def _raw_details(message, paths) -> dict:
    """The raw values of `paths` in an Assignment or CreateAssignmentRequest message."""
    values = {}
    for path in paths:
        if path == "due_at":
            values[path] = when(message, "due_at")
        elif path == "priority":
            values[path] = _priority(message.priority, "priority", default=rules.DEFAULT_PRIORITY)
        elif path == "assignee_ids":
            values[path] = list(message.assignee_ids)
        else:
            values[path] = getattr(message, path)
    return values


def _expected_version(value: int) -> int:
    if value < 0:
        raise invalid("expected_version", "must not be negative")
    return value


class AssignmentRpcs:
    """Mixed into OpsServicer (self.engine, self.runtime)."""

    async def CreateAssignment(self, request, context):
        c = await caller(self.engine, context, "assignments.write")
        key = idempotency_key(request.idempotency_key, context)

        async def run(conn):
            source = choice(request.source_type, "source_type", SOURCE_TYPE_OF)
            details = rules.details(_raw_details(request, rules.UPDATABLE), datetime.now(UTC))
            row = await assignments.create(
                conn,
                tenant_id=c.tenant_id,
                actor=c.actor,
                trace_id=trace_id(),
                source_type=source,
                details=details,
                channel_id=optional_uuid(request.channel_id, "channel_id"),
            )
            return pb.CreateAssignmentResponse(assignment=assignment_pb(row))

        return await idempotent_as(
            self.engine, c, key, "CreateAssignment", request, run=run, decode=pb.CreateAssignmentResponse.FromString
        )

    async def GetAssignment(self, request, context):
        c = await caller(self.engine, context, "assignments.read")
        detail = await assignments.get(self.engine, c, request.id)
        return pb.GetAssignmentResponse(
            assignment=assignment_pb(detail.assignment),
            history=[history_pb(h) for h in detail.history],
            documents=detail.documents,
        )

    async def ListAssignments(self, request, context):
        c = await caller(self.engine, context, "assignments.read")
        filters = assignments.Filters(
            statuses=sorted({choice(s, "statuses", ASSIGNMENT_STATUS_OF) for s in request.statuses}),
            assignee_id=optional_uuid(request.assignee_id, "assignee_id"),
            bank_id=optional_uuid(request.bank_id, "bank_id"),
            channel_id=optional_uuid(request.channel_id, "channel_id"),
            due_after=when(request, "due_after"),
            due_before=when(request, "due_before"),
            query=request.query,
        )
        rows, next_cursor = await assignments.list_page(
            self.engine, c, filters, limit=request.page.limit, cursor=request.page.cursor
        )
        return pb.ListAssignmentsResponse(
            assignments=[assignment_pb(r) for r in rows], page=common_pb2.PageInfo(next_cursor=next_cursor)
        )

    async def UpdateAssignment(self, request, context):
        c = await caller(self.engine, context, "assignments.write")
        key = idempotency_key("", context)

        async def run(conn):
            paths = rules.update_paths(request.update_mask.paths)
            values = _raw_details(request.assignment, paths)
            if "priority" in values:  # named in the mask: it must be set
                values["priority"] = _priority(request.assignment.priority, "priority")
            row = await assignments.update(
                conn,
                tenant_id=c.tenant_id,
                actor=c.actor,
                trace_id=trace_id(),
                assignment_id=parse_uuid(request.id, "id"),
                values=values,
                expected_version=_expected_version(request.expected_version),
            )
            return pb.UpdateAssignmentResponse(assignment=assignment_pb(row))

        return await idempotent_as(
            self.engine, c, key, "UpdateAssignment", request, run=run, decode=pb.UpdateAssignmentResponse.FromString
        )

    async def TransitionAssignment(self, request, context):
        c = await caller(self.engine, context, "assignments.transition")
        to = choice(request.to, "to", ASSIGNMENT_STATUS_OF)
        if to == lifecycle.DELIVERED:
            # recording a delivery by hand is releasing the report: the same people may
            c.require(lifecycle.MANUAL_DELIVERY_CAPABILITY)
        key = idempotency_key(request.idempotency_key, context)

        async def run(conn):
            row = await assignments.transition(
                conn,
                tenant_id=c.tenant_id,
                actor=c.actor,
                trace_id=trace_id(),
                assignment_id=parse_uuid(request.id, "id"),
                to_status=to,
                reason=request.reason,
            )
            return pb.TransitionAssignmentResponse(assignment=assignment_pb(row))

        return await idempotent_as(
            self.engine,
            c,
            key,
            "TransitionAssignment",
            request,
            run=run,
            decode=pb.TransitionAssignmentResponse.FromString,
        )

    async def GetAssignmentHistory(self, request, context):
        c = await caller(self.engine, context, "assignments.read")
        result = await assignments.history(
            self.engine, c, request.id, limit=request.page.limit, cursor=request.page.cursor
        )
        return pb.GetAssignmentHistoryResponse(
            history=[history_pb(h) for h in result.history],
            activity=[activity_pb(a) for a in result.activity],
            page=common_pb2.PageInfo(next_cursor=result.next_cursor),
        )
