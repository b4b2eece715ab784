"""Invoice numbering: <prefix>/<yy-yy>/<n> within 16 characters, one gapless series per tenant,
kind and financial year (1 April, Asia/Kolkata), taken in the issuing transaction.

50 concurrent issues → 50 distinct consecutive numbers; a crash between taking a number and
committing burns none; 31 March and 1 April of the same calendar year land in two series, the
second starting at 1; invoice dates never in the future nor before the series' last date; a
voided invoice keeps its number and it is never given again.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
from invoicing_harness import Invoicing

from zenops.billing.v1 import invoicing_pb2 as ipb
from zenops_billing.domain import invoices as rules
from zenops_billing.invoicing import document
from zenops_billing.invoicing import invoices as use_cases
from zenops_kit.db import tenant_tx
from zenops_kit.errors import FailedPrecondition, InvalidArgument

ISSUED = ipb.INVOICE_STATUS_ISSUED


# -- pure -------------------------------------------------------------------------------------


def test_financial_year_starts_on_1_april_in_india():
    assert rules.financial_year(date(2026, 3, 31)) == 2025
    assert rules.financial_year(date(2026, 4, 1)) == 2026
    assert rules.year_label(2025) == "25-26" and rules.year_label(2099) == "99-00"
    # 31 March 19:00 UTC is already 1 April 00:30 in India
    assert rules.today_ist(datetime(2026, 3, 31, 19, 0, tzinfo=UTC)) == date(2026, 4, 1)
    assert rules.today_ist(datetime(2026, 3, 31, 18, 29, tzinfo=UTC)) == date(2026, 3, 31)


def test_number_format_fits_16_characters():
    assert rules.format_number("ZO", 2025, 42) == "ZO/25-26/000042"
    assert rules.format_number("ZO", 2025, 1234567) == "ZO/25-26/1234567"  # 16: grows past the padding
    assert rules.format_number("ABCDEF", 2025, 42) == "ABCDEF/25-26/042"  # a long prefix shortens the padding
    cn = rules.series_prefix("ABCDEF", rules.CREDIT_NOTE)
    assert rules.format_number(cn, 2025, 7) == "ABCDEFC/25-26/07"
    assert all(len(rules.format_number(p, 2025, 99)) <= 16 for p in ("Z", "ZO", "ZOPQRS", "ZOPQRSC"))
    with pytest.raises(FailedPrecondition) as err:
        rules.format_number("ABCDEF", 2025, 1000)
    assert err.value.reason == "SERIES_EXHAUSTED"


def test_invoice_date_rules():
    today = date(2025, 6, 10)
    assert rules.check_invoice_date(None, today) == today
    assert rules.check_invoice_date(date(2025, 6, 1), today) == date(2025, 6, 1)
    with pytest.raises(InvalidArgument) as err:
        rules.check_invoice_date(date(2025, 6, 11), today)
    assert err.value.violations[0].field == "invoice_date"
    with pytest.raises(InvalidArgument):
        rules.parse_date("10-06-2025", "invoice_date")


# -- through the service ----------------------------------------------------------------------


def _fy_label() -> str:
    return rules.year_label(rules.financial_year(rules.today_ist()))


async def test_fifty_concurrent_issues_take_fifty_consecutive_numbers(billing):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()
        drafts = await asyncio.gather(*(inv.create(account.id) for _ in range(50)))
        issued = await asyncio.gather(*(inv.issue(d.id) for d in drafts))
        numbers = sorted(i.number for i in issued)
        assert numbers == [f"ZO/{_fy_label()}/{n:06d}" for n in range(1, 51)]
        assert all(i.status == ISSUED and len(i.number) <= 16 for i in issued)
        [series] = await h.sql("SELECT kind, last_value FROM invoice_series")
        assert (series.kind, series.last_value) == ("invoice", 50)


async def test_a_crash_between_taking_a_number_and_commit_burns_none(billing, monkeypatch):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()
        first, second = await inv.create(account.id), await inv.create(account.id)

        # 1. the transaction dies right after the number was taken (inside it)
        class Crash(Exception):
            pass

        with pytest.raises(Crash):
            async with tenant_tx(h.engine, h.tenant) as conn:
                await use_cases.issue(
                    conn, tenant_id=h.tenant, invoice_id=first.id, invoice_date=None, states={}, actor="test"
                )
                [(taken,)] = (await conn.exec_driver_sql("SELECT last_value FROM invoice_series")).all()
                assert taken == 1
                raise Crash
        assert await h.sql("SELECT last_value FROM invoice_series") == []

        # 2. the service's own issue fails after taking the number (the document cannot be rendered)
        def broken(_doc):
            raise RuntimeError("renderer crashed")

        monkeypatch.setattr(document, "render", broken)
        err = await inv.fails("IssueInvoice", ipb.IssueInvoiceRequest(id=first.id))
        assert err.code == grpc.StatusCode.INTERNAL
        monkeypatch.undo()
        assert (await inv.get(first.id)).number == ""

        a = await inv.issue(first.id)
        b = await inv.issue(second.id)
        assert (a.number, b.number) == (f"ZO/{_fy_label()}/000001", f"ZO/{_fy_label()}/000002")


async def test_31_march_and_1_april_are_two_series(billing):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()
        year = rules.today_ist().year - 1  # both days in the past
        march = await inv.issue((await inv.create(account.id)).id, f"{year}-03-31")
        april = await inv.issue((await inv.create(account.id)).id, f"{year}-04-01")
        march2 = await inv.issue((await inv.create(account.id)).id, f"{year}-03-31")
        old, new = rules.year_label(year - 1), rules.year_label(year)
        assert (march.number, march.invoice_date) == (f"ZO/{old}/000001", f"{year}-03-31")
        assert (april.number, april.invoice_date) == (f"ZO/{new}/000001", f"{year}-04-01")
        assert march2.number == f"ZO/{old}/000002"  # the same day as the series' last: allowed

        # never before the series' last issued date; never in the future
        draft = await inv.create(account.id)
        err = await inv.fails("IssueInvoice", ipb.IssueInvoiceRequest(id=draft.id, invoice_date=f"{year}-03-30"))
        assert (err.code, err.reason, err.metadata["last_date"]) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "INVOICE_DATE_BEFORE_LAST",
            f"{year}-03-31",
        )
        tomorrow = (rules.today_ist() + timedelta(days=1)).isoformat()
        err = await inv.fails("IssueInvoice", ipb.IssueInvoiceRequest(id=draft.id, invoice_date=tomorrow))
        assert (err.code, err.violations[0].field) == (grpc.StatusCode.INVALID_ARGUMENT, "invoice_date")
        err = await inv.fails("IssueInvoice", ipb.IssueInvoiceRequest(id=draft.id, invoice_date="31/03/2025"))
        assert err.violations[0].field == "invoice_date"
        # refusals burnt nothing: the draft takes the next number of the current year
        issued = await inv.issue(draft.id)
        assert issued.invoice_date == rules.today_ist().isoformat()
        expected = 2 if rules.financial_year(rules.today_ist()) == year else 1
        assert issued.number == f"ZO/{_fy_label()}/{expected:06d}"


async def test_void_keeps_its_number_which_is_never_reused(billing):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()
        first = await inv.issued(account.id)
        voided = (await inv.call("VoidInvoice", ipb.VoidInvoiceRequest(id=first.id, reason="wrong branch"))).invoice
        assert (voided.status, voided.number) == (ipb.INVOICE_STATUS_VOID, first.number)
        second = await inv.issued(account.id)
        assert second.number.endswith("/000002")
        # a voided draft never had a number; nor consumed one
        draft = await inv.create(account.id)
        voided_draft = (await inv.call("VoidInvoice", ipb.VoidInvoiceRequest(id=draft.id, reason="dup"))).invoice
        assert (voided_draft.status, voided_draft.number) == (ipb.INVOICE_STATUS_VOID, "")
        third = await inv.issued(account.id)
        assert third.number.endswith("/000003")
        # a void cannot be issued or voided again
        err = await inv.fails("IssueInvoice", ipb.IssueInvoiceRequest(id=first.id))
        assert err.reason == "INVOICE_NOT_DRAFT"
        err = await inv.fails("VoidInvoice", ipb.VoidInvoiceRequest(id=first.id, reason="again"))
        assert err.reason == "INVOICE_NOT_ISSUED"
        err = await inv.fails("VoidInvoice", ipb.VoidInvoiceRequest(id=third.id))
        assert (err.code, err.violations[0].field) == (grpc.StatusCode.INVALID_ARGUMENT, "reason")
        kinds = [
            r.kind
            for r in await h.sql(
                "SELECT kind FROM invoice_events WHERE invoice_id = CAST(:i AS uuid) ORDER BY occurred_at",
                {"i": first.id},
            )
        ]
        assert kinds == ["invoice.created", "invoice.issued", "invoice.voided"]


async def test_credit_notes_have_their_own_series(billing):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()
        invoice = await inv.issued(account.id)
        resp = await inv.call(
            "IssueCreditNote",
            ipb.IssueCreditNoteRequest(invoice_id=invoice.id, taxable_paise=100000, reason="fee revised"),
        )
        assert resp.credit_note.number == f"ZOC/{_fy_label()}/000001"
        second = await inv.issued(account.id)
        assert second.number.endswith("/000002")
