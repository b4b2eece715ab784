"""Billing routes: accounts, the credit wallet (grant, reserve, consume, release),
reservations, timeline, aggregate, plans, subscriptions and usage events.

Capabilities (billing.read / billing.write / billing.credits.write / billing.override) are
checked by the billing service; its PERMISSION_DENIED becomes 403 in errors.py.

Idempotency: credit operations REQUIRE an `Idempotency-Key` header (missing → 400 naming
`header.Idempotency-Key`); it travels as the request's `idempotency_key` field. Billing
keeps keys forever: the same key with the same request answers the original result (a
stored failure included, so the replayed problem is the same); with a different request
it is 409 `IDEMPOTENCY_KEY_REUSED` whose `errors` name the fields that differ.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Body, Header, Path, Query, Response
from google.protobuf.field_mask_pb2 import FieldMask

from zenops.billing.v1 import billing_pb2 as pb
from zenops.common.v1 import common_pb2

from ..deps import BillingDep, CallerDep
from ..errors import http_field_names, problem_responses
from ..handler import LeanRoute
from ..models.billing import (
    Account,
    AccountList,
    AccountPatch,
    AccountStatus,
    AccountStatusView,
    ConsumeBody,
    CreateAccountBody,
    CreatePlanBody,
    CreditAggregate,
    GrantBody,
    Granted,
    Plan,
    PlanList,
    Policy,
    ReleaseBody,
    ReservationList,
    ReservationResult,
    ReservationStatus,
    ReserveBody,
    SubscribeBody,
    Subscription,
    Timeline,
    TimelineItem,
    UsageEvent,
    UsageEventBody,
    UsageRecorded,
)
from ..models.billing import Reservation as ReservationView
from ..models.common import Cursor, Limit, enum_value, or_none, to_timestamp

router = APIRouter(prefix="/v1/billing", tags=["billing"], route_class=LeanRoute)

MERGE_PATCH = "application/merge-patch+json"
MAX_IDEMPOTENCY_KEY = 200
IDEMPOTENCY_DOC = (
    "Makes the operation safe to retry: the same key with the same request answers the original "
    "result (also an original failure); with another request it is 409 `IDEMPOTENCY_KEY_REUSED` naming "
    "the differing fields. Keys are kept forever, per tenant and operation. 1–200 visible ASCII characters "
    "(a UUID is a good key)."
)
_KEY_PATTERN = r"^[!-~]+$"  # visible ASCII: no spaces, nothing a proxy could rewrite

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY,
        pattern=_KEY_PATTERN,
        description="Required. " + IDEMPOTENCY_DOC,
    ),
]
OptionalIdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY,
        pattern=_KEY_PATTERN,
        description="Optional. " + IDEMPOTENCY_DOC,
    ),
]

AccountId = Annotated[UUID, Path(description="Billing account id.")]
ReservationId = Annotated[UUID, Path(description="Reservation id.")]
SubscriptionId = Annotated[UUID, Path(description="Subscription id.")]

CREATED = {201: {"headers": {"Location": {"schema": {"type": "string"}}}}}
# Service field paths as the HTTP request names them.
PAGE_FIELDS = {"page": "query"}  # page.limit → query.limit


def page(limit: int | None, cursor: str | None) -> common_pb2.PageRequest:
    return common_pb2.PageRequest(limit=limit or 0, cursor=cursor or "")


# -- accounts ------------------------------------------------------------------------------------


@router.post(
    "/accounts",
    status_code=201,
    response_model=Account,
    summary="Create a billing account (billing.write)",
    description="409 when the `external_key` is taken in the tenant. `Idempotency-Key` optional: a retry "
    "with the same key answers the same account (201 again) instead of creating a second one.",
    responses={**problem_responses(401, 403, 409, 503), **CREATED},
)
async def create_account(
    body: CreateAccountBody,
    caller: CallerDep,
    billing: BillingDep,
    response: Response,
    idempotency_key: OptionalIdempotencyKey = None,
) -> Account:
    resp = await billing.create_account(
        pb.CreateAccountRequest(
            display_name=body.display_name,
            policy=enum_value(pb.BillingPolicy, body.policy, "BILLING_POLICY_"),
            external_key=body.external_key or "",
            gstin=body.gstin or "",
            billing_address=body.billing_address or "",
        ),
        token=caller.token,
        idempotency_key=idempotency_key,
    )
    response.headers["location"] = f"/v1/billing/accounts/{resp.account.id}"
    return Account.from_proto(resp.account)


@router.get(
    "/accounts",
    response_model=AccountList,
    summary="Billing accounts of the caller's tenant (billing.read)",
    responses=problem_responses(401, 403, 503),
)
async def list_accounts(
    caller: CallerDep,
    billing: BillingDep,
    status: Annotated[AccountStatus | None, Query(description="Only accounts with this status.")] = None,
    policy: Annotated[Policy | None, Query(description="Only accounts with this policy.")] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> AccountList:
    with http_field_names(renames=PAGE_FIELDS):
        resp = await billing.list_accounts(
            pb.ListAccountsRequest(
                page=page(limit, cursor),
                status=enum_value(pb.AccountStatus, status, "ACCOUNT_STATUS_") if status else 0,
                policy=enum_value(pb.BillingPolicy, policy, "BILLING_POLICY_") if policy else 0,
            ),
            token=caller.token,
        )
    return AccountList(items=[Account.from_proto(a) for a in resp.accounts], next_cursor=or_none(resp.page.next_cursor))


# Declared before /accounts/{account_id} so that "status" is not taken for an id.
@router.get(
    "/accounts/status",
    response_model=AccountStatusView,
    summary="Policy, wallet and open reservations of the account with this external key (billing.read)",
    description="The read other systems use to gate their flows without knowing the account id.",
    responses=problem_responses(401, 403, 404, 503),
)
async def account_status_by_external_key(
    caller: CallerDep,
    billing: BillingDep,
    external_key: Annotated[str, Query(min_length=1, max_length=200, description="The account's external key.")],
) -> AccountStatusView:
    with http_field_names(renames={"external_key": "query.external_key"}):
        resp = await billing.get_account_status(
            pb.GetAccountStatusRequest(external_key=external_key), token=caller.token
        )
    return AccountStatusView.from_proto(resp)


@router.get(
    "/accounts/{account_id}",
    response_model=Account,
    summary="One billing account with its wallet (billing.read)",
    responses=problem_responses(401, 403, 404, 503),
)
async def get_account(account_id: AccountId, caller: CallerDep, billing: BillingDep) -> Account:
    resp = await billing.get_account(pb.GetAccountRequest(id=str(account_id)), token=caller.token)
    return Account.from_proto(resp.account)


@router.patch(
    "/accounts/{account_id}",
    response_model=Account,
    summary="Change an account (JSON merge patch; billing.write)",
    description="Members present are changed, absent ones kept (RFC 7396): `display_name`, `policy`, "
    "`status`, `gstin`, `billing_address`, `external_key` (the last three may be `null`). `reason` says why "
    "(billing requires it when the policy or status changes; policy changes are audited in the ledger). "
    "A patch without account members changes nothing.",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def update_account(
    account_id: AccountId,
    patch: Annotated[AccountPatch, Body(media_type=MERGE_PATCH)],
    caller: CallerDep,
    billing: BillingDep,
) -> Account:
    paths = patch.mask()
    if not paths:
        # Never an empty update_mask: by AIP-134 that would mean "replace every field".
        resp = await billing.get_account(pb.GetAccountRequest(id=str(account_id)), token=caller.token)
        return Account.from_proto(resp.account)
    with http_field_names(strip_prefix="account."):  # the body is the Account message's fields
        resp = await billing.update_account(
            pb.UpdateAccountRequest(
                id=str(account_id),
                account=patch.to_proto(),
                update_mask=FieldMask(paths=paths),
                reason=patch.reason or "",
            ),
            token=caller.token,
        )
    return Account.from_proto(resp.account)


@router.get(
    "/accounts/{account_id}/status",
    response_model=AccountStatusView,
    summary="Policy, wallet figures, open reservations and unpaid invoices of an account (billing.read)",
    responses=problem_responses(401, 403, 404, 503),
)
async def account_status(account_id: AccountId, caller: CallerDep, billing: BillingDep) -> AccountStatusView:
    resp = await billing.get_account_status(pb.GetAccountStatusRequest(account_id=str(account_id)), token=caller.token)
    return AccountStatusView.from_proto(resp)


@router.get(
    "/accounts/{account_id}/timeline",
    response_model=Timeline,
    summary="Ledger entries, reservations and usage of an account, newest first (billing.read)",
    responses=problem_responses(401, 403, 404, 503),
)
async def timeline(
    account_id: AccountId, caller: CallerDep, billing: BillingDep, limit: Limit = None, cursor: Cursor = None
) -> Timeline:
    with http_field_names(renames=PAGE_FIELDS):
        resp = await billing.get_timeline(
            pb.GetTimelineRequest(account_id=str(account_id), page=page(limit, cursor)), token=caller.token
        )
    return Timeline(items=[TimelineItem.from_proto(i) for i in resp.items], next_cursor=or_none(resp.page.next_cursor))


# -- credits -------------------------------------------------------------------------------------


@router.post(
    "/accounts/{account_id}/credits/grant",
    response_model=Granted,
    summary="Add credits to an account: grant, top-up or adjustment, with a reason (billing.credits.write)",
    description="Needs an `Idempotency-Key`. Answers the ledger entry and the wallet after it.",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def grant_credits(
    account_id: AccountId,
    body: GrantBody,
    idempotency_key: IdempotencyKey,
    caller: CallerDep,
    billing: BillingDep,
) -> Granted:
    with http_field_names(renames={"account_id": "path.account_id"}):
        resp = await billing.grant_credits(
            pb.GrantCreditsRequest(
                account_id=str(account_id),
                amount=body.amount,
                kind=enum_value(pb.LedgerKind, body.kind, "LEDGER_KIND_"),
                reason=body.reason,
                idempotency_key=idempotency_key,
            ),
            token=caller.token,
        )
    return Granted.from_proto(resp)


@router.post(
    "/credits/reserve",
    status_code=201,
    response_model=ReservationResult,
    summary="Reserve credits for a ref (billing.write; `override_reason` needs billing.override)",
    description="Needs an `Idempotency-Key`. Moves `amount` from available to reserved until consumed, "
    "released or expired. 409 `INSUFFICIENT_CREDITS` (metadata `requested`, `available`), "
    "`RESERVATION_EXISTS` (one active reservation per account and ref; metadata `reservation_id`), "
    "`ACCOUNT_SUSPENDED`. `Location` lists the reservations of the ref.",
    responses={**problem_responses(401, 403, 404, 409, 503), **CREATED},
)
async def reserve_credits(
    body: ReserveBody,
    idempotency_key: IdempotencyKey,
    caller: CallerDep,
    billing: BillingDep,
    response: Response,
) -> ReservationResult:
    resp = await billing.reserve_credits(
        pb.ReserveCreditsRequest(
            account_id=str(body.account_id),
            amount=body.amount,
            ref_type=body.ref_type,
            ref_id=body.ref_id,
            expires_at=to_timestamp(body.expires_at),
            override_reason=body.override_reason or "",
            idempotency_key=idempotency_key,
        ),
        token=caller.token,
    )
    r = resp.reservation
    # There is no per-reservation resource (no GetReservation RPC): the ref's reservations are.
    query = urlencode({"account_id": r.account_id, "ref_type": r.ref_type, "ref_id": r.ref_id})
    response.headers["location"] = f"/v1/billing/credits/reservations?{query}"
    return ReservationResult.from_proto(resp)


@router.post(
    "/credits/reservations/{reservation_id}/consume",
    response_model=ReservationResult,
    summary="Consume a reservation, whole or in part (billing.write)",
    description="Needs an `Idempotency-Key`. Body optional: without `amount` the whole reservation is "
    "consumed; less than reserved releases the remainder in the same transaction. 409 "
    "`EXCEEDS_RESERVED_AMOUNT`, `RESERVATION_ALREADY_RELEASED`, `RESERVATION_ALREADY_CONSUMED`, "
    "`RESERVATION_EXPIRED`.",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def consume_reservation(
    reservation_id: ReservationId,
    idempotency_key: IdempotencyKey,
    caller: CallerDep,
    billing: BillingDep,
    body: ConsumeBody | None = None,
) -> ReservationResult:
    with http_field_names(renames={"reservation_id": "path.reservation_id"}):
        resp = await billing.consume_reservation(
            pb.ConsumeReservationRequest(
                reservation_id=str(reservation_id),
                amount=(body.amount or 0) if body else 0,  # 0: the whole reservation
                idempotency_key=idempotency_key,
            ),
            token=caller.token,
        )
    return ReservationResult.from_proto(resp)


@router.post(
    "/credits/reservations/{reservation_id}/release",
    response_model=ReservationResult,
    summary="Release a reservation back to available, with a reason (billing.write)",
    description="Needs an `Idempotency-Key`. 409 `RESERVATION_ALREADY_CONSUMED`, `RESERVATION_ALREADY_RELEASED`, "
    "`RESERVATION_EXPIRED`.",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def release_reservation(
    reservation_id: ReservationId,
    body: ReleaseBody,
    idempotency_key: IdempotencyKey,
    caller: CallerDep,
    billing: BillingDep,
) -> ReservationResult:
    with http_field_names(renames={"reservation_id": "path.reservation_id"}):
        resp = await billing.release_reservation(
            pb.ReleaseReservationRequest(
                reservation_id=str(reservation_id), reason=body.reason, idempotency_key=idempotency_key
            ),
            token=caller.token,
        )
    return ReservationResult.from_proto(resp)


@router.get(
    "/credits/reservations",
    response_model=ReservationList,
    summary="Reservations of the caller's tenant, filtered by account, status and ref (billing.read)",
    responses=problem_responses(401, 403, 503),
)
async def list_reservations(
    caller: CallerDep,
    billing: BillingDep,
    account_id: Annotated[UUID | None, Query(description="Only this account's reservations.")] = None,
    status: Annotated[ReservationStatus | None, Query(description="Only reservations in this state.")] = None,
    ref_type: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    ref_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> ReservationList:
    renames: dict[str, Any] = {
        **PAGE_FIELDS,
        **{f: f"query.{f}" for f in ("account_id", "status", "ref_type", "ref_id")},
    }
    with http_field_names(renames=renames):
        resp = await billing.list_reservations(
            pb.ListReservationsRequest(
                page=page(limit, cursor),
                account_id=str(account_id) if account_id else "",
                status=enum_value(pb.ReservationStatus, status, "RESERVATION_STATUS_") if status else 0,
                ref_type=ref_type or "",
                ref_id=ref_id or "",
            ),
            token=caller.token,
        )
    return ReservationList(
        items=[ReservationView.from_proto(r) for r in resp.reservations], next_cursor=or_none(resp.page.next_cursor)
    )


@router.get(
    "/credits/aggregate",
    response_model=CreditAggregate,
    summary="Wallet totals over the caller's tenant (billing.read)",
    responses=problem_responses(401, 403, 503),
)
async def credit_aggregate(caller: CallerDep, billing: BillingDep) -> CreditAggregate:
    return CreditAggregate.from_proto(
        await billing.get_credit_aggregate(pb.GetCreditAggregateRequest(), token=caller.token)
    )


# -- plans and subscriptions ---------------------------------------------------------------------


@router.post(
    "/plans",
    status_code=201,
    response_model=Plan,
    summary="Create a subscription plan (billing.write)",
    description="409 when the code is taken.",
    responses=problem_responses(401, 403, 409, 503),
)
async def create_plan(body: CreatePlanBody, caller: CallerDep, billing: BillingDep) -> Plan:
    resp = await billing.create_plan(
        pb.CreatePlanRequest(
            code=body.code,
            name=body.name,
            credits_per_period=body.credits_per_period,
            period=body.period,
            price_paise=body.price_paise,
        ),
        token=caller.token,
    )
    return Plan.from_proto(resp.plan)


@router.get(
    "/plans",
    response_model=PlanList,
    summary="Subscription plans (billing.read)",
    responses=problem_responses(401, 403, 503),
)
async def list_plans(
    caller: CallerDep,
    billing: BillingDep,
    include_inactive: Annotated[bool, Query(description="Also plans no longer offered.")] = False,
) -> PlanList:
    resp = await billing.list_plans(pb.ListPlansRequest(include_inactive=include_inactive), token=caller.token)
    return PlanList(items=[Plan.from_proto(p) for p in resp.plans])


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=Subscription,
    summary="Subscribe an account to a plan (billing.write)",
    description="`Idempotency-Key` optional (recommended): a retry with the same key answers the same "
    "subscription. The first period's refill is granted at the start.",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def subscribe(
    body: SubscribeBody,
    caller: CallerDep,
    billing: BillingDep,
    idempotency_key: OptionalIdempotencyKey = None,
) -> Subscription:
    resp = await billing.subscribe(
        pb.SubscribeRequest(
            account_id=str(body.account_id),
            plan_id=str(body.plan_id),
            start_at=to_timestamp(body.start_at),
            idempotency_key=idempotency_key or "",
        ),
        token=caller.token,
    )
    return Subscription.from_proto(resp.subscription)


@router.post(
    "/subscriptions/{subscription_id}/pause",
    response_model=Subscription,
    summary="Pause a subscription: no refills while paused (billing.write)",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def pause_subscription(subscription_id: SubscriptionId, caller: CallerDep, billing: BillingDep) -> Subscription:
    resp = await billing.pause_subscription(pb.PauseSubscriptionRequest(id=str(subscription_id)), token=caller.token)
    return Subscription.from_proto(resp.subscription)


@router.post(
    "/subscriptions/{subscription_id}/resume",
    response_model=Subscription,
    summary="Resume a paused subscription (billing.write)",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def resume_subscription(subscription_id: SubscriptionId, caller: CallerDep, billing: BillingDep) -> Subscription:
    resp = await billing.resume_subscription(pb.ResumeSubscriptionRequest(id=str(subscription_id)), token=caller.token)
    return Subscription.from_proto(resp.subscription)


@router.post(
    "/subscriptions/{subscription_id}/cancel",
    response_model=Subscription,
    summary="Cancel a subscription (billing.write)",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def cancel_subscription(subscription_id: SubscriptionId, caller: CallerDep, billing: BillingDep) -> Subscription:
    resp = await billing.cancel_subscription(pb.CancelSubscriptionRequest(id=str(subscription_id)), token=caller.token)
    return Subscription.from_proto(resp.subscription)


# -- usage events --------------------------------------------------------------------------------


@router.post(
    "/events",
    status_code=201,
    response_model=UsageRecorded,
    summary="Record a usage event from an external system (billing.write)",
    description="Idempotent by `event_id`: 201 when recorded, 200 with `created: false` when that event id "
    "was already recorded (nothing changes).",
    responses={**problem_responses(401, 403, 404, 409, 503), 200: {"model": UsageRecorded, "description": "Replay"}},
)
async def record_usage(
    body: UsageEventBody, caller: CallerDep, billing: BillingDep, response: Response
) -> UsageRecorded:
    with http_field_names(strip_prefix="usage."):  # the body is the UsageEvent message's fields
        resp = await billing.record_usage(pb.RecordUsageRequest(usage=body.to_proto()), token=caller.token)
    if not resp.created:
        response.status_code = 200
    return UsageRecorded(usage=UsageEvent.from_proto(resp.usage), created=resp.created)
