"""Login: email + password → a new session.

Every failure answers the same INVALID_CREDENTIALS, and costs one password verification
whatever the cause (a dummy hash for unknown emails; locked and disabled accounts still
verify), so neither the answer nor its timing tells whether an account exists. The cause
goes to the audit trail only, written in its own transaction (the login fails, the record
stays).
"""

from __future__ import annotations

from zenops_kit.context import RequestContext
from zenops_kit.db import autocommit, tenant_tx

from .. import recording
from ..clock import utcnow
from ..core import Identity
from ..credentials.policy import MAX_LENGTH, normalize_email
from ..domain import audit as kinds
from ..domain.lockout import LockState
from ..domain.tenancy import ACTIVE, audience_allowed, check_audience, invalid, parse_uuid
from ..domain.users import ACTIVE as USER_ACTIVE
from ..store import tenants, users
from ..store.users import User
from .common import TokenPair, invalid_credentials
from .issuing import open_session


def check_password_input(password: str, field: str = "password") -> None:
    """Shape only (says nothing about any account): present, and not longer than any
    acceptable password — which also bounds the hashing work an attacker can cause."""
    if not password:
        raise invalid(field, "is required")
    if len(password) > MAX_LENGTH:
        raise invalid(field, f"must be at most {MAX_LENGTH} characters long")


async def login(
    idn: Identity, ctx: RequestContext, *, email: str, password: str, audience: str, tenant_id: str
) -> TokenPair:
    audience = check_audience(audience)
    requested = parse_uuid(tenant_id, "tenant_id", required=False)
    email = normalize_email(email)
    check_password_input(password)
    target = idn.tenancy.login_tenant(audience, requested)

    async with autocommit(idn.engine) as conn:
        tenant = await tenants.get(conn, target)
    if tenant is None or tenant.status != ACTIVE:
        await idn.hasher.verify_dummy(password)
        # An unknown tenant has no trail of its own: the platform's (internal) one keeps it.
        where = target if tenant is not None else idn.tenancy.internal_tenant_id
        await _record_failure(idn, ctx, where, target=email, cause=kinds.UNKNOWN_TENANT, requested_tenant=target)
        raise invalid_credentials()

    async with tenant_tx(idn.engine, target) as conn:
        user = await users.by_email(conn, email)
    if user is None:
        await idn.hasher.verify_dummy(password)
        await _record_failure(idn, ctx, target, target=email, cause=kinds.UNKNOWN_EMAIL)
        raise invalid_credentials()

    matched = await idn.hasher.verify(user.password_hash, password)
    cause = _failure_cause(user, matched, audience)
    if cause == kinds.WRONG_PASSWORD:
        await _count_failure(idn, ctx, user)
        raise invalid_credentials()
    if cause is not None:
        await _record_failure(idn, ctx, target, target=user.id, cause=cause, audience=audience)
        raise invalid_credentials()

    # Re-hash with the current parameters (or from an imported bcrypt hash) while we have the password.
    new_hash = await idn.hasher.hash(password) if idn.hasher.needs_rehash(user.password_hash) else None
    now = utcnow()
    async with tenant_tx(idn.engine, target) as conn:
        current = await users.get(conn, user.id, for_update=True)
        # Disabled or locked between the read and now: the same refusal.
        cause = _failure_cause(current, True, audience) if current else kinds.UNKNOWN_EMAIL
        if cause is None:
            await users.record_login(conn, user.id, now, new_hash)
            pair = await open_session(idn, conn, current, audience, ip=ctx.client_ip or "",
                                      user_agent=ctx.user_agent or "", now=now)
            await recording.audit(conn, ctx, tenant_id=target, kind=kinds.LOGIN_SUCCEEDED, actor=user.id,
                                  target=user.id, detail={"audience": audience, "session_id": pair.session_id,
                                                          "rehashed": new_hash is not None})
    if cause is not None:
        await _record_failure(idn, ctx, target, target=user.id, cause=cause, audience=audience)
        raise invalid_credentials()
    return pair


def _failure_cause(user: User, matched: bool, audience: str) -> str | None:
    if user.status != USER_ACTIVE:
        return kinds.DISABLED
    if LockState(user.failed_login_count, user.locked_until).is_locked(utcnow()):
        return kinds.LOCKED
    if not matched:
        return kinds.WRONG_PASSWORD
    if not audience_allowed(user.roles, audience):
        return kinds.AUDIENCE_NOT_ALLOWED
    return None


async def _record_failure(idn: Identity, ctx: RequestContext, tenant_id: str, *, target: str, cause: str,
                          **detail) -> None:
    async with tenant_tx(idn.engine, tenant_id) as conn:
        await recording.audit(conn, ctx, tenant_id=tenant_id, kind=kinds.LOGIN_FAILED, actor="", target=target,
                              detail={"cause": cause, **detail})


async def count_failure(idn: Identity, ctx: RequestContext, user: User, *, kind: str) -> None:
    """A wrong password (login or password change): count it, lock at the threshold."""
    async with tenant_tx(idn.engine, user.tenant_id) as conn:
        current = await users.get(conn, user.id, for_update=True)
        if current is None:
            return
        now = utcnow()
        state, locked = idn.lockout.after_failure(LockState(current.failed_login_count, current.locked_until), now)
        await users.set_lock_state(conn, user.id, state.failed_count, state.locked_until)
        await recording.audit(conn, ctx, tenant_id=user.tenant_id, kind=kind,
                              actor="" if kind == kinds.LOGIN_FAILED else user.id, target=user.id,
                              detail={"cause": kinds.WRONG_PASSWORD, "failed_count": state.failed_count})
        if locked:
            await recording.audit(conn, ctx, tenant_id=user.tenant_id, kind=kinds.ACCOUNT_LOCKED, actor="",
                                  target=user.id, detail={"locked_until": state.locked_until.isoformat(),
                                                          "failed_count": state.failed_count})


async def _count_failure(idn: Identity, ctx: RequestContext, user: User) -> None:
    await count_failure(idn, ctx, user, kind=kinds.LOGIN_FAILED)
