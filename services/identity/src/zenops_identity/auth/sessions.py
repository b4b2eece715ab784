"""The caller's own account: who am I, sessions, logout, password change."""

from __future__ import annotations

from dataclasses import dataclass

from zenops_kit.context import RequestContext
from zenops_kit.db import tenant_tx
from zenops_kit.errors import FieldViolation, InvalidArgument, NotFound

from .. import recording
from ..clock import utcnow
from ..core import Identity
from ..credentials.policy import validate_password
from ..domain import audit as kinds
from ..domain.roles import capabilities_for
from ..domain.sessions import LOGOUT, PASSWORD_CHANGED, REVOKED
from ..domain.tenancy import parse_uuid
from ..domain.users import ACTIVE
from ..store import login_failures, sessions, tenants, users
from ..store.sessions import Session
from ..store.tenants import Tenant
from ..store.users import User
from .common import require_user
from .login import check_client_allowance, check_password_input, record_failure, wait_for_turn


@dataclass(frozen=True)
class Me:
    user: User
    tenant: Tenant
    capabilities: frozenset[str]
    session_id: str
    audience: str


async def me(idn: Identity, ctx: RequestContext) -> Me:
    tenant_id, user_id = require_user(ctx)
    async with tenant_tx(idn.engine, tenant_id) as conn:
        user = await users.get(conn, user_id)
        tenant = await tenants.get(conn, tenant_id)
    if user is None or tenant is None:
        raise NotFound("your account no longer exists", reason="USER_NOT_FOUND")
    return Me(user, tenant, capabilities_for(user.roles), ctx.session_id or "", ctx.audience or "")


async def logout(idn: Identity, ctx: RequestContext) -> None:
    tenant_id, user_id = require_user(ctx)
    now = utcnow()
    async with tenant_tx(idn.engine, tenant_id) as conn:
        revoked = await sessions.revoke(conn, [ctx.session_id], LOGOUT, now)
        await recording.audit(
            conn, ctx, tenant_id=tenant_id, kind=kinds.LOGOUT, target=user_id, detail={"session_id": ctx.session_id}
        )
        await _announce(idn, conn, tenant_id, user_id, revoked, LOGOUT, now)


async def list_sessions(idn: Identity, ctx: RequestContext) -> list[Session]:
    tenant_id, user_id = require_user(ctx)
    async with tenant_tx(idn.engine, tenant_id) as conn:
        return await sessions.active_for_user(conn, user_id, utcnow())


async def revoke_session(idn: Identity, ctx: RequestContext, session_id: str) -> None:
    """One of the caller's sessions; with users.write, any session of the tenant."""
    tenant_id, user_id = require_user(ctx)
    session_id = parse_uuid(session_id, "session_id")
    now = utcnow()
    async with tenant_tx(idn.engine, tenant_id) as conn:
        session = await sessions.get(conn, session_id)
        if session is None or (session.user_id != user_id and "users.write" not in ctx.capabilities):
            # Other users' sessions are not even acknowledged to exist.
            raise NotFound("no such session", reason="SESSION_NOT_FOUND")
        revoked = await sessions.revoke(conn, [session_id], REVOKED, now)
        await recording.audit(
            conn,
            ctx,
            tenant_id=tenant_id,
            kind=kinds.SESSION_REVOKED,
            target=session.user_id,
            detail={"session_id": session_id},
        )
        await _announce(idn, conn, tenant_id, session.user_id, revoked, REVOKED, now)


async def change_password(idn: Identity, ctx: RequestContext, *, current_password: str, new_password: str) -> int:
    """Returns how many other sessions were revoked (the calling one stays)."""
    tenant_id, user_id = require_user(ctx)
    check_password_input(current_password, "current_password")
    async with tenant_tx(idn.engine, tenant_id) as conn:
        user = await users.get(conn, user_id)
    if user is None or user.status != ACTIVE:
        raise NotFound("your account no longer exists", reason="USER_NOT_FOUND")
    validate_password(new_password, email=user.email, display_name=user.display_name, field="new_password")
    # Delayed and counted like a login: a stolen access token must not become a password oracle.
    check_client_allowance(idn, ctx)
    await wait_for_turn(idn, tenant_id, user.email)
    if not await idn.hasher.verify(user.password_hash, current_password):
        await record_failure(
            idn,
            ctx,
            tenant_id,
            user.email,
            audit_target=user_id,
            cause=kinds.WRONG_PASSWORD,
            kind=kinds.PASSWORD_CHANGE_FAILED,
            actor=user_id,
        )
        raise InvalidArgument(
            "the current password is not correct",
            reason="CURRENT_PASSWORD_INVALID",
            violations=[FieldViolation("current_password", "is not your current password")],
        )
    new_hash = await idn.hasher.hash(new_password)
    now = utcnow()
    async with tenant_tx(idn.engine, tenant_id) as conn:
        await users.set_password(conn, user_id, new_hash, now)
        await login_failures.clear(conn, tenant_id, user.email)
        revoked = await sessions.revoke_user_sessions(conn, user_id, PASSWORD_CHANGED, now, keep=ctx.session_id)
        await recording.audit(
            conn,
            ctx,
            tenant_id=tenant_id,
            kind=kinds.PASSWORD_CHANGED,
            target=user_id,
            detail={"revoked_sessions": len(revoked)},
        )
        await _announce(idn, conn, tenant_id, user_id, revoked, PASSWORD_CHANGED, now)
    return len(revoked)


async def _announce(idn: Identity, conn, tenant_id: str, user_id: str, revoked: list[str], reason: str, now) -> None:
    await recording.sessions_revoked(
        conn,
        version=idn.settings.version,
        tenant_id=tenant_id,
        user_id=user_id,
        session_ids=revoked,
        reason=reason,
        now=now,
        access_token_ttl=idn.settings.access_token_ttl,
    )
