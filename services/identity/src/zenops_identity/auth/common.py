"""Pieces every use case shares."""

from __future__ import annotations

from dataclasses import dataclass

from zenops_kit.context import RequestContext
from zenops_kit.errors import PermissionDenied, Unauthenticated


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    session_id: str


def invalid_credentials() -> Unauthenticated:
    """The one answer to every failed login: same message, reason and metadata whatever
    the cause (unknown email, wrong password, disabled, wrong audience)."""
    return Unauthenticated("invalid email or password", reason="INVALID_CREDENTIALS")


def invalid_refresh_token() -> Unauthenticated:
    """The one answer to every refused refresh (unknown, spent, revoked, expired)."""
    return Unauthenticated("the refresh token is invalid or has expired; log in again", reason="REFRESH_TOKEN_INVALID")


def require_user(ctx: RequestContext) -> tuple[str, str]:
    """(tenant_id, user_id) of a user token; service tokens have neither."""
    ctx.require()
    if ctx.user_id is None or ctx.tenant_id is None:
        raise PermissionDenied("this call needs a user's token, not a service token", reason="USER_TOKEN_REQUIRED")
    return ctx.tenant_id, ctx.user_id


def require_internal(ctx: RequestContext, internal_tenant_id: str) -> None:
    """Platform-wide operations (tenants, signing keys) belong to the firm's own users."""
    if ctx.tenant_id != internal_tenant_id:
        raise PermissionDenied("only users of the internal tenant may do this", reason="INTERNAL_TENANT_ONLY")
