"""Canonical field keys: the names by which templates require contract data and evidence is
linked to it ("parties.borrower_name", "areas.carpet", ...), each with its type, unit, label
and whether documents back it (such a field, when required, should carry an evidence link).

A key is a dotted path into the `Contract`; `value_of` walks it. A field is *present* when it
holds something: a non-empty string, a number, a boolean, a date, an area, at least one list
item; a composite field is present when all (`boundaries`: every side) or any (`guideline`:
a rate or a value) of its parts are, as its definition says.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from zenops_repogen.rules.contract import AREA_NAMES, SECTION_NAMES, SIDES, Contract, Legal


@dataclass(frozen=True)
class FieldDef:
    key: str
    # text | choice | bool | date | area | money | rate | list | composite
    type: str
    # sqft|sqm (areas), INR (money), INR/sqm (rates), "" otherwise
    unit: str
    label: str
    # Documents back it: a required field of this kind without an evidence link is a warning.
    evidence: bool
    # Composite fields: present when "all" or "any" of their parts are.
    presence: str = ""


_LEGAL_LABELS = {
    "sale_deed_number": "Sale deed number",
    "sale_deed_date": "Sale deed date",
    "registration_office": "Sub-registrar office",
    "index_ii_number": "Index II number",
    "survey_number": "Survey / CTS number",
    "property_tax_number": "Property tax assessment number",
    "electricity_consumer_number": "Electricity consumer number",
    "approved_plan_number": "Approved plan number",
    "approving_authority": "Plan approving authority",
    "occupancy_certificate_number": "Occupancy certificate number",
    "society_registration_number": "Society registration number",
    "share_certificate_number": "Share certificate number",
}


def _defs() -> dict[str, FieldDef]:
    out: list[FieldDef] = [
        FieldDef("parties.bank_code", "text", "", "Bank", False),
        FieldDef("parties.branch_ifsc", "text", "", "Branch IFSC", False),
        FieldDef("parties.borrower_name", "text", "", "Borrower", False),
        FieldDef("parties.owner_name", "text", "", "Owner", True),
        FieldDef("property.address", "text", "", "Property address", True),
        FieldDef("property.property_type", "choice", "", "Property type", False),
        FieldDef("property.is_coop_society", "bool", "", "Co-operative society property", True),
        FieldDef("property.ownership", "text", "", "Ownership", True),
        FieldDef("property.tenure", "text", "", "Tenure", True),
        FieldDef("property.occupancy", "text", "", "Occupancy", False),
        FieldDef("property.boundaries", "composite", "", "Boundaries", True, presence="all"),
        *(FieldDef(f"property.boundaries.{side}", "text", "", f"Boundary ({side})", True) for side in SIDES),
        *(
            FieldDef(f"areas.{name}", "area", "sqft|sqm", f"{name.replace('_', ' ').capitalize()} area", True)
            for name in AREA_NAMES
        ),
        FieldDef("valuation_lines", "list", "", "Valuation lines (area × rate per sqm)", False),
        FieldDef("extras", "list", "", "Extras (amenities, car parking)", False),
        FieldDef("adopted_value", "money", "INR", "Adopted value (co-operative society)", False),
        FieldDef("guideline", "composite", "", "Guideline (circle) rate or value", True, presence="any"),
        FieldDef("guideline.rate_per_sqm", "rate", "INR/sqm", "Guideline rate", True),
        FieldDef("guideline.value", "money", "INR", "Guideline value", True),
        FieldDef("inspection.date", "date", "", "Date of inspection", False),
        FieldDef("inspection.inspector", "text", "", "Inspected by", False),
        FieldDef("inspection.remarks", "text", "", "Inspection remarks", False),
    ]
    for f in fields(Legal):
        out.append(
            FieldDef(f"legal.{f.name}", "date" if f.name.endswith("_date") else "text", "", _LEGAL_LABELS[f.name], True)
        )
    out.extend(FieldDef(f"sections.{name}", "text", "", name.capitalize(), False) for name in SECTION_NAMES)
    return {d.key: d for d in out}


FIELDS: dict[str, FieldDef] = _defs()


_PATHS: dict[str, tuple[str, ...]] = {key: tuple(key.split(".")) for key in FIELDS}


def value_of(contract: Contract, key: str) -> Any:
    value: Any = contract
    for part in _PATHS.get(key) or key.split("."):
        value = getattr(value, part)
    return value


def is_present(contract: Contract, key: str) -> bool:
    definition = FIELDS[key]
    value = value_of(contract, key)
    if definition.presence:
        parts = [getattr(value, f.name) is not None for f in fields(value)]
        return all(parts) if definition.presence == "all" else any(parts)
    if isinstance(value, tuple):
        return len(value) > 0
    return value is not None


def present_fields(contract: Contract) -> frozenset[str]:
    return frozenset(key for key in FIELDS if is_present(contract, key))
