"""channels and channel_directory (channel id → owning tenant; global, ids only)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from zenops_kit.db import autocommit

# A channel never changes owner: its tenant is cached for the life of the process.
_OWNERS: dict[str, str] = {}
_OWNER = text("SELECT tenant_id::text FROM channel_directory WHERE channel_id = CAST(:id AS uuid)")


async def owner_tenant(engine: AsyncEngine, channel_id: str) -> str | None:
    """The tenant (the firm) that owns `channel_id`; None when ops knows no such channel."""
    tenant = _OWNERS.get(channel_id)
    if tenant is None:
        async with autocommit(engine) as conn:
            tenant = (await conn.execute(_OWNER, {"id": channel_id})).scalar()
        if tenant is not None:
            _OWNERS[channel_id] = tenant
    return tenant
