"""Users and their roles: create, read, list, update, disable, set roles."""

from __future__ import annotations

import uuid

from zenops_kit.context import RequestContext
from zenops_kit.db import autocommit, tenant_tx
from zenops_kit.errors import NotFound, PermissionDenied
from zenops_kit.fields import CONTROL_CHARACTERS, has_control_characters, invalid
from zenops_kit.paging import decode_cursor, encode_cursor, page_limit

from .. import recording
from ..auth.common import require_user
from ..clock import utcnow
from ..core import Identity
from ..credentials.policy import normalize_email, validate_password
from ..domain import audit as kinds
from ..domain.roles import validate_roles
from ..domain.sessions import USER_DISABLED
from ..domain.tenancy import parse_uuid
from ..domain.users import (
    ACTIVE,
    DISABLED,
    SUPER_ADMIN,
    check_disable,
    check_grantable,
    check_keeps_a_super_admin,
    check_role_change,
    check_update_mask,
    clean_channel_id,
    clean_display_name,
)
from ..store import login_failures, sessions, tenants, users
from ..store.users import User


def _tenant_not_allowed() -> PermissionDenied:
    return PermissionDenied("you cannot administer users of that tenant", reason="TENANT_NOT_ALLOWED")


def _not_found() -> NotFound:
    return NotFound("no such user", reason="USER_NOT_FOUND")


async def create(
    idn: Identity,
    ctx: RequestContext,
    *,
    email: str,
    display_name: str,
    password: str,
    roles: list[str],
    channel_id: str,
    tenant_id: str,
) -> User:
    caller_tenant, caller_id = require_user(ctx)
    email = normalize_email(email)
    display_name = clean_display_name(display_name)
    roles = validate_roles(roles)
    channel = clean_channel_id(channel_id, roles)
    requested = parse_uuid(tenant_id, "tenant_id", required=False)
    target = idn.tenancy.user_tenant(roles, requested, caller_tenant)
    if not idn.tenancy.may_act_on(caller_tenant, ctx.roles, target):
        raise _tenant_not_allowed()
    check_grantable(ctx.capabilities, roles)
    validate_password(password, email=email, display_name=display_name, field="password")
    async with autocommit(idn.engine) as conn:
        if await tenants.get(conn, target) is None:
            raise NotFound("no such tenant", reason="TENANT_NOT_FOUND", metadata={"field": "tenant_id"})
    password_hash = await idn.hasher.hash(password)
    async with tenant_tx(idn.engine, target) as conn:
        user = await users.insert(
            conn,
            user_id=str(uuid.uuid4()),
            tenant_id=target,
            email=email,
            display_name=display_name,
            password_hash=password_hash,
            roles=roles,
            channel_id=channel,
            now=utcnow(),
        )
        await recording.audit(
            conn,
            ctx,
            tenant_id=target,
            kind=kinds.USER_CREATED,
            target=user.id,
            detail={"email": email, "roles": roles, "channel_id": channel},
        )
    return user


async def _find(idn: Identity, ctx: RequestContext, user_id: str) -> User:
    """The user among the tenants the caller administers (the firm also runs the portal lane)."""
    user_id = parse_uuid(user_id, "id")
    for tenant_id in idn.tenancy.administered_tenants(ctx.tenant_id):
        async with tenant_tx(idn.engine, tenant_id) as conn:
            user = await users.get(conn, user_id)
        if user is not None:
            return user
    raise _not_found()


async def get(idn: Identity, ctx: RequestContext, user_id: str) -> User:
    """users.read, or the caller itself."""
    require_user(ctx)
    if user_id != ctx.user_id:
        ctx.require("users.read")
    return await _find(idn, ctx, user_id)


async def list_page(
    idn: Identity, ctx: RequestContext, *, limit: int, cursor: str, query: str, status: str | None
) -> tuple[list[User], str]:
    tenant_id, _ = require_user(ctx)
    limit = page_limit(limit)
    after = decode_cursor(cursor, "users", 2, types=("text", "uuid"))
    if has_control_characters(query):
        raise invalid("query", CONTROL_CHARACTERS)
    async with tenant_tx(idn.engine, tenant_id) as conn:
        rows = await users.page(conn, query=query.strip()[:200], status=status, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor("users", [rows[-1].email.lower(), rows[-1].id]) if more else ""
    return rows, next_cursor


async def update(idn: Identity, ctx: RequestContext, *, user_id: str, paths: list[str], values: dict[str, str]) -> User:
    require_user(ctx)
    paths = check_update_mask(paths)
    user = await _find(idn, ctx, user_id)
    check_grantable(ctx.capabilities, user.roles)
    changes: dict[str, str | None] = {}
    if "email" in paths:
        changes["email"] = normalize_email(values.get("email", ""), field="user.email")
    if "display_name" in paths:
        changes["display_name"] = clean_display_name(values.get("display_name", ""), field="user.display_name")
    if "channel_id" in paths:
        changes["channel_id"] = clean_channel_id(values.get("channel_id", ""), user.roles, field="user.channel_id")
    async with tenant_tx(idn.engine, user.tenant_id) as conn:
        await users.update_profile(conn, user, changes, utcnow())
        await recording.audit(
            conn,
            ctx,
            tenant_id=user.tenant_id,
            kind=kinds.USER_UPDATED,
            target=user.id,
            detail={"fields": paths, **{f"new_{k}": v for k, v in changes.items()}},
        )
        return await users.get(conn, user.id)


async def disable(idn: Identity, ctx: RequestContext, user_id: str) -> tuple[User, int]:
    """Disable and revoke every session; returns the user and how many sessions ended."""
    require_user(ctx)
    user = await _find(idn, ctx, user_id)
    check_grantable(ctx.capabilities, user.roles)
    now = utcnow()
    async with tenant_tx(idn.engine, user.tenant_id) as conn:
        await users.lock_roles(conn, user.tenant_id)
        user = await users.get(conn, user.id, for_update=True)
        if user.status == DISABLED:
            return user, 0
        others = await users.count_active_with_role(conn, SUPER_ADMIN, excluding=user.id)
        check_disable(user.id, ctx.user_id, user.roles, others)
        await users.set_status(conn, user.id, DISABLED, now)
        revoked = await sessions.revoke_user_sessions(conn, user.id, USER_DISABLED, now)
        await recording.audit(
            conn,
            ctx,
            tenant_id=user.tenant_id,
            kind=kinds.USER_DISABLED,
            target=user.id,
            detail={"revoked_sessions": len(revoked)},
        )
        updated = await users.get(conn, user.id)
        await recording.user_disabled(
            conn,
            version=idn.settings.version,
            tenant_id=user.tenant_id,
            user_id=user.id,
            user_version=updated.version,
            session_ids=revoked,
            now=now,
        )
        await recording.sessions_revoked(
            conn,
            version=idn.settings.version,
            tenant_id=user.tenant_id,
            user_id=user.id,
            session_ids=revoked,
            reason=USER_DISABLED,
            now=now,
            access_token_ttl=idn.settings.access_token_ttl,
        )
    return updated, len(revoked)


async def set_roles(idn: Identity, ctx: RequestContext, *, user_id: str, roles: list[str]) -> User:
    require_user(ctx)
    after = validate_roles(roles)
    user = await _find(idn, ctx, user_id)
    async with tenant_tx(idn.engine, user.tenant_id) as conn:
        await users.lock_roles(conn, user.tenant_id)
        user = await users.get(conn, user.id, for_update=True)
        before = user.roles
        if before == after:
            return user
        check_role_change(before, after)
        check_grantable(ctx.capabilities, set(before) ^ set(after))
        if SUPER_ADMIN in before and SUPER_ADMIN not in after:
            others = await users.count_active_with_role(conn, SUPER_ADMIN, excluding=user.id)
            check_keeps_a_super_admin(before, after, others if user.status == ACTIVE else 1)
        await users.set_roles(conn, user, after, utcnow())
        await recording.audit(
            conn,
            ctx,
            tenant_id=user.tenant_id,
            kind=kinds.USER_ROLES_CHANGED,
            target=user.id,
            detail={"before": before, "after": after},
        )
        return await users.get(conn, user.id)


async def unlock(idn: Identity, ctx: RequestContext, user_id: str) -> tuple[User, int]:
    """Forget the user's failed logins (their progressive delay ends at once); returns the
    user and how many failures were cleared."""
    require_user(ctx)
    user = await _find(idn, ctx, user_id)
    check_grantable(ctx.capabilities, user.roles)
    async with tenant_tx(idn.engine, user.tenant_id) as conn:
        cleared = await login_failures.clear(conn, user.tenant_id, user.email)
        await recording.audit(
            conn,
            ctx,
            tenant_id=user.tenant_id,
            kind=kinds.ACCOUNT_UNLOCKED,
            target=user.id,
            detail={"cleared_failures": cleared},
        )
        return await users.get(conn, user.id), cleared
