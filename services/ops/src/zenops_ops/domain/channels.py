"""Channels: the firm's partners (agents, advocates, builders) whose portal users submit
requests. Pure rules: what a valid channel is, what UpdateChannel may change, and the shape
the store hands back.

Commission is an integer: basis points of the fee for PERCENT (250 = 2.5%, at most 10000),
paise per assignment for FLAT. `default_credits` is what an accepted request costs when it
names none; 0 in a request means "the default", 1.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime

from zenops_kit.fields import invalid, optional_uuid, parse_uuid, text

CHANNEL_TYPES = ("AGENT", "ADVOCATE", "BUILDER", "OTHER")
COMMISSION_MODES = ("PERCENT", "FLAT")
PERCENT, FLAT = COMMISSION_MODES
UPDATABLE = (
    "name",
    "channel_type",
    "commission_mode",
    "commission_value",
    "is_active",
    "billing_account_id",
    "default_credits",
    "portal_user_ids",
)
ACTIVITY = {"": None, "active": True, "inactive": False}

MAX_NAME = 200
MAX_PERCENT = 10_000  # basis points: 100%
MAX_FLAT = 1_000_000_000  # paise: ₹1 crore per assignment
DEFAULT_CREDITS = 1
MAX_DEFAULT_CREDITS = 1_000_000
MAX_PORTAL_USERS = 200


@dataclass(frozen=True)
class ChannelValues:
    """What a caller sets on a channel."""

    name: str
    channel_type: str
    commission_mode: str
    commission_value: int
    is_active: bool
    billing_account_id: str | None
    default_credits: int
    portal_user_ids: tuple[str, ...]


@dataclass(frozen=True)
class Channel(ChannelValues):
    id: str
    tenant_id: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int


def _enum(value: str, field: str, allowed: tuple[str, ...]) -> str:
    if not value:
        raise invalid(field, "is required")
    if value not in allowed:
        raise invalid(field, "must be one of " + ", ".join(a.lower() for a in allowed))
    return value


def check_channel_type(value: str, field: str = "channel_type") -> str:
    return _enum(value, field, CHANNEL_TYPES)


def check_commission_mode(value: str, field: str = "commission_mode") -> str:
    return _enum(value, field, COMMISSION_MODES)


def check_commission_value(mode: str, value: int, field: str = "commission_value") -> int:
    if value < 0:
        raise invalid(field, "must not be negative")
    if mode == PERCENT and value > MAX_PERCENT:
        raise invalid(field, f"is in basis points for a percent commission: at most {MAX_PERCENT} (100%)")
    if mode == FLAT and value > MAX_FLAT:
        raise invalid(field, f"is in paise for a flat commission: at most {MAX_FLAT}")
    return value


def check_default_credits(value: int, field: str = "default_credits") -> int:
    if value < 0:
        raise invalid(field, "must not be negative")
    if value > MAX_DEFAULT_CREDITS:
        raise invalid(field, f"must be at most {MAX_DEFAULT_CREDITS}")
    return value or DEFAULT_CREDITS


def check_portal_user_ids(values, field: str = "portal_user_ids") -> tuple[str, ...]:
    """Identity user ids, each once (first occurrence kept)."""
    if len(values) > MAX_PORTAL_USERS:
        raise invalid(field, f"must name at most {MAX_PORTAL_USERS} users")
    return tuple(dict.fromkeys(parse_uuid(v, f"{field}[{i}]") for i, v in enumerate(values)))


def check_name(value: str, field: str = "name") -> str:
    return text(value, field, max_length=MAX_NAME)


def new_channel(
    *,
    name: str,
    channel_type: str,
    commission_mode: str,
    commission_value: int,
    billing_account_id: str,
    default_credits: int,
    portal_user_ids,
) -> ChannelValues:
    mode = check_commission_mode(commission_mode)
    return ChannelValues(
        name=check_name(name),
        channel_type=check_channel_type(channel_type),
        commission_mode=mode,
        commission_value=check_commission_value(mode, commission_value),
        is_active=True,
        billing_account_id=optional_uuid(billing_account_id, "billing_account_id"),
        default_credits=check_default_credits(default_credits),
        portal_user_ids=check_portal_user_ids(portal_user_ids),
    )


def update_mask(paths) -> tuple[str, ...]:
    """UpdateChannel's paths, each once; anything not updatable is refused."""
    if not paths:
        raise invalid("update_mask", "must name at least one field (" + ", ".join(UPDATABLE) + ")")
    for path in paths:
        if path not in UPDATABLE:
            raise invalid("update_mask", f"{path!r} is not updatable (" + ", ".join(UPDATABLE) + ")")
    return tuple(dict.fromkeys(paths))


def proposed(paths: tuple[str, ...], given: dict) -> dict:
    """The new value of every masked field, checked on its own (fields named `channel.<name>`).
    `given`: the request's values as plain Python (enum names, '' for no account)."""
    checks = {
        "name": lambda v: check_name(v, "channel.name"),
        "channel_type": lambda v: check_channel_type(v, "channel.channel_type"),
        "commission_mode": lambda v: check_commission_mode(v, "channel.commission_mode"),
        "commission_value": lambda v: v,  # checked against the resulting mode (changes)
        "is_active": bool,
        "billing_account_id": lambda v: optional_uuid(v, "channel.billing_account_id"),
        "default_credits": lambda v: check_default_credits(v, "channel.default_credits"),
        "portal_user_ids": lambda v: check_portal_user_ids(v, "channel.portal_user_ids"),
    }
    return {path: checks[path](given[path]) for path in paths}


def changes(current: Channel, values: dict) -> dict:
    """What `values` (from `proposed`) changes on `current`, with the commission checked as it
    will stand (a new mode with the old value, or the reverse)."""
    after = replace(current, **values)
    check_commission_value(after.commission_mode, after.commission_value, "channel.commission_value")
    return {
        f.name: getattr(after, f.name)
        for f in fields(ChannelValues)
        if getattr(after, f.name) != getattr(current, f.name)
    }


def activity(value: str) -> bool | None:
    """ListChannels' `activity`: True (active), False (inactive), None (both)."""
    key = (value or "").strip().lower()
    if key not in ACTIVITY:
        raise invalid("activity", "must be active, inactive or empty")
    return ACTIVITY[key]
