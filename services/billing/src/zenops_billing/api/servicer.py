"""zenops.billing.v1.BillingService: proto ↔ use cases, nothing else.

Capabilities that depend only on the caller are checked here (`@requires`): billing.read
for reads, billing.write for accounts and reserve/consume/release, billing.credits.write
for grants, and billing.override on top of billing.write for a reserve with an
override_reason. Credit operations run through `idempotent()`: the key is the request's
`idempotency_key` or metadata `idempotency-key`, bound to the request fields as sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opentelemetry import trace

from zenops.billing.v1 import billing_pb2 as pb
from zenops.billing.v1 import billing_pb2_grpc
from zenops.common.v1 import common_pb2
from zenops_kit.auth import requires
from zenops_kit.context import current_context
from zenops_kit.server import Runtime

from .. import accounts
from ..domain import accounts as account_rules
from ..domain import wallet as rules
from ..idempotency import idempotent, idempotent_credit
from ..store.timeline import LEDGER, RESERVATION
from ..store.wallet import CreditWrites
from ..wallet import operations, queries
from .invoicing import register as register_invoicing
from .operations import OperationsRpcs
from .translate import (
    ACCOUNT_STATUS_OF,
    LEDGER_KIND_OF,
    POLICY_OF,
    RESERVATION_STATUS_OF,
    account_pb,
    actor_of,
    caller_tenant,
    entry_pb,
    idempotency_key,
    reservation_pb,
    usage_pb,
    wallet_pb,
)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["BillingService"].full_name


def _trace_id() -> str:
    span = trace.get_current_span().get_span_context()
    return format(span.trace_id, "032x") if span.is_valid else (current_context().request_id or "")


def _policy(value: int, field: str, *, default: str | None = None) -> str:
    if value == pb.BILLING_POLICY_UNSPECIFIED and default:
        return default
    if value not in POLICY_OF:
        raise rules.invalid(field, "must be CREDIT or POSTPAID")
    return POLICY_OF[value]


def _status(value: int, field: str) -> str:
    if value not in ACCOUNT_STATUS_OF:
        raise rules.invalid(field, "must be ACTIVE or SUSPENDED")
    return ACCOUNT_STATUS_OF[value]


def _replay(response_type):
    """Rebuilds a reserve/consume/release response from the operation's last ledger entry."""

    async def replay(conn, entry_id: str):
        entry, reservation = await operations.recorded_result(conn, entry_id)
        return response_type(reservation=reservation_pb(reservation), wallet=wallet_pb(entry.balance_after))

    return replay


class BillingServicer(OperationsRpcs, billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # the credit RPCs' writes (one per process: its lanes group an account's concurrent writes)
        self.credit_writes = CreditWrites(runtime.engine)

    @property
    def engine(self):
        return self.runtime.engine

    async def GetServiceInfo(self, request, context):
        current_context().require()
        return pb.GetServiceInfoResponse(info=await self.runtime.service_info())

    # -- accounts ----------------------------------------------------------------------------

    @requires("billing.write")
    async def CreateAccount(self, request, context):
        ctx = current_context()
        tenant = caller_tenant(ctx, context)
        key = idempotency_key("", context)
        values = {
            "external_key": account_rules.clean_external_key(request.external_key),
            "display_name": account_rules.clean_display_name(request.display_name),
            "policy": _policy(request.policy, "policy", default=rules.CREDIT),
            "gstin": account_rules.clean_gstin(request.gstin),
            "billing_address": account_rules.clean_address(request.billing_address),
        }

        async def run(conn):
            account = await accounts.create(conn, tenant_id=tenant, actor=actor_of(ctx), trace_id=_trace_id(), **values)
            return pb.CreateAccountResponse(account=account_pb(account))

        fields = {
            "external_key": request.external_key,
            "display_name": request.display_name,
            "policy": request.policy,
            "gstin": request.gstin,
            "billing_address": request.billing_address,
        }
        return await idempotent(
            self.engine,
            tenant_id=tenant,
            key=key,
            operation="CreateAccount",
            request=fields,
            run=run,
            decode=pb.CreateAccountResponse.FromString,
        )

    @requires("billing.read")
    async def GetAccount(self, request, context):
        account = await accounts.get(self.engine, caller_tenant(current_context(), context), request.id)
        return pb.GetAccountResponse(account=account_pb(account))

    @requires("billing.read")
    async def ListAccounts(self, request, context):
        tenant = caller_tenant(current_context(), context)
        status = _status(request.status, "status") if request.status else None
        policy = _policy(request.policy, "policy") if request.policy else None
        found, cursor = await accounts.list_page(
            self.engine, tenant, limit=request.page.limit, cursor=request.page.cursor, status=status, policy=policy
        )
        return pb.ListAccountsResponse(
            accounts=[account_pb(a) for a in found], page=common_pb2.PageInfo(next_cursor=cursor)
        )

    @requires("billing.write")
    async def UpdateAccount(self, request, context):
        ctx = current_context()
        tenant = caller_tenant(ctx, context)
        account_id = rules.parse_uuid(request.id, "id")
        paths = account_rules.check_update_mask(list(request.update_mask.paths))
        given = request.account
        values = {
            "display_name": given.display_name,
            "gstin": given.gstin,
            "billing_address": given.billing_address,
            "external_key": given.external_key,
        }
        if "policy" in paths:
            values["policy"] = _policy(given.policy, "account.policy")
        if "status" in paths:
            values["status"] = _status(given.status, "account.status")
        changes = account_rules.clean_update(paths, values)
        reason = rules.check_reason(request.reason, required=False)
        account = await accounts.update(
            self.engine,
            tenant_id=tenant,
            account_id=account_id,
            changes=changes,
            reason=reason,
            actor=actor_of(ctx),
            trace_id=_trace_id(),
        )
        return pb.UpdateAccountResponse(account=account_pb(account))

    @requires("billing.read")
    async def GetAccountStatus(self, request, context):
        tenant = caller_tenant(current_context(), context)
        which = request.WhichOneof("account")
        account, open_reservations, unpaid = await accounts.status(
            self.engine,
            tenant,
            account_id=request.account_id if which == "account_id" else None,
            external_key=request.external_key if which == "external_key" else None,
        )
        return pb.GetAccountStatusResponse(
            account=account_pb(account), open_reservations=open_reservations, unpaid_invoices=unpaid
        )

    # -- wallet ------------------------------------------------------------------------------

    @requires("billing.credits.write")
    async def GrantCredits(self, request, context):
        ctx = current_context()
        tenant = caller_tenant(ctx, context)
        key = idempotency_key(request.idempotency_key, context)
        account_id = rules.parse_uuid(request.account_id, "account_id")
        kind = rules.GRANT if request.kind == pb.LEDGER_KIND_UNSPECIFIED else LEDGER_KIND_OF.get(request.kind, "")
        rules.check_grant_kind(kind, allowed=rules.OPERATOR_GRANT_KINDS)
        rules.check_amount(request.amount)
        reason = rules.check_reason(request.reason)

        async def run(conn, claim):
            entry, wallet = await operations.grant(
                conn,
                tenant_id=tenant,
                account_id=account_id,
                amount=request.amount,
                kind=kind,
                reason=reason,
                actor=actor_of(ctx),
                idempotency_key=key,
                claim=claim,
            )
            return pb.GrantCreditsResponse(entry=entry_pb(entry), wallet=wallet_pb(wallet))

        async def replay(conn, entry_id):
            entry, _ = await operations.recorded_result(conn, entry_id)
            return pb.GrantCreditsResponse(entry=entry_pb(entry), wallet=wallet_pb(entry.balance_after))

        fields = {
            "account_id": request.account_id,
            "amount": request.amount,
            "kind": request.kind,
            "reason": request.reason,
        }
        return await idempotent_credit(
            self.credit_writes,
            tenant_id=tenant,
            key=key,
            operation="GrantCredits",
            request=fields,
            run=run,
            replay=replay,
        )

    @requires("billing.write")
    async def ReserveCredits(self, request, context):
        ctx = current_context()
        tenant = caller_tenant(ctx, context)
        override_reason = rules.check_reason(request.override_reason, "override_reason", required=False)
        if override_reason:
            ctx.require("billing.override")
        key = idempotency_key(request.idempotency_key, context)
        account_id = rules.parse_uuid(request.account_id, "account_id")
        rules.check_amount(request.amount)
        rules.check_ref(request.ref_type, request.ref_id)
        now = datetime.now(UTC)
        if request.HasField("expires_at"):
            expires_at = request.expires_at.ToDatetime(tzinfo=UTC)
            if expires_at <= now:
                raise rules.invalid("expires_at", "must be in the future")
        else:
            expires_at = now + timedelta(seconds=self.runtime.settings.reservation_ttl_seconds)

        async def run(conn, claim):
            reservation, wallet = await operations.reserve(
                conn,
                tenant_id=tenant,
                account_id=account_id,
                amount=request.amount,
                ref_type=request.ref_type,
                ref_id=request.ref_id,
                expires_at=expires_at,
                actor=actor_of(ctx),
                override_reason=override_reason,
                may_override=bool(override_reason),
                idempotency_key=key,
                claim=claim,
            )
            return pb.ReserveCreditsResponse(reservation=reservation_pb(reservation), wallet=wallet_pb(wallet))

        fields = {
            "account_id": request.account_id,
            "amount": request.amount,
            "ref_type": request.ref_type,
            "ref_id": request.ref_id,
            "override_reason": request.override_reason,
            "expires_at": request.expires_at.ToJsonString() if request.HasField("expires_at") else "",
        }
        return await idempotent_credit(
            self.credit_writes,
            tenant_id=tenant,
            key=key,
            operation="ReserveCredits",
            request=fields,
            run=run,
            replay=_replay(pb.ReserveCreditsResponse),
        )

    @requires("billing.write")
    async def ConsumeReservation(self, request, context):
        ctx = current_context()
        tenant = caller_tenant(ctx, context)
        key = idempotency_key(request.idempotency_key, context)
        reservation_id = rules.parse_uuid(request.reservation_id, "reservation_id")
        if request.amount < 0:
            raise rules.invalid("amount", "must be > 0 (or 0 for the whole reservation)")

        async def run(conn, claim):
            reservation, wallet = await operations.consume(
                conn,
                tenant_id=tenant,
                reservation_id=reservation_id,
                amount=request.amount or None,
                actor=actor_of(ctx),
                idempotency_key=key,
                claim=claim,
            )
            return pb.ConsumeReservationResponse(reservation=reservation_pb(reservation), wallet=wallet_pb(wallet))

        fields = {"reservation_id": request.reservation_id, "amount": request.amount}
        return await idempotent_credit(
            self.credit_writes,
            tenant_id=tenant,
            key=key,
            operation="ConsumeReservation",
            request=fields,
            run=run,
            replay=_replay(pb.ConsumeReservationResponse),
        )

    @requires("billing.write")
    async def ReleaseReservation(self, request, context):
        ctx = current_context()
        tenant = caller_tenant(ctx, context)
        key = idempotency_key(request.idempotency_key, context)
        reservation_id = rules.parse_uuid(request.reservation_id, "reservation_id")
        reason = rules.check_reason(request.reason)

        async def run(conn, claim):
            reservation, wallet = await operations.release(
                conn,
                tenant_id=tenant,
                reservation_id=reservation_id,
                reason=reason,
                actor=actor_of(ctx),
                idempotency_key=key,
                claim=claim,
            )
            return pb.ReleaseReservationResponse(reservation=reservation_pb(reservation), wallet=wallet_pb(wallet))

        fields = {"reservation_id": request.reservation_id, "reason": request.reason}
        return await idempotent_credit(
            self.credit_writes,
            tenant_id=tenant,
            key=key,
            operation="ReleaseReservation",
            request=fields,
            run=run,
            replay=_replay(pb.ReleaseReservationResponse),
        )

    @requires("billing.read")
    async def ListReservations(self, request, context):
        tenant = caller_tenant(current_context(), context)
        status = ""
        if request.status:
            if request.status not in RESERVATION_STATUS_OF:
                raise rules.invalid("status", "is not a reservation status")
            status = RESERVATION_STATUS_OF[request.status]
        found, cursor = await queries.list_reservations(
            self.engine,
            tenant,
            limit=request.page.limit,
            cursor=request.page.cursor,
            account_id=request.account_id,
            status=status,
            ref_type=request.ref_type,
            ref_id=request.ref_id,
        )
        return pb.ListReservationsResponse(
            reservations=[reservation_pb(r) for r in found], page=common_pb2.PageInfo(next_cursor=cursor)
        )

    @requires("billing.read")
    async def GetTimeline(self, request, context):
        tenant = caller_tenant(current_context(), context)
        items, cursor = await queries.timeline(
            self.engine, tenant, account_id=request.account_id, limit=request.page.limit, cursor=request.page.cursor
        )
        out = []
        for at, rank, _, item in items:
            msg = pb.TimelineItem()
            msg.at.FromDatetime(at)
            if rank == LEDGER:
                msg.ledger_entry.CopyFrom(entry_pb(item))
            elif rank == RESERVATION:
                msg.reservation.CopyFrom(reservation_pb(item))
            else:
                msg.usage.CopyFrom(usage_pb(item))
            out.append(msg)
        return pb.GetTimelineResponse(items=out, page=common_pb2.PageInfo(next_cursor=cursor))

    @requires("billing.read")
    async def GetCreditAggregate(self, request, context):
        tenant = caller_tenant(current_context(), context)
        total, count, active, negative = await queries.aggregate(self.engine, tenant)
        return pb.GetCreditAggregateResponse(
            total=wallet_pb(total), accounts=count, active_reservations=active, negative_accounts=negative
        )


def register(server, runtime: Runtime) -> list[str]:
    billing_pb2_grpc.add_BillingServiceServicer_to_server(BillingServicer(runtime), server)
    return [SERVICE_NAME, *register_invoicing(server, runtime)]
