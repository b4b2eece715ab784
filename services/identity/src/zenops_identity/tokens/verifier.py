"""Identity's own token verifier: the kit's JwtVerifier over identity's key store (no
gRPC to itself), plus the authoritative session check — a user token whose session is
revoked or expired is rejected at once (TOKEN_REVOKED), not after the event reaches us."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from zenops_kit.auth import JwtVerifier, PublicKey
from zenops_kit.context import RequestContext, TokenVerifier
from zenops_kit.db import tenant_tx
from zenops_kit.errors import Unauthenticated, Unavailable

from ..clock import utcnow
from ..store import sessions
from .keys import SigningKeyStore


class LocalKeySource:
    """KeySource over the signing-key store: published keys only."""

    def __init__(self, store: SigningKeyStore) -> None:
        self.store = store

    async def key(self, kid: str) -> PublicKey | None:
        return await self.store.public_key(kid)


class IdentityVerifier:
    def __init__(self, keys: SigningKeyStore, engine: AsyncEngine, *, issuer: str) -> None:
        self.jwt = JwtVerifier(LocalKeySource(keys), issuer=issuer)
        self.engine = engine

    async def verify(self, token: str, request_id: str | None = None) -> RequestContext:
        ctx = await self.jwt.verify(token, request_id)
        if ctx.session_id is not None:
            async with tenant_tx(self.engine, ctx.tenant_id) as conn:
                active = await sessions.is_active(conn, ctx.session_id, utcnow())
            if not active:
                raise Unauthenticated("the token's session has been revoked or has expired", reason="TOKEN_REVOKED")
        return ctx


class DeferredVerifier:
    """What the interceptor holds from construction on; bound to the database-backed
    verifier once the app has its engine (the server starts serving only after that)."""

    def __init__(self) -> None:
        self.target: TokenVerifier | None = None

    async def verify(self, token: str, request_id: str | None = None) -> RequestContext:
        if self.target is None:
            raise Unavailable("identity is starting; retry shortly")
        return await self.target.verify(token, request_id)
