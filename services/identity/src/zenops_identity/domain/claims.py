"""Access-token claims, exactly as the token-format contract says."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from .roles import CAPABILITY_TABLE_VERSION, PORTAL_ROLE, capabilities_for
from .tenancy import SERVICE


def user_claims(
    *,
    issuer: str,
    user_id: str,
    tenant_id: str,
    audience: str,
    roles: Iterable[str],
    session_id: str,
    channel_id: str | None,
    now: int,
    ttl: int,
    jti: str | None = None,
) -> dict:
    roles = sorted(set(roles))
    claims = {
        "iss": issuer,
        "sub": user_id,
        "aud": audience,
        "tid": tenant_id,
        "roles": roles,
        "caps": sorted(capabilities_for(roles)),
        "cv": CAPABILITY_TABLE_VERSION,
        "sid": session_id,
        "jti": jti or uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
    }
    if PORTAL_ROLE in roles and channel_id:
        claims["channel_id"] = channel_id
    return claims


def service_claims(*, issuer: str, client_id: str, capabilities: Iterable[str], now: int, ttl: int) -> dict:
    return {
        "iss": issuer,
        "sub": f"service:{client_id}",
        "aud": SERVICE,
        "roles": [],
        "caps": sorted(set(capabilities)),
        "cv": CAPABILITY_TABLE_VERSION,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
    }
