"""Money as an Indian firm writes it (standard library only; no I/O, no float): amounts in
words in the Indian numbering system and Indian digit grouping.

    amount_in_words(4520000)          → "Rupees Forty-Five Lakh Twenty Thousand Only"
    amount_in_words(999999999)        → "Rupees Ninety-Nine Crore Ninety-Nine Lakh Ninety-Nine Thousand Nine
                                         Hundred Ninety-Nine Only"
    amount_in_words(0)                → "Rupees Zero Only"
    paise_in_words(1180050)           → "Rupees Eleven Thousand Eight Hundred and Fifty Paise Only"
    format_rupees(4520000)            → "45,20,000"
    format_paise(1180050)             → "11,800.50"

Groups: crore (10^7), lakh (10^5), thousand, hundred, then the last two digits; tens are
hyphenated (Forty-Five); no "and" inside a number. Above 99 crore the crore count is itself
written in words ("Rupees One Lakh Crore Only" for 10^12): the usual reading of crores of crores.
"""

from __future__ import annotations

_UNITS = (
    "",
    "One",
    "Two",
    "Three",
    "Four",
    "Five",
    "Six",
    "Seven",
    "Eight",
    "Nine",
    "Ten",
    "Eleven",
    "Twelve",
    "Thirteen",
    "Fourteen",
    "Fifteen",
    "Sixteen",
    "Seventeen",
    "Eighteen",
    "Nineteen",
)
_TENS = ("", "", "Twenty", "Thirty", "Forty", "Fifty", "Sixty", "Seventy", "Eighty", "Ninety")
CRORE = 10_000_000
LAKH = 100_000


def _below_hundred(n: int) -> str:
    if n < 20:
        return _UNITS[n]
    tens, units = divmod(n, 10)
    return _TENS[tens] + (f"-{_UNITS[units]}" if units else "")


def _words(n: int) -> list[str]:
    """n ≥ 1 → its words."""
    parts: list[str] = []
    crores, rest = divmod(n, CRORE)
    if crores:
        parts += [*_words(crores), "Crore"]
    lakhs, rest = divmod(rest, LAKH)
    if lakhs:
        parts += [_below_hundred(lakhs), "Lakh"]
    thousands, rest = divmod(rest, 1000)
    if thousands:
        parts += [_below_hundred(thousands), "Thousand"]
    hundreds, rest = divmod(rest, 100)
    if hundreds:
        parts += [_UNITS[hundreds], "Hundred"]
    if rest:
        parts.append(_below_hundred(rest))
    return parts


def _check_whole(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int")
    if value < 0:
        raise ValueError(f"{name} must not be negative")


def amount_in_words(rupees: int) -> str:
    """Whole rupees (≥ 0) in words: "Rupees … Only"."""
    _check_whole(rupees, "rupees")
    if rupees == 0:
        return "Rupees Zero Only"
    return "Rupees " + " ".join(_words(rupees)) + " Only"


def paise_in_words(paise: int) -> str:
    """An amount in paise (≥ 0) in words: "Rupees … Only" when it is whole rupees, else
    "Rupees … and … Paise Only" ("Rupees Zero and Fifty Paise Only" for 50)."""
    _check_whole(paise, "paise")
    rupees, rest = divmod(paise, 100)
    if rest == 0:
        return amount_in_words(rupees)
    head = " ".join(_words(rupees)) if rupees else "Zero"
    return f"Rupees {head} and {_below_hundred(rest)} Paise Only"


def format_rupees(rupees: int) -> str:
    """Whole rupees with Indian digit grouping: 4520000 → "45,20,000"."""
    sign, digits = ("-", str(-rupees)) if rupees < 0 else ("", str(rupees))
    if len(digits) <= 3:
        return sign + digits
    head, tail = digits[:-3], digits[-3:]
    groups = []
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    if head:
        groups.insert(0, head)
    return sign + ",".join([*groups, tail])


def format_paise(paise: int) -> str:
    """Paise as rupees with Indian grouping and two decimals: 1180050 → "11,800.50"."""
    sign, value = ("-", -paise) if paise < 0 else ("", paise)
    rupees, rest = divmod(value, 100)
    return f"{sign}{format_rupees(rupees)}.{rest:02d}"
