"""Billing accounts: the `Account` value type (with its balance, a `wallet.Wallet`), what a
valid field value is, what an update may change, and which changes must carry a reason
(policy and status: they change how work is billed)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from .wallet import ACCOUNT_STATUSES, POLICIES, Wallet, invalid

UPDATABLE = ("display_name", "policy", "status", "gstin", "billing_address", "external_key")
# Changes that are audited with a mandatory reason.
REASON_REQUIRED = ("policy", "status")

EXTERNAL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,199}$")
# 2-digit state code, PAN (5 letters, 4 digits, 1 letter), entity number, 'Z', check character.
GSTIN = re.compile(r"^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$")
_GSTIN_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_NAME = 200
MAX_ADDRESS = 1000

ACCOUNT_CREATED = "ACCOUNT_CREATED"
ACCOUNT_UPDATED = "ACCOUNT_UPDATED"
POLICY_CHANGED = "POLICY_CHANGED"
STATUS_CHANGED = "STATUS_CHANGED"


@dataclass(frozen=True)
class Account:
    id: str
    tenant_id: str
    external_key: str
    display_name: str
    policy: str
    status: str
    gstin: str
    billing_address: str
    currency: str
    wallet: Wallet
    created_at: datetime
    updated_at: datetime
    version: int = 1


def clean_display_name(value: str, field: str = "display_name") -> str:
    value = " ".join((value or "").split())
    if not value:
        raise invalid(field, "must not be empty")
    if len(value) > MAX_NAME:
        raise invalid(field, f"must be at most {MAX_NAME} characters")
    return value


def clean_external_key(value: str, field: str = "external_key") -> str:
    """'' = none."""
    value = (value or "").strip()
    if value and not EXTERNAL_KEY.fullmatch(value):
        raise invalid(field, "must be 1-200 characters: letters, digits and _.:/@- (starting with a letter or digit)")
    return value


def gstin_check_character(first14: str) -> str:
    """The GSTIN check character (mod-36 checksum over the first 14 characters)."""
    total = 0
    for i, ch in enumerate(first14):
        product = _GSTIN_ALPHABET.index(ch) * (2 if i % 2 else 1)
        total += product // 36 + product % 36
    return _GSTIN_ALPHABET[(36 - total % 36) % 36]


def clean_gstin(value: str, field: str = "gstin") -> str:
    """'' = none; otherwise a 15-character GSTIN with a valid state code and check character."""
    value = (value or "").strip().upper()
    if not value:
        return ""
    if not GSTIN.fullmatch(value):
        raise invalid(field, "must be a 15-character GSTIN (e.g. 27AAPFU0939F1ZV)")
    state = int(value[:2])
    if not (1 <= state <= 38 or state in (97, 99)):
        raise invalid(field, f"has an unknown state code {value[:2]}")
    if gstin_check_character(value[:14]) != value[14]:
        raise invalid(field, "has a wrong check character (last character)")
    return value


def clean_address(value: str, field: str = "billing_address") -> str:
    value = (value or "").strip()
    if len(value) > MAX_ADDRESS:
        raise invalid(field, f"must be at most {MAX_ADDRESS} characters")
    return value


def check_policy(value: str, field: str = "policy") -> str:
    if value not in POLICIES:
        raise invalid(field, "must be one of " + "|".join(POLICIES))
    return value


def check_status(value: str, field: str = "status") -> str:
    if value not in ACCOUNT_STATUSES:
        raise invalid(field, "must be one of " + "|".join(ACCOUNT_STATUSES))
    return value


def check_update_mask(paths: list[str]) -> list[str]:
    if not paths:
        raise invalid("update_mask", "must name at least one field (" + ", ".join(UPDATABLE) + ")")
    for i, path in enumerate(paths):
        if path not in UPDATABLE:
            raise invalid(f"update_mask.paths[{i}]", f"{path!r} is not updatable (" + ", ".join(UPDATABLE) + ")")
    return list(dict.fromkeys(paths))


def clean_update(paths: list[str], values: dict[str, str]) -> dict[str, str]:
    """The new value of every field in `paths`, validated (field names as in the request:
    `account.<field>`)."""
    cleaners = {
        "display_name": clean_display_name,
        "policy": check_policy,
        "status": check_status,
        "gstin": clean_gstin,
        "billing_address": clean_address,
        "external_key": clean_external_key,
    }
    return {path: cleaners[path](values.get(path, ""), f"account.{path}") for path in paths}
