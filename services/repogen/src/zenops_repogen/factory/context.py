"""The report context: what a report template is filled with, built from a work order's
export bundle (pure: no I/O, Decimal only).

Every value arrives formatted as the report prints it — rupees in Indian digit grouping
(₹45,20,000) with the amounts in words the rules engine wrote, areas with their unit and in
both square feet and square metres, dates as "15 March 2025" — so the templates hold nothing
but loops and conditions. A value the contract does not hold prints as "—". The values are
the snapshot's stored outputs (what the valuer saw and readiness passed), never a
re-evaluation under a newer rules engine.

The keys (REPORT_CONTEXT) are the contract between this module and the templates made by
services/repogen/scripts/make_report_templates.py; the templates render with StrictUndefined,
so a key missing here fails the render instead of leaving a blank in a bank's report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from .. import rules
from ..domain.factory import decimal_rupees, rupees
from ..rules import fields as rule_fields
from ..rules import values as rule_values
from ..rules.contract import AREA_NAMES

IST = ZoneInfo("Asia/Kolkata")
NONE = "—"
_CENTS = Decimal("0.01")

REPORT_CONTEXT = (
    "report",
    "parties",
    "property",
    "areas",
    "lines",
    "extras",
    "values",
    "guideline",
    "inspection",
    "legal",
    "justification",
    "enclosures",
    "checklist",
    "notes",
    "annexures",
    "warnings",
)
SECTIONS = ("justification", "enclosures", "checklist", "notes")
AREA_LABELS = {
    "land": "Land area",
    "carpet": "Carpet area",
    "built_up": "Built-up area",
    "super_built_up": "Super built-up area",
}
KIND_LABELS = {
    "SALE_DEED": "Sale deed",
    "INDEX_II": "Index II",
    "TAX_RECEIPT": "Property tax receipt",
    "ELECTRICITY_BILL": "Electricity bill",
    "APPROVED_PLAN": "Approved plan",
    "SITE_PHOTO": "Site photograph",
    "LOCATION_MAP": "Location map",
    "SOCIETY_NOC": "Society NOC",
    "OTHER": "Other document",
}
UNIT_LABELS = {"sqft": "sq ft", "sqm": "sq m"}


def _text(value: Any) -> str:
    if value is None or value == "":
        return NONE
    return str(value)


def _day(value: date | None) -> str:
    return f"{value.day} {value:%B %Y}" if value else NONE


def _number(value: Decimal, places: int = 2) -> str:
    """Indian grouping with `places` decimals: Decimal("1234567.5") → "12,34,567.50"."""
    q = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    sign = "-" if q < 0 else ""
    whole, _, fraction = str(abs(q)).partition(".")
    return sign + rules.format_rupees(int(whole)) + (f".{fraction}" if fraction else "")


def _percent(value: Decimal) -> str:
    """Decimal("95.00") → "95"; Decimal("92.5") → "92.5"."""
    return format(value.normalize(), "f")


def _paragraphs(*texts: str | None) -> list[str]:
    """Free text as the paragraphs a report prints (blank lines dropped)."""
    out: list[str] = []
    for text in texts:
        if text:
            out.extend(line.strip() for line in text.splitlines() if line.strip())
    return out


def _humanise(value: str | None) -> str:
    return value.replace("_", " ").capitalize() if value else NONE


def _area_row(name: str, area: Mapping[str, Any]) -> dict:
    value, unit = Decimal(str(area["value"])), area["unit"]
    sqm = Decimal(str(area["sqm"])) if area.get("sqm") not in (None, "") else rule_values.to_sqm(value, unit)
    sqft = value if unit == "sqft" else (value / rule_values.SQM_PER_SQFT)
    return {
        "label": AREA_LABELS.get(name, _humanise(name)),
        "entered": f"{_number(value)} {UNIT_LABELS[unit]}",
        "sqft": _number(sqft),
        "sqm": _number(sqm),
    }


def report_context(
    *,
    work_order: Mapping[str, Any],
    snapshot_version: int,
    snapshot_created_at: datetime,
    contract: Mapping[str, Any],
    outputs: Mapping[str, Any],
    evidence: Sequence[Mapping[str, Any]],
    comments: Sequence[Mapping[str, Any]],
    template: rules.Template,
    bundle_sha256: str,
) -> dict:
    """The context of one report. `contract` and `outputs` are the snapshot's JSON (decimals as
    strings); `evidence` the live evidence in annexure order; `comments` oldest first."""
    c = rules.parse_contract(dict(contract))
    parties, prop = c.parties, c.property

    computed = outputs.get("areas") or {}
    areas = [_area_row(name, computed[name]) for name in AREA_NAMES if name in computed]
    lines = []
    for n, line in enumerate(c.valuation_lines, start=1):
        sqm = rule_values.to_sqm(line.area.value, line.area.unit) if line.area else None
        amount = (
            rule_values.line_amount(sqm, line.rate_per_sqm)
            if sqm is not None and line.rate_per_sqm is not None
            else None
        )
        lines.append(
            {
                "n": n,
                "description": _text(line.description),
                "area": f"{_number(line.area.value)} {UNIT_LABELS[line.area.unit]}" if line.area else NONE,
                "area_sqm": _number(sqm) if sqm is not None else NONE,
                "rate": decimal_rupees(str(line.rate_per_sqm)) if line.rate_per_sqm is not None else NONE,
                "amount": rupees(rule_values.round_rupees(amount)) if amount is not None else NONE,
            }
        )
    extras = [
        {
            "n": n,
            "description": _text(x.description),
            "amount": decimal_rupees(str(x.amount)) if x.amount is not None else NONE,
        }
        for n, x in enumerate(c.extras, start=1)
    ]

    fmv = int(outputs.get("fair_market_value") or 0)
    coop = prop.is_coop_society is True
    adopted = c.adopted_value
    values = {
        "fmv": rupees(fmv),
        "fmv_words": outputs.get("fair_market_value_in_words") or rules.amount_in_words(fmv),
        "realisable": rupees(int(outputs.get("realisable_value") or 0)),
        "realisable_words": outputs.get("realisable_value_in_words") or "",
        "distress": rupees(int(outputs.get("distress_value") or 0)),
        "distress_words": outputs.get("distress_value_in_words") or "",
        "realisable_percent": _percent(template.realisable_percent),
        "distress_percent": _percent(template.distress_percent),
        "coop": coop,
        "adopted": decimal_rupees(str(adopted)) if adopted is not None else NONE,
        "adopted_words": rules.amount_in_words(rule_values.round_rupees(adopted)) if adopted is not None else NONE,
    }

    guideline_value = int(outputs.get("guideline_value") or 0)
    below = bool(outputs.get("below_guideline"))
    guideline = {
        "present": guideline_value > 0 or c.guideline.rate_per_sqm is not None,
        "rate": decimal_rupees(str(c.guideline.rate_per_sqm)) if c.guideline.rate_per_sqm is not None else NONE,
        "value": rupees(guideline_value) if guideline_value else NONE,
        "below": below,
        "difference": rupees(guideline_value - fmv) if below else rupees(0),
        "comparison": (
            "below the guideline value" if below else "at or above the guideline value" if guideline_value else NONE
        ),
    }

    legal = []
    for f in fields(c.legal):
        value = getattr(c.legal, f.name)
        if value is not None and value != "":
            legal.append(
                {
                    "label": rule_fields.FIELDS[f"legal.{f.name}"].label,
                    "value": _day(value) if isinstance(value, date) else str(value),
                }
            )

    by_kind: dict[str, list[str]] = {kind: [] for kind in SECTIONS}
    for comment in comments:
        if comment.get("kind") in by_kind:
            by_kind[comment["kind"]].append(comment.get("body") or "")
    sections = {kind: _paragraphs(getattr(c.sections, kind), *by_kind[kind]) for kind in SECTIONS}

    annexures = [
        {
            "n": item.get("annexure_number") or n,
            "kind": KIND_LABELS.get(item.get("kind", ""), _humanise(item.get("kind"))),
            "caption": _text(item.get("caption")),
            "filename": _text(item.get("filename")),
        }
        for n, item in enumerate(evidence, start=1)
    ]

    boundaries = [
        {"side": side.capitalize(), "text": _text(getattr(prop.boundaries, side))}
        for side in ("north", "south", "east", "west")
    ]
    report_day = snapshot_created_at.astimezone(IST).date()
    return {
        "report": {
            "reference": work_order["id"],
            "work_order_id": work_order["id"],
            "assignment_id": work_order.get("assignment_id") or NONE,
            "snapshot_version": snapshot_version,
            "date": _day(report_day),
            "template_id": template.id,
            "template_version": template.version,
            "bundle_sha256": bundle_sha256,
            "bundle_sha256_short": bundle_sha256[:12],
            "rules_version": outputs.get("rules_version") or NONE,
            "place": "",
        },
        "parties": {
            "bank_code": _text(parties.bank_code or work_order.get("bank_code")),
            "branch_ifsc": _text(parties.branch_ifsc),
            "borrower_name": _text(parties.borrower_name),
            "owner_name": _text(parties.owner_name),
        },
        "property": {
            "address": ", ".join(_paragraphs(prop.address)) or NONE,
            "property_type": _humanise(prop.property_type),
            "coop": NONE if prop.is_coop_society is None else ("Yes" if prop.is_coop_society else "No"),
            "ownership": _text(prop.ownership),
            "tenure": _text(prop.tenure),
            "occupancy": _text(prop.occupancy),
            "boundaries": boundaries,
        },
        "areas": areas,
        "lines": lines,
        "extras": extras,
        "values": values,
        "guideline": guideline,
        "inspection": {
            "date": _day(c.inspection.date),
            "inspector": _text(c.inspection.inspector),
            "remarks": _paragraphs(c.inspection.remarks),
        },
        "legal": legal,
        **sections,
        "annexures": annexures,
        "warnings": [
            m.get("message") or m.get("code", "")
            for m in outputs.get("messages") or []
            if m.get("severity") == "WARNING"
        ],
    }


def from_bundle(bundle: Mapping[str, Any], bundle_sha256: str, template: rules.Template) -> dict:
    """The context of the report rendered from an export bundle (export.py's shape, decoded)."""
    snapshot = bundle["snapshot"]
    return report_context(
        work_order=bundle["work_order"],
        snapshot_version=int(snapshot["version"]),
        snapshot_created_at=datetime.fromisoformat(snapshot["created_at"]),
        contract=snapshot["contract"],
        outputs=snapshot["outputs"],
        evidence=bundle.get("evidence") or [],
        comments=bundle.get("comments") or [],
        template=template,
        bundle_sha256=bundle_sha256,
    )
