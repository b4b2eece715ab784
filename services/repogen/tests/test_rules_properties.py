"""Property tests (hypothesis): determinism, monotonicity, rounding bounds, the words read back
by an independent parser, merge-patch laws, and that any JSON at all either parses or fails
with a ContractError — never anything else."""

from __future__ import annotations

import copy
import json
from datetime import date
from decimal import Decimal
from fractions import Fraction

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from zenops_repogen import rules
from zenops_repogen.rules.values import SQM_PER_SQFT

SETTINGS = settings(database=None, deadline=None, max_examples=150)


def text_of(d: Decimal) -> str:
    return f"{d:f}"


areas_values = st.decimals(
    min_value=Decimal("0.0001"), max_value=Decimal(100_000), places=4, allow_nan=False, allow_infinity=False
)
rates = st.decimals(min_value=Decimal(0), max_value=Decimal(2_000_000), places=2, allow_nan=False, allow_infinity=False)
money = st.decimals(
    min_value=Decimal("0.01"), max_value=Decimal(1_000_000_000), places=2, allow_nan=False, allow_infinity=False
)
units = st.sampled_from(rules.AREA_UNITS)


@st.composite
def area(draw) -> dict:
    return {"value": text_of(draw(areas_values)), "unit": draw(units)}


@st.composite
def valuation_line(draw) -> dict:
    return {
        "description": draw(st.sampled_from(["Flat", "Terrace", "Land", "Building"])),
        "area": draw(area()),
        "rate_per_sqm": text_of(draw(rates)),
    }


@st.composite
def contract_data(draw) -> dict:
    """A readable contract: any mix of filled and empty sections."""
    data: dict = {}
    if draw(st.booleans()):
        data["parties"] = {
            "borrower_name": "Asha Patil",
            "owner_name": "Asha Patil",
            "bank_code": draw(st.sampled_from(["SBI", "HDFC"])),
        }
    prop: dict = {}
    if draw(st.booleans()):
        prop["property_type"] = draw(st.sampled_from(rules.PROPERTY_TYPES))
    coop = draw(st.sampled_from([None, False, True]))
    if coop is not None:
        prop["is_coop_society"] = coop
    data["property"] = prop
    data["areas"] = {name: draw(area()) for name in draw(st.sets(st.sampled_from(rules.AREA_NAMES)))}
    data["valuation_lines"] = draw(st.lists(valuation_line(), max_size=5))
    data["extras"] = [{"description": "Parking", "amount": text_of(a)} for a in draw(st.lists(money, max_size=3))]
    if draw(st.booleans()):
        data["adopted_value"] = text_of(draw(money))
    guideline = draw(st.sampled_from(["none", "rate", "value"]))
    if guideline == "rate":
        data["guideline"] = {"rate_per_sqm": text_of(draw(rates))}
    elif guideline == "value":
        data["guideline"] = {"value": text_of(draw(money))}
    if draw(st.booleans()):
        data["inspection"] = {
            "date": draw(st.dates(date(2020, 1, 1), date(2026, 12, 31))).isoformat(),
            "inspector": "R",
        }
    return data


banks = st.sampled_from(["SBI", "sbin", "HDFC", "", "AXIS"])


def run(data: dict, bank: str):
    e = rules.evaluate(rules.parse_contract(data), bank_code=bank)
    r = rules.readiness(
        e, evidence_counts={"SITE_PHOTO": 3, "SALE_DEED": 1}, linked_fields={"areas.carpet"}, today=date(2025, 6, 1)
    )
    return json.dumps([rules.outputs_json(e), rules.readiness_json(r)], sort_keys=True, ensure_ascii=False)


@SETTINGS
@given(contract_data(), banks)
def test_same_input_same_output_byte_for_byte(data, bank):
    first = run(data, bank)
    again = run(copy.deepcopy(data), bank)
    via_json = run(json.loads(json.dumps(data)), bank)
    assert first == again == via_json


@SETTINGS
@given(contract_data(), banks)
def test_values_scores_and_invariants(data, bank):
    e = rules.evaluate(rules.parse_contract(data), bank_code=bank)
    assert 0 <= e.distress_value <= e.realisable_value <= e.fair_market_value
    assert 0 <= e.completeness_score <= 100
    assert set(e.missing_fields) <= set(e.required_fields)
    assert e.completeness_score == 100 or e.missing_fields
    if e.basis == "none":
        assert e.fair_market_value == 0 and e.errors
    if e.basis == "coop_adopted":
        assert e.fair_market_value % 500 == e.realisable_value % 500 == e.distress_value % 500 == 0
    for value in (e.fair_market_value, e.realisable_value, e.distress_value):
        assert isinstance(value, int) and value < 2**63
    assert e.template.id in {t.id for t in rules.templates()}
    r = rules.readiness(e, evidence_counts={}, linked_fields=(), today=date(2025, 6, 1))
    assert 0 <= r.score <= 100 and (r.score == 100) == r.ready


@SETTINGS
@given(st.lists(valuation_line(), min_size=1, max_size=4), st.data())
def test_a_larger_rate_or_area_never_lowers_the_fmv(lines, data):
    base = {"valuation_lines": lines}
    before = rules.evaluate(rules.parse_contract(base), bank_code="HDFC")
    i = data.draw(st.integers(0, len(lines) - 1))
    bigger = copy.deepcopy(base)
    target = bigger["valuation_lines"][i]
    if data.draw(st.booleans()):
        target["rate_per_sqm"] = text_of(Decimal(target["rate_per_sqm"]) + data.draw(rates))
    else:
        grown = Decimal(target["area"]["value"]) + data.draw(areas_values)
        assume(grown <= Decimal(100_000_000))
        target["area"]["value"] = text_of(grown)
    after = rules.evaluate(rules.parse_contract(bigger), bank_code="HDFC")
    assert after.fair_market_value >= before.fair_market_value
    assert after.realisable_value >= before.realisable_value
    assert after.distress_value >= before.distress_value


@SETTINGS
@given(money, money)
def test_a_larger_adopted_value_never_lowers_the_coop_values(a, b):
    low, high = sorted((a, b))
    lo = rules.coop_values(low, Decimal(95), Decimal(80))
    hi = rules.coop_values(high, Decimal(95), Decimal(80))
    assert hi.fair_market_value >= lo.fair_market_value
    assert hi.realisable_value >= lo.realisable_value
    assert hi.distress_value >= lo.distress_value


@SETTINGS
@given(areas_values, units)
def test_sqm_is_within_half_a_hundredth_of_the_exact_value(value, unit):
    sqm = rules.to_sqm(value, unit)
    exact = Fraction(value) * (Fraction(SQM_PER_SQFT) if unit == "sqft" else 1)
    assert sqm == sqm.quantize(Decimal("0.01"))
    assert -Fraction(1, 200) < Fraction(sqm) - exact <= Fraction(1, 200)  # half-up: the half goes up


@SETTINGS
@given(st.lists(valuation_line(), min_size=1, max_size=4), st.lists(money, max_size=3))
def test_fmv_is_the_exact_total_rounded_half_up(lines, extras):
    data = {"valuation_lines": lines, "extras": [{"description": "x", "amount": text_of(a)} for a in extras]}
    e = rules.evaluate(rules.parse_contract(data), bank_code="SBI")
    exact = sum(
        (
            Fraction(rules.to_sqm(Decimal(x["area"]["value"]), x["area"]["unit"])) * Fraction(x["rate_per_sqm"])
            for x in lines
        ),
        Fraction(0),
    ) + sum((Fraction(a) for a in extras), Fraction(0))
    assert -Fraction(1, 2) < e.fair_market_value - exact <= Fraction(1, 2)
    assert -Fraction(1, 2) < e.realisable_value - Fraction(e.fair_market_value) * Fraction(95, 100) <= Fraction(1, 2)
    assert -Fraction(1, 2) < e.distress_value - Fraction(e.fair_market_value) * Fraction(80, 100) <= Fraction(1, 2)


@SETTINGS
@given(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**13), places=2, allow_nan=False, allow_infinity=False)
)
def test_coop_values_are_the_least_multiples_of_500_not_below_the_exact_values(adopted):
    v = rules.coop_values(adopted, Decimal(95), Decimal(80))
    fmv = Fraction(adopted) / Fraction(95, 100)
    for rounded, exact in (
        (v.fair_market_value, fmv),
        (v.realisable_value, Fraction(adopted)),
        (v.distress_value, fmv * Fraction(80, 100)),
    ):
        assert rounded % 500 == 0
        assert exact <= rounded < exact + 500


# -- amounts in words, read back by an independent parser --------------------------------------

_SMALL = {
    w: i
    for i, w in enumerate(
        [
            "Zero",
            "One",
            "Two",
            "Three",
            "Four",
            "Five",
            "Six",
            "Seven",
            "Eight",
            "Nine",
            "Ten",
            "Eleven",
            "Twelve",
            "Thirteen",
            "Fourteen",
            "Fifteen",
            "Sixteen",
            "Seventeen",
            "Eighteen",
            "Nineteen",
        ]
    )
}
_TENS = {"Twenty": 20, "Thirty": 30, "Forty": 40, "Fifty": 50, "Sixty": 60, "Seventy": 70, "Eighty": 80, "Ninety": 90}


def words_to_rupees(words: str) -> int:
    assert words.startswith("Rupees ") and words.endswith(" Only")
    total = group = current = 0
    for token in words[len("Rupees ") : -len(" Only")].split(" "):
        if token == "Hundred":
            assert 1 <= current <= 9
            current *= 100
        elif token in ("Thousand", "Lakh"):
            assert 1 <= current <= 99
            group += current * (1000 if token == "Thousand" else 100_000)
            current = 0
        elif token == "Crore":
            total = (total + group + current) * 10_000_000
            group = current = 0
        elif "-" in token:
            tens, unit = token.split("-")
            assert 1 <= _SMALL[unit] <= 9
            current += _TENS[tens] + _SMALL[unit]
        elif token in _TENS:
            current += _TENS[token]
        else:
            current += _SMALL[token]
    return total + group + current


@SETTINGS
@given(st.one_of(st.integers(0, 99_99_99_999), st.integers(0, 10**18)))
def test_words_read_back_to_the_amount(rupees):
    words = rules.amount_in_words(rupees)
    assert words_to_rupees(words) == rupees
    assert "  " not in words and "Zero" not in words[len("Rupees ") :] or rupees == 0
    assert all(w[0].isupper() for w in words.split(" "))


# -- merge patch -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=3),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from("abcd"), children, max_size=3),
    max_leaves=12,
)
json_objects = st.dictionaries(st.sampled_from("abcd"), json_values, max_size=4)


def has_null(value) -> bool:
    """A null member in an object, at any depth of objects (arrays are opaque values to a merge patch)."""
    if isinstance(value, dict):
        return any(v is None or has_null(v) for v in value.values())
    return False


@SETTINGS
@given(json_objects, json_objects)
def test_merge_patch_laws(target, patch):
    before = copy.deepcopy((target, patch))
    once = rules.merge_patch(target, patch)
    assert (target, patch) == before  # inputs untouched
    assert rules.merge_patch(once, patch) == once  # applying a patch twice = once
    assert not has_null(rules.merge_patch({}, patch))  # a patch's nulls delete, never land
    for key, value in patch.items():
        if value is None:
            assert key not in once
        elif not isinstance(value, dict):
            assert once[key] == value
    for key in target:
        if key not in patch:
            assert once[key] == target[key]


# -- robustness: anything parses or fails with ContractError ----------------------------------

contract_keys = st.sampled_from(
    [
        "parties",
        "property",
        "areas",
        "valuation_lines",
        "extras",
        "adopted_value",
        "guideline",
        "inspection",
        "legal",
        "sections",
        "schema_version",
        "value",
        "unit",
        "carpet",
        "land",
        "rate_per_sqm",
        "date",
        "is_coop_society",
        "property_type",
        "x",
    ]
)
wild = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.sampled_from(["12.5", "sqft", "sqm", "2025-01-01", "-1", "1e3", "\x00", "SBI"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(contract_keys, children, max_size=5),
    max_leaves=25,
)


@SETTINGS
@given(st.dictionaries(contract_keys, wild, max_size=8))
def test_any_json_parses_or_raises_contract_error_naming_fields(data):
    try:
        c = rules.parse_contract(data)
    except rules.ContractError as error:
        assert error.violations
        assert all(isinstance(f, str) and f and isinstance(m, str) and m for f, m in error.violations)
        return
    e = rules.evaluate(c, bank_code="SBI")
    json.dumps(rules.outputs_json(e))
