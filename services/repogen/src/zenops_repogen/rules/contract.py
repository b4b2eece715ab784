"""The contract: the typed report data of a work order, schema version 1.

A contract travels as JSON (decimals as strings) and is stored as entered; `parse_contract`
reads it into frozen dataclasses, checking every field and naming each bad one (all of them,
not the first) in a `ContractError`. A contract is built up patch by patch, so every field is
optional here: what a report *needs* is the template's business (required fields, readiness),
and what makes a value impossible to compute is the rules' (errors such as MISSING_RATE).
Only values that cannot be read are refused: a wrong type, an unknown key, a malformed or
out-of-range number, a JSON float.

Numbers are `Decimal`, given as strings ("1250.50") or JSON integers. A JSON number with a
fraction or an exponent has already been turned into a binary float by the JSON decoder, so
it is refused (with the field's name) rather than silently rounded. Strings are trimmed; an
empty string is "not given"; control characters other than newline and tab are refused
(PostgreSQL's jsonb cannot even store U+0000).

`merge_patch` is RFC 7396: objects merge recursively, `null` deletes, anything else (arrays
included) replaces.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, fields
from datetime import date
from decimal import Context, Decimal
from typing import Any

SCHEMA_VERSION = 1

PROPERTY_TYPES = (
    "residential_flat",
    "independent_house",
    "villa",
    "plot",
    "commercial_office",
    "shop",
    "industrial",
    "agricultural_land",
    "other",
)
AREA_NAMES = ("land", "carpet", "built_up", "super_built_up")
AREA_UNITS = ("sqft", "sqm")
SECTION_NAMES = ("justification", "enclosures", "checklist", "notes")
SIDES = ("north", "south", "east", "west")

# Bounds. Areas are in the unit entered (sqft or sqm); rates in rupees per square metre; money
# in rupees. With these limits a report's value stays far inside a signed 64-bit integer.
MAX_AREA = Decimal(100_000_000)  # 10,000 hectares
MAX_RATE = Decimal(100_000_000)  # ₹10 crore per sqm
MAX_AMOUNT = Decimal(10_000_000_000_000)  # ₹10 lakh crore
AREA_PLACES = 4
MONEY_PLACES = 2
MAX_LINES = 100
MAX_EXTRAS = 50
MAX_NUMBER_TEXT = 32
# Every rounding and arithmetic operation of the engine runs in this context, never the
# caller's (the default context has 28 digits and could be changed by anyone): 60 digits hold
# the largest product here (10^8 × 10^8 with 4 decimals) exactly.
DECIMAL_CONTEXT = Context(prec=60)
_QUANTUM = {places: Decimal(1).scaleb(-places, context=DECIMAL_CONTEXT) for places in (AREA_PLACES, MONEY_PLACES)}

_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_BANK_CODE = re.compile(r"[A-Z0-9]{2,20}")
_IFSC = re.compile(r"[A-Z]{4}0[A-Z0-9]{6}")


class ContractError(Exception):
    """The contract cannot be read. `violations`: (field path, message) for every bad field,
    paths like "areas.carpet.unit" or "valuation_lines[2].rate_per_sqm"."""

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        self.violations = list(violations)
        super().__init__("; ".join(f"{field}: {message}" for field, message in self.violations))


# -- the typed contract ----------------------------------------------------------------------


@dataclass(frozen=True)
class Area:
    value: Decimal
    unit: str  # sqft | sqm


@dataclass(frozen=True)
class Parties:
    bank_code: str | None = None
    branch_ifsc: str | None = None
    borrower_name: str | None = None
    owner_name: str | None = None


@dataclass(frozen=True)
class Boundaries:
    north: str | None = None
    south: str | None = None
    east: str | None = None
    west: str | None = None


@dataclass(frozen=True)
class Property:
    address: str | None = None
    property_type: str | None = None
    is_coop_society: bool | None = None
    ownership: str | None = None
    tenure: str | None = None
    occupancy: str | None = None
    boundaries: Boundaries = Boundaries()


@dataclass(frozen=True)
class Areas:
    land: Area | None = None
    carpet: Area | None = None
    built_up: Area | None = None
    super_built_up: Area | None = None


@dataclass(frozen=True)
class ValuationLine:
    description: str | None = None
    area: Area | None = None
    rate_per_sqm: Decimal | None = None


@dataclass(frozen=True)
class Extra:
    description: str | None = None
    amount: Decimal | None = None


@dataclass(frozen=True)
class Guideline:
    rate_per_sqm: Decimal | None = None
    value: Decimal | None = None


@dataclass(frozen=True)
class Inspection:
    date: date | None = None
    inspector: str | None = None
    remarks: str | None = None


@dataclass(frozen=True)
class Legal:
    """Document numbers (and the deed's date) a bank report quotes."""

    sale_deed_number: str | None = None
    sale_deed_date: date | None = None
    registration_office: str | None = None
    index_ii_number: str | None = None
    survey_number: str | None = None
    property_tax_number: str | None = None
    electricity_consumer_number: str | None = None
    approved_plan_number: str | None = None
    approving_authority: str | None = None
    occupancy_certificate_number: str | None = None
    society_registration_number: str | None = None
    share_certificate_number: str | None = None


@dataclass(frozen=True)
class Sections:
    justification: str | None = None
    enclosures: str | None = None
    checklist: str | None = None
    notes: str | None = None


@dataclass(frozen=True)
class Contract:
    schema_version: int = SCHEMA_VERSION
    parties: Parties = Parties()
    property: Property = Property()
    areas: Areas = Areas()
    valuation_lines: tuple[ValuationLine, ...] = ()
    extras: tuple[Extra, ...] = ()
    adopted_value: Decimal | None = None
    guideline: Guideline = Guideline()
    inspection: Inspection = Inspection()
    legal: Legal = Legal()
    sections: Sections = Sections()


def empty_contract() -> dict:
    """The contract of snapshot version 0: the shape with nothing filled in."""
    return {
        "schema_version": SCHEMA_VERSION,
        "parties": {},
        "property": {},
        "areas": {},
        "valuation_lines": [],
        "extras": [],
        "guideline": {},
        "inspection": {},
        "legal": {},
        "sections": {},
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch. Neither argument is modified; the result shares nothing with
    them. A non-object patch replaces the target whole (the service only accepts objects)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


# -- reading ---------------------------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Reader:
    """Reads values and collects every violation (so one error names every bad field)."""

    def __init__(self) -> None:
        self.violations: list[tuple[str, str]] = []

    def bad(self, path: str, message: str) -> None:
        self.violations.append((path, message))

    def object(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict:
        """An object with only `allowed` keys; {} when absent (null) or unreadable."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.bad(path, "must be an object")
            return {}
        for key in value:
            if key not in allowed:
                self.bad(_join(path, str(key)), "is not a field of the contract (known: " + ", ".join(allowed) + ")")
        return value

    def text(self, value: Any, path: str, max_length: int) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.bad(path, "must be a string")
            return None
        value = value.strip()
        if not value:
            return None
        if len(value) > max_length:
            self.bad(path, f"must be at most {max_length} characters")
            return None
        if any((ord(c) < 32 and c not in "\n\t") or c == "\x7f" for c in value):
            self.bad(path, "must not contain control characters (other than newline and tab)")
            return None
        return value

    def pattern(self, value: Any, path: str, regex: re.Pattern, description: str) -> str | None:
        value = self.text(value, path, 64)
        if value is None:
            return None
        value = value.upper()
        if not regex.fullmatch(value):
            self.bad(path, description)
            return None
        return value

    def choice(self, value: Any, path: str, allowed: tuple[str, ...]) -> str | None:
        value = self.text(value, path, 64)
        if value is None:
            return None
        value = value.lower()
        if value not in allowed:
            self.bad(path, "must be one of " + ", ".join(allowed))
            return None
        return value

    def boolean(self, value: Any, path: str) -> bool | None:
        if value is None or isinstance(value, bool):
            return value
        self.bad(path, "must be true or false")
        return None

    def day(self, value: Any, path: str) -> date | None:
        value = self.text(value, path, 10)
        if value is None:
            return None
        if not _DATE.fullmatch(value):
            self.bad(path, "must be a date written YYYY-MM-DD")
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.bad(path, "must be a real calendar date (YYYY-MM-DD)")
            return None

    def decimal(self, value: Any, path: str, *, places: int, maximum: Decimal, positive: bool) -> Decimal | None:
        """A non-negative (or, with `positive`, > 0) decimal from a string or a JSON integer."""
        if value is None:
            return None
        if isinstance(value, bool):
            self.bad(path, 'must be a number written as a string, e.g. "1250.50"')
            return None
        if isinstance(value, float):
            self.bad(
                path,
                'must be a decimal written as a string, e.g. "1250.50": a JSON number with a fraction '
                "or an exponent is read as a binary float and would lose exactness",
            )
            return None
        if isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, str):
            raw = value.strip()
            if not raw:
                return None
            if raw.startswith("-") and len(raw) <= MAX_NUMBER_TEXT and _DECIMAL.fullmatch(raw[1:]):
                self.bad(path, "must not be negative")
                return None
            if len(raw) > MAX_NUMBER_TEXT or not _DECIMAL.fullmatch(raw):
                self.bad(
                    path,
                    'must be a decimal number such as "1250.50" (digits and an optional point; '
                    "no commas, spaces, signs or exponents)",
                )
                return None
            number = Decimal(raw)
        else:
            self.bad(path, 'must be a number written as a string, e.g. "1250.50"')
            return None
        if number < 0:
            self.bad(path, "must not be negative")
            return None
        if positive and number == 0:
            self.bad(path, "must be greater than 0")
            return None
        if number > maximum:
            self.bad(path, f"must be at most {maximum}")
            return None
        if number != number.quantize(_QUANTUM[places], context=DECIMAL_CONTEXT):
            self.bad(path, f"must have at most {places} decimal places")
            return None
        return number

    def area(self, value: Any, path: str) -> Area | None:
        data = self.object(value, path, ("value", "unit"))
        if not data:
            return None
        number = self.decimal(
            data.get("value"), _join(path, "value"), places=AREA_PLACES, maximum=MAX_AREA, positive=True
        )
        unit = self.choice(data.get("unit"), _join(path, "unit"), AREA_UNITS)
        if _blank(data.get("value")):
            self.bad(_join(path, "value"), "is required (an area is a value and a unit)")
        if _blank(data.get("unit")):
            self.bad(_join(path, "unit"), "is required: sqft or sqm")
        if number is None or unit is None:
            return None
        return Area(value=number, unit=unit)

    def money(self, value: Any, path: str, *, positive: bool = False) -> Decimal | None:
        return self.decimal(value, path, places=MONEY_PLACES, maximum=MAX_AMOUNT, positive=positive)

    def rate(self, value: Any, path: str) -> Decimal | None:
        return self.decimal(value, path, places=MONEY_PLACES, maximum=MAX_RATE, positive=False)

    def array(self, value: Any, path: str, max_items: int) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            self.bad(path, "must be an array")
            return []
        if len(value) > max_items:
            self.bad(path, f"must have at most {max_items} items")
            return []
        return value


def _names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


_TOP = _names(Contract)


def parse_contract(data: Any) -> Contract:
    """The contract JSON (decoded: dicts, lists, strings, ints, bools, None) → a `Contract`.
    Raises `ContractError` naming every bad field."""
    r = _Reader()
    if not isinstance(data, dict):
        raise ContractError([("contract", "must be a JSON object")])
    top = r.object(data, "", _TOP)

    schema = top.get("schema_version")
    if schema is not None and (type(schema) is not int or schema != SCHEMA_VERSION):
        r.bad("schema_version", f"must be {SCHEMA_VERSION} (the only contract schema this engine reads)")

    p = r.object(top.get("parties"), "parties", _names(Parties))
    parties = Parties(
        bank_code=r.pattern(
            p.get("bank_code"), "parties.bank_code", _BANK_CODE, "must be 2 to 20 letters or digits, e.g. SBI"
        ),
        branch_ifsc=r.pattern(
            p.get("branch_ifsc"),
            "parties.branch_ifsc",
            _IFSC,
            "must be an IFSC: 4 letters, the digit 0, then 6 letters or digits (e.g. SBIN0001234)",
        ),
        borrower_name=r.text(p.get("borrower_name"), "parties.borrower_name", 300),
        owner_name=r.text(p.get("owner_name"), "parties.owner_name", 500),
    )

    q = r.object(top.get("property"), "property", _names(Property))
    b = r.object(q.get("boundaries"), "property.boundaries", SIDES)
    prop = Property(
        address=r.text(q.get("address"), "property.address", 1000),
        property_type=r.choice(q.get("property_type"), "property.property_type", PROPERTY_TYPES),
        is_coop_society=r.boolean(q.get("is_coop_society"), "property.is_coop_society"),
        ownership=r.text(q.get("ownership"), "property.ownership", 300),
        tenure=r.text(q.get("tenure"), "property.tenure", 300),
        occupancy=r.text(q.get("occupancy"), "property.occupancy", 300),
        boundaries=Boundaries(**{side: r.text(b.get(side), f"property.boundaries.{side}", 500) for side in SIDES}),
    )

    a = r.object(top.get("areas"), "areas", AREA_NAMES)
    areas = Areas(**{name: r.area(a.get(name), f"areas.{name}") for name in AREA_NAMES})

    lines = []
    for i, item in enumerate(r.array(top.get("valuation_lines"), "valuation_lines", MAX_LINES)):
        path = f"valuation_lines[{i}]"
        if not isinstance(item, dict):
            r.bad(path, "must be an object")
            continue
        r.object(item, path, _names(ValuationLine))
        lines.append(
            ValuationLine(
                description=r.text(item.get("description"), f"{path}.description", 500),
                area=r.area(item.get("area"), f"{path}.area"),
                rate_per_sqm=r.rate(item.get("rate_per_sqm"), f"{path}.rate_per_sqm"),
            )
        )

    extras = []
    for i, item in enumerate(r.array(top.get("extras"), "extras", MAX_EXTRAS)):
        path = f"extras[{i}]"
        if not isinstance(item, dict):
            r.bad(path, "must be an object")
            continue
        r.object(item, path, _names(Extra))
        extras.append(
            Extra(
                description=r.text(item.get("description"), f"{path}.description", 500),
                amount=r.money(item.get("amount"), f"{path}.amount"),
            )
        )

    g = r.object(top.get("guideline"), "guideline", _names(Guideline))
    guideline = Guideline(
        rate_per_sqm=r.rate(g.get("rate_per_sqm"), "guideline.rate_per_sqm"),
        value=r.money(g.get("value"), "guideline.value"),
    )

    n = r.object(top.get("inspection"), "inspection", _names(Inspection))
    inspection = Inspection(
        date=r.day(n.get("date"), "inspection.date"),
        inspector=r.text(n.get("inspector"), "inspection.inspector", 200),
        remarks=r.text(n.get("remarks"), "inspection.remarks", 4000),
    )

    legal_keys = _names(Legal)
    lg = r.object(top.get("legal"), "legal", legal_keys)
    legal = Legal(
        **{
            key: (
                r.day(lg.get(key), f"legal.{key}")
                if key.endswith("_date")
                else r.text(lg.get(key), f"legal.{key}", 200)
            )
            for key in legal_keys
        }
    )

    s = r.object(top.get("sections"), "sections", SECTION_NAMES)
    sections = Sections(**{name: r.text(s.get(name), f"sections.{name}", 20_000) for name in SECTION_NAMES})

    adopted = r.money(top.get("adopted_value"), "adopted_value", positive=True)

    if r.violations:
        raise ContractError(r.violations)
    return Contract(
        parties=parties,
        property=prop,
        areas=areas,
        valuation_lines=tuple(lines),
        extras=tuple(extras),
        adopted_value=adopted,
        guideline=guideline,
        inspection=inspection,
        legal=legal,
        sections=sections,
    )
