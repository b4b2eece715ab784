"""Settlement: what a stored provider event does, applied once per underlying payment.

`apply(conn, tenant_id, event_row)` runs in the tenant's transaction with the event row locked
(FOR UPDATE) and the checkout row locked (so siblings of one payment — Razorpay
payment.captured and order.paid, Stripe checkout.session.completed and
payment_intent.succeeded — serialise), and marks the event applied/duplicate/ignored in the
same transaction as its effect:

- PAID: the first event of a payment inserts its `payment_settlements` row (unique provider +
  payment ref) and, for a top-up, grants TOPUP credits (idempotency key
  `<provider>:payment:<payment ref>`), for an invoice records a provider payment on it
  (invoicing.payments.record_payment); later events of the payment are duplicates.
- FAILED: a checkout not yet paid becomes failed; a capture is never undone.
- REFUNDED / DISPUTE_LOST: once per payment (`payment_recoveries`): for a top-up exactly one
  compensating debit (billing_debit) of the credits the money returned bought; if they were
  spent the wallet goes negative and the recovery is RECOVERY_DUE (an account event too).
- Anything else: ignored (stored, acknowledged).

`sweep(engine)` applies every stored-but-unapplied event (a crash between storing and
applying), oldest first, one transaction each.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops_kit.db import tenant_tx
from zenops_kit.errors import Unavailable

from ..domain import providers as rules
from ..domain.providers import ProviderEvent
from ..domain.wallet import TOPUP
from ..store import accounts as account_store
from ..store import providers as store
from ..wallet import operations as wallet

log = logging.getLogger("zenops.billing.settlement")

ACTOR = "system:payments"


def parse(row: store.StoredEvent) -> ProviderEvent:
    if row.provider == rules.RAZORPAY:
        return rules.parse_razorpay(row.body, row.event_id)
    return rules.parse_stripe(row.body)


async def apply(conn: AsyncConnection, tenant_id: str, row: store.StoredEvent, *, trace_id: str = "") -> str:
    """Applies the locked, still pending `row`; returns its outcome (applied | duplicate |
    ignored), recorded on the row."""
    event = parse(row)
    checkout = await store.get_checkout(conn, row.checkout_id, for_update=True) if row.checkout_id else None
    outcome = rules.IGNORED
    if checkout is not None and event.effect == rules.PAID:
        outcome = await _paid(conn, tenant_id, event, checkout, trace_id)
    elif checkout is not None and event.effect == rules.FAILED:
        if checkout.status == rules.CREATED:
            await store.set_checkout_status(conn, checkout.id, rules.FAILED_STATUS)
            outcome = rules.APPLIED
    elif checkout is not None and event.effect in (rules.REFUNDED, rules.DISPUTE_LOST):
        outcome = await _recover(conn, tenant_id, event, checkout)
    await store.mark_event(conn, row.id, outcome)
    log.info(
        "provider event settled",
        extra={"provider": row.provider, "event_id": row.event_id, "event_type": row.event_type, "outcome": outcome},
    )
    return outcome


async def _paid(conn, tenant_id: str, event: ProviderEvent, checkout: store.CheckoutRow, trace_id: str) -> str:
    if await store.settlement_for(conn, event.provider, event.payment_ref) is not None:
        return rules.DUPLICATE
    entry_id = payment_id = None
    credits = 0
    if checkout.purpose == rules.TOPUP:
        if not rules.paid_covers(event, checkout.amount_paise):
            log.warning(
                "payment does not cover the top-up; not credited",
                extra={
                    "checkout_id": checkout.id,
                    "paid": event.amount_paise,
                    "due": checkout.amount_paise,
                    "currency": event.currency,
                },
            )
            return rules.IGNORED
        credits = checkout.credits
        entry, _ = await wallet.grant(
            conn,
            tenant_id=tenant_id,
            account_id=checkout.account_id,
            amount=credits,
            kind=TOPUP,
            reason=f"top-up paid through {event.provider} ({event.payment_ref})",
            actor=ACTOR,
            business_ref=rules.checkout_ref(checkout.id),
            idempotency_key=f"{event.provider}:payment:{event.payment_ref}",
        )
        entry_id = entry.id
    else:
        try:
            from ..invoicing.payments import record_payment
        except ImportError as exc:  # the invoicing area is not there: leave the event for the sweep
            raise Unavailable("invoice payments cannot be recorded yet", reason="INVOICING_UNAVAILABLE") from exc
        _, payment, _ = await record_payment(
            conn,
            tenant_id=tenant_id,
            invoice_id=checkout.invoice_id,
            amount_paise=event.amount_paise,
            method="provider",
            reference=event.payment_ref,
            provider=event.provider,
            received_at=datetime.now(UTC),
            actor=ACTOR,
            trace_id=trace_id,
        )
        payment_id = _id_of(payment)
    await store.insert_settlement(
        conn,
        tenant_id=tenant_id,
        provider=event.provider,
        payment_ref=event.payment_ref,
        checkout=checkout,
        amount_paise=event.amount_paise,
        credits=credits,
        ledger_entry_id=entry_id,
        invoice_payment_id=payment_id,
        event_id=event.event_id,
    )
    await store.add_ref(
        conn, provider=event.provider, ref=event.payment_ref, tenant_id=tenant_id, checkout_id=checkout.id
    )
    if checkout.status != rules.REFUNDED_STATUS:
        await store.set_checkout_status(conn, checkout.id, rules.PAID_STATUS)
    return rules.APPLIED


def _id_of(payment) -> str | None:
    if payment is None:
        return None
    if isinstance(payment, dict):
        return str(payment.get("id")) if payment.get("id") else None
    found = getattr(payment, "id", None)
    return str(found) if found else None


async def _recover(conn, tenant_id: str, event: ProviderEvent, checkout: store.CheckoutRow) -> str:
    settlement = await store.settlement_for(conn, event.provider, event.payment_ref)
    if settlement is None:
        # Nothing was settled for this payment (never captured here): nothing to take back.
        return rules.IGNORED
    if await store.recovery_exists(conn, event.provider, event.payment_ref):
        return rules.DUPLICATE
    kind = "refund" if event.effect == rules.REFUNDED else "dispute"
    reservation_id, shortfall, credits, status = None, 0, 0, rules.RECOVERY_NOT_APPLICABLE
    if checkout.purpose == rules.TOPUP and settlement.credits > 0:
        credits = rules.credits_to_recover(settlement.credits, settlement.amount_paise, event.amount_paise)
        debited = await store.write_debit(
            conn,
            account_id=settlement.account_id,
            amount=credits,
            ref_id=f"recovery:{event.provider}:{event.payment_ref}"[:200],
            actor=ACTOR,
            reason=f"{kind} of {event.provider} payment {event.payment_ref}",
            idempotency_key=f"{event.provider}:{kind}:{event.payment_ref}",
        )
        if debited.outcome != "OK" or debited.reservation is None:
            raise Unavailable(f"the compensating debit was refused: {debited.outcome}", reason=debited.outcome)
        reservation_id, shortfall = debited.reservation.id, debited.reservation.shortfall
        status = rules.RECOVERY_DUE if shortfall > 0 else rules.RECOVERY_SETTLED
        if shortfall:
            log.warning(
                "refund after the credits were spent: account flagged RECOVERY_DUE",
                extra={"account_id": settlement.account_id, "credits": credits, "shortfall": shortfall},
            )
    await store.insert_recovery(
        conn,
        tenant_id=tenant_id,
        provider=event.provider,
        payment_ref=event.payment_ref,
        settlement=settlement,
        kind=kind,
        credits=credits,
        shortfall=shortfall,
        reservation_id=reservation_id,
        status=status,
        event_id=event.event_id,
    )
    await store.set_checkout_status(conn, checkout.id, rules.REFUNDED_STATUS)
    return rules.APPLIED


async def apply_stored(engine: AsyncEngine, tenant_id: str, provider: str, event_id: str, *, trace_id: str = "") -> str:
    """Applies one stored event if still pending (else its recorded outcome is a duplicate)."""
    async with tenant_tx(engine, tenant_id) as conn:
        row = await store.lock_event(conn, provider, event_id)
        if row is None:
            return rules.IGNORED
        if row.outcome != rules.PENDING:
            return rules.DUPLICATE
        return await apply(conn, tenant_id, row, trace_id=trace_id)


async def sweep(engine: AsyncEngine, *, limit: int = 1000) -> int:
    """Applies stored-but-unapplied events of every tenant; returns how many."""
    async with engine.connect() as conn:
        tenants = await account_store.tenant_ids(conn)
    done = 0
    for tenant in tenants:
        while done < limit:
            try:
                async with tenant_tx(engine, tenant) as conn:
                    row = await store.next_pending(conn)
                    if row is None:
                        break
                    await apply(conn, tenant, row)
            except Unavailable:
                log.warning("a stored provider event could not be applied yet", extra={"tenant_id": tenant})
                break
            done += 1
    if done:
        log.info("stored provider events applied by the sweep", extra={"count": done})
    return done
