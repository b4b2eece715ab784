"""CreateCheckout: a Razorpay order or a Stripe Checkout session for a top-up (credits × the
price per credit) or an invoice (its balance), purpose and target in the provider object's
notes/metadata, recorded as a checkout (and in the provider-ref directory, so the webhooks
find the tenant).

Runs inside the idempotency transaction (billing's `idempotent()`): the provider object is
made first, then the checkout is written and committed with the key's answer. The checkout id
derives from (tenant, key), and is the provider's idempotency key (Stripe) and receipt
(Razorpay): a retry after a crash reuses it.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from zenops_kit.errors import FailedPrecondition

from ..domain import providers as rules
from ..domain.providers import CheckoutSpec
from ..domain.wallet import account_not_found
from ..store import accounts as account_store
from ..store import providers as store
from .clients import Providers

PAYABLE = ("ISSUED", "PARTIALLY_PAID")


async def create_checkout(
    conn: AsyncConnection, providers: Providers, *, tenant_id: str, spec: CheckoutSpec, key: str, actor: str
) -> store.CheckoutRow:
    gateway = providers.gateway(spec.provider)  # UNAVAILABLE PROVIDER_NOT_CONFIGURED
    account = await account_store.get(conn, spec.account_id)
    if account is None:
        raise account_not_found(spec.account_id)
    if spec.purpose == rules.TOPUP:
        amount = rules.topup_amount(spec.credits, providers.credit_price_paise)
        description = f"{spec.credits} ZenOps credits"
    else:
        found = await store.invoice_due(conn, spec.invoice_id)
        if found is None or found[0] != spec.account_id:
            raise rules.invalid("invoice_id", "no such invoice of this account", reason="INVOICE_NOT_FOUND")
        _, status, due = found
        if status not in PAYABLE or due <= 0:
            raise FailedPrecondition(
                f"invoice {spec.invoice_id} is {status} with {due} paise due: nothing to pay",
                reason=rules.INVOICE_NOT_PAYABLE,
                metadata={"status": status, "balance_paise": str(due)},
            )
        amount = due
        description = f"Invoice {spec.invoice_id}"
    checkout_id = rules.checkout_id_for(tenant_id, key)
    metadata = rules.metadata_for(tenant_id, checkout_id, spec)
    created = await gateway.create(
        checkout_id=checkout_id, amount_paise=amount, description=description, metadata=metadata
    )
    return await store.insert_checkout(
        conn,
        checkout_id=checkout_id,
        tenant_id=tenant_id,
        account_id=spec.account_id,
        provider=spec.provider,
        purpose=spec.purpose,
        credits=spec.credits,
        invoice_id=spec.invoice_id,
        amount_paise=amount,
        provider_ref=created.provider_ref,
        checkout_url=created.checkout_url,
        actor=actor,
        refs=[rules.checkout_ref(checkout_id), created.provider_ref],
    )
