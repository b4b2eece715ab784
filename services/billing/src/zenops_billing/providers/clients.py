"""The provider clients, through the official SDKs only: `razorpay` (Client.order.create,
Utility.verify_webhook_signature) and `stripe` (StripeClient → checkout sessions,
Webhook.construct_event), each pointed at its configured API base.

A provider whose secret key is not set has no client (`gateways_for` leaves it out): checkout
reports it unavailable (PROVIDER_NOT_CONFIGURED). Webhook verification needs only the
webhook secret. The Razorpay SDK is synchronous (requests): its calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import razorpay
import requests
import stripe

from zenops_kit.errors import FailedPrecondition, Unavailable

from ..domain import providers as rules

log = logging.getLogger("zenops.billing.providers")


@dataclass(frozen=True)
class Created:
    """A provider object made for a checkout: its id and (Stripe) the hosted page."""

    provider_ref: str
    checkout_url: str = ""


def _unavailable(provider: str, exc: Exception) -> Unavailable:
    log.warning("payment provider call failed", extra={"provider": provider, "error": str(exc)[:300]})
    return Unavailable(
        f"{provider} could not be reached; retry later",
        reason=rules.PROVIDER_UNAVAILABLE,
        metadata={"provider": provider},
        retry_after=5,
    )


def _rejected(provider: str, exc: Exception) -> FailedPrecondition:
    log.warning("payment provider refused the request", extra={"provider": provider, "error": str(exc)[:300]})
    return FailedPrecondition(
        f"{provider} refused the checkout: {str(exc)[:200]}",
        reason=rules.PROVIDER_REJECTED,
        metadata={"provider": provider},
    )


class RazorpayGateway:
    provider = rules.RAZORPAY

    def __init__(self, key_id: str, key_secret: str, api_base: str, timeout: float) -> None:
        self.client = razorpay.Client(auth=(key_id, key_secret), base_url=api_base.rstrip("/"))
        self.timeout = timeout

    def _create(self, data: dict) -> dict:
        return self.client.order.create(data=data, timeout=self.timeout)

    async def create(
        self, *, checkout_id: str, amount_paise: int, description: str, metadata: dict[str, str]
    ) -> Created:
        data = {
            "amount": amount_paise,
            "currency": rules.CURRENCY,
            "receipt": checkout_id[:40],
            "notes": metadata,
            "partial_payment": False,
        }
        try:
            order = await asyncio.to_thread(self._create, data)
        except razorpay.errors.BadRequestError as exc:
            raise _rejected(self.provider, exc) from exc
        except (
            razorpay.errors.ServerError,
            razorpay.errors.GatewayError,
            requests.RequestException,
            ValueError,
        ) as exc:
            raise _unavailable(self.provider, exc) from exc
        order_id = order.get("id") if isinstance(order, dict) else None
        if not isinstance(order_id, str) or not order_id:
            raise _unavailable(self.provider, ValueError("the order has no id"))
        return Created(order_id)


class StripeGateway:
    provider = rules.STRIPE

    def __init__(self, secret_key: str, api_base: str, timeout: float, success_url: str, cancel_url: str) -> None:
        self.client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base.rstrip("/")},
            max_network_retries=0,
            http_client=stripe.HTTPXClient(timeout=timeout),
        )
        self.success_url, self.cancel_url = success_url, cancel_url

    async def create(
        self, *, checkout_id: str, amount_paise: int, description: str, metadata: dict[str, str]
    ) -> Created:
        params = {
            "mode": "payment",
            "client_reference_id": checkout_id,
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": rules.CURRENCY.lower(),
                        "unit_amount": amount_paise,
                        "product_data": {"name": description},
                    },
                }
            ],
            "metadata": metadata,
            # The PaymentIntent carries them too: payment_intent.* events resolve by them.
            "payment_intent_data": {"metadata": metadata},
            "success_url": self.success_url,
            "cancel_url": self.cancel_url,
        }
        try:
            session = await self.client.v1.checkout.sessions.create_async(
                params, {"idempotency_key": f"zenops-checkout-{checkout_id}"}
            )
        except (
            stripe.InvalidRequestError,
            stripe.CardError,
            stripe.AuthenticationError,
            stripe.PermissionError,
        ) as exc:
            raise _rejected(self.provider, exc) from exc
        except stripe.StripeError as exc:
            raise _unavailable(self.provider, exc) from exc
        if not session.id:
            raise _unavailable(self.provider, ValueError("the session has no id"))
        return Created(session.id, session.url or "")


class WebhookRejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def verify_razorpay(body: bytes, headers: dict[str, str], secret: str) -> None:
    """Hex HMAC-SHA256 of the raw body (the SDK's helper: constant-time compare)."""
    signature = headers.get("x-razorpay-signature", "")
    if not signature:
        raise WebhookRejected(rules.WEBHOOK_SIGNATURE_INVALID, "no X-Razorpay-Signature header")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected(rules.WEBHOOK_SIGNATURE_INVALID, "the body is not UTF-8") from None
    try:
        razorpay.Utility(None).verify_webhook_signature(text, signature, secret)
    except razorpay.errors.SignatureVerificationError:
        raise WebhookRejected(rules.WEBHOOK_SIGNATURE_INVALID, "the signature does not match the body") from None


def verify_stripe(body: bytes, headers: dict[str, str], secret: str, *, now: float | None = None) -> None:
    """`Stripe-Signature: t=…,v1=…[,v1=…]` through stripe.Webhook.construct_event (constant-time,
    any v1 may match: secret rotation; the past tolerance), and the future: a `t` more than the
    tolerance ahead is refused as well."""
    header = headers.get("stripe-signature", "")
    if not header:
        raise WebhookRejected(rules.WEBHOOK_SIGNATURE_INVALID, "no Stripe-Signature header")
    try:
        stripe.Webhook.construct_event(
            body, header, secret, tolerance=rules.STRIPE_TOLERANCE_SECONDS, api_key="sk_unused"
        )
    except stripe.SignatureVerificationError as exc:
        reason = (
            rules.WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE if "tolerance" in str(exc) else rules.WEBHOOK_SIGNATURE_INVALID
        )
        raise WebhookRejected(reason, str(exc)[:200]) from None
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected(rules.WEBHOOK_MALFORMED, "the body is not a JSON event") from None
    if not rules.stripe_fresh(rules.stripe_timestamp(header), time.time() if now is None else now):
        raise WebhookRejected(
            rules.WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE,
            f"the timestamp is more than {rules.STRIPE_TOLERANCE_SECONDS} s from now",
        )


VERIFY = {rules.RAZORPAY: verify_razorpay, rules.STRIPE: verify_stripe}


def _secret(value) -> str:
    return value.get_secret_value() if value is not None else ""


class Providers:
    """The configured gateways and webhook secrets of this process (from the settings)."""

    def __init__(self, settings) -> None:
        self.gateways: dict[str, RazorpayGateway | StripeGateway] = {}
        timeout = settings.provider_call_timeout
        if _secret(settings.razorpay_key_secret) and settings.razorpay_key_id:
            self.gateways[rules.RAZORPAY] = RazorpayGateway(
                settings.razorpay_key_id, _secret(settings.razorpay_key_secret), settings.razorpay_api_base, timeout
            )
        if _secret(settings.stripe_secret_key):
            self.gateways[rules.STRIPE] = StripeGateway(
                _secret(settings.stripe_secret_key),
                settings.stripe_api_base,
                timeout,
                settings.checkout_success_url,
                settings.checkout_cancel_url,
            )
        self.webhook_secrets = {
            rules.RAZORPAY: _secret(settings.razorpay_webhook_secret),
            rules.STRIPE: _secret(settings.stripe_webhook_secret),
        }
        self.credit_price_paise = settings.credit_price_paise

    def gateway(self, provider: str):
        found = self.gateways.get(provider)
        if found is None:
            raise rules.not_configured(provider)
        return found

    def verify(self, provider: str, body: bytes, headers: dict[str, str]) -> None:
        """Raises WebhookRejected; rules.not_configured when there is no webhook secret."""
        secret = self.webhook_secrets.get(provider, "")
        if not secret:
            raise rules.not_configured(provider)
        VERIFY[provider](body, headers, secret)


def providers_for(runtime) -> Providers:
    """The process's Providers, built once from its settings."""
    found = getattr(runtime, "_billing_providers", None)
    if found is None:
        found = Providers(runtime.settings)
        runtime._billing_providers = found
    return found
