"""The template registry (data) and its selection: by bank, FMV band (exactly at ₹5 crore) and
property type; the override; required fields as they apply to a contract; completeness; the
JSON shapes the service hands to the proto."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest
from google.protobuf import json_format

from zenops.repogen.v1 import repogen_pb2 as pb
from zenops_repogen import rules
from zenops_repogen.rules import registry


def contract(**patch):
    return rules.parse_contract(rules.merge_patch(rules.empty_contract(), patch))


def valued(area_sqm: str, rate: str, **patch):
    return contract(
        valuation_lines=[{"description": "Flat", "area": {"value": area_sqm, "unit": "sqm"}, "rate_per_sqm": rate}],
        **patch,
    )


def test_the_registry_holds_the_three_templates_as_data():
    assert [t.id for t in rules.templates()] == ["SBI_UNDER_5CR_V1", "SBI_5CR_AND_ABOVE_V1", "GENERIC_BANK_V1"]
    assert rules.REGISTRY_VERSION == registry.REGISTRY["version"] == "1"
    under, above, generic = rules.templates()
    assert (under.bank_code, above.bank_code, generic.bank_code) == ("SBI", "SBI", "")
    assert all(t.version == 1 for t in rules.templates())
    # the ≥ ₹5 crore template is stricter: every field and evidence item of the other, and more
    assert set(under.required_fields) < set(above.required_fields)
    below_min = dict(under.evidence_requirements)
    above_min = dict(above.evidence_requirements)
    assert all(above_min[kind] >= n for kind, n in below_min.items()) and len(above_min) > len(below_min)
    assert below_min["SITE_PHOTO"] == 4 and above_min["SITE_PHOTO"] == 8
    assert dict(generic.evidence_requirements) == {"SITE_PHOTO": 4, "SALE_DEED": 1}
    assert len({t.evidence_profile for t in rules.templates()}) == 3
    assert rules.template("SBI_UNDER_5CR_V1") is under
    assert rules.template("sbi_under_5cr_v1") is None and rules.template("NOPE") is None


@pytest.mark.parametrize(
    ("area", "rate", "fmv", "template_id"),
    [
        ("100", "499999.99", 49999999, "SBI_UNDER_5CR_V1"),  # ₹4,99,99,999
        ("100", "500000", 50000000, "SBI_5CR_AND_ABOVE_V1"),  # exactly ₹5,00,00,000: "at or above"
        ("10", "4999999.95", 50000000, "SBI_5CR_AND_ABOVE_V1"),  # 4,99,99,999.50 rounds half-up into the band
        ("10", "4999999.94", 49999999, "SBI_UNDER_5CR_V1"),  # 4,99,99,999.40
        ("100", "500000.01", 50000001, "SBI_5CR_AND_ABOVE_V1"),
        ("1", "1", 1, "SBI_UNDER_5CR_V1"),
    ],
)
def test_sbi_selection_at_the_five_crore_boundary(area, rate, fmv, template_id):
    e = rules.evaluate(valued(area, rate), bank_code="SBI")
    assert e.fair_market_value == fmv
    assert e.template.id == template_id
    assert rules.select_template("SBI", fmv).id == template_id


@pytest.mark.parametrize(
    ("adopted", "fmv", "template_id"),
    [
        ("47500000", 50000000, "SBI_5CR_AND_ABOVE_V1"),  # / 0.95 = exactly 5 crore
        ("47499525", 49999500, "SBI_UNDER_5CR_V1"),  # / 0.95 = 4,99,99,500 exactly, a multiple of 500
        ("47499526", 50000000, "SBI_5CR_AND_ABOVE_V1"),  # 4,99,99,501.05… rounds UP to 5 crore
    ],
)
def test_coop_selection_uses_the_rounded_up_fmv(adopted, fmv, template_id):
    e = rules.evaluate(contract(property={"is_coop_society": True}, adopted_value=adopted), bank_code="SBI")
    assert (e.fair_market_value, e.template.id) == (fmv, template_id)


@pytest.mark.parametrize(
    ("bank", "template_id"),
    [
        ("SBI", "SBI_UNDER_5CR_V1"),
        ("sbi", "SBI_UNDER_5CR_V1"),
        (" SBIN ", "SBI_UNDER_5CR_V1"),
        ("HDFC", "GENERIC_BANK_V1"),
        ("ICICI", "GENERIC_BANK_V1"),
        ("", "GENERIC_BANK_V1"),
    ],
)
def test_other_banks_get_the_generic_template(bank, template_id):
    assert rules.evaluate(valued("100", "1000"), bank_code=bank).template.id == template_id
    assert rules.select_template(bank, 1000).id == template_id


def test_generic_applies_at_any_value_and_property_type():
    for kind in rules.PROPERTY_TYPES:
        assert (
            rules.evaluate(valued("100", "5000000", property={"property_type": kind}), bank_code="HDFC").template.id
            == "GENERIC_BANK_V1"
        )
    assert rules.select_template("HDFC", 10**12, "plot").id == "GENERIC_BANK_V1"
    assert rules.select_template("SBI", 10**12, "plot").id == "SBI_5CR_AND_ABOVE_V1"


def test_the_override_is_honoured_and_an_unknown_one_refused():
    small = valued("1", "1000")
    assert (
        rules.evaluate(small, bank_code="SBI", template_override="SBI_5CR_AND_ABOVE_V1").template.id
        == "SBI_5CR_AND_ABOVE_V1"
    )
    assert rules.evaluate(small, bank_code="SBI", template_override="GENERIC_BANK_V1").template.id == "GENERIC_BANK_V1"
    assert (
        rules.evaluate(small, bank_code="HDFC", template_override="SBI_UNDER_5CR_V1").template.id == "SBI_UNDER_5CR_V1"
    )
    assert rules.evaluate(small, bank_code="SBI", template_override=None).template.id == "SBI_UNDER_5CR_V1"
    with pytest.raises(ValueError, match="NOPE"):
        rules.evaluate(small, bank_code="SBI", template_override="NOPE")


def test_selection_is_data_a_new_row_changes_it_without_code():
    data = copy.deepcopy(registry.REGISTRY)
    data["templates"].append(
        {
            **data["templates"][2],
            "id": "HDFC_PLOT_V1",
            "bank_code": "HDFC",
            "evidence_profile": "HDFC_PLOT_V1",
            "realisable_percent": "90",
            "distress_percent": "75",
        }
    )
    data["selection"].insert(
        0,
        {
            "bank_codes": ["HDFC"],
            "property_types": ["plot"],
            "fmv_from": 0,
            "fmv_below": None,
            "template": "HDFC_PLOT_V1",
        },
    )
    _, found, selection = registry._load(data)
    rows = [row for row in selection if row.matches("HDFC", "plot")]
    assert rows[0].template.id == "HDFC_PLOT_V1" and found["HDFC_PLOT_V1"].realisable_percent == Decimal(90)
    assert [row.template.id for row in selection if row.matches("HDFC", "villa")] == ["GENERIC_BANK_V1"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["templates"][0]["required_fields"].append("parties.nickname"), "unknown field key"),
        (lambda d: d["templates"][0]["evidence_requirements"].append(["SELFIE", 1]), "unknown evidence kind"),
        (lambda d: d["templates"][0]["evidence_requirements"].append(["OTHER", 0]), "positive integer"),
        (lambda d: d["templates"][0].update(distress_percent="96"), "percentages"),
        (lambda d: d["selection"][0].update(template="SBI_V9"), "unknown template"),
        (lambda d: d["selection"].pop(), "last row"),
        (
            lambda d: d["templates"][2]["conditional"].append(
                {"when": {"field": "property.property_type", "in": ["castle"]}, "fields": []}
            ),
            "property type",
        ),
    ],
)
def test_inconsistent_registry_data_fails_at_load(mutate, message):
    data = copy.deepcopy(registry.REGISTRY)
    mutate(data)
    with pytest.raises(registry.RegistryError, match=message):
        registry._load(data)


# -- requirements as they apply, completeness -------------------------------------------------


def test_required_fields_depend_on_property_type_and_coop():
    flat = rules.evaluate(contract(property={"property_type": "residential_flat"}), bank_code="HDFC")
    assert flat.required_fields == (
        "parties.borrower_name",
        "parties.owner_name",
        "property.address",
        "property.property_type",
        "inspection.date",
        "inspection.inspector",
        "areas.carpet",
        "valuation_lines",
    )
    plot = rules.evaluate(contract(property={"property_type": "plot"}), bank_code="HDFC")
    assert plot.required_fields[-2:] == ("areas.land", "valuation_lines")
    house = rules.evaluate(contract(property={"property_type": "villa"}), bank_code="HDFC")
    assert house.required_fields[-3:] == ("areas.land", "areas.built_up", "valuation_lines")
    coop = rules.evaluate(
        contract(property={"property_type": "residential_flat", "is_coop_society": True}), bank_code="SBI"
    )
    assert coop.required_fields[-3:] == ("areas.carpet", "adopted_value", "legal.share_certificate_number")
    assert "valuation_lines" not in coop.required_fields
    assert dict(coop.evidence_requirements) == {
        "SITE_PHOTO": 4,
        "SALE_DEED": 1,
        "TAX_RECEIPT": 1,
        "LOCATION_MAP": 1,
        "SOCIETY_NOC": 1,
    }
    big_flat = rules.evaluate(valued("100", "600000", property={"property_type": "residential_flat"}), bank_code="SBI")
    assert big_flat.template.id == "SBI_5CR_AND_ABOVE_V1"
    assert {"legal.approved_plan_number", "legal.approving_authority"} <= set(big_flat.required_fields)
    assert dict(big_flat.evidence_requirements)["APPROVED_PLAN"] == 1
    big_plot = rules.evaluate(valued("100", "600000", property={"property_type": "plot"}), bank_code="SBI")
    assert "APPROVED_PLAN" not in dict(big_plot.evidence_requirements)
    assert "legal.approved_plan_number" not in big_plot.required_fields


def test_completeness_is_the_floor_of_present_over_required():
    # GENERIC for a flat: 8 required (see above); 5 present → 500 / 8 = 62.5 → 62
    e = rules.evaluate(
        valued(
            "50",
            "1000",
            parties={"borrower_name": "A", "owner_name": "B"},
            property={"address": "Pune", "property_type": "residential_flat"},
        ),
        bank_code="HDFC",
    )
    assert e.missing_fields == ("inspection.date", "inspection.inspector", "areas.carpet")
    assert e.completeness_score == 62
    assert {"parties.borrower_name", "valuation_lines", "property.property_type"} <= e.present_fields
    assert rules.outputs_json(e)["completeness_score"] == 62
    # nothing → 0; everything → 100; 7 of 8 → 87 (87.5 floored)
    assert rules.evaluate(contract(), bank_code="HDFC").completeness_score == 0
    done_data = {
        "valuation_lines": [{"description": "Flat", "area": {"value": "50", "unit": "sqm"}, "rate_per_sqm": "1000"}],
        "parties": {"borrower_name": "A", "owner_name": "B"},
        "property": {"address": "Pune", "property_type": "residential_flat"},
        "inspection": {"date": "2025-01-01", "inspector": "R"},
        "areas": {"carpet": {"value": "50", "unit": "sqm"}},
    }
    assert rules.evaluate(rules.parse_contract(done_data), bank_code="HDFC").completeness_score == 100
    seven = rules.merge_patch(done_data, {"inspection": {"inspector": None}})
    assert rules.evaluate(rules.parse_contract(seven), bank_code="HDFC").completeness_score == 87


def test_composite_fields_boundaries_need_all_sides_guideline_either_part():
    some = contract(
        property={"boundaries": {"north": "Road", "south": "Lane", "east": "Wall"}}, guideline={"value": "100"}
    )
    e = rules.evaluate(some, bank_code="SBI")
    assert "property.boundaries" in e.missing_fields and "guideline" not in e.missing_fields
    assert "property.boundaries.north" in e.present_fields and "property.boundaries.west" not in e.present_fields
    full = contract(
        property={"boundaries": {"north": "Road", "south": "Lane", "east": "Wall", "west": "Plot 7"}},
        guideline={"rate_per_sqm": "100"},
    )
    assert {"property.boundaries", "guideline"} <= rules.evaluate(full, bank_code="SBI").present_fields


def test_field_definitions_say_which_templates_require_each_field():
    defs = {d.key: d for d in rules.field_definitions()}
    assert set(defs) == set(rules.FIELDS)
    assert defs["parties.borrower_name"].required_by == ("SBI_UNDER_5CR_V1", "SBI_5CR_AND_ABOVE_V1", "GENERIC_BANK_V1")
    assert defs["legal.index_ii_number"].required_by == ("SBI_5CR_AND_ABOVE_V1",)
    assert defs["areas.carpet"].required_by == ()
    assert defs["areas.carpet"].conditionally_required_by == (
        "SBI_UNDER_5CR_V1",
        "SBI_5CR_AND_ABOVE_V1",
        "GENERIC_BANK_V1",
    )
    assert (defs["areas.carpet"].type, defs["areas.carpet"].unit, defs["areas.carpet"].evidence) == (
        "area",
        "sqft|sqm",
        True,
    )
    assert (defs["adopted_value"].type, defs["adopted_value"].unit) == ("money", "INR")
    assert defs["legal.sale_deed_date"].type == "date"
    assert defs["sections.notes"].required_by == () and not defs["sections.notes"].evidence


# -- the shapes handed to the proto ----------------------------------------------------------


def test_outputs_json_has_exactly_the_proto_outputs_fields_and_parses_into_it():
    e = rules.evaluate(
        valued(
            "100", "120000.50", areas={"carpet": {"value": "1076.39", "unit": "sqft"}}, guideline={"value": "20000000"}
        ),
        bank_code="SBI",
    )
    out = rules.outputs_json(e)
    assert list(out) == [f.name for f in pb.Outputs.DESCRIPTOR.fields]
    message = json_format.ParseDict(out, pb.Outputs())
    assert message.fair_market_value == 12000050
    assert message.areas["carpet"].sqm == "100.00"
    assert message.template_id == "SBI_UNDER_5CR_V1"
    assert message.rules_version == "1.0.0+registry.1" == rules.rules_version()
    assert [m.code for m in message.messages] == ["BELOW_GUIDELINE"]


def test_template_json_parses_into_the_proto_template():
    for t in rules.templates():
        message = json_format.ParseDict(rules.template_json(t), pb.Template())
        assert list(rules.template_json(t)) == [f.name for f in pb.Template.DESCRIPTOR.fields]
        assert message.id == t.id and list(message.required_fields) == list(t.required_fields)
        assert message.realisable_percent == "95" and message.distress_percent == "80"
        assert [(r.kind, r.min_count) for r in message.evidence_requirements] == list(t.evidence_requirements)
