"""The template registry: versioned DATA, not code branches.

`REGISTRY` below is plain data (it could equally be a JSON file): the report templates, each
with its required fields, evidence profile and value percentages, and the selection table
that picks a template by bank, fair-market-value band and property type (first matching row
wins; the last row matches everything). Change the data, bump `version`; the code only
interprets it. The data is checked when the module loads (unknown field keys, evidence kinds,
template ids or impossible percentages fail at import, not in a report).

Requirements can depend on the contract: `conditional` entries add fields and evidence when a
field of the contract has one of the listed values (a flat needs its carpet area, a plot its
land area; a co-operative society property needs the adopted value and the society's NOC
instead of valuation lines). `Template.required_fields` and `evidence_requirements` are the
unconditional part; `effective_requirements(template, contract)` is what applies to one
contract (the engine reports it in `Evaluation.required_fields` / `.evidence_requirements`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from zenops_repogen.rules.contract import PROPERTY_TYPES, Contract
from zenops_repogen.rules.fields import FIELDS, value_of

EVIDENCE_KINDS = (
    "SALE_DEED",
    "INDEX_II",
    "TAX_RECEIPT",
    "ELECTRICITY_BILL",
    "APPROVED_PLAN",
    "SITE_PHOTO",
    "LOCATION_MAP",
    "SOCIETY_NOC",
    "OTHER",
)

FIVE_CRORE = 5_00_00_000

_UNITS = ["residential_flat", "commercial_office", "shop"]
_LAND = ["plot", "agricultural_land"]
_LAND_AND_BUILDING = ["independent_house", "villa", "industrial"]
_CONSTRUCTED = _UNITS + _LAND_AND_BUILDING

# Conditions every template shares: which area a property type is valued on, and the value
# basis (valuation lines, or for a co-operative society the adopted value and the society NOC).
_COMMON_CONDITIONS = [
    {"when": {"field": "property.property_type", "in": _UNITS}, "fields": ["areas.carpet"]},
    {"when": {"field": "property.property_type", "in": _LAND}, "fields": ["areas.land"]},
    {"when": {"field": "property.property_type", "in": _LAND_AND_BUILDING}, "fields": ["areas.land", "areas.built_up"]},
    {"when": {"field": "property.is_coop_society", "in": [False, None]}, "fields": ["valuation_lines"]},
    {
        "when": {"field": "property.is_coop_society", "in": [True]},
        "fields": ["adopted_value"],
        "evidence": [["SOCIETY_NOC", 1]],
    },
]

_SBI_FIELDS = [
    "parties.branch_ifsc",
    "parties.borrower_name",
    "parties.owner_name",
    "property.address",
    "property.property_type",
    "property.ownership",
    "property.tenure",
    "property.occupancy",
    "property.boundaries",
    "guideline",
    "inspection.date",
    "inspection.inspector",
    "legal.sale_deed_number",
]

REGISTRY: dict[str, Any] = {
    "version": "1",
    "templates": [
        {
            "id": "SBI_UNDER_5CR_V1",
            "version": 1,
            "bank_code": "SBI",
            "description": "State Bank of India valuation report, fair market value below ₹5 crore",
            "required_fields": _SBI_FIELDS,
            "evidence_profile": "SBI_STANDARD_V1",
            "evidence_requirements": [["SITE_PHOTO", 4], ["SALE_DEED", 1], ["TAX_RECEIPT", 1], ["LOCATION_MAP", 1]],
            "realisable_percent": "95",
            "distress_percent": "80",
            "conditional": [
                *_COMMON_CONDITIONS,
                {
                    "when": {"field": "property.is_coop_society", "in": [True]},
                    "fields": ["legal.share_certificate_number"],
                },
            ],
        },
        {
            "id": "SBI_5CR_AND_ABOVE_V1",
            "version": 1,
            "bank_code": "SBI",
            "description": "State Bank of India valuation report, fair market value ₹5 crore and above "
            "(fuller legal particulars, justification and evidence)",
            "required_fields": [
                *_SBI_FIELDS,
                "legal.sale_deed_date",
                "legal.registration_office",
                "legal.index_ii_number",
                "legal.survey_number",
                "legal.property_tax_number",
                "inspection.remarks",
                "sections.justification",
            ],
            "evidence_profile": "SBI_HIGH_VALUE_V1",
            "evidence_requirements": [
                ["SITE_PHOTO", 8],
                ["SALE_DEED", 1],
                ["INDEX_II", 1],
                ["TAX_RECEIPT", 1],
                ["ELECTRICITY_BILL", 1],
                ["LOCATION_MAP", 1],
            ],
            "realisable_percent": "95",
            "distress_percent": "80",
            "conditional": [
                *_COMMON_CONDITIONS,
                {
                    "when": {"field": "property.is_coop_society", "in": [True]},
                    "fields": ["legal.share_certificate_number", "legal.society_registration_number"],
                },
                {
                    "when": {"field": "property.property_type", "in": _CONSTRUCTED},
                    "fields": ["legal.approved_plan_number", "legal.approving_authority"],
                    "evidence": [["APPROVED_PLAN", 1]],
                },
            ],
        },
        {
            "id": "GENERIC_BANK_V1",
            "version": 1,
            "bank_code": "",  # any bank
            "description": "Valuation report for banks without a template of their own",
            "required_fields": [
                "parties.borrower_name",
                "parties.owner_name",
                "property.address",
                "property.property_type",
                "inspection.date",
                "inspection.inspector",
            ],
            "evidence_profile": "BANK_STANDARD_V1",
            "evidence_requirements": [["SITE_PHOTO", 4], ["SALE_DEED", 1]],
            "realisable_percent": "95",
            "distress_percent": "80",
            "conditional": [*_COMMON_CONDITIONS],
        },
    ],
    # First matching row wins. bank_codes / property_types: null = any. FMV band in whole
    # rupees: fmv_from ≤ FMV < fmv_below (null = unbounded).
    "selection": [
        {
            "bank_codes": ["SBI", "SBIN"],
            "property_types": None,
            "fmv_from": FIVE_CRORE,
            "fmv_below": None,
            "template": "SBI_5CR_AND_ABOVE_V1",
        },
        {
            "bank_codes": ["SBI", "SBIN"],
            "property_types": None,
            "fmv_from": 0,
            "fmv_below": FIVE_CRORE,
            "template": "SBI_UNDER_5CR_V1",
        },
        {"bank_codes": None, "property_types": None, "fmv_from": 0, "fmv_below": None, "template": "GENERIC_BANK_V1"},
    ],
}


class EvidenceRequirement(NamedTuple):
    kind: str
    min_count: int


@dataclass(frozen=True)
class Condition:
    """True when the contract's `field` holds one of `values`."""

    field: str
    values: tuple

    def holds(self, contract: Contract) -> bool:
        value = value_of(contract, self.field)
        return any(value is v if v is None or isinstance(v, bool) else value == v for v in self.values)


@dataclass(frozen=True)
class Conditional:
    when: Condition
    fields: tuple[str, ...]
    evidence: tuple[EvidenceRequirement, ...]


@dataclass(frozen=True)
class Template:
    id: str
    version: int
    bank_code: str  # "" = any bank
    description: str
    required_fields: tuple[str, ...]
    evidence_profile: str
    evidence_requirements: tuple[EvidenceRequirement, ...]
    realisable_percent: Decimal
    distress_percent: Decimal
    conditional: tuple[Conditional, ...] = ()


@dataclass(frozen=True)
class Selection:
    bank_codes: frozenset[str] | None
    property_types: frozenset[str] | None
    fmv_from: int
    fmv_below: int | None
    template: Template

    def matches(self, bank_code: str, property_type: str | None) -> bool:
        return (self.bank_codes is None or bank_code in self.bank_codes) and (
            self.property_types is None or property_type in self.property_types
        )

    def in_band(self, fair_market_value: int) -> bool:
        return self.fmv_from <= fair_market_value and (self.fmv_below is None or fair_market_value < self.fmv_below)


class RegistryError(ValueError):
    """The registry data is inconsistent (raised at import)."""


def _requirements(items, where: str) -> tuple[EvidenceRequirement, ...]:
    out = []
    for kind, count in items:
        if kind not in EVIDENCE_KINDS:
            raise RegistryError(f"{where}: unknown evidence kind {kind}")
        if not isinstance(count, int) or count < 1:
            raise RegistryError(f"{where}: the minimum count of {kind} must be a positive integer")
        out.append(EvidenceRequirement(kind, count))
    return tuple(out)


def _keys(items, where: str) -> tuple[str, ...]:
    for key in items:
        if key not in FIELDS:
            raise RegistryError(f"{where}: unknown field key {key}")
    if len(set(items)) != len(items):
        raise RegistryError(f"{where}: a field key is listed twice")
    return tuple(items)


def _load(data: dict) -> tuple[str, dict[str, Template], tuple[Selection, ...]]:
    found: dict[str, Template] = {}
    for t in data["templates"]:
        where = f"template {t['id']}"
        realisable, distress = Decimal(t["realisable_percent"]), Decimal(t["distress_percent"])
        if not (0 < distress <= realisable <= 100):
            raise RegistryError(f"{where}: percentages must satisfy 0 < distress ≤ realisable ≤ 100")
        conditional = []
        for c in t.get("conditional", []):
            field = c["when"]["field"]
            if field not in FIELDS:
                raise RegistryError(f"{where}: unknown condition field {field}")
            if field == "property.property_type" and not set(c["when"]["in"]) <= set(PROPERTY_TYPES):
                raise RegistryError(f"{where}: unknown property type in a condition")
            conditional.append(
                Conditional(
                    when=Condition(field, tuple(c["when"]["in"])),
                    fields=_keys(c.get("fields", []), where),
                    evidence=_requirements(c.get("evidence", []), where),
                )
            )
        found[t["id"]] = Template(
            id=t["id"],
            version=t["version"],
            bank_code=t["bank_code"],
            description=t["description"],
            required_fields=_keys(t["required_fields"], where),
            evidence_profile=t["evidence_profile"],
            evidence_requirements=_requirements(t["evidence_requirements"], where),
            realisable_percent=realisable,
            distress_percent=distress,
            conditional=tuple(conditional),
        )
    selection = []
    for row in data["selection"]:
        if row["template"] not in found:
            raise RegistryError(f"selection: unknown template {row['template']}")
        selection.append(
            Selection(
                bank_codes=None if row["bank_codes"] is None else frozenset(row["bank_codes"]),
                property_types=None if row["property_types"] is None else frozenset(row["property_types"]),
                fmv_from=row["fmv_from"],
                fmv_below=row["fmv_below"],
                template=found[row["template"]],
            )
        )
    last = selection[-1]
    if last.bank_codes is not None or last.property_types is not None or last.fmv_from != 0 or last.fmv_below:
        raise RegistryError("selection: the last row must match every contract")
    return data["version"], found, tuple(selection)


REGISTRY_VERSION, _TEMPLATES, SELECTION = _load(REGISTRY)


def templates() -> list[Template]:
    """Every template, in registry order."""
    return list(_TEMPLATES.values())


def template(template_id: str) -> Template | None:
    return _TEMPLATES.get(template_id)


def normalise_bank_code(bank_code: str | None) -> str:
    return (bank_code or "").strip().upper()


def same_bank(a: str | None, b: str | None) -> bool:
    """Two bank codes name one bank: equal, or aliases in one selection row (SBI / SBIN)."""
    a, b = normalise_bank_code(a), normalise_bank_code(b)
    return a == b or any(row.bank_codes is not None and {a, b} <= row.bank_codes for row in SELECTION)


def candidates(bank_code: str | None, property_type: str | None) -> list[Selection]:
    """The selection rows that apply to a bank and property type, in order (FMV not yet known)."""
    code = normalise_bank_code(bank_code)
    return [row for row in SELECTION if row.matches(code, property_type)]


def select_template(bank_code: str | None, fair_market_value: int, property_type: str | None = None) -> Template:
    """The template for a bank, FMV (whole rupees) and property type: the first matching row."""
    for row in candidates(bank_code, property_type):
        if row.in_band(fair_market_value):
            return row.template
    return SELECTION[-1].template


def effective_requirements(
    tmpl: Template, contract: Contract
) -> tuple[tuple[str, ...], tuple[EvidenceRequirement, ...]]:
    """The fields and evidence `tmpl` requires of this contract: its own, plus those of every
    conditional entry whose condition holds (fields in order, once; evidence: the largest
    minimum per kind, in order of first mention)."""
    fields = list(tmpl.required_fields)
    minimum: dict[str, int] = {}
    for req in tmpl.evidence_requirements:
        minimum[req.kind] = max(minimum.get(req.kind, 0), req.min_count)
    for c in tmpl.conditional:
        if c.when.holds(contract):
            fields.extend(k for k in c.fields if k not in fields)
            for req in c.evidence:
                minimum[req.kind] = max(minimum.get(req.kind, 0), req.min_count)
    return tuple(fields), tuple(EvidenceRequirement(k, n) for k, n in minimum.items())


@dataclass(frozen=True)
class FieldDefinition:
    """A canonical field and which templates require it (always, or when a condition holds)."""

    key: str
    type: str
    unit: str
    label: str
    evidence: bool
    required_by: tuple[str, ...]
    conditionally_required_by: tuple[str, ...]


def field_definitions() -> list[FieldDefinition]:
    out = []
    for key, d in FIELDS.items():
        always = tuple(t.id for t in _TEMPLATES.values() if key in t.required_fields)
        sometimes = tuple(
            t.id
            for t in _TEMPLATES.values()
            if key not in t.required_fields and any(key in c.fields for c in t.conditional)
        )
        out.append(
            FieldDefinition(
                key=key,
                type=d.type,
                unit=d.unit,
                label=d.label,
                evidence=d.evidence,
                required_by=always,
                conditionally_required_by=sometimes,
            )
        )
    return out


def template_json(tmpl: Template) -> dict[str, Any]:
    """JSON-ready, keys exactly zenops.repogen.v1.Template's field names (percentages as text).
    The conditional requirements have no place in the proto; `field_definitions()` lists them."""
    return {
        "id": tmpl.id,
        "version": tmpl.version,
        "bank_code": tmpl.bank_code,
        "description": tmpl.description,
        "required_fields": list(tmpl.required_fields),
        "evidence_profile": tmpl.evidence_profile,
        "evidence_requirements": [{"kind": r.kind, "min_count": r.min_count} for r in tmpl.evidence_requirements],
        "realisable_percent": str(tmpl.realisable_percent),
        "distress_percent": str(tmpl.distress_percent),
    }
