"""The evaluation: a `Contract` (and the work order's bank) → the outputs and the messages.

Order of work, each step a rule of the spec:
1. areas: each converted to square metres (values.to_sqm), the entered value kept beside it;
2. valuation lines: amount = area in sqm (2 decimals) × rate per sqm, exact; a line without an
   area, a rate or a description is an ERROR (MISSING_AREA, MISSING_RATE, MISSING_DESCRIPTION),
   an extra without an amount too (MISSING_AMOUNT);
3. the value basis:
   - a co-operative society property (`property.is_coop_society` true): the adopted value,
     inverted by `values.coop_values` (₹500 round-up); without it → ERROR MISSING_ADOPTED_VALUE;
     lines and extras are then shown but not added (WARNING COOP_LINES_NOT_USED);
   - otherwise the valuation lines: FMV = Σ line amounts + Σ extras, half-up to the rupee
     (`values.market_values`); an adopted value beside lines is unused (WARNING
     ADOPTED_VALUE_UNUSED); with no lines, an adopted value is a lump-sum valuation
     (FMV = adopted + extras); with neither → ERROR NO_VALUATION_BASIS;
4. the template: the override, else the registry's selection by bank, property type and FMV
   band (the band is tested on the FMV computed with that row's template percentages, as the
   co-op inversion depends on them);
5. realisable and distress values: the template's percentages (values.market_values);
6. guideline comparison: guideline value = the given value, else rate × the property type's
   relevant area (GUIDELINE_AREAS), half-up to the rupee; FMV below it → WARNING BELOW_GUIDELINE;
7. amounts in words; required fields present/missing; completeness = ⌊100 × present ÷ required⌋.

Same input, same output: no clock, no randomness, no I/O, no floats; messages in a fixed order.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from zenops_kit.money import amount_in_words, format_rupees
from zenops_repogen.rules import registry, values
from zenops_repogen.rules.contract import AREA_NAMES, Contract
from zenops_repogen.rules.fields import present_fields
from zenops_repogen.rules.registry import EvidenceRequirement, Template
from zenops_repogen.rules.values import AreaValue, Values

RULES_VERSION = "1.0.0"
ERROR = "ERROR"
WARNING = "WARNING"

# The area a guideline (circle) rate applies to, by property type: the first one present.
GUIDELINE_AREAS: dict[str | None, tuple[str, ...]] = {
    "residential_flat": ("carpet", "built_up", "super_built_up"),
    "commercial_office": ("carpet", "built_up", "super_built_up"),
    "shop": ("carpet", "built_up", "super_built_up"),
    "plot": ("land",),
    "agricultural_land": ("land",),
    "independent_house": ("built_up", "land"),
    "villa": ("built_up", "land"),
    "industrial": ("built_up", "land"),
    "other": ("carpet", "built_up", "super_built_up", "land"),
    None: ("carpet", "built_up", "super_built_up", "land"),
}


@dataclass(frozen=True)
class RuleMessage:
    severity: str  # ERROR | WARNING
    code: str
    field: str  # canonical key or path ("valuation_lines[0].rate_per_sqm"); "" if none
    message: str

    def text(self) -> str:
        """One line: "CODE field: message"."""
        return f"{self.code} {self.field}: {self.message}" if self.field else f"{self.code}: {self.message}"


@dataclass(frozen=True)
class LineValue:
    description: str | None
    area: AreaValue | None
    rate_per_sqm: Decimal | None
    amount: Decimal | None  # exact (area sqm × rate), None when the line lacks either


@dataclass(frozen=True)
class Evaluation:
    fair_market_value: int
    realisable_value: int
    distress_value: int
    fair_market_value_in_words: str
    realisable_value_in_words: str
    distress_value_in_words: str
    template: Template
    completeness_score: int
    areas: dict[str, AreaValue]
    guideline_value: int | None
    below_guideline: bool
    messages: tuple[RuleMessage, ...]
    missing_fields: tuple[str, ...]
    present_fields: frozenset[str]
    # -- beyond the shared interface: what the renderer and readiness use ------------------
    # The template's requirements as they apply to this contract (registry conditions applied).
    required_fields: tuple[str, ...]
    evidence_requirements: tuple[EvidenceRequirement, ...]
    # lines | adopted (lump sum) | coop_adopted | none
    basis: str
    lines: tuple[LineValue, ...]
    lines_total: Decimal
    extras_total: Decimal
    # The area the guideline rate was applied to (None when a value was given or none applies).
    guideline_area: str | None
    bank_code: str
    contract: Contract

    @property
    def errors(self) -> tuple[RuleMessage, ...]:
        return tuple(m for m in self.messages if m.severity == ERROR)

    @property
    def warnings(self) -> tuple[RuleMessage, ...]:
        return tuple(m for m in self.messages if m.severity == WARNING)


def _rupees(n: int) -> str:
    return "₹" + format_rupees(n)


def evaluate(contract: Contract, *, bank_code: str, template_override: str | None = None) -> Evaluation:
    """Runs every rule on `contract` for the work order's bank. `template_override` must name a
    template of the registry (ValueError otherwise: the service checks it with `template()`)."""
    override = None
    if template_override:
        override = registry.template(template_override)
        if override is None:
            raise ValueError(f"unknown template {template_override!r}")
    bank = registry.normalise_bank_code(bank_code)
    msgs: list[RuleMessage] = []

    def say(severity: str, code: str, field: str, message: str) -> None:
        msgs.append(RuleMessage(severity, code, field, message))

    # 1. areas
    areas = {
        name: values.standardise(area) for name in AREA_NAMES if (area := getattr(contract.areas, name)) is not None
    }

    # 2. lines and extras
    lines = []
    for i, line in enumerate(contract.valuation_lines):
        path = f"valuation_lines[{i}]"
        area = values.standardise(line.area) if line.area is not None else None
        if line.description is None:
            say(ERROR, "MISSING_DESCRIPTION", f"{path}.description", "the valuation line has no description")
        if area is None:
            say(ERROR, "MISSING_AREA", f"{path}.area", "the valuation line has no area")
        if line.rate_per_sqm is None:
            say(ERROR, "MISSING_RATE", f"{path}.rate_per_sqm", "the valuation line has no rate per sqm")
        elif line.rate_per_sqm == 0:
            say(WARNING, "ZERO_RATE", f"{path}.rate_per_sqm", "the valuation line's rate is 0: it adds nothing")
        amount = (
            values.line_amount(area.sqm, line.rate_per_sqm)
            if area is not None and line.rate_per_sqm is not None
            else None
        )
        lines.append(LineValue(line.description, area, line.rate_per_sqm, amount))
    for i, extra in enumerate(contract.extras):
        if extra.description is None:
            say(ERROR, "MISSING_DESCRIPTION", f"extras[{i}].description", "the extra has no description")
        if extra.amount is None:
            say(ERROR, "MISSING_AMOUNT", f"extras[{i}].amount", "the extra has no amount")
    lines_total = values.total(line.amount for line in lines if line.amount is not None)
    extras_total = values.total(extra.amount for extra in contract.extras if extra.amount is not None)

    # 3. the value basis
    adopted = contract.adopted_value
    if contract.property.is_coop_society:
        if adopted is None:
            basis = "none"
            say(
                ERROR,
                "MISSING_ADOPTED_VALUE",
                "adopted_value",
                "a co-operative society property is valued from its adopted value: enter adopted_value",
            )
        else:
            basis = "coop_adopted"
            if contract.valuation_lines or contract.extras:
                say(
                    WARNING,
                    "COOP_LINES_NOT_USED",
                    "valuation_lines" if contract.valuation_lines else "extras",
                    "a co-operative society property's value comes from adopted_value; valuation lines and "
                    "extras are shown but not added",
                )
    elif contract.valuation_lines:
        basis = "lines"
        if adopted is not None:
            say(
                WARNING,
                "ADOPTED_VALUE_UNUSED",
                "adopted_value",
                "the value comes from the valuation lines; adopted_value is used only for co-operative society "
                "properties or when there are no lines",
            )
    elif adopted is not None:
        basis = "adopted"
    else:
        basis = "none"
        say(
            ERROR,
            "NO_VALUATION_BASIS",
            "valuation_lines",
            "there is nothing to value: add valuation lines (area × rate per sqm), or an adopted value",
        )

    def compute(tmpl: Template) -> Values:
        if basis == "coop_adopted":
            return values.coop_values(adopted, tmpl.realisable_percent, tmpl.distress_percent)
        if basis == "lines":
            return values.market_values(
                values.total((lines_total, extras_total)), tmpl.realisable_percent, tmpl.distress_percent
            )
        if basis == "adopted":
            return values.market_values(
                values.total((adopted, extras_total)), tmpl.realisable_percent, tmpl.distress_percent
            )
        return Values(0, 0, 0)

    # 4–5. the template and the values
    if override is not None:
        chosen, result = override, compute(override)
    else:
        chosen = result = None
        for row in registry.candidates(bank, contract.property.property_type):
            result = compute(row.template)
            if row.in_band(result.fair_market_value):
                chosen = row.template
                break
        if chosen is None:  # unreachable with a registry whose last row matches everything
            chosen = registry.SELECTION[-1].template
            result = compute(chosen)

    # 6. guideline
    guideline_value, guideline_area = _guideline(contract, areas)
    if contract.guideline.value is None and contract.guideline.rate_per_sqm is not None and guideline_area is None:
        say(
            WARNING,
            "GUIDELINE_AREA_MISSING",
            "guideline.rate_per_sqm",
            "a guideline rate is given but the property has no area it applies to ("
            + ", ".join(f"areas.{a}" for a in GUIDELINE_AREAS.get(contract.property.property_type, ()))
            + ")",
        )
    below = basis != "none" and guideline_value is not None and result.fair_market_value < guideline_value
    if below:
        say(
            WARNING,
            "BELOW_GUIDELINE",
            "guideline.value" if contract.guideline.value is not None else "guideline.rate_per_sqm",
            f"the fair market value {_rupees(result.fair_market_value)} is below the guideline value "
            f"{_rupees(guideline_value)}: the report must justify it (sections.justification)",
        )

    if contract.parties.bank_code and bank and not registry.same_bank(contract.parties.bank_code, bank):
        say(
            WARNING,
            "BANK_MISMATCH",
            "parties.bank_code",
            f"the contract names bank {contract.parties.bank_code} but the work order is for {bank}",
        )

    # 7. fields and completeness
    required, evidence = registry.effective_requirements(chosen, contract)
    present = present_fields(contract)
    missing = tuple(key for key in required if key not in present)
    completeness = (len(required) - len(missing)) * 100 // len(required) if required else 100

    return Evaluation(
        fair_market_value=result.fair_market_value,
        realisable_value=result.realisable_value,
        distress_value=result.distress_value,
        fair_market_value_in_words=amount_in_words(result.fair_market_value),
        realisable_value_in_words=amount_in_words(result.realisable_value),
        distress_value_in_words=amount_in_words(result.distress_value),
        template=chosen,
        completeness_score=completeness,
        areas=areas,
        guideline_value=guideline_value,
        below_guideline=below,
        messages=tuple(msgs),
        missing_fields=missing,
        present_fields=present,
        required_fields=required,
        evidence_requirements=evidence,
        basis=basis,
        lines=tuple(lines),
        lines_total=lines_total,
        extras_total=extras_total,
        guideline_area=guideline_area,
        bank_code=bank,
        contract=contract,
    )


def _guideline(contract: Contract, areas: dict[str, AreaValue]) -> tuple[int | None, str | None]:
    """(guideline value in rupees or None, the area the rate was applied to or None)."""
    if contract.guideline.value is not None:
        return values.round_rupees(contract.guideline.value), None
    rate = contract.guideline.rate_per_sqm
    if rate is None:
        return None, None
    for name in GUIDELINE_AREAS.get(contract.property.property_type, GUIDELINE_AREAS[None]):
        if name in areas:
            return values.round_rupees(values.line_amount(areas[name].sqm, rate)), name
    return None, None


def rules_version() -> str:
    """The engine and registry versions, as the outputs record them."""
    return f"{RULES_VERSION}+registry.{registry.REGISTRY_VERSION}"


def outputs_json(evaluation: Evaluation) -> dict[str, Any]:
    """The outputs as JSON-ready data, keys exactly zenops.repogen.v1.Outputs' field names
    (money as integers, decimals as strings; no guideline value → 0)."""
    e = evaluation
    return {
        "fair_market_value": e.fair_market_value,
        "realisable_value": e.realisable_value,
        "distress_value": e.distress_value,
        "fair_market_value_in_words": e.fair_market_value_in_words,
        "realisable_value_in_words": e.realisable_value_in_words,
        "distress_value_in_words": e.distress_value_in_words,
        "template_id": e.template.id,
        "completeness_score": e.completeness_score,
        "areas": {name: {"value": str(a.value), "unit": a.unit, "sqm": str(a.sqm)} for name, a in e.areas.items()},
        "guideline_value": e.guideline_value or 0,
        "below_guideline": e.below_guideline,
        "messages": [
            {"severity": m.severity, "code": m.code, "field": m.field, "message": m.message} for m in e.messages
        ],
        "rules_version": rules_version(),
    }
