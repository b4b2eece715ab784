"""Proto ↔ domain for the billing servicers (shared by servicer.py and operations.py), and
what every RPC reads from the call: the caller's tenant, the idempotency key, the actor."""

from __future__ import annotations

from datetime import UTC, datetime

from zenops.billing.v1 import billing_pb2 as pb
from zenops_kit.context import RequestContext
from zenops_kit.errors import PermissionDenied

from ..domain.accounts import Account
from ..domain.idempotency import check_key
from ..domain.wallet import LedgerEntry, Reservation, Wallet, invalid, is_uuid
from ..store.usage import UsageEvent

POLICY_PB = {"CREDIT": pb.BILLING_POLICY_CREDIT, "POSTPAID": pb.BILLING_POLICY_POSTPAID}
POLICY_OF = {v: k for k, v in POLICY_PB.items()}
ACCOUNT_STATUS_PB = {"ACTIVE": pb.ACCOUNT_STATUS_ACTIVE, "SUSPENDED": pb.ACCOUNT_STATUS_SUSPENDED}
ACCOUNT_STATUS_OF = {v: k for k, v in ACCOUNT_STATUS_PB.items()}
RESERVATION_STATUS_PB = {
    "ACTIVE": pb.RESERVATION_STATUS_ACTIVE,
    "CONSUMED": pb.RESERVATION_STATUS_CONSUMED,
    "RELEASED": pb.RESERVATION_STATUS_RELEASED,
    "EXPIRED": pb.RESERVATION_STATUS_EXPIRED,
}
RESERVATION_STATUS_OF = {v: k for k, v in RESERVATION_STATUS_PB.items()}
LEDGER_KIND_PB = {
    name: pb.LedgerKind.Value(f"LEDGER_KIND_{name}")
    for name in ("GRANT", "TOPUP", "REFILL", "RESERVE", "CONSUME", "RELEASE", "EXPIRE", "ADJUSTMENT")
}
LEDGER_KIND_OF = {v: k for k, v in LEDGER_KIND_PB.items()}

TENANT_METADATA = "x-tenant-id"
IDEMPOTENCY_METADATA = "idempotency-key"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ts(target, value: datetime | None) -> None:
    """`target` (a Timestamp) = `value` (naive: UTC), as Timestamp.FromDatetime sets it, in a
    fifth of its time (~0.4 µs against ~2 µs: it goes through a struct_time)."""
    if value is not None:
        since = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)) - _EPOCH
        target.seconds = since.days * 86400 + since.seconds
        target.nanos = since.microseconds * 1000


def wallet_pb(w: Wallet) -> pb.Wallet:
    return pb.Wallet(granted=w.granted, consumed=w.consumed, reserved=w.reserved, available=w.available)


def account_pb(a: Account) -> pb.Account:
    msg = pb.Account(
        id=a.id,
        tenant_id=a.tenant_id,
        external_key=a.external_key,
        display_name=a.display_name,
        policy=POLICY_PB.get(a.policy, 0),
        status=ACCOUNT_STATUS_PB.get(a.status, 0),
        gstin=a.gstin,
        billing_address=a.billing_address,
        currency=a.currency,
        wallet=wallet_pb(a.wallet),
    )
    ts(msg.created_at, a.created_at)
    ts(msg.updated_at, a.updated_at)
    return msg


def entry_pb(e: LedgerEntry) -> pb.LedgerEntry:
    msg = pb.LedgerEntry(
        id=e.id,
        account_id=e.account_id,
        kind=LEDGER_KIND_PB.get(e.kind, 0),
        amount=e.amount,
        reservation_id=e.reservation_id,
        business_ref=e.business_ref,
        actor=e.actor,
        reason=e.reason,
        idempotency_key=e.idempotency_key,
        balance_after=wallet_pb(e.balance_after),
    )
    ts(msg.created_at, e.created_at)
    return msg


def reservation_pb(r: Reservation) -> pb.Reservation:
    msg = pb.Reservation(
        id=r.id,
        account_id=r.account_id,
        amount=r.amount,
        ref_type=r.ref_type,
        ref_id=r.ref_id,
        status=RESERVATION_STATUS_PB.get(r.status, 0),
        consumed_amount=r.consumed_amount,
        override_reason=r.override_reason,
    )
    ts(msg.expires_at, r.expires_at)
    ts(msg.created_at, r.created_at)
    ts(msg.settled_at, r.settled_at)
    return msg


def usage_pb(u: UsageEvent) -> pb.UsageEvent:
    msg = pb.UsageEvent(
        event_id=u.event_id,
        account_id=u.account_id,
        kind=u.kind,
        quantity=u.quantity,
        ref_type=u.ref_type,
        ref_id=u.ref_id,
    )
    ts(msg.occurred_at, u.occurred_at)
    return msg


def metadata(context) -> dict[str, str]:
    return {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


def caller_tenant(ctx: RequestContext, context) -> str:
    """The tenant the call acts in: a user token's `tid`. A service token carries none: it
    names the tenant in metadata `x-tenant-id` (services are trusted to act for any tenant;
    users never choose theirs)."""
    if ctx.tenant_id:
        return ctx.tenant_id
    if ctx.is_service:
        tenant = metadata(context).get(TENANT_METADATA, "")
        if not is_uuid(tenant):
            raise invalid(
                TENANT_METADATA,
                "a service token must name the tenant (a UUID) in this metadata",
                reason="TENANT_REQUIRED",
            )
        return tenant.lower()
    raise PermissionDenied("this token names no tenant", reason="TENANT_REQUIRED")


def idempotency_key(request_key: str, context) -> str:
    """The request's `idempotency_key` field, else metadata `idempotency-key` (the field wins)."""
    if request_key:
        return check_key(request_key)
    return check_key(metadata(context).get(IDEMPOTENCY_METADATA, ""), IDEMPOTENCY_METADATA)


def actor_of(ctx: RequestContext) -> str:
    """Who acts, as the ledger records it: the user id, or "service:<name>"."""
    return ctx.user_id or ctx.subject or ""
