"""IssueServiceToken: a service proves its client secret and gets a short-lived
`aud=service` token with its client's capabilities (domain/service_clients.py)."""

from __future__ import annotations

import hashlib
import hmac
import time

from zenops_kit.context import RequestContext
from zenops_kit.db import tenant_tx
from zenops_kit.errors import Unauthenticated

from .. import recording
from ..core import Identity
from ..domain import audit as kinds
from ..domain.claims import service_claims
from ..domain.service_clients import SERVICE_CLIENT_CAPABILITIES
from ..tokens.minting import mint

# Compared against when the client id is unknown, so both paths do the same work.
_NO_SECRET = hashlib.sha256(b"no such client").digest()


async def issue(idn: Identity, ctx: RequestContext, *, client_id: str, client_secret: str) -> tuple[str, int]:
    expected = idn.client_digests.get(client_id)
    given = hashlib.sha256(client_secret.encode("utf-8", "surrogatepass")).digest()
    matched = hmac.compare_digest(given, expected or _NO_SECRET)
    known = expected is not None and client_id in SERVICE_CLIENT_CAPABILITIES
    ok = matched and known and bool(client_secret)
    shown = client_id[:64]
    # Platform events: the internal tenant's trail keeps them.
    async with tenant_tx(idn.engine, idn.tenancy.internal_tenant_id) as conn:
        await recording.audit(
            conn,
            ctx,
            tenant_id=idn.tenancy.internal_tenant_id,
            kind=kinds.SERVICE_TOKEN_ISSUED if ok else kinds.SERVICE_TOKEN_DENIED,
            actor=f"service:{shown}" if ok else "",
            target=f"service:{shown}",
        )
    if not ok:
        raise Unauthenticated("invalid client credentials", reason="INVALID_CLIENT")
    ttl = idn.settings.service_token_ttl
    claims = service_claims(
        issuer=idn.settings.jwt_issuer,
        client_id=client_id,
        capabilities=SERVICE_CLIENT_CAPABILITIES[client_id],
        now=int(time.time()),
        ttl=ttl,
    )
    return mint(await idn.keys.active(), claims), ttl
