"""Refresh: rotate a refresh token, detect reuse.

The token names its tenant, so the look-up runs under that tenant's RLS; the token row
and its session are locked, so concurrent presentations of one token are decided in turn:
the first rotates, the next ones within the grace period get the same pair (the successor
and the access token's jti are derived from the spent token, the access token's iat is the
moment it was spent, and EdDSA signatures are deterministic: nothing is stored), later ones are reuse — the session is revoked, audited and announced.
"""

from __future__ import annotations

import uuid

from zenops_kit.context import RequestContext
from zenops_kit.db import tenant_tx

from .. import recording
from ..clock import utcnow
from ..core import Identity
from ..domain import audit as kinds
from ..domain.sessions import REUSE_DETECTED, RefreshDecision, decide_refresh
from ..domain.users import ACTIVE
from ..store import sessions, users
from ..tokens import refresh as refresh_tokens
from .common import TokenPair, invalid_refresh_token
from .issuing import access_token, seconds_until


async def refresh(idn: Identity, ctx: RequestContext, token: str) -> TokenPair:
    tenant_id = refresh_tokens.tenant_of(token)
    if tenant_id is None:
        raise invalid_refresh_token()
    now = utcnow()
    pair: TokenPair | None = None
    async with tenant_tx(idn.engine, tenant_id) as conn:
        row = await sessions.refresh_token_for_update(conn, refresh_tokens.digest(token))
        if row is None:
            raise invalid_refresh_token()
        session = row.session
        decision = decide_refresh(
            idn.session_policy,
            used_at=row.used_at,
            revoked_at=session.revoked_at,
            expires_at=session.expires_at,
            idle_expires_at=session.idle_expires_at,
            now=now,
        )
        if decision is RefreshDecision.REUSE:
            revoked = await sessions.revoke(conn, [session.id], REUSE_DETECTED, now)
            await recording.audit(
                conn,
                ctx,
                tenant_id=tenant_id,
                kind=kinds.TOKEN_REUSE_DETECTED,
                actor="",
                target=session.user_id,
                detail={"session_id": session.id, "used_at": row.used_at.isoformat()},
            )
            await recording.sessions_revoked(
                conn,
                version=idn.settings.version,
                tenant_id=tenant_id,
                user_id=session.user_id,
                session_ids=revoked,
                reason=REUSE_DETECTED,
                now=now,
                access_token_ttl=idn.settings.access_token_ttl,
            )
        elif decision is not RefreshDecision.INACTIVE:
            user = await users.get(conn, session.user_id)
            if user is not None and user.status == ACTIVE:
                successor = refresh_tokens.successor(idn.refresh_pepper, token)
                idle_expires_at = session.idle_expires_at
                if decision is RefreshDecision.ROTATE:
                    idle_expires_at = idn.session_policy.slide(session.expires_at, now)
                    await sessions.spend_refresh_token(conn, row.id, now)
                    await sessions.add_refresh_token(
                        conn,
                        token_id=str(uuid.uuid4()),
                        tenant_id=tenant_id,
                        session_id=session.id,
                        token_hash=refresh_tokens.digest(successor),
                        parent_id=row.id,
                        now=now,
                    )
                    await sessions.touch(conn, session.id, now, idle_expires_at)
                await recording.audit(
                    conn,
                    ctx,
                    tenant_id=tenant_id,
                    kind=kinds.TOKEN_REFRESHED,
                    actor=user.id,
                    target=user.id,
                    detail={"session_id": session.id, "grace": decision is RefreshDecision.REPLAY_IN_GRACE},
                )
                # The pair is a function of the spent token and the moment it was spent, so
                # every presentation in the grace period gets the same pair (two tabs).
                spent_at = now if decision is RefreshDecision.ROTATE else row.used_at
                pair = TokenPair(
                    access_token=await access_token(
                        idn,
                        user,
                        session.audience,
                        session.id,
                        issued_at=int(spent_at.timestamp()),
                        jti=refresh_tokens.successor_jti(idn.refresh_pepper, successor),
                    ),
                    refresh_token=successor,
                    expires_in=idn.settings.access_token_ttl,
                    refresh_expires_in=seconds_until(idle_expires_at, now),
                    session_id=session.id,
                )
    # Refusals leave the transaction first: the revocation above must commit.
    if pair is None:
        raise invalid_refresh_token()
    return pair
