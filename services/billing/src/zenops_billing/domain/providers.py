"""Payment providers, pure rules: checkout requests, the amount charged, the freshness of a
Stripe signature, and what a provider's webhook event means (no I/O here).

A webhook event is reduced to a `ProviderEvent`: its effect (PAID, FAILED, REFUNDED,
DISPUTE_LOST or NONE), the underlying payment (Razorpay `pay_…`, Stripe PaymentIntent
`pi_…`: settlement is idempotent per payment), the amount, and the refs that resolve the
tenant through the global directory (our checkout id from notes/metadata, the provider's
order/session id, the payment id), best first.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass

from zenops_kit.errors import AlreadyExists, FieldViolation, InvalidArgument, Unavailable

RAZORPAY, STRIPE = "razorpay", "stripe"
PROVIDERS = (RAZORPAY, STRIPE)
TOPUP, INVOICE = "topup", "invoice"
PURPOSES = (TOPUP, INVOICE)
CURRENCY = "INR"

# Checkout states (checkouts.status).
CREATED, PAID_STATUS, FAILED_STATUS, REFUNDED_STATUS = "created", "paid", "failed", "refunded"

# What an event does.
PAID, FAILED, REFUNDED, DISPUTE_LOST, NONE = "PAID", "FAILED", "REFUNDED", "DISPUTE_LOST", "NONE"
# HandleProviderWebhook outcomes (and payment_events.outcome once decided).
APPLIED, DUPLICATE, IGNORED, PENDING = "applied", "duplicate", "ignored", "pending"

# Reason codes.
PROVIDER_NOT_CONFIGURED = "PROVIDER_NOT_CONFIGURED"
PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"
PROVIDER_REJECTED = "PROVIDER_REJECTED"
WEBHOOK_SIGNATURE_INVALID = "WEBHOOK_SIGNATURE_INVALID"
WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE = "WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE"
WEBHOOK_MALFORMED = "WEBHOOK_MALFORMED"
EVENT_ID_REUSED = "EVENT_ID_REUSED"
INVOICE_NOT_PAYABLE = "INVOICE_NOT_PAYABLE"

STRIPE_TOLERANCE_SECONDS = 300
MAX_CREDITS = 10_000_000
# Razorpay: at most ₹5 crore per order is far above any top-up; guards a typo'd credits count.
MAX_AMOUNT_PAISE = 50_000_000_00
CHECKOUT_NAMESPACE = uuid.UUID("8a0c51a4-3a51-4f7e-9d4e-5c1c2b7f3e11")

RECOVERY_DUE = "RECOVERY_DUE"
RECOVERY_SETTLED = "SETTLED"
RECOVERY_NOT_APPLICABLE = "NOT_APPLICABLE"


def invalid(field_name: str, description: str, reason: str = "VALIDATION_FAILED") -> InvalidArgument:
    return InvalidArgument(
        f"{field_name}: {description}", reason=reason, violations=[FieldViolation(field_name, description)]
    )


def not_configured(provider: str) -> Unavailable:
    return Unavailable(
        f"payment provider {provider} is not configured here",
        reason=PROVIDER_NOT_CONFIGURED,
        metadata={"provider": provider},
    )


def event_id_reused(provider: str, event_id: str) -> AlreadyExists:
    return AlreadyExists(
        f"{provider} event {event_id} was received before with another body",
        reason=EVENT_ID_REUSED,
        metadata={"provider": provider, "event_id": event_id},
    )


# -- checkout --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckoutSpec:
    purpose: str
    provider: str
    account_id: str
    credits: int
    invoice_id: str


def _uuid(value: str, field_name: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise invalid(field_name, "must be a UUID") from None


def check_checkout(purpose: str, provider: str, account_id: str, credits: int, invoice_id: str) -> CheckoutSpec:
    """The request validated once: purpose topup (credits > 0, no invoice) or invoice (an
    invoice id, no credits), provider razorpay|stripe, the account a UUID."""
    if purpose not in PURPOSES:
        raise invalid("purpose", "must be topup or invoice")
    if provider not in PROVIDERS:
        raise invalid("provider", "must be razorpay or stripe")
    account = _uuid(account_id, "account_id")
    if purpose == TOPUP:
        if credits <= 0 or credits > MAX_CREDITS:
            raise invalid("credits", f"must be between 1 and {MAX_CREDITS} for a top-up")
        if invoice_id:
            raise invalid("invoice_id", "must be empty for a top-up")
        return CheckoutSpec(purpose, provider, account, credits, "")
    if credits:
        raise invalid("credits", "must be 0 for an invoice payment (its balance is charged)")
    return CheckoutSpec(purpose, provider, account, 0, _uuid(invoice_id, "invoice_id"))


def topup_amount(credits: int, price_paise: int) -> int:
    amount = credits * price_paise
    if amount <= 0 or amount > MAX_AMOUNT_PAISE:
        raise invalid("credits", f"the top-up must cost between 1 paisa and {MAX_AMOUNT_PAISE} paise")
    return amount


def checkout_id_for(tenant_id: str, key: str) -> str:
    """A retried CreateCheckout (same key) reuses its checkout id, which is also the provider's
    idempotency key (Stripe) and receipt (Razorpay): a retry never makes a second payable
    object."""
    return str(uuid.uuid5(CHECKOUT_NAMESPACE, f"{tenant_id}:{key}")) if key else str(uuid.uuid4())


def metadata_for(tenant_id: str, checkout_id: str, spec: CheckoutSpec) -> dict[str, str]:
    """What the provider object carries (Razorpay notes, Stripe metadata): purpose and target."""
    out = {"purpose": spec.purpose, "tenant_id": tenant_id, "checkout_id": checkout_id, "account_id": spec.account_id}
    if spec.purpose == TOPUP:
        out["credits"] = str(spec.credits)
    else:
        out["invoice_id"] = spec.invoice_id
    return out


def checkout_ref(checkout_id: str) -> str:
    """The directory key of a checkout id (notes / metadata carry it)."""
    return f"checkout:{checkout_id}"


# -- webhooks --------------------------------------------------------------------------------


def stripe_timestamp(header: str) -> int | None:
    for item in (header or "").split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def stripe_fresh(timestamp: int | None, now: float, tolerance: int = STRIPE_TOLERANCE_SECONDS) -> bool:
    """Stripe's `t` within `tolerance` seconds of now, past OR future (the SDK checks only the
    past)."""
    return timestamp is not None and abs(now - timestamp) <= tolerance


@dataclass(frozen=True)
class ProviderEvent:
    provider: str
    event_id: str
    type: str
    effect: str
    refs: tuple[str, ...]
    payment_ref: str = ""
    amount_paise: int = 0
    currency: str = ""


def _obj(value) -> dict:
    return value if isinstance(value, dict) else {}


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value) -> str:
    return value if isinstance(value, str) else ""


def _notes_ref(notes) -> list[str]:
    checkout = _str(_obj(notes).get("checkout_id"))
    return [checkout_ref(checkout)] if checkout else []


def _json(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise invalid("body", "is not a JSON object", reason=WEBHOOK_MALFORMED) from None
    if not isinstance(data, dict):
        raise invalid("body", "is not a JSON object", reason=WEBHOOK_MALFORMED)
    return data


def parse_razorpay(body: bytes, event_id: str) -> ProviderEvent:
    """A Razorpay webhook (`event`, `payload.{payment,order,refund,dispute}.entity`)."""
    data = _json(body)
    kind = _str(data.get("event"))
    payload = _obj(data.get("payload"))
    payment = _obj(_obj(payload.get("payment")).get("entity"))
    order = _obj(_obj(payload.get("order")).get("entity"))
    refund = _obj(_obj(payload.get("refund")).get("entity"))
    dispute = _obj(_obj(payload.get("dispute")).get("entity"))
    payment_ref = _str(payment.get("id")) or _str(refund.get("payment_id")) or _str(dispute.get("payment_id"))
    order_ref = _str(payment.get("order_id")) or _str(order.get("id"))
    refs = _notes_ref(payment.get("notes")) + _notes_ref(order.get("notes"))
    refs += [r for r in (order_ref, payment_ref) if r]
    effect, amount = NONE, _int(payment.get("amount"))
    if kind in ("payment.captured", "order.paid"):
        effect = PAID if _str(payment.get("status")) in ("captured", "") and payment_ref else NONE
    elif kind == "payment.failed":
        effect = FAILED
    elif kind in ("refund.processed", "refund.created", "payment.refunded"):
        effect = REFUNDED
        amount = _int(refund.get("amount")) or _int(payment.get("amount_refunded")) or amount
    elif kind == "payment.dispute.lost":
        effect = DISPUTE_LOST
        amount = _int(dispute.get("amount")) or amount
    currency = _str(payment.get("currency")) or _str(refund.get("currency")) or _str(dispute.get("currency"))
    return ProviderEvent(
        RAZORPAY, event_id, kind, effect, tuple(dict.fromkeys(refs)), payment_ref, amount, currency.upper()
    )


def parse_stripe(body: bytes) -> ProviderEvent:
    """A Stripe event (`id`, `type`, `data.object`)."""
    data = _json(body)
    event_id = _str(data.get("id"))
    if not event_id:
        raise invalid("body.id", "a Stripe event carries its id", reason=WEBHOOK_MALFORMED)
    kind = _str(data.get("type"))
    obj = _obj(_obj(data.get("data")).get("object"))
    metadata = obj.get("metadata")
    refs = _notes_ref(metadata)
    effect, payment_ref, amount = NONE, "", 0
    currency = _str(obj.get("currency")).upper()
    if kind.startswith("checkout.session."):
        payment_ref = _str(obj.get("payment_intent"))
        refs += [r for r in (_str(obj.get("id")), payment_ref) if r]
        amount = _int(obj.get("amount_total"))
        if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
            effect = PAID if _str(obj.get("payment_status")) == "paid" and payment_ref else NONE
        elif kind in ("checkout.session.async_payment_failed", "checkout.session.expired"):
            effect = FAILED
    elif kind.startswith("payment_intent."):
        payment_ref = _str(obj.get("id"))
        refs += [payment_ref] if payment_ref else []
        if kind == "payment_intent.succeeded":
            effect, amount = PAID, _int(obj.get("amount_received")) or _int(obj.get("amount"))
        elif kind == "payment_intent.payment_failed":
            effect = FAILED
    elif kind == "charge.refunded":
        payment_ref = _str(obj.get("payment_intent"))
        refs += [payment_ref] if payment_ref else []
        effect, amount = REFUNDED, _int(obj.get("amount_refunded"))
    elif kind == "charge.dispute.closed":
        payment_ref = _str(obj.get("payment_intent"))
        refs += [payment_ref] if payment_ref else []
        if _str(obj.get("status")) == "lost":
            effect, amount = DISPUTE_LOST, _int(obj.get("amount"))
    if effect in (PAID, REFUNDED, DISPUTE_LOST) and not payment_ref:
        effect = NONE
    return ProviderEvent(STRIPE, event_id, kind, effect, tuple(dict.fromkeys(refs)), payment_ref, amount, currency)


def paid_covers(event: ProviderEvent, checkout_amount: int) -> bool:
    """A top-up is paid when the payment covers the whole checkout amount, in rupees."""
    return event.amount_paise >= checkout_amount and event.currency in (CURRENCY, "")


def credits_to_recover(credits: int, checkout_amount: int, refunded_paise: int) -> int:
    """The credits a refund or lost dispute takes back: in proportion to the money returned
    (rounded up: never less back than was refunded), at most what was granted."""
    if refunded_paise <= 0 or refunded_paise >= checkout_amount:
        return credits
    return min(credits, math.ceil(credits * refunded_paise / checkout_amount))
