"""GST on a service invoice (pure: no I/O, no float).

- A line's taxable value = quantity × unit price − discount, rounded half-up to the paisa.
- GST 18%: CGST 9% + SGST 9% when the place of supply is the supplier's state (intra-state),
  else IGST 18% (inter-state). Each tax is rounded half-up to the paisa per line (CGST and
  SGST each on its own).
- Place of supply for services on immovable property (valuation, SAC 997224) is the state
  where the property is; for a line with no property, the recipient's state (the state code
  of the recipient's GSTIN, else the invoice's place of supply).
- The invoice total is the exact sum of the lines rounded half-up to the rupee; the
  difference is the round-off (between −50 and +50 paise), shown on the invoice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

from zenops_kit.fields import invalid

DEFAULT_SAC = "997224"  # real-estate appraisal services
CGST_RATE = Decimal("0.09")
SGST_RATE = Decimal("0.09")
IGST_RATE = Decimal("0.18")
MAX_QUANTITY = Decimal("999999999.999")
MAX_PAISE = 10**13  # ₹1 lakh crore: far above any real line, below bigint and numeric(12,3) products

# The GST state code (a GSTIN's first two digits) → the state. 25 (Daman and Diu) and 26
# (Dadra and Nagar Haveli) merged in 2020; 28 is Andhra Pradesh's code before 2014.
GST_STATE_CODES: dict[str, str] = {
    "01": "JK",
    "02": "HP",
    "03": "PB",
    "04": "CH",
    "05": "UT",
    "06": "HR",
    "07": "DL",
    "08": "RJ",
    "09": "UP",
    "10": "BR",
    "11": "SK",
    "12": "AR",
    "13": "NL",
    "14": "MN",
    "15": "MZ",
    "16": "TR",
    "17": "ML",
    "18": "AS",
    "19": "WB",
    "20": "JH",
    "21": "OR",
    "22": "CT",
    "23": "MP",
    "24": "GJ",
    "25": "DH",
    "26": "DH",
    "27": "MH",
    "28": "AP",
    "29": "KA",
    "30": "GA",
    "31": "LD",
    "32": "KL",
    "33": "TN",
    "34": "PY",
    "35": "AN",
    "36": "TG",
    "37": "AP",
    "38": "LA",
}
_GSTIN = re.compile(r"[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]")
_SAC = re.compile(r"[0-9]{4,8}")
_PAISA = Decimal(1)


def state_of_gstin(value: str) -> str:
    """The state a GSTIN is registered in ('' when there is no (valid) GSTIN)."""
    return GST_STATE_CODES.get(value[:2], "") if value and _GSTIN.fullmatch(value) else ""


def sac(value: str, field: str) -> str:
    value = (value or "").strip()
    if not value:
        return DEFAULT_SAC
    if not _SAC.fullmatch(value):
        raise invalid(field, "must be a SAC code of 4 to 8 digits (default 997224)")
    return value


def quantity(value: str, field: str) -> Decimal:
    """Decimal text, > 0, at most 3 decimals ('' = 1)."""
    text = (value or "").strip()
    if not text:
        return Decimal(1)
    try:
        q = Decimal(text)
    except InvalidOperation:
        raise invalid(field, "must be a decimal number, e.g. 1 or 2.5") from None
    if not q.is_finite() or q <= 0 or q > MAX_QUANTITY:
        raise invalid(field, f"must be greater than 0 and at most {MAX_QUANTITY}")
    if q.as_tuple().exponent < -3:  # type: ignore[operator]
        raise invalid(field, "must have at most 3 decimals")
    return q


def quantity_text(q: Decimal) -> str:
    """1.000 → "1", 2.500 → "2.5"."""
    text = format(q.normalize(), "f")
    return text


def half_up(value: Decimal) -> int:
    with localcontext() as ctx:
        ctx.prec = 40
        return int(value.quantize(_PAISA, rounding=ROUND_HALF_UP))


def place_of_supply(*, line_override: str, property_state: str, recipient_state: str) -> str:
    """The line's place of supply: the request's override for the line, else the property's
    state, else the recipient's."""
    return line_override or property_state or recipient_state


def recipient_state(*, request_override: str, recipient_gstin: str, fallback: str) -> str:
    """The recipient's state: the request's override, else the GSTIN's state, else `fallback`
    (e.g. the supplier's state for an unregistered recipient in the same state)."""
    return request_override or state_of_gstin(recipient_gstin) or fallback


@dataclass(frozen=True)
class LineTax:
    taxable: int
    cgst: int
    sgst: int
    igst: int

    @property
    def tax(self) -> int:
        return self.cgst + self.sgst + self.igst

    @property
    def total(self) -> int:
        return self.taxable + self.tax


def taxable_value(qty: Decimal, unit_price_paise: int, discount_paise: int) -> int:
    """quantity × unit price − discount, half-up to the paisa (never below zero: refused)."""
    with localcontext() as ctx:
        ctx.prec = 40
        gross = qty * Decimal(unit_price_paise)
    return half_up(gross) - discount_paise


def tax(taxable: int, *, intra_state: bool) -> LineTax:
    with localcontext() as ctx:
        ctx.prec = 40
        base = Decimal(taxable)
        if intra_state:
            return LineTax(taxable, half_up(base * CGST_RATE), half_up(base * SGST_RATE), 0)
        return LineTax(taxable, 0, 0, half_up(base * IGST_RATE))


def line_tax(qty: Decimal, unit_price_paise: int, discount_paise: int, *, place: str, supplier_state: str) -> LineTax:
    return tax(taxable_value(qty, unit_price_paise, discount_paise), intra_state=place == supplier_state)


@dataclass(frozen=True)
class Totals:
    taxable: int
    cgst: int
    sgst: int
    igst: int
    # The rounded total minus the exact sum (−50..50).
    round_off: int
    total: int

    @property
    def exact(self) -> int:
        return self.taxable + self.cgst + self.sgst + self.igst


def round_to_rupee(paise: int) -> int:
    """Half-up to the rupee (amounts are never negative)."""
    rupees, rest = divmod(paise, 100)
    return (rupees + (1 if rest >= 50 else 0)) * 100


def totals(lines: list[LineTax]) -> Totals:
    taxable = sum(t.taxable for t in lines)
    cgst = sum(t.cgst for t in lines)
    sgst = sum(t.sgst for t in lines)
    igst = sum(t.igst for t in lines)
    exact = taxable + cgst + sgst + igst
    total = round_to_rupee(exact)
    return Totals(taxable, cgst, sgst, igst, total - exact, total)
