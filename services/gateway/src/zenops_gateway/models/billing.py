"""HTTP models of the billing area (accounts, credits, reservations, timeline, plans,
subscriptions, usage events, reconciliation) and their conversions from zenops.billing.v1.

JSON conventions (as everywhere in the gateway): enums are lower-case strings (`credit`,
`postpaid`, `active`, `consumed`, `topup`, …), timestamps ISO-8601 UTC, credits integers,
money integer paise, empty proto strings `null`.

The gateway types and bounds every field (a bad value is a 400 naming it: `amount`,
`expires_at`, `query.status`); the billing service applies the rules (balances, states,
uniqueness, capabilities) and names the field in its own errors, which pass through.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field, field_validator
from pydantic_core import PydanticCustomError

from zenops.billing.v1 import billing_pb2 as pb

from .common import (
    MAX_CREDITS,
    MAX_PAISE,
    Strict,
    UtcDatetime,
    enum_name,
    enum_value,
    or_none,
    timestamp,
    to_timestamp,
)

Policy = Literal["credit", "postpaid"]
AccountStatus = Literal["active", "suspended"]
ReservationStatus = Literal["active", "consumed", "released", "expired"]
LedgerKind = Literal["grant", "topup", "refill", "reserve", "consume", "release", "expire", "adjustment"]
GrantKind = Literal["grant", "topup", "adjustment"]
# Who owns the ref a reservation is for (reconciliation asks that owner about it).
RefType = Literal["channel_request", "work_order", "assignment", "manual"]
SubscriptionStatus = Literal["active", "paused", "cancelled"]
PlanPeriod = Literal["monthly"]
ReconcileAction = Literal["consume", "release", "leave"]

# Strict: "5" and 5.5 are errors, not credits (money is never coerced from text or floats).
Credits = Annotated[int, Field(strict=True, gt=0, le=MAX_CREDITS, examples=[10])]
Paise = Annotated[int, Field(strict=True, ge=0, le=MAX_PAISE, description="Integer paise (₹1 = 100).")]
Reason = Annotated[str, Field(min_length=1, max_length=500, description="Why (recorded in the ledger / audit).")]
DisplayName = Annotated[str, Field(min_length=1, max_length=200)]
ExternalKey = Annotated[
    str, Field(min_length=1, max_length=200, description="Unique per tenant: how other systems find the account.")
]
Gstin = Annotated[str, Field(min_length=15, max_length=15, description="GSTIN (15 characters; checked by billing).")]
Address = Annotated[str, Field(min_length=1, max_length=1000)]
RefId = Annotated[str, Field(min_length=1, max_length=200)]
UsageKind = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.]*$", examples=["report_released"]),
]


# -- accounts ------------------------------------------------------------------------------------


class Wallet(BaseModel):
    """Credit figures (integers); `available = granted - consumed - reserved`."""

    granted: int
    consumed: int
    reserved: int
    available: int

    @classmethod
    def from_proto(cls, w: pb.Wallet) -> Wallet:
        return cls(granted=w.granted, consumed=w.consumed, reserved=w.reserved, available=w.available)


class Account(BaseModel):
    id: str
    tenant_id: str
    external_key: str | None
    display_name: str
    policy: Policy
    status: AccountStatus
    gstin: str | None
    billing_address: str | None
    currency: str = Field(description='Always "INR".')
    wallet: Wallet
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def from_proto(cls, a: pb.Account) -> Account:
        return cls(
            id=a.id,
            tenant_id=a.tenant_id,
            external_key=or_none(a.external_key),
            display_name=a.display_name,
            policy=enum_name(pb.BillingPolicy, a.policy, "BILLING_POLICY_"),
            status=enum_name(pb.AccountStatus, a.status, "ACCOUNT_STATUS_"),
            gstin=or_none(a.gstin),
            billing_address=or_none(a.billing_address),
            currency=a.currency,
            wallet=Wallet.from_proto(a.wallet),
            created_at=timestamp(a, "created_at"),
            updated_at=timestamp(a, "updated_at"),
        )


class AccountList(BaseModel):
    items: list[Account]
    next_cursor: str | None = Field(description="Cursor of the next page; null on the last page.")


class AccountStatusView(BaseModel):
    account: Account
    open_reservations: int
    unpaid_invoices: int = Field(description="0 until invoices exist.")

    @classmethod
    def from_proto(cls, r: pb.GetAccountStatusResponse) -> AccountStatusView:
        return cls(
            account=Account.from_proto(r.account),
            open_reservations=r.open_reservations,
            unpaid_invoices=r.unpaid_invoices,
        )


class CreateAccountBody(Strict):
    display_name: DisplayName
    policy: Policy = Field(description="`credit`: prepaid credits; `postpaid`: GST invoice, paid before release.")
    external_key: ExternalKey | None = None
    gstin: Gstin | None = None
    billing_address: Address | None = None


# Account members a merge patch may change (the proto's updatable fields).
PATCHABLE = ("display_name", "policy", "status", "gstin", "billing_address", "external_key")


class AccountPatch(Strict):
    """JSON merge patch (RFC 7396) of an account: members present are changed, absent ones
    kept; `gstin`, `billing_address`, `external_key` may be `null` (cleared). `reason` is not
    an account member: it says why (billing requires it for a policy or status change)."""

    display_name: DisplayName | None = None
    policy: Policy | None = None
    status: AccountStatus | None = None
    gstin: Gstin | None = None
    billing_address: Address | None = None
    external_key: ExternalKey | None = None
    reason: Reason | None = None

    @field_validator("display_name", "policy", "status")
    @classmethod
    def _not_null(cls, value: str | None) -> str:
        # Only runs for members present in the body (defaults are not validated).
        if value is None:
            raise PydanticCustomError("null_not_allowed", "May not be null")
        return value

    def mask(self) -> list[str]:
        return sorted(set(PATCHABLE) & self.model_fields_set)

    def to_proto(self) -> pb.Account:
        return pb.Account(
            display_name=self.display_name or "",
            policy=enum_value(pb.BillingPolicy, self.policy, "BILLING_POLICY_") if self.policy else 0,
            status=enum_value(pb.AccountStatus, self.status, "ACCOUNT_STATUS_") if self.status else 0,
            gstin=self.gstin or "",
            billing_address=self.billing_address or "",
            external_key=self.external_key or "",
        )


# -- wallet --------------------------------------------------------------------------------------


class LedgerEntry(BaseModel):
    id: str
    account_id: str
    kind: LedgerKind
    amount: int
    reservation_id: str | None
    business_ref: str | None = Field(description='e.g. "channel_request:<id>" or "subscription:<id>:<period>".')
    actor: str | None
    reason: str | None
    idempotency_key: str | None
    balance_after: Wallet
    created_at: datetime | None

    @classmethod
    def from_proto(cls, e: pb.LedgerEntry) -> LedgerEntry:
        return cls(
            id=e.id,
            account_id=e.account_id,
            kind=enum_name(pb.LedgerKind, e.kind, "LEDGER_KIND_"),
            amount=e.amount,
            reservation_id=or_none(e.reservation_id),
            business_ref=or_none(e.business_ref),
            actor=or_none(e.actor),
            reason=or_none(e.reason),
            idempotency_key=or_none(e.idempotency_key),
            balance_after=Wallet.from_proto(e.balance_after),
            created_at=timestamp(e, "created_at"),
        )


class Reservation(BaseModel):
    id: str
    account_id: str
    amount: int
    ref_type: str
    ref_id: str
    status: ReservationStatus
    consumed_amount: int = Field(description="Set when consumed; may be less than `amount`.")
    expires_at: datetime | None
    created_at: datetime | None
    settled_at: datetime | None
    override_reason: str | None = Field(description="Set when the reserve went beyond available by override.")

    @classmethod
    def from_proto(cls, r: pb.Reservation) -> Reservation:
        return cls(
            id=r.id,
            account_id=r.account_id,
            amount=r.amount,
            ref_type=r.ref_type,
            ref_id=r.ref_id,
            status=enum_name(pb.ReservationStatus, r.status, "RESERVATION_STATUS_"),
            consumed_amount=r.consumed_amount,
            expires_at=timestamp(r, "expires_at"),
            created_at=timestamp(r, "created_at"),
            settled_at=timestamp(r, "settled_at"),
            override_reason=or_none(r.override_reason),
        )


class ReservationList(BaseModel):
    items: list[Reservation]
    next_cursor: str | None


class GrantBody(Strict):
    amount: Credits
    reason: Reason
    kind: GrantKind = Field("grant", description="`grant` (default), `topup` or `adjustment`.")


class Granted(BaseModel):
    entry: LedgerEntry
    wallet: Wallet

    @classmethod
    def from_proto(cls, r: pb.GrantCreditsResponse) -> Granted:
        return cls(entry=LedgerEntry.from_proto(r.entry), wallet=Wallet.from_proto(r.wallet))


class ReserveBody(Strict):
    account_id: UUID = Field(description="Billing account id.")
    amount: Credits
    ref_type: RefType
    ref_id: RefId
    expires_at: UtcDatetime | None = Field(None, description="Default: the service's reservation TTL (7 days).")
    override_reason: Reason | None = Field(
        None, description="Reserve beyond available (billing.override); the shortfall is an audited adjustment."
    )


class ConsumeBody(Strict):
    amount: Credits | None = Field(None, description="Default: the whole reservation; less releases the remainder.")


class ReleaseBody(Strict):
    reason: Reason


class ReservationResult(BaseModel):
    """A reservation after a reserve, consume or release, and the account's wallet then."""

    reservation: Reservation
    wallet: Wallet

    @classmethod
    def from_proto(
        cls, r: pb.ReserveCreditsResponse | pb.ConsumeReservationResponse | pb.ReleaseReservationResponse
    ) -> ReservationResult:
        return cls(reservation=Reservation.from_proto(r.reservation), wallet=Wallet.from_proto(r.wallet))


class UsageEvent(BaseModel):
    event_id: str
    account_id: str
    kind: str
    quantity: int
    ref_type: str | None
    ref_id: str | None
    occurred_at: datetime | None

    @classmethod
    def from_proto(cls, u: pb.UsageEvent) -> UsageEvent:
        return cls(
            event_id=u.event_id,
            account_id=u.account_id,
            kind=u.kind,
            quantity=u.quantity,
            ref_type=or_none(u.ref_type),
            ref_id=or_none(u.ref_id),
            occurred_at=timestamp(u, "occurred_at"),
        )


class TimelineItem(BaseModel):
    """One entry of an account's timeline: exactly one of `ledger_entry`, `reservation`,
    `usage` is set, as `type` says."""

    at: datetime | None
    type: Literal["ledger_entry", "reservation", "usage"]
    ledger_entry: LedgerEntry | None = None
    reservation: Reservation | None = None
    usage: UsageEvent | None = None

    @classmethod
    def from_proto(cls, item: pb.TimelineItem) -> TimelineItem:
        which = item.WhichOneof("item")
        at = timestamp(item, "at")
        if which == "ledger_entry":
            return cls(at=at, type=which, ledger_entry=LedgerEntry.from_proto(item.ledger_entry))
        if which == "reservation":
            return cls(at=at, type=which, reservation=Reservation.from_proto(item.reservation))
        if which == "usage":
            return cls(at=at, type=which, usage=UsageEvent.from_proto(item.usage))
        raise ValueError(f"timeline item without a kind: {which!r}")


class Timeline(BaseModel):
    items: list[TimelineItem] = Field(description="Newest first.")
    next_cursor: str | None


class CreditAggregate(BaseModel):
    total: Wallet
    accounts: int
    active_reservations: int
    negative_accounts: int = Field(description="Accounts whose available is below zero (by recorded override).")

    @classmethod
    def from_proto(cls, r: pb.GetCreditAggregateResponse) -> CreditAggregate:
        return cls(
            total=Wallet.from_proto(r.total),
            accounts=r.accounts,
            active_reservations=r.active_reservations,
            negative_accounts=r.negative_accounts,
        )


# -- subscriptions -------------------------------------------------------------------------------


class Plan(BaseModel):
    id: str
    code: str
    name: str
    credits_per_period: int
    period: str
    price_paise: int
    active: bool

    @classmethod
    def from_proto(cls, p: pb.Plan) -> Plan:
        return cls(
            id=p.id,
            code=p.code,
            name=p.name,
            credits_per_period=p.credits_per_period,
            period=p.period,
            price_paise=p.price_paise,
            active=p.active,
        )


class PlanList(BaseModel):
    items: list[Plan]


class CreatePlanBody(Strict):
    code: str = Field(min_length=1, max_length=64, examples=["starter-100"])
    name: str = Field(min_length=1, max_length=200)
    credits_per_period: Credits
    period: PlanPeriod = "monthly"
    price_paise: Paise


class Subscription(BaseModel):
    id: str
    account_id: str
    plan_id: str
    status: SubscriptionStatus
    current_period_start: datetime | None
    current_period_end: datetime | None
    next_refill_at: datetime | None

    @classmethod
    def from_proto(cls, s: pb.Subscription) -> Subscription:
        return cls(
            id=s.id,
            account_id=s.account_id,
            plan_id=s.plan_id,
            status=enum_name(pb.SubscriptionStatus, s.status, "SUBSCRIPTION_STATUS_"),
            current_period_start=timestamp(s, "current_period_start"),
            current_period_end=timestamp(s, "current_period_end"),
            next_refill_at=timestamp(s, "next_refill_at"),
        )


class SubscribeBody(Strict):
    account_id: UUID
    plan_id: UUID
    start_at: UtcDatetime | None = Field(None, description="Default: now. The first refill is granted at the start.")


# -- usage events, reconciliation ----------------------------------------------------------------


class UsageEventBody(Strict):
    event_id: str = Field(
        min_length=1, max_length=200, description="The sender's id of the event: a repeat with the same id is a no-op."
    )
    account_id: UUID
    kind: UsageKind
    quantity: Annotated[int, Field(strict=True, gt=0, le=MAX_CREDITS)]
    ref_type: str | None = Field(None, min_length=1, max_length=64)
    ref_id: RefId | None = None
    occurred_at: UtcDatetime | None = Field(None, description="Default: when billing records it.")

    def to_proto(self) -> pb.UsageEvent:
        return pb.UsageEvent(
            event_id=self.event_id,
            account_id=str(self.account_id),
            kind=self.kind,
            quantity=self.quantity,
            ref_type=self.ref_type or "",
            ref_id=self.ref_id or "",
            occurred_at=to_timestamp(self.occurred_at),
        )


class UsageRecorded(BaseModel):
    usage: UsageEvent
    created: bool = Field(description="False when this event id was already recorded (nothing changed).")


class ReconcileBody(Strict):
    dry_run: bool = Field(strict=True, description="True: return the plan, change nothing.")
    limit: int | None = Field(None, strict=True, ge=1, le=1000, description="At most this many reservations (100).")


class ReconcileActionView(BaseModel):
    reservation_id: str
    ref_type: str
    ref_id: str
    action: ReconcileAction
    reason: str

    @classmethod
    def from_proto(cls, a: pb.ReconcileAction) -> ReconcileActionView:
        return cls(
            reservation_id=a.reservation_id, ref_type=a.ref_type, ref_id=a.ref_id, action=a.action, reason=a.reason
        )


class ReconcileResult(BaseModel):
    dry_run: bool
    actions: list[ReconcileActionView]
    violations: list[str] = Field(description="Wallet invariant violations found after the run (empty = healthy).")

    @classmethod
    def from_proto(cls, r: pb.ReconcileResponse) -> ReconcileResult:
        return cls(
            dry_run=r.dry_run,
            actions=[ReconcileActionView.from_proto(a) for a in r.actions],
            violations=list(r.violations),
        )
