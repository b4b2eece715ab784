"""Opening sessions and minting access tokens."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from ..core import Identity
from ..domain.claims import user_claims
from ..store import sessions
from ..store.users import User
from ..tokens import refresh
from ..tokens.minting import mint
from .common import TokenPair


async def access_token(
    idn: Identity, user: User, audience: str, session_id: str, *, issued_at: int | None = None, jti: str | None = None
) -> str:
    """`issued_at` and `jti` pin the token (EdDSA signatures are deterministic): a refresh
    replayed in the grace period gets the same access token as the first presentation."""
    now = int(time.time()) if issued_at is None else issued_at
    claims = user_claims(
        issuer=idn.settings.jwt_issuer,
        user_id=user.id,
        tenant_id=user.tenant_id,
        audience=audience,
        roles=user.roles,
        session_id=session_id,
        channel_id=user.channel_id,
        now=now,
        ttl=idn.settings.access_token_ttl,
        jti=jti,
    )
    return mint(await idn.keys.active(), claims)


def seconds_until(deadline: datetime, now: datetime) -> int:
    return max(0, int((deadline - now).total_seconds()))


async def open_session(
    idn: Identity, conn: AsyncConnection, user: User, audience: str, *, ip: str, user_agent: str, now: datetime
) -> TokenPair:
    session_id = str(uuid.uuid4())
    expires_at, idle_expires_at = idn.session_policy.new_deadlines(now)
    await sessions.create(
        conn,
        session_id=session_id,
        tenant_id=user.tenant_id,
        user_id=user.id,
        audience=audience,
        ip=ip,
        user_agent=user_agent,
        now=now,
        expires_at=expires_at,
        idle_expires_at=idle_expires_at,
    )
    token = refresh.new_token(user.tenant_id)
    await sessions.add_refresh_token(
        conn,
        token_id=str(uuid.uuid4()),
        tenant_id=user.tenant_id,
        session_id=session_id,
        token_hash=refresh.digest(token),
        parent_id=None,
        now=now,
    )
    return TokenPair(
        access_token=await access_token(idn, user, audience, session_id),
        refresh_token=token,
        expires_in=idn.settings.access_token_ttl,
        refresh_expires_in=seconds_until(idle_expires_at, now),
        session_id=session_id,
    )
