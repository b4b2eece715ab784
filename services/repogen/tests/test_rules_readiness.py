"""Readiness: what blocks rendering (missing required fields, rules errors, evidence below its
minimum) and what only warns (unlinked evidence-backed fields, FMV below guideline, an old
inspection), and the score (share of requirement units met; 100 exactly when ready)."""

from __future__ import annotations

from datetime import date

import pytest
from google.protobuf import json_format

from zenops.repogen.v1 import repogen_pb2 as pb
from zenops_repogen import rules

TODAY = date(2025, 4, 30)

# SBI, a flat, not a co-op, FMV 92.90 sqm × 1,20,000 + 3,00,000 = ₹1,14,48,000 → SBI_UNDER_5CR_V1.
# Required: 13 of the template + areas.carpet (a flat) + valuation_lines (not a co-op) = 15;
# evidence: SITE_PHOTO 4, SALE_DEED 1, TAX_RECEIPT 1, LOCATION_MAP 1 = 7 units; + 1 for "no
# rules errors" → 23 units in all.
READY = {
    "parties": {
        "bank_code": "SBI",
        "branch_ifsc": "SBIN0001234",
        "borrower_name": "Asha Patil",
        "owner_name": "Asha Patil",
    },
    "property": {
        "address": "Flat 12, Shanti Apartments, Kothrud, Pune 411038",
        "property_type": "residential_flat",
        "is_coop_society": False,
        "ownership": "Sole",
        "tenure": "Freehold",
        "occupancy": "Owner occupied",
        "boundaries": {"north": "Road", "south": "Building B", "east": "Garden", "west": "Lane"},
    },
    "areas": {"carpet": {"value": "1000", "unit": "sqft"}},
    "valuation_lines": [{"description": "Flat", "area": {"value": "1000", "unit": "sqft"}, "rate_per_sqm": "120000"}],
    "extras": [{"description": "Covered car parking", "amount": "300000"}],
    "guideline": {"rate_per_sqm": "90000"},
    "inspection": {"date": "2025-03-01", "inspector": "R. Kulkarni"},
    "legal": {"sale_deed_number": "PNE/1234/2019"},
}
EVIDENCE = {"SITE_PHOTO": 4, "SALE_DEED": 1, "TAX_RECEIPT": 1, "LOCATION_MAP": 1}
LINKED = {
    "parties.owner_name",
    "property.address",
    "property.ownership",
    "property.tenure",
    "property.boundaries",
    "guideline.rate_per_sqm",
    "legal.sale_deed_number",
    "areas.carpet",
}


def check(patch=None, *, evidence=EVIDENCE, linked=LINKED, today=TODAY, bank="SBI", **kwargs) -> rules.Readiness:
    data = rules.merge_patch(READY, patch or {})
    e = rules.evaluate(rules.parse_contract(data), bank_code=bank)
    return rules.readiness(e, evidence_counts=evidence, linked_fields=linked, today=today, **kwargs)


def test_everything_in_is_ready_with_score_100():
    r = check()
    assert r.ready is True
    assert r.score == 100
    assert (r.missing_fields, r.missing_evidence, r.errors, r.warnings) == ((), (), (), ())


def test_evidence_below_its_minimum_blocks():
    r = check(evidence={"SITE_PHOTO": 2, "SALE_DEED": 3, "TAX_RECEIPT": 1, "LOCATION_MAP": 1, "OTHER": 9})
    assert r.ready is False
    assert r.missing_evidence == (rules.MissingEvidence("SITE_PHOTO", 4, 2),)
    # met: 15 fields + (2 + 1 + 1 + 1) evidence + 1 = 21 of 23 → 91 (91.3 floored); surplus doesn't count
    assert r.score == 91
    r = check(evidence={})
    assert r.missing_evidence == (
        ("SITE_PHOTO", 4, 0),
        ("SALE_DEED", 1, 0),
        ("TAX_RECEIPT", 1, 0),
        ("LOCATION_MAP", 1, 0),
    )
    assert r.score == 69  # 16 / 23 = 69.56


def test_a_missing_required_field_blocks():
    r = check({"parties": {"borrower_name": None}, "legal": {"sale_deed_number": None}})
    assert r.ready is False
    assert r.missing_fields == ("parties.borrower_name", "legal.sale_deed_number")
    assert r.score == 91  # 13 + 7 + 1 = 21 of 23
    assert r.errors == () and r.missing_evidence == ()


def test_a_rules_error_blocks():
    r = check(
        {
            "valuation_lines": [
                READY["valuation_lines"][0],
                {"description": "Terrace", "area": {"value": "10", "unit": "sqm"}},
            ]
        }
    )
    assert r.ready is False
    assert r.errors == ("MISSING_RATE valuation_lines[1].rate_per_sqm: the valuation line has no rate per sqm",)
    assert [(m.severity, m.code) for m in r.messages] == [("ERROR", "MISSING_RATE")]
    assert r.score == 95  # 15 + 7 + 0 = 22 of 23 → 95.6


def test_warnings_never_block():
    # FMV ₹1,14,48,000 below a guideline value of ₹1,50,00,000; inspected 120 days ago; no links
    r = check({"guideline": {"value": "15000000"}, "inspection": {"date": "2024-12-31"}}, linked=set())
    assert r.ready is True and r.score == 100
    codes = [(m.code, m.field) for m in r.messages]
    assert codes == [
        ("BELOW_GUIDELINE", "guideline.value"),
        ("INSPECTION_STALE", "inspection.date"),
        ("UNLINKED_FIELD", "parties.owner_name"),
        ("UNLINKED_FIELD", "property.address"),
        ("UNLINKED_FIELD", "property.ownership"),
        ("UNLINKED_FIELD", "property.tenure"),
        ("UNLINKED_FIELD", "property.boundaries"),
        ("UNLINKED_FIELD", "guideline"),
        ("UNLINKED_FIELD", "legal.sale_deed_number"),
        ("UNLINKED_FIELD", "areas.carpet"),
    ]
    assert r.warnings[0] == (
        "BELOW_GUIDELINE guideline.value: the fair market value ₹1,14,48,000 is below the "
        "guideline value ₹1,50,00,000: the report must justify it (sections.justification)"
    )
    assert (
        r.warnings[1] == "INSPECTION_STALE inspection.date: the inspection on 2024-12-31 is 120 days old (more than 90)"
    )
    assert r.warnings[2] == "UNLINKED_FIELD parties.owner_name: Owner has no evidence linked to it"


def test_a_link_to_a_part_of_a_field_counts_and_a_missing_field_is_not_also_unlinked():
    r = check(
        linked=(LINKED - {"areas.carpet", "property.boundaries"})
        | {"areas.carpet.value", "property.boundaries.north", "areas"}
    )
    assert [m.field for m in r.messages] == []
    r = check({"legal": {"sale_deed_number": None}}, linked=LINKED - {"legal.sale_deed_number"})
    assert r.missing_fields == ("legal.sale_deed_number",)
    assert [m.code for m in r.messages] == []
    only_parent = check(linked=(LINKED - {"areas.carpet"}) | {"areas"})
    assert [(m.code, m.field) for m in only_parent.messages] == [("UNLINKED_FIELD", "areas.carpet")]


@pytest.mark.parametrize(
    ("inspected", "max_age", "stale"),
    [
        ("2025-01-30", 90, False),  # exactly 90 days: not older than 90
        ("2025-01-29", 90, True),  # 91 days
        ("2025-04-30", 0, False),  # today
        ("2025-04-29", 0, True),
        ("2025-01-29", 91, False),
    ],
)
def test_inspection_age_against_today(inspected, max_age, stale):
    r = check({"inspection": {"date": inspected}}, inspection_max_age_days=max_age)
    assert r.ready is True
    assert any(m.code == "INSPECTION_STALE" for m in r.messages) is stale


def test_an_inspection_after_today_blocks():
    r = check({"inspection": {"date": "2025-05-01"}})
    assert r.ready is False
    assert r.errors == (
        "INSPECTION_IN_FUTURE inspection.date: the inspection date 2025-05-01 is after today (2025-04-30)",
    )
    assert r.score == 95


def test_coop_needs_the_society_noc():
    r = check(
        {
            "property": {"is_coop_society": True},
            "adopted_value": "4750000",
            "valuation_lines": None,
            "extras": None,
            "legal": {"share_certificate_number": "SC-17"},
        },
        linked=LINKED | {"legal.share_certificate_number"},
    )
    assert r.missing_evidence == (("SOCIETY_NOC", 1, 0),)
    assert not r.ready
    ok = check(
        {
            "property": {"is_coop_society": True},
            "adopted_value": "4750000",
            "valuation_lines": None,
            "extras": None,
            "legal": {"share_certificate_number": "SC-17"},
        },
        evidence={**EVIDENCE, "SOCIETY_NOC": 1},
        linked=LINKED | {"legal.share_certificate_number"},
    )
    assert ok.ready and ok.score == 100


def test_the_empty_contract_scores_zero():
    e = rules.evaluate(rules.parse_contract(rules.empty_contract()), bank_code="SBI")
    r = rules.readiness(e, evidence_counts={}, linked_fields=(), today=TODAY)
    assert r.ready is False and r.score == 0
    assert r.errors == (
        "NO_VALUATION_BASIS valuation_lines: there is nothing to value: add valuation lines "
        "(area × rate per sqm), or an adopted value",
    )
    assert len(r.missing_fields) == 14  # 13 of the template + valuation_lines (no property type yet)


def test_the_stricter_template_asks_for_more():
    big = {
        "valuation_lines": [
            {"description": "Flat", "area": {"value": "1000", "unit": "sqft"}, "rate_per_sqm": "600000"}
        ]
    }
    r = check(big)
    assert r.ready is False
    assert set(r.missing_fields) == {
        "legal.sale_deed_date",
        "legal.registration_office",
        "legal.index_ii_number",
        "legal.survey_number",
        "legal.property_tax_number",
        "inspection.remarks",
        "sections.justification",
        "legal.approved_plan_number",
        "legal.approving_authority",
    }
    assert {m.kind for m in r.missing_evidence} == {"SITE_PHOTO", "INDEX_II", "ELECTRICITY_BILL", "APPROVED_PLAN"}


def test_a_negative_max_age_is_refused():
    e = rules.evaluate(rules.parse_contract(READY), bank_code="SBI")
    with pytest.raises(ValueError):
        rules.readiness(e, evidence_counts=EVIDENCE, linked_fields=LINKED, today=TODAY, inspection_max_age_days=-1)


def test_readiness_json_has_the_proto_fields_and_parses_into_it():
    r = check(evidence={"SITE_PHOTO": 1}, linked=set())
    out = rules.readiness_json(r)
    assert list(out) == [f.name for f in pb.Readiness.DESCRIPTOR.fields if f.name != "evaluated_at"]
    message = json_format.ParseDict(out, pb.Readiness())
    assert message.ready is False and message.score == r.score
    assert [(m.kind, m.required, m.present) for m in message.missing_evidence] == [
        ("SITE_PHOTO", 4, 1),
        ("SALE_DEED", 1, 0),
        ("TAX_RECEIPT", 1, 0),
        ("LOCATION_MAP", 1, 0),
    ]
    assert list(message.warnings) == list(r.warnings)
