"""The supplier's billing settings (one row per tenant): legal name, GSTIN, state, address,
invoice number prefix and payment terms. Issuing needs them (SETTINGS_REQUIRED)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from zenops_kit import india
from zenops_kit.fields import invalid
from zenops_kit.fields import text as clean_text

from ..domain import gst
from ..domain import invoices as rules
from ..domain.accounts import clean_gstin
from ..store import invoices as store


@dataclass(frozen=True)
class SettingsInput:
    legal_name: str
    gstin: str
    state: str
    address: str
    invoice_prefix: str
    payment_terms_days: int


def validate(s) -> SettingsInput:
    """`s`: a BillingSettings message (fields named settings.<name>)."""
    legal_name = clean_text(s.legal_name, "settings.legal_name", max_length=200)
    gstin = clean_gstin(s.gstin, "settings.gstin")
    if not gstin:
        raise invalid("settings.gstin", "is required")
    state = india.state(s.state, "settings.state", required=False) or gst.state_of_gstin(gstin)
    if gst.state_of_gstin(gstin) != state:
        raise invalid("settings.state", f"must be the GSTIN's state ({gst.state_of_gstin(gstin) or 'unknown'})")
    address = clean_text(s.address, "settings.address", max_length=1000, required=False)
    prefix = rules.check_prefix(s.invoice_prefix, "settings.invoice_prefix")
    terms = s.payment_terms_days or rules.DEFAULT_TERMS_DAYS
    if not 0 < terms <= 365:
        raise invalid("settings.payment_terms_days", "must be between 1 and 365 (0 = 30)")
    return SettingsInput(legal_name, gstin, state, address, prefix, terms)


async def get(conn: AsyncConnection):
    return await store.get_settings(conn)


async def put(conn: AsyncConnection, *, tenant_id: str, values: SettingsInput):
    return await store.put_settings(
        conn,
        tenant_id=tenant_id,
        legal_name=values.legal_name,
        gstin=values.gstin,
        state=values.state,
        address=values.address,
        invoice_prefix=values.invoice_prefix,
        payment_terms_days=values.payment_terms_days,
    )
