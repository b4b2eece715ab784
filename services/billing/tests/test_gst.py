"""GST on service invoices, worked by hand.

Intra-state (supplier MH, recipient's GSTIN 27… = MH), CGST 9% + SGST 9% per line, each
half-up to the paisa:
  line 1: 1 × ₹12,345.67 = 12,34,567 p; CGST 9% = 1,11,111.03 → 1,11,111; SGST the same
  line 2: 2.5 × ₹999.99 = 2,49,997.5 → 2,49,998 − ₹5.00 discount = 2,49,498 p;
          9% = 22,454.82 → 22,455 each
  taxable 14,84,065; CGST 1,33,566; SGST 1,33,566; exact 17,51,197 p = ₹17,511.97
  → total ₹17,512.00, round-off +3 p; "Rupees Seventeen Thousand Five Hundred Twelve Only".

Inter-state (the property in Karnataka, the supplier in Maharashtra), IGST 18%:
  line 1: 1 × ₹10,000.00 = 10,00,000 p; IGST 1,80,000
  line 2: 3 × ₹333.36 = 1,00,008 p; IGST 18,001.44 → 18,001
  taxable 11,00,008; IGST 1,98,001; exact 12,98,009 p = ₹12,980.09 → ₹12,980.00, round-off −9 p.
"""

from __future__ import annotations

from decimal import Decimal

import grpc
import pytest
from invoicing_harness import KA_GSTIN, Invoicing, line

from zenops.billing.v1 import invoicing_pb2 as ipb
from zenops_billing.domain import gst
from zenops_kit import india
from zenops_kit.errors import InvalidArgument
from zenops_kit.money import amount_in_words, format_paise, paise_in_words

# -- pure -------------------------------------------------------------------------------------


def test_taxable_and_per_line_tax_half_up_to_the_paisa():
    assert gst.taxable_value(Decimal("2.5"), 99999, 500) == 249498  # 249997.5 → 249998 − 500
    assert gst.tax(1234567, intra_state=True) == gst.LineTax(1234567, 111111, 111111, 0)
    assert gst.tax(249498, intra_state=True) == gst.LineTax(249498, 22455, 22455, 0)
    assert gst.tax(100008, intra_state=False) == gst.LineTax(100008, 0, 0, 18001)
    # exact halves go up: 9% of 50 p = 4.5 → 5 (each of CGST and SGST); 18% of 25 p = 4.5 → 5
    assert gst.tax(50, intra_state=True) == gst.LineTax(50, 5, 5, 0)
    assert gst.tax(25, intra_state=False) == gst.LineTax(25, 0, 0, 5)
    assert gst.taxable_value(Decimal("0.005"), 100, 0) == 1  # 0.5 p → 1 p


def test_totals_round_to_the_rupee_with_the_round_off_shown():
    intra = gst.totals([gst.tax(1234567, intra_state=True), gst.tax(249498, intra_state=True)])
    assert (intra.taxable, intra.cgst, intra.sgst, intra.igst, intra.exact, intra.total, intra.round_off) == (
        1484065,
        133566,
        133566,
        0,
        1751197,
        1751200,
        3,
    )
    inter = gst.totals([gst.tax(1000000, intra_state=False), gst.tax(100008, intra_state=False)])
    assert (inter.taxable, inter.igst, inter.exact, inter.total, inter.round_off) == (
        1100008,
        198001,
        1298009,
        1298000,
        -9,
    )
    assert gst.round_to_rupee(1751150) == 1751200 and gst.round_to_rupee(1751149) == 1751100


def test_place_of_supply_rules():
    # the line's override, else the property's state, else the recipient's
    assert gst.place_of_supply(line_override="GA", property_state="KA", recipient_state="MH") == "GA"
    assert gst.place_of_supply(line_override="", property_state="KA", recipient_state="MH") == "KA"
    assert gst.place_of_supply(line_override="", property_state="", recipient_state="MH") == "MH"
    # the recipient: the request's override, else its GSTIN's state, else the fallback
    assert gst.recipient_state(request_override="DL", recipient_gstin=KA_GSTIN, fallback="MH") == "DL"
    assert gst.recipient_state(request_override="", recipient_gstin=KA_GSTIN, fallback="MH") == "KA"
    assert gst.recipient_state(request_override="", recipient_gstin="", fallback="MH") == "MH"
    assert gst.state_of_gstin("36AAACS8577K1ZX") == "TG" and gst.state_of_gstin("junk") == ""


def test_field_checks_name_the_field():
    for call, field in (
        (lambda: india.state("XX", "place_of_supply"), "place_of_supply"),
        (lambda: gst.sac("12", "lines[0].sac"), "lines[0].sac"),
        (lambda: gst.quantity("0", "lines[0].quantity"), "lines[0].quantity"),
        (lambda: gst.quantity("1.0005", "q"), "q"),
        (lambda: gst.quantity("abc", "q"), "q"),
    ):
        with pytest.raises(InvalidArgument) as err:
            call()
        assert err.value.violations[0].field == field
    assert gst.sac("", "s") == "997224" and gst.quantity("", "q") == 1 and india.state("mh", "s") == "MH"


def test_amounts_in_words_with_paise():
    assert paise_in_words(1751200) == "Rupees Seventeen Thousand Five Hundred Twelve Only"
    assert paise_in_words(1751197) == "Rupees Seventeen Thousand Five Hundred Eleven and Ninety-Seven Paise Only"
    assert paise_in_words(50) == "Rupees Zero and Fifty Paise Only"
    assert paise_in_words(452000000) == amount_in_words(4520000) == "Rupees Forty-Five Lakh Twenty Thousand Only"
    assert format_paise(1751197) == "17,511.97" and format_paise(-900) == "-9.00"


# -- through the service ----------------------------------------------------------------------


async def test_intra_state_invoice_to_the_paisa(billing):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()  # GSTIN 27…: Maharashtra, as the supplier
        draft = await inv.create(
            account.id,
            [
                line("Valuation of Flat 4B", unit_price=1234567),
                line("Revaluation, 2.5 days", unit_price=99999, quantity="2.5", discount_paise=500, sac="998311"),
            ],
        )
        issued = await inv.issue(draft.id)
        assert (issued.place_of_supply, issued.supplier_gstin, issued.recipient_gstin) == (
            "MH",
            "27AAPFU0939F1ZV",
            account.gstin,
        )
        l1, l2 = issued.lines
        assert (
            l1.sac,
            l1.quantity,
            l1.taxable_paise,
            l1.cgst_paise,
            l1.sgst_paise,
            l1.igst_paise,
            l1.total_paise,
            l1.place_of_supply,
        ) == ("997224", "1", 1234567, 111111, 111111, 0, 1456789, "MH")
        assert (l2.sac, l2.quantity, l2.taxable_paise, l2.cgst_paise, l2.sgst_paise, l2.igst_paise, l2.total_paise) == (
            "998311",
            "2.5",
            249498,
            22455,
            22455,
            0,
            294408,
        )
        assert (
            issued.taxable_paise,
            issued.cgst_paise,
            issued.sgst_paise,
            issued.igst_paise,
            issued.round_off_paise,
            issued.total_paise,
            issued.balance_paise,
        ) == (1484065, 133566, 133566, 0, 3, 1751200, 1751200)
        assert issued.total_in_words == "Rupees Seventeen Thousand Five Hundred Twelve Only"


async def test_inter_state_invoice_to_the_paisa(billing):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account(gstin="")  # unregistered: the request names the place of supply
        issued = await inv.issued(
            account.id,
            [
                line("Valuation of a plot at Hubballi", unit_price=1_000_000),
                line("Site visits", unit_price=33336, quantity="3"),
            ],
            place_of_supply="KA",
        )
        assert issued.place_of_supply == "KA"
        assert [
            (x.taxable_paise, x.cgst_paise, x.sgst_paise, x.igst_paise, x.total_paise, x.place_of_supply)
            for x in issued.lines
        ] == [(1000000, 0, 0, 180000, 1180000, "KA"), (100008, 0, 0, 18001, 118009, "KA")]
        assert (
            issued.taxable_paise,
            issued.cgst_paise,
            issued.sgst_paise,
            issued.igst_paise,
            issued.round_off_paise,
            issued.total_paise,
        ) == (1100008, 0, 0, 198001, -9, 1298000)
        assert issued.total_in_words == "Rupees Twelve Thousand Nine Hundred Eighty Only"


async def test_recipient_gstin_state_and_line_overrides(billing):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account(gstin=KA_GSTIN)
        issued = await inv.issued(
            account.id,
            [
                line("Valuation, Bengaluru flat", unit_price=100000),
                line("Valuation, Pune flat", unit_price=100000, place_of_supply="MH"),
            ],
        )
        assert issued.place_of_supply == "KA"
        a, b = issued.lines
        assert (a.place_of_supply, a.igst_paise, a.cgst_paise) == ("KA", 18000, 0)
        assert (b.place_of_supply, b.igst_paise, b.cgst_paise, b.sgst_paise) == ("MH", 0, 9000, 9000)


async def test_issuing_needs_the_suppliers_settings(billing):
    async with billing() as h:
        inv = Invoicing(h)
        account = await inv.account()
        draft = await inv.create(account.id)
        err = await inv.fails("IssueInvoice", ipb.IssueInvoiceRequest(id=draft.id))
        assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SETTINGS_REQUIRED")
        # settings: the state must be the GSTIN's
        err = await inv.fails(
            "PutBillingSettings",
            ipb.PutBillingSettingsRequest(
                settings=ipb.BillingSettings(legal_name="Zen", gstin="27AAPFU0939F1ZV", state="KA", invoice_prefix="ZO")
            ),
        )
        assert (err.code, err.violations[0].field) == (grpc.StatusCode.INVALID_ARGUMENT, "settings.state")
        err = await inv.fails(
            "PutBillingSettings",
            ipb.PutBillingSettingsRequest(
                settings=ipb.BillingSettings(
                    legal_name="Zen", gstin="27AAPFU0939F1ZV", state="MH", invoice_prefix="Z/O"
                )
            ),
        )
        assert err.violations[0].field == "settings.invoice_prefix"
        saved = await inv.settings(prefix="ZV")
        got = (await inv.call("GetBillingSettings", ipb.GetBillingSettingsRequest())).settings
        assert (got.legal_name, got.gstin, got.state, got.invoice_prefix, got.payment_terms_days) == (
            "Zen Valuers LLP",
            saved.gstin,
            "MH",
            "ZV",
            30,
        )
        issued = await inv.issue(draft.id)
        assert issued.number.startswith("ZV/")
