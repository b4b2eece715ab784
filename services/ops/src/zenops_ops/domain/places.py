"""Indian identifiers and addresses (state codes: zenops_kit.india): PIN codes, IFSC, phone numbers,
e-mail addresses, property details. Each check names the field it was given."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from email_validator import EmailNotValidError, validate_email

from zenops_kit.fields import invalid, text
from zenops_kit.india import state

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

_PIN = re.compile(r"[1-9][0-9]{5}")
_IFSC = re.compile(r"[A-Z]{4}0[A-Z0-9]{6}")
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_INDIAN_MOBILE = re.compile(r"[6-9][0-9]{9}")


def pin_code(value: str, field: str) -> str:
    value = (value or "").strip()
    if not value:
        raise invalid(field, "is required")
    if not _PIN.fullmatch(value):
        raise invalid(field, "must be 6 digits, not starting with 0")
    return value


def ifsc(value: str, field: str) -> str:
    value = (value or "").strip().upper()
    if not value:
        raise invalid(field, "is required")
    if not _IFSC.fullmatch(value):
        raise invalid(field, "must be 4 letters, the digit 0, then 6 letters or digits (e.g. SBIN0001234)")
    return value


def phone(value: str, field: str, *, required: bool = False) -> str:
    """E.164. A 10-digit Indian mobile number (optionally with 0 or 91 in front) becomes +91…;
    spaces, dashes and brackets are ignored."""
    raw = (value or "").strip()
    if not raw:
        if required:
            raise invalid(field, "is required")
        return ""
    if len(raw) > 32:
        raise invalid(field, "must be at most 32 characters")
    digits = re.sub(r"[\s\-()]", "", raw)
    if _INDIAN_MOBILE.fullmatch(digits):
        return "+91" + digits
    if digits.startswith("0") and _INDIAN_MOBILE.fullmatch(digits[1:]):
        return "+91" + digits[1:]
    if digits.startswith("91") and len(digits) == 12 and _INDIAN_MOBILE.fullmatch(digits[2:]):
        return "+" + digits
    if _E164.fullmatch(digits):
        return digits
    raise invalid(field, "must be a phone number: 10 digits (Indian mobile) or +<country code><number>")


def email(value: str, field: str, *, required: bool = False) -> str:
    raw = (value or "").strip()
    if not raw:
        if required:
            raise invalid(field, "is required")
        return ""
    if len(raw) > 320:
        raise invalid(field, "must be at most 320 characters")
    try:
        checked = validate_email(raw, check_deliverability=False)
    except EmailNotValidError:
        raise invalid(field, "must be an e-mail address") from None
    return checked.normalized.lower()


def _coordinate(value: str, field: str, limit: int) -> Decimal:
    try:
        number = Decimal(value.strip())
    except (InvalidOperation, AttributeError):
        raise invalid(field, "must be a decimal number of degrees") from None
    if not number.is_finite() or abs(number) > limit:
        raise invalid(field, f"must be between -{limit} and {limit}")
    return number.quantize(Decimal("0.000001"))


@dataclass(frozen=True)
class PropertyDetails:
    address_line1: str
    address_line2: str
    locality: str
    city: str
    state: str
    pin_code: str
    property_type: str
    latitude: Decimal | None
    longitude: Decimal | None


def property_details(d, prefix: str) -> PropertyDetails:
    """A zenops.ops.v1.PropertyDetails checked; fields named `<prefix>.<name>`."""

    def f(name: str) -> str:
        return f"{prefix}.{name}" if prefix else name

    kind = (d.property_type or "").strip().lower()
    if not kind:
        raise invalid(f("property_type"), "is required")
    if kind not in PROPERTY_TYPES:
        raise invalid(f("property_type"), "must be one of " + ", ".join(PROPERTY_TYPES))
    latitude = longitude = None
    if d.latitude or d.longitude:
        if not (d.latitude and d.longitude):
            raise invalid(f("longitude" if d.latitude else "latitude"), "is required when the other coordinate is set")
        latitude = _coordinate(d.latitude, f("latitude"), 90)
        longitude = _coordinate(d.longitude, f("longitude"), 180)
    return PropertyDetails(
        address_line1=text(d.address_line1, f("address_line1"), max_length=200),
        address_line2=text(d.address_line2, f("address_line2"), max_length=200, required=False),
        locality=text(d.locality, f("locality"), max_length=100, required=False),
        city=text(d.city, f("city"), max_length=100),
        state=state(d.state, f("state")),
        pin_code=pin_code(d.pin_code, f("pin_code")),
        property_type=kind,
        latitude=latitude,
        longitude=longitude,
    )
