"""Login: email + password → a new session.

Every failure answers the same INVALID_CREDENTIALS, and costs one password verification
whatever the cause (a dummy hash for unknown emails; disabled accounts still verify), so
neither the answer nor its timing tells whether an account exists. The cause goes to the
audit trail only, written in its own transaction (the login fails, the record stays).

Brute force (domain/login_throttle.py): a client address over its failure allowance is
refused before any password work; otherwise the attempt waits out the account's
progressive delay (the same for unknown emails) and is then evaluated — the right
password always gets in.
"""

from __future__ import annotations

import asyncio
import logging

from zenops_kit.context import RequestContext
from zenops_kit.db import autocommit, tenant_tx
from zenops_kit.errors import ResourceExhausted

from .. import recording
from ..clock import utcnow
from ..core import Identity
from ..credentials.policy import MAX_LENGTH, normalize_email
from ..domain import audit as kinds
from ..domain.tenancy import ACTIVE, audience_allowed, check_audience, invalid, parse_uuid
from ..domain.users import ACTIVE as USER_ACTIVE
from ..store import login_failures, tenants, users
from ..store.users import User
from .common import TokenPair, invalid_credentials
from .issuing import open_session

log = logging.getLogger("zenops.identity.login")


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
    check_client_allowance(idn, ctx)
    await wait_for_turn(idn, target, email)

    async with autocommit(idn.engine) as conn:
        tenant = await tenants.get(conn, target)
    if tenant is None or tenant.status != ACTIVE:
        await idn.hasher.verify_dummy(password)
        # An unknown tenant has no trail of its own: the platform's (internal) one keeps it.
        where = target if tenant is not None else idn.tenancy.internal_tenant_id
        await record_failure(
            idn,
            ctx,
            target,
            email,
            audit_tenant=where,
            audit_target=email,
            cause=kinds.UNKNOWN_TENANT,
            requested_tenant=target,
        )
        raise invalid_credentials()

    async with tenant_tx(idn.engine, target) as conn:
        user = await users.by_email(conn, email)
    if user is None:
        await idn.hasher.verify_dummy(password)
        await record_failure(idn, ctx, target, email, audit_target=email, cause=kinds.UNKNOWN_EMAIL)
        raise invalid_credentials()

    matched = await idn.hasher.verify(user.password_hash, password)
    cause = _failure_cause(user, matched, audience)
    if cause is not None:
        await record_failure(idn, ctx, target, email, audit_target=user.id, cause=cause, audience=audience)
        raise invalid_credentials()

    # Re-hash with the current parameters (or from an imported bcrypt hash) while we have the password.
    new_hash = await idn.hasher.hash(password) if idn.hasher.needs_rehash(user.password_hash) else None
    now = utcnow()
    async with tenant_tx(idn.engine, target) as conn:
        current = await users.get(conn, user.id, for_update=True)
        # Disabled between the read and now: the same refusal.
        cause = _failure_cause(current, True, audience) if current else kinds.UNKNOWN_EMAIL
        if cause is None:
            await users.record_login(conn, user.id, now, new_hash)
            await login_failures.clear(conn, target, email)
            pair = await open_session(
                idn, conn, current, audience, ip=ctx.client_ip or "", user_agent=ctx.user_agent or "", now=now
            )
            await recording.audit(
                conn,
                ctx,
                tenant_id=target,
                kind=kinds.LOGIN_SUCCEEDED,
                actor=user.id,
                target=user.id,
                detail={"audience": audience, "session_id": pair.session_id, "rehashed": new_hash is not None},
            )
    if cause is not None:
        await record_failure(idn, ctx, target, email, audit_target=user.id, cause=cause, audience=audience)
        raise invalid_credentials()
    return pair


def _failure_cause(user: User, matched: bool, audience: str) -> str | None:
    if user.status != USER_ACTIVE:
        return kinds.DISABLED
    if not matched:
        return kinds.WRONG_PASSWORD
    if not audience_allowed(user.roles, audience):
        return kinds.AUDIENCE_NOT_ALLOWED
    return None


def check_client_allowance(idn: Identity, ctx: RequestContext) -> None:
    """Refuse a client address that used up its failed-login allowance (before any hashing)."""
    retry_after = idn.client_throttle.retry_after(ctx.client_ip)
    if retry_after is not None:
        raise ResourceExhausted(
            "too many failed logins from this address; try again later",
            reason="TOO_MANY_LOGIN_ATTEMPTS",
            retry_after=retry_after,
        )


async def wait_for_turn(idn: Identity, tenant_id: str, email: str) -> None:
    """The account's progressive delay (unknown emails alike): wait, never refuse."""
    async with tenant_tx(idn.engine, tenant_id) as conn:
        failures = await login_failures.get(conn, tenant_id, email)
    wait = idn.account_delay.wait(failures, utcnow())
    if wait > 0:
        await asyncio.sleep(wait)


async def record_failure(
    idn: Identity,
    ctx: RequestContext,
    tenant_id: str,
    email: str,
    *,
    audit_target: str,
    cause: str,
    audit_tenant: str | None = None,
    kind: str = kinds.LOGIN_FAILED,
    actor: str = "",
    **detail,
) -> None:
    """Count a failed password check against (tenant, email) and the client address, and
    audit it — in the account's tenant, or `audit_tenant` (the platform's trail for an
    unknown tenant)."""
    where = audit_tenant or tenant_id
    async with tenant_tx(idn.engine, tenant_id) as conn:
        failures = await login_failures.add(conn, tenant_id, email, utcnow(), idn.account_delay.window)
        entries = [(kind, {"cause": cause, "failed_count": failures.count, **detail})]
        if failures.count == idn.account_delay.free_failures:
            entries.append((kinds.ACCOUNT_DELAYED, {"failed_count": failures.count}))
        if idn.client_throttle.failed(ctx.client_ip):
            log.warning("a client used up its failed-login allowance", extra={"client_ip": ctx.client_ip})
            entries.append((kinds.LOGIN_CLIENT_THROTTLED, {"window_seconds": idn.client_throttle.window}))
        if where == tenant_id:
            await _audit(conn, ctx, where, entries, actor=actor, target=audit_target)
    if where != tenant_id:
        async with tenant_tx(idn.engine, where) as conn:
            await _audit(conn, ctx, where, entries, actor=actor, target=audit_target)


async def _audit(
    conn, ctx: RequestContext, tenant_id: str, entries: list[tuple[str, dict]], *, actor: str, target: str
) -> None:
    for kind, detail in entries:
        await recording.audit(conn, ctx, tenant_id=tenant_id, kind=kind, actor=actor, target=target, detail=detail)
