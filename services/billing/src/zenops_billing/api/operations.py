"""RPCs of subscriptions, the release gate, usage and reconciliation (a mixin of
BillingServicer; see servicer.py). Proto ↔ use cases, nothing else."""

from __future__ import annotations

from datetime import UTC, timedelta

from zenops.billing.v1 import billing_pb2 as pb
from zenops_kit.auth import requires
from zenops_kit.context import current_context
from zenops_kit.db import tenant_tx
from zenops_kit.errors import FieldViolation, InvalidArgument, PermissionDenied

from .. import release_gate, usage
from ..domain import release as gate_rules
from ..domain import subscriptions as sub_rules
from ..domain.subscriptions import Plan, PlanSpec, Subscription
from ..domain.wallet import is_uuid
from ..idempotency import idempotent
from ..reconciliation import run as reconciliation
from ..reconciliation.owners import owners_for
from ..subscriptions import scheduler, service
from .translate import (
    TENANT_METADATA,
    actor_of,
    caller_tenant,
    idempotency_key,
    metadata,
    reservation_pb,
    ts,
    usage_pb,
)

SUB_STATUS_PB = {
    sub_rules.ACTIVE: pb.SUBSCRIPTION_STATUS_ACTIVE,
    sub_rules.PAUSED: pb.SUBSCRIPTION_STATUS_PAUSED,
    sub_rules.CANCELLED: pb.SUBSCRIPTION_STATUS_CANCELLED,
}
# Creating a plan or subscribing to one mints credits (its refills): the capability of grants.
MINTS_CREDITS = "billing.credits.write"


def plan_pb(p: Plan) -> pb.Plan:
    return pb.Plan(
        id=p.id,
        code=p.code,
        name=p.name,
        credits_per_period=p.credits_per_period,
        period=p.period,
        price_paise=p.price_paise,
        active=p.active,
    )


def subscription_pb(s: Subscription) -> pb.Subscription:
    msg = pb.Subscription(id=s.id, account_id=s.account_id, plan_id=s.plan_id, status=SUB_STATUS_PB.get(s.status, 0))
    start, end = sub_rules.current_period(s.anchor_at, s.next_period)
    ts(msg.current_period_start, start)
    ts(msg.current_period_end, end)
    ts(msg.next_refill_at, s.next_refill_at)
    return msg


def _gate_tenant(ctx, request, context) -> str:
    """A user acts in its own tenant; a service (repogen) names the work order's tenant in
    the request (or in metadata x-tenant-id)."""
    if ctx.is_service and not ctx.tenant_id and not metadata(context).get(TENANT_METADATA):
        if not is_uuid(request.tenant_id):
            raise InvalidArgument(
                "a service caller names the tenant",
                reason="TENANT_REQUIRED",
                violations=[
                    FieldViolation("tenant_id", "required for service callers: the work order's tenant (a UUID)")
                ],
            )
        return request.tenant_id.lower()
    tenant = caller_tenant(ctx, context)
    if request.tenant_id and request.tenant_id.lower() != tenant.lower():
        raise PermissionDenied(
            "a user acts in its own tenant only", reason="TENANT_MISMATCH", metadata={"field": "tenant_id"}
        )
    return tenant


class OperationsRpcs:
    """Subscribe/Pause/Resume/Cancel, CreatePlan/ListPlans, RunRefills, AuthorizeRelease,
    RecordUsage, Reconcile."""

    # -- plans and subscriptions -------------------------------------------------------------

    @requires(MINTS_CREDITS)
    async def CreatePlan(self, request, context):
        ctx = current_context()
        plan = await service.create_plan(
            self.runtime.engine,
            tenant_id=caller_tenant(ctx, context),
            spec=PlanSpec(
                code=request.code,
                name=request.name,
                credits_per_period=request.credits_per_period,
                period=request.period or sub_rules.MONTHLY,
                price_paise=request.price_paise,
            ),
        )
        return pb.CreatePlanResponse(plan=plan_pb(plan))

    @requires("billing.read")
    async def ListPlans(self, request, context):
        plans = await service.list_plans(
            self.runtime.engine,
            tenant_id=caller_tenant(current_context(), context),
            include_inactive=request.include_inactive,
        )
        return pb.ListPlansResponse(plans=[plan_pb(p) for p in plans])

    @requires("billing.write", MINTS_CREDITS)
    async def Subscribe(self, request, context):
        ctx = current_context()
        tenant_id = caller_tenant(ctx, context)
        key = idempotency_key(request.idempotency_key, context)
        start_at = request.start_at.ToDatetime(tzinfo=UTC) if request.HasField("start_at") else None
        anchor = service.check_subscribe(request.account_id, request.plan_id, start_at, service.now())

        async def run(conn):
            sub, _ = await service.subscribe(
                conn,
                tenant_id=tenant_id,
                account_id=request.account_id,
                plan_id=request.plan_id,
                anchor=anchor,
                actor=actor_of(ctx),
            )
            return pb.SubscribeResponse(subscription=subscription_pb(sub))

        return await idempotent(
            self.runtime.engine,
            tenant_id=tenant_id,
            key=key,
            operation="Subscribe",
            request={
                "account_id": request.account_id,
                "plan_id": request.plan_id,
                "start_at": start_at.isoformat() if start_at else "",
            },
            run=run,
            decode=pb.SubscribeResponse.FromString,
        )

    async def _change(self, request, context, action: str) -> Subscription:
        ctx = current_context()
        return await service.change(
            self.runtime.engine,
            tenant_id=caller_tenant(ctx, context),
            subscription_id=request.id,
            action=action,
            actor=actor_of(ctx),
        )

    @requires("billing.write")
    async def PauseSubscription(self, request, context):
        sub = await self._change(request, context, sub_rules.PAUSE)
        return pb.PauseSubscriptionResponse(subscription=subscription_pb(sub))

    @requires("billing.write")
    async def ResumeSubscription(self, request, context):
        sub = await self._change(request, context, sub_rules.RESUME)
        return pb.ResumeSubscriptionResponse(subscription=subscription_pb(sub))

    @requires("billing.write")
    async def CancelSubscription(self, request, context):
        sub = await self._change(request, context, sub_rules.CANCEL)
        return pb.CancelSubscriptionResponse(subscription=subscription_pb(sub))

    @requires("control.write")
    async def RunRefills(self, request, context):
        ctx = current_context()
        # A user runs its own tenant's refills; a service token (no tenant) runs them all.
        tenants = None if ctx.is_service and not ctx.tenant_id else [caller_tenant(ctx, context)]
        result = await scheduler.run_refills(self.runtime.engine, tenant_ids=tenants)
        return pb.RunRefillsResponse(granted=result.granted)

    # -- release gate, usage, reconciliation -------------------------------------------------

    async def AuthorizeRelease(self, request, context):
        ctx = current_context()
        gate_rules.check_caller(ctx)
        tenant_id = _gate_tenant(ctx, request, context)
        key = idempotency_key(request.idempotency_key, context)
        req = gate_rules.validate(
            gate_rules.GateRequest(
                work_order_id=request.work_order_id,
                account_id=request.account_id,
                channel_request_id=request.channel_request_id,
                amount=request.amount,
                override_reason=request.override_reason,
            )
        )
        ttl = timedelta(seconds=self.runtime.settings.reservation_ttl_seconds)

        async def run(conn):
            decision = await release_gate.authorize(
                conn,
                tenant_id=tenant_id,
                req=req,
                capabilities=ctx.capabilities,
                actor=actor_of(ctx),
                reservation_ttl=ttl,
            )
            resp = pb.AuthorizeReleaseResponse(allowed=True, basis=decision.basis)
            if decision.reservation is not None:
                resp.reservation.CopyFrom(reservation_pb(decision.reservation))
            return resp

        return await idempotent(
            self.runtime.engine,
            tenant_id=tenant_id,
            key=key,
            operation="AuthorizeRelease",
            request={
                "work_order_id": request.work_order_id,
                "account_id": request.account_id,
                "channel_request_id": request.channel_request_id,
                "amount": request.amount,
                "override_reason": request.override_reason,
            },
            run=run,
            decode=pb.AuthorizeReleaseResponse.FromString,
        )

    @requires("billing.write")
    async def RecordUsage(self, request, context):
        ctx = current_context()
        u = request.usage
        given = usage.UsageInput(
            event_id=u.event_id,
            account_id=u.account_id,
            kind=u.kind,
            quantity=u.quantity,
            ref_type=u.ref_type,
            ref_id=u.ref_id,
            occurred_at=u.occurred_at.ToDatetime(tzinfo=UTC) if u.HasField("occurred_at") else None,
        )
        tenant_id = caller_tenant(ctx, context)
        async with tenant_tx(self.runtime.engine, tenant_id) as conn:
            event, created = await usage.record(conn, tenant_id=tenant_id, usage=given, source=f"api:{actor_of(ctx)}")
        return pb.RecordUsageResponse(usage=usage_pb(event), created=created)

    @requires("billing.reconcile")
    async def Reconcile(self, request, context):
        ctx = current_context()
        limit = reconciliation.check_limit(request.limit)
        report = await reconciliation.reconcile(
            self.runtime.engine,
            owners_for(self.runtime),
            tenant_id=caller_tenant(ctx, context),
            dry_run=request.dry_run,
            limit=limit,
            threshold_seconds=self.runtime.settings.reconcile_threshold_seconds,
            actor=actor_of(ctx),
        )
        return pb.ReconcileResponse(
            dry_run=report.dry_run,
            violations=report.violations,
            actions=[
                pb.ReconcileAction(
                    reservation_id=a.reservation_id,
                    ref_type=a.ref_type,
                    ref_id=a.ref_id,
                    action=a.action,
                    reason=a.reason,
                )
                for a in report.actions
            ],
        )
