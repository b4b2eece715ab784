"""Row-level security by tenant and channel: every tenant table is scoped to the transaction's
tenant (the kit's `tenant_rls`); tables a channel partner reads (ops: channel requests,
documents; repogen: work orders) are also scoped to the transaction's channel when one is set, so a portal
user's transaction cannot see another channel's rows even if a query forgot the filter.

    async with scoped_tx(engine, tenant_id, channel_id) as conn:   # channel_id None: staff
        ...
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops_kit.db import set_tenant, tenant_tx

_TENANT = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"
# No channel set (staff, services): the tenant's rows; a channel set (portal): only its rows.
_CHANNEL = (
    "(NULLIF(current_setting('app.channel_id', true), '') IS NULL "
    "OR channel_id = NULLIF(current_setting('app.channel_id', true), '')::uuid)"
)
_SET_CHANNEL = text("SELECT set_config('app.channel_id', :channel_id, true)")


def channel_rls(table: str) -> list[str]:
    """DDL: `table` (with tenant_id and channel_id columns) visible only to the transaction's
    tenant and, when set, channel. FORCE binds the owner (the service's role) too."""
    predicate = f"{_TENANT} AND {_CHANNEL}"
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY {table}_tenant_channel_isolation ON {table} USING ({predicate}) WITH CHECK ({predicate})",
    ]


@asynccontextmanager
async def scoped_tx(
    engine: AsyncEngine, tenant_id: str, channel_id: str | None = None
) -> AsyncIterator[AsyncConnection]:
    """A transaction of `tenant_id`; with `channel_id`, also of that channel (portal users)."""
    if channel_id is None:
        async with tenant_tx(engine, tenant_id) as conn:
            yield conn
        return
    async with engine.begin() as conn:
        await set_tenant(conn, tenant_id)
        await conn.execute(_SET_CHANNEL, {"channel_id": str(uuid.UUID(str(channel_id)))})
        yield conn
