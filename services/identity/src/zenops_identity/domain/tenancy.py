"""Tenants and the launch mode: which tenant a login lands in, who may create tenants.

Single-tenant mode (the default) has exactly two tenants: the firm (internal) and the
portal lane (external). Multi-tenant mode adds customer tenants.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from zenops_kit.errors import FieldViolation, InvalidArgument, PermissionDenied

from .roles import PORTAL_ROLE

WEB, STUDIO, PORTAL, SERVICE = "web", "studio", "portal", "service"
# Audiences a person can log in to (service tokens come from IssueServiceToken).
USER_AUDIENCES = (WEB, STUDIO, PORTAL)

INTERNAL, EXTERNAL, CUSTOMER = "INTERNAL", "EXTERNAL", "CUSTOMER"
ACTIVE, SUSPENDED = "ACTIVE", "SUSPENDED"


@dataclass(frozen=True)
class Tenancy:
    multi_tenant_enabled: bool
    internal_tenant_id: str
    external_tenant_id: str

    def login_tenant(self, audience: str, requested_tenant_id: str) -> str:
        """The tenant a login for `audience` goes to. Portal logins always land in the
        external tenant; web/studio logins default to the internal one and, in
        single-tenant mode, may not ask for any other."""
        if audience == PORTAL:
            return self.external_tenant_id
        if not requested_tenant_id:
            return self.internal_tenant_id
        if requested_tenant_id != self.internal_tenant_id and not self.multi_tenant_enabled:
            raise PermissionDenied(
                "this deployment serves a single tenant",
                reason="TENANT_NOT_ENABLED",
                metadata={"tenant_id": requested_tenant_id},
            )
        return requested_tenant_id

    def check_tenant_creation(self) -> None:
        if not self.multi_tenant_enabled:
            raise PermissionDenied(
                "tenants cannot be created: multi-tenant mode is disabled", reason="MULTI_TENANT_DISABLED"
            )

    def is_internal(self, tenant_id: str | None) -> bool:
        return tenant_id == self.internal_tenant_id

    def user_tenant(self, roles: list[str], requested_tenant_id: str, caller_tenant_id: str) -> str:
        """Where a new user with `roles` lives: portal users in the external tenant, staff in
        the requested (or the caller's) tenant, never in the external one."""
        if PORTAL_ROLE in roles:
            if requested_tenant_id and requested_tenant_id != self.external_tenant_id:
                raise invalid("tenant_id", "portal users belong to the external tenant")
            return self.external_tenant_id
        tenant = requested_tenant_id or caller_tenant_id
        if tenant == self.external_tenant_id:
            raise invalid("roles", f"the external tenant holds portal users only (role {PORTAL_ROLE})")
        return tenant

    def may_act_on(self, caller_tenant_id: str | None, caller_roles: frozenset[str], tenant_id: str) -> bool:
        """Whether a caller may administer users of `tenant_id`: its own tenant; the firm
        also runs the portal lane; the firm's super admins run every tenant."""
        if caller_tenant_id == tenant_id:
            return True
        if caller_tenant_id != self.internal_tenant_id:
            return False
        return tenant_id == self.external_tenant_id or "super_admin" in caller_roles

    def administered_tenants(self, caller_tenant_id: str | None) -> tuple[str, ...]:
        """Tenants searched when an admin names a user by id (own first)."""
        if caller_tenant_id is None:
            return ()
        if caller_tenant_id == self.internal_tenant_id:
            return (self.internal_tenant_id, self.external_tenant_id)
        return (caller_tenant_id,)


def check_audience(audience: str) -> str:
    if audience not in USER_AUDIENCES:
        raise invalid("audience", f"must be one of {', '.join(USER_AUDIENCES)}")
    return audience


def audience_allowed(roles: list[str] | frozenset[str], audience: str) -> bool:
    """Portal users log in to the portal only, and only they do."""
    return (PORTAL_ROLE in roles) == (audience == PORTAL)


def parse_uuid(value: str, field: str, *, required: bool = True) -> str:
    """The canonical form of a UUID field ('' when optional and empty)."""
    if not value:
        if required:
            raise invalid(field, "is required")
        return ""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise invalid(field, "must be a UUID") from None


def invalid(field: str, description: str, reason: str = "VALIDATION_FAILED") -> InvalidArgument:
    return InvalidArgument(f"{field} {description}", reason=reason, violations=[FieldViolation(field, description)])
