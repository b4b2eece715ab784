"""IntrospectToken: the authoritative answer on an access token (signature, expiry,
published key, session state)."""

from __future__ import annotations

from zenops_kit.context import RequestContext
from zenops_kit.errors import Unauthenticated

from ..core import Identity


async def introspect(idn: Identity, ctx: RequestContext, token: str) -> tuple[RequestContext | None, str]:
    """(the token's context, "") when active; (None, reason) otherwise."""
    ctx.require()  # any authenticated caller: a service or a user
    if not token:
        return None, "TOKEN_MISSING"
    try:
        return await idn.verifier.verify(token), ""
    except Unauthenticated as err:
        return None, err.reason
