"""RPCs of channel requests (partner intake) and GetBillingRefState: proto ↔ use cases
(zenops_ops.intake).

Capabilities: channel_requests.write to submit (portal users for their own channel, staff
naming one), channel_requests.read to fetch and list (portal users: their channel's only),
channel_requests.review to accept or reject. GetBillingRefState answers billing's
reconciliation: a service token naming the tenant, or a user holding billing.reconcile (in
the user's own tenant).
"""

from __future__ import annotations

import json

from sqlalchemy.engine import Row

from zenops.common.v1 import common_pb2
from zenops.ops.v1 import ops_pb2 as pb
from zenops_kit.caller import ref_state_tenant
from zenops_kit.fields import choice, optional_uuid, parse_uuid
from zenops_kit.idempotency import idempotent_as

from .. import intake
from ..domain import assignments as assignment_rules
from ..domain import intake as rules
from .assignments import assignment_pb
from .caller import caller, idempotency_key, trace_id
from .translate import CHANNEL_REQUEST_STATUS_OF, CHANNEL_REQUEST_STATUS_PB, PRIORITY_OF, ts, when

_REF_STATES = {
    rules.OPEN: pb.BILLING_REF_STATE_OPEN,
    rules.DELIVERED: pb.BILLING_REF_STATE_DELIVERED,
    rules.CANCELLED: pb.BILLING_REF_STATE_CANCELLED,
    rules.NOT_FOUND: pb.BILLING_REF_STATE_NOT_FOUND,
}


def channel_request_pb(row: Row) -> pb.ChannelRequest:
    r = pb.ChannelRequest(
        id=row.id,
        channel_id=row.channel_id,
        status=CHANNEL_REQUEST_STATUS_PB[row.status],
        borrower_name=row.borrower_name,
        borrower_phone=row.borrower_phone,
        property=pb.PropertyDetails(
            **{k: v for k, v in json.loads(row.property).items() if k in pb.PropertyDetails.DESCRIPTOR.fields_by_name}
        ),
        bank_id=row.bank_id or "",
        branch_id=row.branch_id or "",
        requested_service=row.requested_service,
        credits=row.credits,
        notes=row.notes,
        assignment_id=row.assignment_id or "",
        submitted_by=row.submitted_by,
        reviewed_by=row.reviewed_by or "",
        rejection_reason=row.rejection_reason,
        credits_short=row.credits_short,
        credits_short_reason=row.credits_short_reason,
    )
    ts(r.reviewed_at, row.reviewed_at)
    ts(r.created_at, row.created_at)
    ts(r.updated_at, row.updated_at)
    return r


class IntakeRpcs:
    """Mixed into OpsServicer (self.engine, self.runtime)."""

    async def GetBillingRefState(self, request, context):
        tenant = ref_state_tenant(request.tenant_id, context)
        state = await intake.billing_ref_state(
            self.engine, tenant_id=tenant, ref_type=request.ref_type, ref_id=request.ref_id
        )
        return pb.GetBillingRefStateResponse(state=_REF_STATES[state])

    async def SubmitChannelRequest(self, request, context):
        c = await caller(self.engine, context, "channel_requests.write")
        key = idempotency_key(request.idempotency_key, context)

        async def run(conn):
            row = await intake.submit(conn, c, rules.submission(request), trace_id=trace_id())
            return pb.SubmitChannelRequestResponse(channel_request=channel_request_pb(row))

        return await idempotent_as(
            self.engine,
            c,
            key,
            "SubmitChannelRequest",
            request,
            run=run,
            decode=pb.SubmitChannelRequestResponse.FromString,
        )

    async def FetchChannelRequest(self, request, context):
        c = await caller(self.engine, context, "channel_requests.read")
        row = await intake.fetch(self.engine, c, request.id)
        return pb.FetchChannelRequestResponse(channel_request=channel_request_pb(row))

    async def ListChannelRequests(self, request, context):
        c = await caller(self.engine, context, "channel_requests.read")
        status = choice(request.status, "status", CHANNEL_REQUEST_STATUS_OF) if request.status else None
        rows, next_cursor = await intake.list_page(
            self.engine,
            c,
            status=status,
            channel_id=optional_uuid(request.channel_id, "channel_id"),
            limit=request.page.limit,
            cursor=request.page.cursor,
        )
        return pb.ListChannelRequestsResponse(
            channel_requests=[channel_request_pb(r) for r in rows], page=common_pb2.PageInfo(next_cursor=next_cursor)
        )

    async def AcceptChannelRequest(self, request, context):
        c = await caller(self.engine, context, "channel_requests.review")
        key = idempotency_key(request.idempotency_key, context)

        async def run(conn):
            request_id = parse_uuid(request.id, "id")
            options = {
                "assignee_ids": list(request.assignee_ids),
                "due_at": when(request, "due_at"),
                "fee_paise": request.fee_paise,
                "priority": choice(
                    request.priority, "priority", PRIORITY_OF, default=assignment_rules.DEFAULT_PRIORITY
                ),
            }
            row, assignment = await intake.accept(conn, c, request_id, options, trace_id=trace_id())
            return pb.AcceptChannelRequestResponse(
                channel_request=channel_request_pb(row), assignment=assignment_pb(assignment)
            )

        return await idempotent_as(
            self.engine,
            c,
            key,
            "AcceptChannelRequest",
            request,
            run=run,
            decode=pb.AcceptChannelRequestResponse.FromString,
        )

    async def RejectChannelRequest(self, request, context):
        c = await caller(self.engine, context, "channel_requests.review")
        key = idempotency_key(request.idempotency_key, context)

        async def run(conn):
            request_id = parse_uuid(request.id, "id")
            reason = rules.rejection_reason(request.reason)
            row = await intake.reject(conn, c, request_id, reason, trace_id=trace_id())
            return pb.RejectChannelRequestResponse(channel_request=channel_request_pb(row))

        return await idempotent_as(
            self.engine,
            c,
            key,
            "RejectChannelRequest",
            request,
            run=run,
            decode=pb.RejectChannelRequestResponse.FromString,
        )
