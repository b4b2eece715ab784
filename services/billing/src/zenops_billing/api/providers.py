"""CreateCheckout and HandleProviderWebhook of zenops.billing.v1.InvoicingService: a mixin
(`ProviderRpcs`) of the InvoicingService servicer. Proto ↔ use cases, nothing else.

CreateCheckout: a top-up needs billing.credits.write (it mints credits), an invoice payment
billing.write or invoices.write. HandleProviderWebhook is public (app.PUBLIC_METHODS): the
provider's signature is the authorisation.
"""

from __future__ import annotations

from opentelemetry import trace

from zenops.billing.v1 import invoicing_pb2 as ipb
from zenops_kit.context import current_context

from ..domain import providers as rules
from ..idempotency import idempotent
from ..providers import checkout as checkout_use_case
from ..providers import webhooks
from ..providers.clients import providers_for
from ..store.providers import CheckoutRow
from .translate import actor_of, caller_tenant, idempotency_key, ts

INVOICE_PAYERS = ("billing.write", "invoices.write")


def _trace_id() -> str:
    span = trace.get_current_span().get_span_context()
    return format(span.trace_id, "032x") if span.is_valid else (current_context().request_id or "")


def checkout_pb(c: CheckoutRow) -> ipb.Checkout:
    msg = ipb.Checkout(
        id=c.id,
        provider=c.provider,
        purpose=c.purpose,
        account_id=c.account_id,
        credits=c.credits,
        invoice_id=c.invoice_id,
        amount_paise=c.amount_paise,
        provider_ref=c.provider_ref,
        checkout_url=c.checkout_url,
        status=c.status,
    )
    ts(msg.created_at, c.created_at)
    return msg


class ProviderRpcs:
    """CreateCheckout, HandleProviderWebhook (mixed into the InvoicingService servicer, which
    has `runtime`)."""

    async def CreateCheckout(self, request, context):
        ctx = current_context()
        ctx.require()
        if request.purpose == rules.TOPUP:
            ctx.require("billing.credits.write")
        elif not any(c in ctx.capabilities for c in INVOICE_PAYERS):
            ctx.require(INVOICE_PAYERS[0])
        tenant = caller_tenant(ctx, context)
        key = idempotency_key(request.idempotency_key, context)
        spec = rules.check_checkout(
            request.purpose, request.provider, request.account_id, request.credits, request.invoice_id
        )
        providers = providers_for(self.runtime)
        providers.gateway(spec.provider)  # UNAVAILABLE PROVIDER_NOT_CONFIGURED before anything else

        async def run(conn):
            row = await checkout_use_case.create_checkout(
                conn, providers, tenant_id=tenant, spec=spec, key=key, actor=actor_of(ctx)
            )
            return ipb.CreateCheckoutResponse(checkout=checkout_pb(row))

        fields = {
            "purpose": request.purpose,
            "provider": request.provider,
            "account_id": request.account_id,
            "credits": request.credits,
            "invoice_id": request.invoice_id,
        }
        return await idempotent(
            self.runtime.engine,
            tenant_id=tenant,
            key=key,
            operation="CreateCheckout",
            request=fields,
            run=run,
            decode=ipb.CreateCheckoutResponse.FromString,
        )

    async def HandleProviderWebhook(self, request, context):
        event_id, outcome = await webhooks.handle(
            self.runtime.engine,
            providers_for(self.runtime),
            provider=request.provider,
            body=bytes(request.body),
            headers=dict(request.headers),
            trace_id=_trace_id(),
        )
        return ipb.HandleProviderWebhookResponse(event_id=event_id, outcome=outcome)
