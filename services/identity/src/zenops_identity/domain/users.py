"""User fields and the rules of changing them."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from zenops_kit.errors import FailedPrecondition, PermissionDenied

from .roles import PORTAL_ROLE, ROLES
from .tenancy import invalid, parse_uuid

ACTIVE, DISABLED = "ACTIVE", "DISABLED"
DISPLAY_NAME_MAX = 200
# UpdateUser's update_mask paths.
UPDATABLE_FIELDS = ("email", "display_name", "channel_id")
SUPER_ADMIN = "super_admin"


def clean_display_name(value: str, field: str = "display_name") -> str:
    name = " ".join(unicodedata.normalize("NFC", value).split())
    if not name:
        raise invalid(field, "is required")
    if len(name) > DISPLAY_NAME_MAX:
        raise invalid(field, f"must be at most {DISPLAY_NAME_MAX} characters long")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name):
        raise invalid(field, "must not contain control characters")
    return name


def clean_channel_id(value: str, roles: Iterable[str], field: str = "channel_id") -> str | None:
    """Portal users act for exactly one channel; nobody else has one."""
    if PORTAL_ROLE in roles:
        return parse_uuid(value, field)
    if value:
        raise invalid(field, f"only portal users ({PORTAL_ROLE}) have a channel")
    return None


def check_update_mask(paths: list[str]) -> list[str]:
    if not paths:
        raise invalid("update_mask", f"must name at least one field ({', '.join(UPDATABLE_FIELDS)})")
    unknown = [p for p in paths if p not in UPDATABLE_FIELDS]
    if unknown:
        raise invalid("update_mask", f"cannot update {', '.join(unknown)}; updatable: {', '.join(UPDATABLE_FIELDS)}")
    return sorted(set(paths))


def check_grantable(caller_capabilities: frozenset[str], roles: Iterable[str]) -> None:
    """Nobody hands out more than they hold: every capability of every role granted or
    taken away must be one of the caller's own."""
    beyond = sorted({r for r in roles if not ROLES[r].capabilities <= caller_capabilities})
    if beyond:
        raise PermissionDenied(
            "you cannot grant or remove roles with capabilities you do not have: " + ", ".join(beyond),
            reason="ROLE_NOT_GRANTABLE",
            metadata={"roles": ",".join(beyond)},
        )


def check_role_change(before: list[str], after: list[str]) -> None:
    """Staff stay staff and portal users stay portal users (they live in different tenants)."""
    if (PORTAL_ROLE in before) != (PORTAL_ROLE in after):
        raise invalid("roles", f"{PORTAL_ROLE} cannot be added to or removed from an existing user")


def check_keeps_a_super_admin(before: list[str], after: list[str], other_active_super_admins: int) -> None:
    """The tenant must keep at least one active super admin."""
    if SUPER_ADMIN in before and SUPER_ADMIN not in after and other_active_super_admins == 0:
        raise FailedPrecondition(
            "the tenant's last active super admin cannot lose that role", reason="LAST_SUPER_ADMIN"
        )


def check_disable(target_id: str, caller_id: str | None, roles: list[str], other_active_super_admins: int) -> None:
    if target_id == caller_id:
        raise FailedPrecondition("you cannot disable your own account", reason="CANNOT_DISABLE_SELF")
    if SUPER_ADMIN in roles and other_active_super_admins == 0:
        raise FailedPrecondition("the tenant's last active super admin cannot be disabled", reason="LAST_SUPER_ADMIN")
