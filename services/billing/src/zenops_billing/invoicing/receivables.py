"""Receivables: unpaid (ISSUED, PARTIALLY_PAID) and overdue (due date before the day asked
about) invoices per account, with ageing buckets by days past the invoice date (0–30, 31–60,
61–90, 90+) and totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain import invoices as rules
from ..store import invoices as store


@dataclass
class AccountReceivables:
    account_id: str
    display_name: str
    unpaid_invoices: int = 0
    overdue_invoices: int = 0
    outstanding_paise: int = 0
    ageing: rules.Ageing = field(default_factory=rules.Ageing)


@dataclass
class Receivables:
    accounts: list[AccountReceivables]
    total: rules.Ageing
    outstanding_paise: int


async def receivables(conn: AsyncConnection, *, account_id: str | None, as_of: date) -> Receivables:
    by_account: dict[str, AccountReceivables] = {}
    for r in await store.open_invoices(conn, account_id):
        acc = by_account.setdefault(r.account_id, AccountReceivables(r.account_id, r.display_name))
        acc.unpaid_invoices += 1
        if r.due_date is not None and r.due_date < as_of:
            acc.overdue_invoices += 1
        acc.outstanding_paise += r.balance_paise
        acc.ageing = acc.ageing.add(rules.days_past(r.invoice_date, as_of), r.balance_paise)
    accounts = list(by_account.values())
    total = rules.Ageing()
    for acc in accounts:
        total = total + acc.ageing
    return Receivables(accounts, total, sum(a.outstanding_paise for a in accounts))
