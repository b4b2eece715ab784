"""Typed client of the billing service (zenops.billing.v1.BillingService).

One method per RPC: the request proto in, the response proto out, the caller's token
explicit (a user's access token; the gateway's service token only for GetServiceInfo).
Credit operations carry their idempotency key in the request's `idempotency_key` field, so
a retry of any of them is safe; nothing here retries on its own.
"""

from __future__ import annotations

from zenops.billing.v1 import billing_pb2 as pb
from zenops.billing.v1 import billing_pb2_grpc
from zenops.common.v1 import common_pb2

from .base import UpstreamClient

IDEMPOTENCY_METADATA = "idempotency-key"


class BillingClient(UpstreamClient):
    service = "billing"
    stub_class = billing_pb2_grpc.BillingServiceStub
    stub: billing_pb2_grpc.BillingServiceStub

    async def get_service_info(self, *, token: str | None, deadline: float | None = None) -> common_pb2.ServiceInfo:
        resp = await self.call(self.stub.GetServiceInfo, pb.GetServiceInfoRequest(), token=token, deadline=deadline)
        return resp.info

    # -- accounts ----------------------------------------------------------------------------------

    async def create_account(
        self, request: pb.CreateAccountRequest, *, token: str, idempotency_key: str | None = None
    ) -> pb.CreateAccountResponse:
        # The request message has no key field: billing reads metadata `idempotency-key`.
        metadata = {IDEMPOTENCY_METADATA: idempotency_key} if idempotency_key else None
        return await self.call(self.stub.CreateAccount, request, token=token, metadata=metadata)

    async def get_account(self, request: pb.GetAccountRequest, *, token: str) -> pb.GetAccountResponse:
        return await self.call(self.stub.GetAccount, request, token=token)

    async def list_accounts(self, request: pb.ListAccountsRequest, *, token: str) -> pb.ListAccountsResponse:
        return await self.call(self.stub.ListAccounts, request, token=token)

    async def update_account(self, request: pb.UpdateAccountRequest, *, token: str) -> pb.UpdateAccountResponse:
        return await self.call(self.stub.UpdateAccount, request, token=token)

    async def get_account_status(
        self, request: pb.GetAccountStatusRequest, *, token: str
    ) -> pb.GetAccountStatusResponse:
        return await self.call(self.stub.GetAccountStatus, request, token=token)

    # -- wallet ------------------------------------------------------------------------------------

    async def grant_credits(self, request: pb.GrantCreditsRequest, *, token: str) -> pb.GrantCreditsResponse:
        return await self.call(self.stub.GrantCredits, request, token=token)

    async def reserve_credits(self, request: pb.ReserveCreditsRequest, *, token: str) -> pb.ReserveCreditsResponse:
        return await self.call(self.stub.ReserveCredits, request, token=token)

    async def consume_reservation(
        self, request: pb.ConsumeReservationRequest, *, token: str
    ) -> pb.ConsumeReservationResponse:
        return await self.call(self.stub.ConsumeReservation, request, token=token)

    async def release_reservation(
        self, request: pb.ReleaseReservationRequest, *, token: str
    ) -> pb.ReleaseReservationResponse:
        return await self.call(self.stub.ReleaseReservation, request, token=token)

    async def list_reservations(
        self, request: pb.ListReservationsRequest, *, token: str
    ) -> pb.ListReservationsResponse:
        return await self.call(self.stub.ListReservations, request, token=token)

    async def get_timeline(self, request: pb.GetTimelineRequest, *, token: str) -> pb.GetTimelineResponse:
        return await self.call(self.stub.GetTimeline, request, token=token)

    async def get_credit_aggregate(
        self, request: pb.GetCreditAggregateRequest, *, token: str
    ) -> pb.GetCreditAggregateResponse:
        return await self.call(self.stub.GetCreditAggregate, request, token=token)

    # -- subscriptions -----------------------------------------------------------------------------

    async def create_plan(self, request: pb.CreatePlanRequest, *, token: str) -> pb.CreatePlanResponse:
        return await self.call(self.stub.CreatePlan, request, token=token)

    async def list_plans(self, request: pb.ListPlansRequest, *, token: str) -> pb.ListPlansResponse:
        return await self.call(self.stub.ListPlans, request, token=token)

    async def subscribe(self, request: pb.SubscribeRequest, *, token: str) -> pb.SubscribeResponse:
        return await self.call(self.stub.Subscribe, request, token=token)

    async def pause_subscription(
        self, request: pb.PauseSubscriptionRequest, *, token: str
    ) -> pb.PauseSubscriptionResponse:
        return await self.call(self.stub.PauseSubscription, request, token=token)

    async def resume_subscription(
        self, request: pb.ResumeSubscriptionRequest, *, token: str
    ) -> pb.ResumeSubscriptionResponse:
        return await self.call(self.stub.ResumeSubscription, request, token=token)

    async def cancel_subscription(
        self, request: pb.CancelSubscriptionRequest, *, token: str
    ) -> pb.CancelSubscriptionResponse:
        return await self.call(self.stub.CancelSubscription, request, token=token)

    async def run_refills(self, request: pb.RunRefillsRequest, *, token: str) -> pb.RunRefillsResponse:
        return await self.call(self.stub.RunRefills, request, token=token)

    # -- release gate, usage, reconciliation -------------------------------------------------------

    async def authorize_release(
        self, request: pb.AuthorizeReleaseRequest, *, token: str
    ) -> pb.AuthorizeReleaseResponse:
        return await self.call(self.stub.AuthorizeRelease, request, token=token)

    async def record_usage(self, request: pb.RecordUsageRequest, *, token: str) -> pb.RecordUsageResponse:
        return await self.call(self.stub.RecordUsage, request, token=token)

    async def reconcile(self, request: pb.ReconcileRequest, *, token: str) -> pb.ReconcileResponse:
        return await self.call(self.stub.Reconcile, request, token=token)
