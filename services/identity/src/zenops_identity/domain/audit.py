"""The authentication audit trail: event kinds and what a row's detail may hold."""

from __future__ import annotations

from collections.abc import Mapping

from zenops_kit.logging import REDACTED, SECRET_KEY_PARTS

LOGIN_SUCCEEDED = "login.succeeded"
LOGIN_FAILED = "login.failed"
# An account's failures reached the point where its logins are delayed (once per run of failures).
ACCOUNT_DELAYED = "account.delayed"
ACCOUNT_UNLOCKED = "account.unlocked"
# A client address used up its failed-login allowance (once per window).
LOGIN_CLIENT_THROTTLED = "login.client_throttled"
TOKEN_REFRESHED = "token.refreshed"
TOKEN_REUSE_DETECTED = "token.reuse_detected"
SESSION_REVOKED = "session.revoked"
LOGOUT = "logout"
USER_CREATED = "user.created"
USER_UPDATED = "user.updated"
USER_DISABLED = "user.disabled"
USER_ROLES_CHANGED = "user.roles_changed"
PASSWORD_CHANGED = "password.changed"
PASSWORD_CHANGE_FAILED = "password.change_failed"
SIGNING_KEY_ROTATED = "signing_key.rotated"
SERVICE_TOKEN_ISSUED = "service_token.issued"
SERVICE_TOKEN_DENIED = "service_token.denied"
TENANT_CREATED = "tenant.created"
BOOTSTRAP_ADMIN_CREATED = "bootstrap.admin_created"

# Why a login failed (detail "cause"; visible in the audit trail only, never to the caller).
UNKNOWN_EMAIL, WRONG_PASSWORD, DISABLED, AUDIENCE_NOT_ALLOWED, UNKNOWN_TENANT = (
    "unknown_email",
    "wrong_password",
    "disabled",
    "audience_not_allowed",
    "unknown_tenant",
)

_MAX_VALUE = 500


def clean_detail(detail: Mapping[str, object]) -> dict[str, str]:
    """Detail as stored: string values, bounded, and nothing under a secret-looking key
    (defence in depth: callers never pass passwords or tokens in the first place)."""
    out: dict[str, str] = {}
    for key, value in detail.items():
        if value is None:
            continue
        if any(part in key.lower() for part in SECRET_KEY_PARTS):
            out[key] = REDACTED
            continue
        text = ",".join(map(str, value)) if isinstance(value, (list, tuple, set, frozenset)) else str(value)
        out[key] = text[:_MAX_VALUE]
    return out
