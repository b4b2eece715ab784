"""Signing-key rotation: on demand (RotateSigningKey) and when the active key is due."""

from __future__ import annotations

import asyncio
import logging

from zenops_kit.context import ANONYMOUS, RequestContext
from zenops_kit.db import tenant_tx

from .. import recording
from ..core import Identity
from ..domain import audit as kinds
from .common import require_internal

log = logging.getLogger("zenops.identity.keys")


async def rotate(idn: Identity, ctx: RequestContext) -> str:
    """Sign with a new key from now on; returns its kid."""
    require_internal(ctx, idn.tenancy.internal_tenant_id)
    return await _rotate(idn, ctx, only_if_due=False, tenant_id=ctx.tenant_id)


async def rotate_if_due(idn: Identity) -> str | None:
    """Rotate when the active key is older than signing_key_max_age; the new kid or None."""
    return await _rotate(idn, ANONYMOUS, only_if_due=True, tenant_id=idn.tenancy.internal_tenant_id)


async def _rotate(idn: Identity, ctx: RequestContext, *, only_if_due: bool, tenant_id: str) -> str | None:
    async with tenant_tx(idn.engine, tenant_id) as conn:
        rotation = await idn.keys.rotate(conn, only_if_due=only_if_due)
        if rotation is None:
            return None
        await recording.audit(
            conn,
            ctx,
            tenant_id=tenant_id,
            kind=kinds.SIGNING_KEY_ROTATED,
            actor=recording.actor_of(ctx) or "system",
            target=rotation.new.kid,
            detail={
                "old_kid": rotation.old_kid,
                "new_kid": rotation.new.kid,
                "alg": rotation.new.alg,
                "reason": "max_age" if only_if_due else "requested",
            },
        )
    idn.keys.activate(rotation)
    log.info("signing key rotated", extra={"kid": rotation.new.kid, "old_kid": rotation.old_kid})
    return rotation.new.kid


async def maintain(idn: Identity, interval: float) -> None:
    """Background task: rotate when due, checked every `interval` seconds (a failed check
    is retried at the next one; the current key keeps signing meanwhile)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await rotate_if_due(idn)
        except Exception as exc:  # noqa: BLE001 - a maintenance job must not die
            log.warning("signing key rotation check failed", extra={"error": repr(exc)})
