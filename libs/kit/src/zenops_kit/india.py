"""India's states and union territories: the two-letter codes every service stores for a
place (a property's state, a branch's, the GST place of supply), and their check."""

from __future__ import annotations

from .fields import invalid

# The two-letter codes of India's states and union territories (as vehicle registration
# and GST state names use them).
STATES: dict[str, str] = {
    "AN": "Andaman and Nicobar Islands",
    "AP": "Andhra Pradesh",
    "AR": "Arunachal Pradesh",
    "AS": "Assam",
    "BR": "Bihar",
    "CH": "Chandigarh",
    "CT": "Chhattisgarh",
    "DH": "Dadra and Nagar Haveli and Daman and Diu",
    "DL": "Delhi",
    "GA": "Goa",
    "GJ": "Gujarat",
    "HP": "Himachal Pradesh",
    "HR": "Haryana",
    "JH": "Jharkhand",
    "JK": "Jammu and Kashmir",
    "KA": "Karnataka",
    "KL": "Kerala",
    "LA": "Ladakh",
    "LD": "Lakshadweep",
    "MH": "Maharashtra",
    "ML": "Meghalaya",
    "MN": "Manipur",
    "MP": "Madhya Pradesh",
    "MZ": "Mizoram",
    "NL": "Nagaland",
    "OR": "Odisha",
    "PB": "Punjab",
    "PY": "Puducherry",
    "RJ": "Rajasthan",
    "SK": "Sikkim",
    "TG": "Telangana",
    "TN": "Tamil Nadu",
    "TR": "Tripura",
    "UP": "Uttar Pradesh",
    "UT": "Uttarakhand",
    "WB": "West Bengal",
}


def state(value: str, field: str, *, required: bool = True) -> str:
    """A state code (upper-cased) naming `field` when it is not one; '' when optional and empty."""
    value = (value or "").strip().upper()
    if not value:
        if required:
            raise invalid(field, "is required")
        return ""
    if value not in STATES:
        raise invalid(field, "must be an Indian state or union territory code, e.g. MH, KA, DL")
    return value
