"""The contract model: parsing into typed values, errors naming every bad field, the empty
contract, and RFC 7396 merge patch (the RFC's own appendix examples)."""

from __future__ import annotations

import copy
import json
from datetime import date
from decimal import Decimal

import pytest

from zenops_repogen import rules
from zenops_repogen.rules.contract import Area


def violations(data) -> dict[str, str]:
    with pytest.raises(rules.ContractError) as caught:
        rules.parse_contract(data)
    return dict(caught.value.violations)


FULL = {
    "schema_version": 1,
    "parties": {
        "bank_code": "sbi",
        "branch_ifsc": " sbin0001234 ",
        "borrower_name": "  Asha Patil ",
        "owner_name": "Asha Patil and Ravi Patil",
    },
    "property": {
        "address": "Flat 12, Shanti CHS,\nKothrud, Pune 411038",
        "property_type": "Residential_Flat",
        "is_coop_society": True,
        "ownership": "Joint",
        "tenure": "Freehold",
        "occupancy": "Owner occupied",
        "boundaries": {"north": "Road", "south": "Building B", "east": "Garden", "west": "Lane"},
    },
    "areas": {"carpet": {"value": "650.5", "unit": "sqft"}, "built_up": {"value": 70, "unit": "SQM"}},
    "valuation_lines": [{"description": "Flat", "area": {"value": "650.5", "unit": "sqft"}, "rate_per_sqm": "125000"}],
    "extras": [{"description": "Covered car parking", "amount": "250000.50"}],
    "adopted_value": "4750000",
    "guideline": {"rate_per_sqm": "98000", "value": "5900000"},
    "inspection": {"date": "2025-03-14", "inspector": "R. Kulkarni", "remarks": "Well maintained"},
    "legal": {"sale_deed_number": "PNE/1234/2019", "sale_deed_date": "2019-06-01", "index_ii_number": "5567"},
    "sections": {"justification": "Comparable sales in the society.", "notes": "Lift available."},
}


def test_a_full_contract_parses_into_typed_values():
    c = rules.parse_contract(FULL)
    assert c.schema_version == rules.SCHEMA_VERSION == 1
    assert c.parties.bank_code == "SBI"  # upper-cased
    assert c.parties.branch_ifsc == "SBIN0001234"  # trimmed, upper-cased
    assert c.parties.borrower_name == "Asha Patil"  # trimmed
    assert c.property.property_type == "residential_flat"  # lower-cased
    assert c.property.is_coop_society is True
    assert c.property.address == "Flat 12, Shanti CHS,\nKothrud, Pune 411038"  # newline kept
    assert c.property.boundaries.west == "Lane"
    assert c.areas.carpet == Area(Decimal("650.5"), "sqft")
    assert c.areas.built_up == Area(Decimal(70), "sqm")  # a JSON integer is fine; unit lower-cased
    assert c.areas.land is None
    assert c.valuation_lines[0].rate_per_sqm == Decimal("125000")
    assert c.extras[0].amount == Decimal("250000.50")
    assert c.adopted_value == Decimal("4750000")
    assert c.guideline.value == Decimal("5900000")
    assert c.inspection.date == date(2025, 3, 14)
    assert c.legal.sale_deed_date == date(2019, 6, 1)
    assert c.legal.survey_number is None
    assert c.sections.checklist is None
    for number in (c.areas.carpet.value, c.valuation_lines[0].rate_per_sqm, c.adopted_value):
        assert type(number) is Decimal


def test_the_empty_contract_is_version_1_and_parses_to_nothing():
    empty = rules.empty_contract()
    assert empty["schema_version"] == 1
    assert set(empty) == {
        "schema_version",
        "parties",
        "property",
        "areas",
        "valuation_lines",
        "extras",
        "guideline",
        "inspection",
        "legal",
        "sections",
    }
    c = rules.parse_contract(empty)
    assert c == rules.Contract()
    assert rules.parse_contract({}) == rules.Contract()
    assert json.loads(json.dumps(empty)) == empty  # JSON-ready
    assert rules.empty_contract() is not rules.empty_contract()  # a fresh dict each time


def test_blank_strings_and_nulls_are_not_given():
    c = rules.parse_contract(
        {
            "parties": {"borrower_name": "   ", "owner_name": None},
            "adopted_value": "",
            "inspection": {"date": None},
            "areas": {"carpet": {}},
        }
    )
    assert c.parties.borrower_name is None and c.parties.owner_name is None
    assert c.adopted_value is None and c.inspection.date is None and c.areas.carpet is None


def test_a_json_float_is_refused_naming_the_field():
    bad = violations(
        {
            "areas": {"carpet": {"value": 1000.5, "unit": "sqft"}},
            "valuation_lines": [{"description": "Flat", "rate_per_sqm": 1.0}],
            "guideline": {"value": 1e6},
        }
    )
    assert set(bad) == {"areas.carpet.value", "valuation_lines[0].rate_per_sqm", "guideline.value"}
    assert "float" in bad["areas.carpet.value"]
    assert "string" in bad["guideline.value"]


def test_unknown_keys_are_named():
    bad = violations(
        {
            "parties": {"borower_name": "x"},
            "colour": "blue",
            "areas": {"garden": {"value": "1", "unit": "sqm"}},
            "valuation_lines": [{"description": "x", "amount": "5"}],
            "property": {"boundaries": {"up": "sky"}},
        }
    )
    assert set(bad) == {
        "parties.borower_name",
        "colour",
        "areas.garden",
        "valuation_lines[0].amount",
        "property.boundaries.up",
    }
    assert "borrower_name" in bad["parties.borower_name"]  # the message lists the known fields


def test_every_bad_field_is_named_at_once():
    bad = violations(
        {
            "schema_version": 2,
            "parties": {"bank_code": "S", "branch_ifsc": "SBIN1001234", "borrower_name": 42},
            "property": {"property_type": "castle", "is_coop_society": "yes", "address": "x" * 1001},
            "areas": {
                "carpet": {"value": "12,000", "unit": "sqft"},
                "land": {"value": "10", "unit": "acre"},
                "built_up": {"value": "0", "unit": "sqm"},
                "super_built_up": {"value": "-5", "unit": "sqm"},
            },
            "valuation_lines": {"description": "not a list"},
            "extras": [{"description": "Parking", "amount": "1.005"}, "cash"],
            "adopted_value": "0",
            "guideline": {"rate_per_sqm": "1e5", "value": True},
            "inspection": {"date": "14/03/2025", "remarks": "bad\x00byte"},
            "legal": {"sale_deed_date": "2023-02-30"},
            "sections": "text",
        }
    )
    assert bad == {
        "schema_version": "must be 1 (the only contract schema this engine reads)",
        "parties.bank_code": "must be 2 to 20 letters or digits, e.g. SBI",
        "parties.branch_ifsc": "must be an IFSC: 4 letters, the digit 0, then 6 letters or digits (e.g. SBIN0001234)",
        "parties.borrower_name": "must be a string",
        "property.property_type": "must be one of residential_flat, independent_house, villa, plot, "
        "commercial_office, shop, industrial, agricultural_land, other",
        "property.is_coop_society": "must be true or false",
        "property.address": "must be at most 1000 characters",
        "areas.carpet.value": bad["areas.carpet.value"],
        "areas.land.unit": "must be one of sqft, sqm",
        "areas.built_up.value": "must be greater than 0",
        "areas.super_built_up.value": "must not be negative",
        "valuation_lines": "must be an array",
        "extras[0].amount": "must have at most 2 decimal places",
        "extras[1]": "must be an object",
        "adopted_value": "must be greater than 0",
        "guideline.rate_per_sqm": bad["guideline.rate_per_sqm"],
        "guideline.value": bad["guideline.value"],
        "inspection.date": "must be a date written YYYY-MM-DD",
        "inspection.remarks": "must not contain control characters (other than newline and tab)",
        "legal.sale_deed_date": "must be a real calendar date (YYYY-MM-DD)",
        "sections": "must be an object",
    }
    assert "no commas" in bad["areas.carpet.value"]
    assert "exponents" in bad["guideline.rate_per_sqm"]


def test_an_area_needs_both_value_and_unit():
    bad = violations(
        {"areas": {"carpet": {"value": "100"}, "land": {"unit": "sqm"}, "built_up": {"value": " ", "unit": "sqm"}}}
    )
    assert bad == {
        "areas.carpet.unit": "is required: sqft or sqm",
        "areas.land.value": "is required (an area is a value and a unit)",
        "areas.built_up.value": "is required (an area is a value and a unit)",
    }


def test_bounds_on_numbers_lists_and_text():
    bad = violations(
        {
            "areas": {
                "land": {"value": "100000000.0001", "unit": "sqm"},
                "carpet": {"value": "1.00001", "unit": "sqm"},
            },
            "adopted_value": str(10**13 + 1),
            "valuation_lines": [{}] * 101,
            "parties": {"owner_name": "o" * 501},
            "guideline": {"rate_per_sqm": "1" * 40},
        }
    )
    assert bad["areas.land.value"] == "must be at most 100000000"
    assert bad["areas.carpet.value"] == "must have at most 4 decimal places"
    assert bad["adopted_value"] == "must be at most 10000000000000"
    assert bad["valuation_lines"] == "must have at most 100 items"
    assert bad["parties.owner_name"] == "must be at most 500 characters"
    assert "decimal number" in bad["guideline.rate_per_sqm"]
    # trailing zeros beyond the limit are not extra precision
    assert rules.parse_contract({"extras": [{"description": "x", "amount": "10.5000"}]}).extras[0].amount == Decimal(
        "10.5000"
    )


def test_booleans_are_not_numbers_and_numbers_are_not_booleans():
    bad = violations({"adopted_value": True, "property": {"is_coop_society": 1}})
    assert set(bad) == {"adopted_value", "property.is_coop_society"}


def test_a_non_object_contract_is_refused():
    assert violations(["not", "an", "object"]) == {"contract": "must be a JSON object"}
    assert violations(None) == {"contract": "must be a JSON object"}


def test_contract_error_message_lists_the_violations():
    with pytest.raises(rules.ContractError) as caught:
        rules.parse_contract({"areas": {"carpet": {"value": "1", "unit": "acre"}}})
    assert caught.value.violations == [("areas.carpet.unit", "must be one of sqft, sqm")]
    assert str(caught.value) == "areas.carpet.unit: must be one of sqft, sqm"


# -- RFC 7396 --------------------------------------------------------------------------------

# Appendix A of RFC 7396, verbatim: (original, patch, result).
RFC_7396_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "result"), RFC_7396_EXAMPLES)
def test_merge_patch_rfc_7396_appendix_a(original, patch, result):
    before_original, before_patch = copy.deepcopy(original), copy.deepcopy(patch)
    assert rules.merge_patch(original, patch) == result
    assert original == before_original and patch == before_patch  # inputs untouched


def test_merge_patch_the_rfc_section_3_example():
    target = {
        "title": "Goodbye!",
        "author": {"givenName": "John", "familyName": "Doe"},
        "tags": ["example", "sample"],
        "content": "This will be unchanged",
    }
    patch = {"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": None}, "tags": ["example"]}
    assert rules.merge_patch(target, patch) == {
        "title": "Hello!",
        "author": {"givenName": "John"},
        "tags": ["example"],
        "content": "This will be unchanged",
        "phoneNumber": "+01-123-456-7890",
    }


def test_merge_patch_on_a_contract_result_shares_nothing_with_its_inputs():
    current = rules.merge_patch(rules.empty_contract(), {"areas": {"carpet": {"value": "100", "unit": "sqm"}}})
    patch = {
        "areas": {"carpet": {"value": "120"}, "land": {"value": "300", "unit": "sqm"}},
        "valuation_lines": [{"description": "Flat", "area": {"value": "120", "unit": "sqm"}, "rate_per_sqm": "1"}],
    }
    merged = rules.merge_patch(current, patch)
    assert merged["areas"] == {"carpet": {"value": "120", "unit": "sqm"}, "land": {"value": "300", "unit": "sqm"}}
    merged["valuation_lines"][0]["description"] = "changed"
    merged["areas"]["carpet"]["unit"] = "sqft"
    assert patch["valuation_lines"][0]["description"] == "Flat"
    assert current["areas"]["carpet"]["unit"] == "sqm"
    # null deletes a whole section; the contract still parses
    assert "areas" not in rules.merge_patch(merged, {"areas": None})
    assert rules.parse_contract(rules.merge_patch(merged, {"areas": None})).areas == rules.parse_contract({}).areas


def test_schema_version_must_be_the_integer_1():
    assert rules.parse_contract({"schema_version": 1}).schema_version == 1
    assert rules.parse_contract({"schema_version": None}).schema_version == 1  # null: not given
    for bad in (1.0, "1", True, 2, 0):
        assert "schema_version" in violations({"schema_version": bad}), bad


def test_signs_and_odd_spellings_of_numbers():
    bad = violations(
        {
            "adopted_value": "-0",
            "guideline": {"rate_per_sqm": "+5", "value": " 1 000 "},
            "extras": [{"description": "x", "amount": "١٢٣"}],
        }
    )  # Arabic-Indic digits
    assert bad["adopted_value"] == "must not be negative"
    assert set(bad) == {"adopted_value", "guideline.rate_per_sqm", "guideline.value", "extras[0].amount"}
    ok = rules.parse_contract({"adopted_value": " 007.50 ", "guideline": {"value": 0}})
    assert ok.adopted_value == Decimal("7.50") and ok.guideline.value == Decimal(0)
