"""Golden cases, worked by hand in the comments: sqft → sqm, FMV from lines and extras, the
95/80 realisable and distress values, the co-op inversion with its ₹500 round-up, the
guideline comparison, amounts in words in the Indian system."""

from __future__ import annotations

from decimal import Decimal

import pytest

from zenops_repogen import rules
from zenops_repogen.rules.values import market_values, round_up_to


def contract(**patch):
    return rules.parse_contract(rules.merge_patch(rules.empty_contract(), patch))


def line(value: str, unit: str, rate: str, description: str = "Flat") -> dict:
    return {"description": description, "area": {"value": value, "unit": unit}, "rate_per_sqm": rate}


def codes(evaluation) -> list[tuple[str, str, str]]:
    return [(m.severity, m.code, m.field) for m in evaluation.messages]


# -- area standardisation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "sqm"),
    [
        # 1 sqft = 0.09290304 sqm (exact: 0.3048² m²), half-up to 2 decimals
        ("1", "sqft", "0.09"),  # 0.09290304
        ("100", "sqft", "9.29"),  # 9.290304
        ("1000", "sqft", "92.90"),  # 92.90304
        ("1076.39", "sqft", "100.00"),  # 99.9999032... → 100.00
        ("650.5", "sqft", "60.43"),  # 60.4334275... → 60.43
        ("1200", "sqft", "111.48"),  # 111.483648
        ("10000", "sqft", "929.03"),  # 929.0304
        ("7812.5", "sqft", "725.81"),  # 725.805 exactly: the half goes UP (half-even would give 725.80)
        ("7812.4", "sqft", "725.80"),  # 725.7957...
        ("53.8195", "sqft", "5.00"),  # 4.99999976... → 5.00
        ("10.125", "sqm", "10.13"),  # sqm as entered, half-up (half-even would give 10.12)
        ("10.124", "sqm", "10.12"),
        ("10.1250", "sqm", "10.13"),
        ("92.9", "sqm", "92.90"),
        ("75", "sqm", "75.00"),
    ],
)
def test_sqft_to_sqm_half_up(value, unit, sqm):
    assert rules.to_sqm(Decimal(value), unit) == Decimal(sqm)
    assert str(rules.to_sqm(Decimal(value), unit)) == sqm  # always 2 decimals


def test_areas_keep_the_original_value_and_unit():
    e = rules.evaluate(
        contract(areas={"carpet": {"value": "1000", "unit": "sqft"}, "land": {"value": "250.5", "unit": "sqm"}}),
        bank_code="SBI",
    )
    assert e.areas == {
        "carpet": rules.AreaValue(Decimal("1000"), "sqft", Decimal("92.90")),
        "land": rules.AreaValue(Decimal("250.5"), "sqm", Decimal("250.50")),
    }
    assert rules.outputs_json(e)["areas"] == {
        "carpet": {"value": "1000", "unit": "sqft", "sqm": "92.90"},
        "land": {"value": "250.5", "unit": "sqm", "sqm": "250.50"},
    }


# -- FMV, realisable, distress ---------------------------------------------------------------


def test_fmv_from_lines_and_extras_with_95_80():
    e = rules.evaluate(
        contract(
            valuation_lines=[
                line("1000", "sqft", "120000"),  # 92.90 sqm × 1,20,000 = 1,11,48,000
                line("150", "sqft", "60000.50", "Terrace"),
            ],  # 13.94 sqm (13.935456) × 60,000.50 = 8,36,406.97
            extras=[
                {"description": "Car parking", "amount": "300000"},
                {"description": "Amenities", "amount": "25000.40"},
            ],
        ),
        bank_code="SBI",
    )
    # total = 1,11,48,000 + 8,36,406.97 + 3,00,000 + 25,000.40 = 1,23,09,407.37 → ₹1,23,09,407
    assert e.lines[0].amount == Decimal("11148000.00")
    assert e.lines[1].amount == Decimal("836406.9700")
    assert e.lines_total == Decimal("11984406.9700")
    assert e.extras_total == Decimal("325000.40")
    assert e.basis == "lines"
    assert e.fair_market_value == 12309407
    assert e.realisable_value == 11693937  # 95% = 1,16,93,936.65 → 1,16,93,937 (half-up)
    assert e.distress_value == 9847526  # 80% = 98,47,525.60 → 98,47,526
    assert e.fair_market_value_in_words == "Rupees One Crore Twenty-Three Lakh Nine Thousand Four Hundred Seven Only"
    assert (
        e.realisable_value_in_words == "Rupees One Crore Sixteen Lakh Ninety-Three Thousand Nine Hundred "
        "Thirty-Seven Only"
    )
    assert e.distress_value_in_words == "Rupees Ninety-Eight Lakh Forty-Seven Thousand Five Hundred Twenty-Six Only"


def test_fmv_rounds_half_up_to_the_rupee():
    # 10 sqm × 100.05 = 1,000.50 → ₹1,001 (half-even would give 1,000)
    e = rules.evaluate(contract(valuation_lines=[line("10", "sqm", "100.05")]), bank_code="SBI")
    assert e.fair_market_value == 1001
    # 95% of 1,001 = 950.95 → 951; 80% = 800.80 → 801
    assert (e.realisable_value, e.distress_value) == (951, 801)
    # 10 sqm × 100.04 = 1,000.40 → 1,000
    assert (
        rules.evaluate(contract(valuation_lines=[line("10", "sqm", "100.04")]), bank_code="SBI").fair_market_value
        == 1000
    )


@pytest.mark.parametrize(
    ("fmv", "realisable", "distress"),
    [
        (4520000, 4294000, 3616000),  # 42,94,000 ; 36,16,000 (exact)
        (1010, 960, 808),  # 959.50 → 960 (half-up) ; 808
        (1030, 979, 824),  # 978.50 → 979 ; 824
        (999, 949, 799),  # 949.05 → 949 ; 799.20 → 799
        (50000000, 47500000, 40000000),
        (0, 0, 0),
    ],
)
def test_realisable_and_distress_are_95_and_80_percent_half_up(fmv, realisable, distress):
    v = market_values(Decimal(fmv), Decimal(95), Decimal(80))
    assert (v.fair_market_value, v.realisable_value, v.distress_value) == (fmv, realisable, distress)


def test_the_percentages_are_template_parameters():
    # same FMV, other parameters → other values (the registry's templates are all 95/80 today)
    v = market_values(Decimal(1000000), Decimal("90"), Decimal("72.5"))
    assert (v.realisable_value, v.distress_value) == (900000, 725000)
    for t in rules.templates():
        assert (t.realisable_percent, t.distress_percent) == (Decimal(95), Decimal(80))


# -- co-operative society: the inversion and the ₹500 round-up --------------------------------


@pytest.mark.parametrize(
    ("adopted", "fmv", "realisable", "distress"),
    [
        # adopted / 0.95 exactly 50,00,000: exact multiples of ₹500 stay
        ("4750000", 5000000, 4750000, 4000000),
        # 10,00,000 / 0.95 = 10,52,631.578947… → 10,53,000; realisable = exactly 10,00,000 (stays);
        # distress = 10,52,631.578… × 0.8 = 8,42,105.263… → 8,42,500
        ("1000000", 1053000, 1000000, 842500),
        # 12,34,567 / 0.95 = 12,99,544.210… → 13,00,000; realisable 12,34,567 → 12,35,000;
        # distress 10,39,635.368… → 10,40,000
        ("1234567", 1300000, 1235000, 1040000),
        # 9,500 / 0.95 = 10,000 exactly; 9,500 and 8,000 are multiples already
        ("9500", 10000, 9500, 8000),
        # 95,001 / 0.95 = 1,00,001.0526… → 1,00,500; 95,001 → 95,500; 80,000.84… → 80,500
        ("95001", 100500, 95500, 80500),
        # paise: 94,999.05 / 0.95 = 99,998.99… → 1,00,000; 94,999.05 → 95,000; 79,999.2 → 80,000
        ("94999.05", 100000, 95000, 80000),
        # ₹1 / 0.95 = 1.05… → 500 each
        ("1", 500, 500, 500),
    ],
)
def test_coop_inversion_rounds_each_value_up_to_500(adopted, fmv, realisable, distress):
    v = rules.coop_values(Decimal(adopted), Decimal(95), Decimal(80))
    assert (v.fair_market_value, v.realisable_value, v.distress_value) == (fmv, realisable, distress)
    e = rules.evaluate(contract(property={"is_coop_society": True}, adopted_value=adopted), bank_code="SBI")
    assert e.basis == "coop_adopted"
    assert (e.fair_market_value, e.realisable_value, e.distress_value) == (fmv, realisable, distress)
    assert e.fair_market_value % 500 == e.realisable_value % 500 == e.distress_value % 500 == 0


@pytest.mark.parametrize(
    ("amount", "up"),
    [
        (Decimal(0), 0),
        (Decimal("0.01"), 500),
        (Decimal(500), 500),
        (Decimal("500.01"), 1000),
        (Decimal(999), 1000),
        (Decimal(1000), 1000),
        (Decimal("1000.000001"), 1500),
    ],
)
def test_round_up_to_500(amount, up):
    assert round_up_to(amount, 500) == up


def test_a_coop_contract_without_adopted_value_is_an_error():
    e = rules.evaluate(
        contract(property={"is_coop_society": True}, valuation_lines=[line("100", "sqm", "100000")]), bank_code="SBI"
    )
    assert ("ERROR", "MISSING_ADOPTED_VALUE", "adopted_value") in codes(e)
    assert e.basis == "none" and e.fair_market_value == 0


def test_coop_lines_and_extras_are_shown_but_not_added():
    e = rules.evaluate(
        contract(
            property={"is_coop_society": True},
            adopted_value="4750000",
            valuation_lines=[line("100", "sqm", "100000")],
            extras=[{"description": "Parking", "amount": "500000"}],
        ),
        bank_code="SBI",
    )
    assert e.fair_market_value == 5000000
    assert codes(e) == [("WARNING", "COOP_LINES_NOT_USED", "valuation_lines")]
    assert e.lines[0].amount == Decimal("10000000.00")  # still computed for the report's table


# -- value basis and line errors -------------------------------------------------------------


def test_nothing_to_value_is_an_error():
    e = rules.evaluate(contract(), bank_code="SBI")
    assert codes(e) == [("ERROR", "NO_VALUATION_BASIS", "valuation_lines")]
    assert (e.fair_market_value, e.realisable_value, e.distress_value) == (0, 0, 0)
    assert e.fair_market_value_in_words == "Rupees Zero Only"


def test_lines_missing_a_rate_an_area_or_a_description_are_errors():
    e = rules.evaluate(
        contract(
            valuation_lines=[
                line("100", "sqm", "1000"),
                {"description": "Terrace", "area": {"value": "10", "unit": "sqm"}},
                {"rate_per_sqm": "500"},
                line("5", "sqm", "0", "Store"),
            ],
            extras=[{"description": "Parking"}, {"amount": "10"}],
        ),
        bank_code="SBI",
    )
    assert codes(e) == [
        ("ERROR", "MISSING_RATE", "valuation_lines[1].rate_per_sqm"),
        ("ERROR", "MISSING_DESCRIPTION", "valuation_lines[2].description"),
        ("ERROR", "MISSING_AREA", "valuation_lines[2].area"),
        ("WARNING", "ZERO_RATE", "valuation_lines[3].rate_per_sqm"),
        ("ERROR", "MISSING_AMOUNT", "extras[0].amount"),
        ("ERROR", "MISSING_DESCRIPTION", "extras[1].description"),
    ]
    # the complete lines still count: 100 × 1,000 + 10 (the extra with an amount)
    assert e.fair_market_value == 100010
    assert [m.severity for m in e.errors] == ["ERROR"] * 5


def test_an_adopted_value_without_lines_is_a_lump_sum_and_beside_lines_is_unused():
    lump = rules.evaluate(
        contract(adopted_value="2500000", extras=[{"description": "Parking", "amount": "200000"}]), bank_code="HDFC"
    )
    assert lump.basis == "adopted"
    assert (lump.fair_market_value, lump.realisable_value, lump.distress_value) == (2700000, 2565000, 2160000)
    both = rules.evaluate(
        contract(adopted_value="2500000", valuation_lines=[line("10", "sqm", "1000")]), bank_code="HDFC"
    )
    assert both.basis == "lines" and both.fair_market_value == 10000
    assert codes(both) == [("WARNING", "ADOPTED_VALUE_UNUSED", "adopted_value")]


# -- guideline -------------------------------------------------------------------------------


def test_guideline_value_from_rate_times_the_relevant_area():
    # a flat: the carpet area. 92.90 sqm × 1,30,000 = 1,20,77,000 > FMV 1,11,48,000 → warning
    e = rules.evaluate(
        contract(
            property={"property_type": "residential_flat"},
            areas={"carpet": {"value": "1000", "unit": "sqft"}, "land": {"value": "5000", "unit": "sqm"}},
            guideline={"rate_per_sqm": "130000"},
            valuation_lines=[line("1000", "sqft", "120000")],
        ),
        bank_code="SBI",
    )
    assert e.guideline_area == "carpet"
    assert e.guideline_value == 12077000
    assert e.below_guideline is True
    assert codes(e) == [("WARNING", "BELOW_GUIDELINE", "guideline.rate_per_sqm")]
    assert "₹1,11,48,000" in e.messages[0].message and "₹1,20,77,000" in e.messages[0].message
    # a plot: the land area. 200.25 sqm × 20,000.50 = 40,05,100.125 → 40,05,100
    plot = rules.evaluate(
        contract(
            property={"property_type": "plot"},
            areas={"land": {"value": "200.25", "unit": "sqm"}},
            guideline={"rate_per_sqm": "20000.50"},
            valuation_lines=[line("200.25", "sqm", "25000", "Plot")],
        ),
        bank_code="SBI",
    )
    assert (plot.guideline_area, plot.guideline_value, plot.below_guideline) == ("land", 4005100, False)
    assert plot.fair_market_value == 5006250  # 200.25 × 25,000


def test_a_given_guideline_value_wins_and_equal_is_not_below():
    e = rules.evaluate(
        contract(
            guideline={"rate_per_sqm": "999999", "value": "1000000.50"},
            areas={"carpet": {"value": "100", "unit": "sqm"}},
            valuation_lines=[line("100", "sqm", "10000.01")],
        ),
        bank_code="SBI",
    )
    # guideline 10,00,000.50 → 10,00,001 (half-up); FMV 100 × 10,000.01 = 10,00,001: not below
    assert (e.guideline_value, e.guideline_area, e.fair_market_value) == (1000001, None, 1000001)
    assert e.below_guideline is False and e.messages == ()
    lower = rules.evaluate(
        contract(guideline={"value": "1000001.50"}, valuation_lines=[line("100", "sqm", "10000.01")]), bank_code="SBI"
    )
    assert lower.guideline_value == 1000002 and lower.below_guideline is True
    assert codes(lower) == [("WARNING", "BELOW_GUIDELINE", "guideline.value")]


def test_no_guideline_and_no_area_for_the_rate():
    e = rules.evaluate(contract(valuation_lines=[line("1", "sqm", "1")]), bank_code="SBI")
    assert (e.guideline_value, e.below_guideline) == (None, False)
    assert rules.outputs_json(e)["guideline_value"] == 0
    f = rules.evaluate(
        contract(
            property={"property_type": "plot"},
            areas={"carpet": {"value": "5", "unit": "sqm"}},
            guideline={"rate_per_sqm": "1000"},
            valuation_lines=[line("1", "sqm", "1")],
        ),
        bank_code="SBI",
    )
    assert f.guideline_value is None
    assert codes(f) == [("WARNING", "GUIDELINE_AREA_MISSING", "guideline.rate_per_sqm")]


def test_no_guideline_warning_without_a_valuation_basis():
    e = rules.evaluate(contract(guideline={"value": "100"}), bank_code="SBI")
    assert e.below_guideline is False
    assert codes(e) == [("ERROR", "NO_VALUATION_BASIS", "valuation_lines")]


def test_bank_mismatch_is_a_warning():
    e = rules.evaluate(
        contract(parties={"bank_code": "HDFC"}, valuation_lines=[line("1", "sqm", "1")]), bank_code="sbi"
    )
    assert codes(e) == [("WARNING", "BANK_MISMATCH", "parties.bank_code")]
    assert e.bank_code == "SBI"
    for same in ("SBI", "SBIN"):  # SBIN (its IFSC prefix) is an alias of SBI in the selection table
        assert (
            rules.evaluate(
                contract(parties={"bank_code": same}, valuation_lines=[line("1", "sqm", "1")]), bank_code="SBI"
            ).messages
            == ()
        )


# -- amounts in words ------------------------------------------------------------------------

WORDS = {
    0: "Zero",
    1: "One",
    2: "Two",
    9: "Nine",
    10: "Ten",
    11: "Eleven",
    13: "Thirteen",
    15: "Fifteen",
    19: "Nineteen",
    20: "Twenty",
    21: "Twenty-One",
    30: "Thirty",
    40: "Forty",
    45: "Forty-Five",
    58: "Fifty-Eight",
    99: "Ninety-Nine",
    100: "One Hundred",
    101: "One Hundred One",
    110: "One Hundred Ten",
    115: "One Hundred Fifteen",
    500: "Five Hundred",
    999: "Nine Hundred Ninety-Nine",
    1000: "One Thousand",
    1001: "One Thousand One",
    1010: "One Thousand Ten",
    1100: "One Thousand One Hundred",
    2024: "Two Thousand Twenty-Four",
    9999: "Nine Thousand Nine Hundred Ninety-Nine",
    10000: "Ten Thousand",
    12345: "Twelve Thousand Three Hundred Forty-Five",
    20000: "Twenty Thousand",
    99999: "Ninety-Nine Thousand Nine Hundred Ninety-Nine",
    100000: "One Lakh",
    100001: "One Lakh One",
    100500: "One Lakh Five Hundred",
    250000: "Two Lakh Fifty Thousand",
    842500: "Eight Lakh Forty-Two Thousand Five Hundred",
    999999: "Nine Lakh Ninety-Nine Thousand Nine Hundred Ninety-Nine",
    1000000: "Ten Lakh",
    1053000: "Ten Lakh Fifty-Three Thousand",
    4520000: "Forty-Five Lakh Twenty Thousand",
    4294000: "Forty-Two Lakh Ninety-Four Thousand",
    7000070: "Seventy Lakh Seventy",
    9999999: "Ninety-Nine Lakh Ninety-Nine Thousand Nine Hundred Ninety-Nine",
    10000000: "One Crore",
    10000001: "One Crore One",
    10100000: "One Crore One Lakh",
    11448000: "One Crore Fourteen Lakh Forty-Eight Thousand",
    12309414: "One Crore Twenty-Three Lakh Nine Thousand Four Hundred Fourteen",
    49999999: "Four Crore Ninety-Nine Lakh Ninety-Nine Thousand Nine Hundred Ninety-Nine",
    50000000: "Five Crore",
    80808080: "Eight Crore Eight Lakh Eight Thousand Eighty",
    123456789: "Twelve Crore Thirty-Four Lakh Fifty-Six Thousand Seven Hundred Eighty-Nine",
    900000009: "Ninety Crore Nine",
    999999999: "Ninety-Nine Crore Ninety-Nine Lakh Ninety-Nine Thousand Nine Hundred Ninety-Nine",
    # beyond 99 crore: the crore count in words (crores of crores)
    1000000000: "One Hundred Crore",
    12345678901: "One Thousand Two Hundred Thirty-Four Crore Fifty-Six Lakh Seventy-Eight Thousand Nine Hundred One",
    10**12: "One Lakh Crore",
    1234567890123: "One Lakh Twenty-Three Thousand Four Hundred Fifty-Six Crore Seventy-Eight Lakh Ninety Thousand "
    "One Hundred Twenty-Three",
    10**14: "One Crore Crore",
}


@pytest.mark.parametrize(("rupees", "words"), sorted(WORDS.items()))
def test_amount_in_words(rupees, words):
    assert rules.amount_in_words(rupees) == f"Rupees {words} Only"


def test_amount_in_words_refuses_what_is_not_whole_non_negative_rupees():
    with pytest.raises(ValueError):
        rules.amount_in_words(-1)
    with pytest.raises(TypeError):
        rules.amount_in_words(Decimal("1.5"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        rules.amount_in_words(True)


@pytest.mark.parametrize(
    ("rupees", "text"),
    [
        (0, "0"),
        (7, "7"),
        (999, "999"),
        (1000, "1,000"),
        (99999, "99,999"),
        (100000, "1,00,000"),
        (4520000, "45,20,000"),
        (12309414, "1,23,09,414"),
        (999999999, "99,99,99,999"),
        (10**12, "10,00,00,00,00,000"),
        (-1500, "-1,500"),
    ],
)
def test_format_rupees_indian_grouping(rupees, text):
    assert rules.format_rupees(rupees) == text
