"""HandleProviderWebhook: verify, store once, apply idempotently.

1. Verify with the provider's own SDK helper (Razorpay: hex HMAC-SHA256 of the raw body;
   Stripe: `t=…,v1=…` over "<t>.<body>", 300 s tolerance past and future, any v1). Refused →
   a `webhook_rejections` audit row (its own transaction) and INVALID_ARGUMENT; nothing else
   changes.
2. Store, in one transaction: the global receipt (unique provider + event id; the same id
   with another body → audited, ALREADY_EXISTS EVENT_ID_REUSED), the tenant resolved through
   the provider-ref directory, and the tenant's `payment_events` row with the raw body. An
   event of no known checkout is acknowledged and ignored.
3. Apply (settlement.apply_stored) in the tenant's transaction. A crash between 2 and 3
   leaves the event pending: the provider's retry (a replay) or the sweep applies it.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from zenops_kit.db import set_tenant, system_tx
from zenops_kit.errors import DomainError

from ..domain import providers as rules
from ..domain.providers import ProviderEvent
from ..store import providers as store
from . import settlement
from .clients import Providers, WebhookRejected

log = logging.getLogger("zenops.billing.webhooks")

MAX_BODY = 1_000_000


async def _reject(
    engine: AsyncEngine, provider: str, body: bytes, reason: str, detail: str, event_id: str = ""
) -> None:
    async with system_tx(engine) as conn:
        await store.insert_rejection(
            conn, provider=provider, reason=reason, detail=detail, event_id=event_id, body=body
        )
    log.warning(
        "provider webhook rejected",
        extra={"provider": provider, "reason": reason, "detail": detail, "event_id": event_id},
    )


def _parse(provider: str, body: bytes, headers: dict[str, str]) -> ProviderEvent:
    if provider == rules.RAZORPAY:
        event_id = headers.get("x-razorpay-event-id", "").strip()
        if not event_id or len(event_id) > 200:
            raise rules.invalid(
                "headers.x-razorpay-event-id", "is required (1-200 characters)", reason=rules.WEBHOOK_MALFORMED
            )
        return rules.parse_razorpay(body, event_id)
    event = rules.parse_stripe(body)
    if len(event.event_id) > 200:
        raise rules.invalid("body.id", "is longer than 200 characters", reason=rules.WEBHOOK_MALFORMED)
    return event


async def handle(
    engine: AsyncEngine,
    providers: Providers,
    *,
    provider: str,
    body: bytes,
    headers: dict[str, str],
    trace_id: str = "",
) -> tuple[str, str]:
    """(event id, outcome: applied | duplicate | ignored)."""
    if provider not in rules.PROVIDERS:
        raise rules.invalid("provider", "must be razorpay or stripe")
    headers = {k.lower(): v for k, v in headers.items()}
    if len(body) > MAX_BODY:
        await _reject(engine, provider, body[:0], rules.WEBHOOK_MALFORMED, f"body of {len(body)} bytes")
        raise rules.invalid("body", f"must be at most {MAX_BODY} bytes", reason=rules.WEBHOOK_MALFORMED)
    try:
        providers.verify(provider, body, headers)
        event = _parse(provider, body, headers)
    except WebhookRejected as exc:
        await _reject(engine, provider, body, exc.reason, exc.detail, headers.get("x-razorpay-event-id", ""))
        raise rules.invalid(
            "body", f"the {provider} webhook is not authentic: {exc.detail}", reason=exc.reason
        ) from None
    except DomainError as exc:
        await _reject(engine, provider, body, exc.reason, exc.message, headers.get("x-razorpay-event-id", ""))
        raise

    digest = store.sha256(body)
    async with system_tx(engine) as conn:
        resolved = await store.resolve(conn, provider, event.refs)
        tenant_id, checkout_id = resolved if resolved else (None, "")
        earlier = await store.claim_receipt(
            conn, provider=provider, event_id=event.event_id, digest=digest, event_type=event.type, tenant_id=tenant_id
        )
        if earlier is not None and earlier.body_sha256 != digest:
            reused = True
        else:
            reused = False
            if tenant_id:
                await set_tenant(conn, tenant_id)
                await store.insert_event(
                    conn,
                    tenant_id=tenant_id,
                    provider=provider,
                    event_id=event.event_id,
                    event_type=event.type,
                    checkout_id=checkout_id,
                    payment_ref=event.payment_ref,
                    body=body,
                    digest=digest,
                )
    if reused:
        await _reject(
            engine, provider, body, rules.EVENT_ID_REUSED, "the same event id with another body", event.event_id
        )
        raise rules.event_id_reused(provider, event.event_id)
    if not tenant_id:
        log.info(
            "provider event of no known checkout acknowledged",
            extra={"provider": provider, "event_id": event.event_id, "event_type": event.type},
        )
        return event.event_id, (rules.DUPLICATE if earlier is not None else rules.IGNORED)
    outcome = await settlement.apply_stored(engine, tenant_id, provider, event.event_id, trace_id=trace_id)
    return event.event_id, outcome
