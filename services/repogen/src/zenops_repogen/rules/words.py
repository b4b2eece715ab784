"""Amounts in words in the Indian numbering system, as a bank report writes them:

    4520000     → "Rupees Forty-Five Lakh Twenty Thousand Only"
    999999999   → "Rupees Ninety-Nine Crore Ninety-Nine Lakh Ninety-Nine Thousand Nine Hundred Ninety-Nine Only"
    0           → "Rupees Zero Only"

Groups: crore (10^7), lakh (10^5), thousand, hundred, then the last two digits; tens are
hyphenated (Forty-Five); no "and". Above 99 crore the crore count is itself written in words
("Rupees One Lakh Crore Only" for 10^12): the usual reading of crores of crores.
"""

from __future__ import annotations

_UNITS = ("", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten", "Eleven", "Twelve",
          "Thirteen", "Fourteen", "Fifteen", "Sixteen", "Seventeen", "Eighteen", "Nineteen")
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


def amount_in_words(rupees: int) -> str:
    """Whole rupees (≥ 0) in words: "Rupees … Only"."""
    if isinstance(rupees, bool) or not isinstance(rupees, int):
        raise TypeError("rupees must be an int")
    if rupees < 0:
        raise ValueError("rupees must not be negative")
    if rupees == 0:
        return "Rupees Zero Only"
    return "Rupees " + " ".join(_words(rupees)) + " Only"


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
