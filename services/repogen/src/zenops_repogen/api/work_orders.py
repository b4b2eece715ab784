"""RPCs of work orders and their lifecycle: proto ↔ use cases (zenops_repogen.work_orders).

Capabilities: repogen.read for reads, repogen.write to create and to override a template,
repogen.transition to move along the lifecycle. GetBillingRefState answers billing's
reconciliation: a service token naming the tenant, or a user holding billing.reconcile in
its own tenant. Mutations run through `idempotent_as()` (the request's `idempotency_key`, else
metadata `idempotency-key`) with their input checked inside it.
"""

from __future__ import annotations

from zenops.common.v1 import common_pb2
from zenops.repogen.v1 import repogen_pb2 as pb
from zenops_kit.caller import ref_state_tenant
from zenops_kit.fields import choice, optional_uuid, parse_uuid
from zenops_kit.idempotency import idempotent_as

from .. import contract, rules, work_orders
from ..ops_client import ops_client_for
from .caller import caller, idempotency_key, trace_id
from .translate import STATUS_OF, readiness_pb, snapshot_pb, template_pb, work_order_pb

_REF_STATES = {
    "OPEN": pb.BILLING_REF_STATE_OPEN,
    "DELIVERED": pb.BILLING_REF_STATE_DELIVERED,
    "CANCELLED": pb.BILLING_REF_STATE_CANCELLED,
    "NOT_FOUND": pb.BILLING_REF_STATE_NOT_FOUND,
}


class WorkOrderRpcs:
    """Mixed into RepogenServicer (self.engine, self.runtime, self.settings)."""

    async def GetBillingRefState(self, request, context):
        tenant = ref_state_tenant(request.tenant_id, context)
        state = await work_orders.billing_ref_state(
            self.engine, tenant_id=tenant, ref_type=request.ref_type, ref_id=request.ref_id
        )
        return pb.GetBillingRefStateResponse(state=_REF_STATES[state])

    async def CreateWorkOrder(self, request, context):
        c = await caller(self.engine, context, "repogen.write")
        key = idempotency_key(request.idempotency_key, context)
        ops = ops_client_for(self.runtime)

        async def run(conn):
            assignment_id = parse_uuid(request.assignment_id, "assignment_id")
            account = optional_uuid(request.billing_account_id, "billing_account_id")
            credits = work_orders.credits(request.credits)
            # ops is asked inside the transaction: the key records the true outcome (an unknown
            # assignment is replayed as unknown; ops being away is not recorded)
            assignment = await ops.assignment(tenant_id=c.tenant_id, assignment_id=assignment_id)
            created = await work_orders.create(
                conn,
                tenant_id=c.tenant_id,
                actor=c.actor,
                trace_id=trace_id(),
                assignment=assignment,
                billing_account_id=account or assignment.billing_account_id,
                credits=credits,
                channel_request_id=await work_orders.channel_request_for(conn, assignment),
                inspection_max_age_days=self.settings.inspection_max_age_days,
            )
            return pb.CreateWorkOrderResponse(
                work_order=work_order_pb(created.work_order), snapshot=snapshot_pb(created.snapshot)
            )

        return await idempotent_as(
            self.engine, c, key, "CreateWorkOrder", request, run=run, decode=pb.CreateWorkOrderResponse.FromString
        )

    async def GetWorkOrder(self, request, context):
        c = await caller(self.engine, context, "repogen.read")
        detail = await work_orders.get(self.engine, c, request.id)
        return pb.GetWorkOrderResponse(
            work_order=work_order_pb(detail.work_order), latest_snapshot=snapshot_pb(detail.snapshot)
        )

    async def ListWorkOrders(self, request, context):
        c = await caller(self.engine, context, "repogen.read")
        rows, next_cursor = await work_orders.list_page(
            self.engine,
            c,
            statuses=sorted({choice(s, "statuses", STATUS_OF) for s in request.statuses}),
            assignment_id=optional_uuid(request.assignment_id, "assignment_id"),
            channel_id=optional_uuid(request.channel_id, "channel_id"),
            limit=request.page.limit,
            cursor=request.page.cursor,
        )
        return pb.ListWorkOrdersResponse(
            work_orders=[work_order_pb(r) for r in rows], page=common_pb2.PageInfo(next_cursor=next_cursor)
        )

    async def TransitionWorkOrder(self, request, context):
        c = await caller(self.engine, context, "repogen.transition")
        to = choice(request.to, "to", STATUS_OF)
        key = idempotency_key(request.idempotency_key, context)

        async def run(conn):
            moved = await work_orders.transition(
                conn,
                tenant_id=c.tenant_id,
                actor=c.actor,
                trace_id=trace_id(),
                work_order_id=request.id,
                to_status=to,
                reason=request.reason,
                inspection_max_age_days=self.settings.inspection_max_age_days,
            )
            response = pb.TransitionWorkOrderResponse(work_order=work_order_pb(moved.work_order))
            if moved.readiness is not None:
                response.readiness.CopyFrom(
                    readiness_pb(contract.readiness_dict(moved.readiness.readiness), moved.readiness.evaluated_at)
                )
            return response

        return await idempotent_as(
            self.engine,
            c,
            key,
            "TransitionWorkOrder",
            request,
            run=run,
            decode=pb.TransitionWorkOrderResponse.FromString,
        )

    async def OverrideTemplate(self, request, context):
        c = await caller(self.engine, context, "repogen.write")
        key = idempotency_key("", context)

        async def run(conn):
            row = await work_orders.override_template(
                conn,
                actor=c.actor,
                trace_id=trace_id(),
                work_order_id=request.id,
                template_id=request.template_id,
                reason=request.reason,
                inspection_max_age_days=self.settings.inspection_max_age_days,
            )
            return pb.OverrideTemplateResponse(work_order=work_order_pb(row))

        return await idempotent_as(
            self.engine, c, key, "OverrideTemplate", request, run=run, decode=pb.OverrideTemplateResponse.FromString
        )

    async def ListTemplates(self, request, context):
        await caller(self.engine, context, "repogen.read")
        return pb.ListTemplatesResponse(
            registry_version=str(rules.REGISTRY_VERSION), templates=[template_pb(t) for t in rules.templates()]
        )
