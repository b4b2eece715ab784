"""The arithmetic of a valuation: areas in square metres, the fair market value and its
realisable and distress fractions, the co-operative society inversion. Decimal throughout,
computed in a local context (so the caller's decimal context never changes a result) with
every rounding explicit.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from zenops_repogen.rules.contract import DECIMAL_CONTEXT, Area

SQM_PER_SQFT = Decimal("0.09290304")  # exact: 1 ft = 0.3048 m
HUNDRED = Decimal(100)
COOP_ROUNDING = 500  # rupees
_CENTS = Decimal("0.01")
_RUPEE = Decimal(1)
# Never the caller's context; enough digits that no product or sum here is ever rounded by it
# (the largest line is 10^8 × 10^8 with 4 decimals, ~21 digits; percentages divide by 100
# exactly). The only roundings are the explicit quantize calls below.
_CONTEXT = DECIMAL_CONTEXT


@dataclass(frozen=True)
class AreaValue:
    """An area as entered, and in square metres (2 decimals, half-up)."""

    value: Decimal
    unit: str
    sqm: Decimal


@dataclass(frozen=True)
class Values:
    """Whole rupees."""

    fair_market_value: int
    realisable_value: int
    distress_value: int


def to_sqm(value: Decimal, unit: str) -> Decimal:
    """Square metres, rounded half-up to 2 decimals: 1 sqft = 0.09290304 sqm exactly."""
    if unit == "sqm":
        exact = value
    elif unit == "sqft":
        exact = _CONTEXT.multiply(value, SQM_PER_SQFT)
    else:
        raise ValueError(f"unknown area unit {unit!r}")
    return exact.quantize(_CENTS, rounding=ROUND_HALF_UP, context=_CONTEXT)


def standardise(area: Area) -> AreaValue:
    return AreaValue(value=area.value, unit=area.unit, sqm=to_sqm(area.value, area.unit))


def line_amount(area_sqm: Decimal, rate_per_sqm: Decimal) -> Decimal:
    """area (sqm, 2 decimals) × rate (₹/sqm): exact, not rounded (the total is rounded once)."""
    return _CONTEXT.multiply(area_sqm, rate_per_sqm)


def total(amounts) -> Decimal:
    out = Decimal(0)
    for amount in amounts:
        out = _CONTEXT.add(out, amount)
    return out


def round_rupees(amount: Decimal) -> int:
    """Half-up to the whole rupee."""
    return int(amount.quantize(_RUPEE, rounding=ROUND_HALF_UP, context=_CONTEXT))


def percent_of(amount: int | Decimal, percent: Decimal) -> Decimal:
    """`percent` % of `amount`, exact."""
    return _CONTEXT.divide(_CONTEXT.multiply(Decimal(amount), percent), HUNDRED)


def round_up_to(amount: Decimal | Fraction, step: int) -> int:
    """The smallest multiple of `step` rupees ≥ `amount` (an exact multiple stays as it is)."""
    return -(-Fraction(amount) // step) * step


def market_values(exact_fmv: Decimal, realisable_percent: Decimal, distress_percent: Decimal) -> Values:
    """The ordinary case: FMV = the exact total rounded half-up to the rupee; realisable and
    distress = their percentages of that FMV, each rounded half-up to the rupee."""
    fmv = round_rupees(exact_fmv)
    return Values(
        fair_market_value=fmv,
        realisable_value=round_rupees(percent_of(fmv, realisable_percent)),
        distress_value=round_rupees(percent_of(fmv, distress_percent)),
    )


def coop_values(adopted_value: Decimal, realisable_percent: Decimal, distress_percent: Decimal) -> Values:
    """Co-operative society properties: the adopted/market inversion (ONE place to correct it).

    For a co-operative society property the valuer enters the *adopted* value (what the
    property would realise); the market value is derived by inverting the realisable ratio:

        FMV        = adopted / (realisable_percent / 100)        e.g. adopted / 0.95
        realisable = FMV × realisable_percent / 100             (= adopted, exactly)
        distress   = FMV × distress_percent / 100               e.g. FMV × 0.80

    each computed from the *exact* (unrounded) FMV — a rational number: adopted/0.95 has no
    finite decimal expansion, so this one function computes with `fractions.Fraction` (exact,
    never float) and a value a hair above a multiple of ₹500 cannot be an artefact of a
    truncated quotient — and then rounded UP to the next multiple of
    ₹500 (an exact multiple of ₹500 stays). Example, adopted ₹47,50,000 at 95/80: FMV
    ₹50,00,000, realisable ₹47,50,000, distress ₹40,00,000; adopted ₹10,00,000: FMV
    10,52,631.57… → ₹10,53,000, realisable ₹10,00,000, distress 8,42,105.26… → ₹8,42,500.

    This is our reading of the seeds' rule ("co-op adopted/market inversion", "co-op
    round-up-to-next-500"); if the firm reads it otherwise, this function is the whole change.
    """
    if realisable_percent <= 0:
        raise ValueError("realisable_percent must be greater than 0 to invert it")
    exact_fmv = Fraction(adopted_value) * 100 / Fraction(realisable_percent)
    return Values(
        fair_market_value=round_up_to(exact_fmv, COOP_ROUNDING),
        realisable_value=round_up_to(exact_fmv * Fraction(realisable_percent) / 100, COOP_ROUNDING),
        distress_value=round_up_to(exact_fmv * Fraction(distress_percent) / 100, COOP_ROUNDING),
    )
