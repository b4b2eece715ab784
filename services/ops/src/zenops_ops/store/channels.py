"""channels and channel_directory (channel id → owning tenant; global, ids only).

A channel and its directory row are written by one statement (with the audit row), so a
channel a portal token names can always be resolved to its firm.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops_kit.db import autocommit

from ..domain.channels import Channel, ChannelValues
from ..domain.masterdata import like_pattern, taken
from . import violated_constraint

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


_COLUMNS = """
    id::text AS id, tenant_id::text AS tenant_id, name, channel_type, commission_mode, commission_value, is_active,
    billing_account_id::text AS billing_account_id, default_credits, portal_user_ids::text[] AS portal_user_ids,
    created_by, created_at, updated_at, version
"""
# Parameter expression of every column a caller sets (parameters named as the columns).
_VALUES = {
    "name": ":name",
    "channel_type": ":channel_type",
    "commission_mode": ":commission_mode",
    "commission_value": ":commission_value",
    "is_active": ":is_active",
    "billing_account_id": "CAST(:billing_account_id AS uuid)",
    "default_credits": ":default_credits",
    "portal_user_ids": "CAST(:portal_user_ids AS uuid[])",
}
_AUDIT = (
    "INSERT INTO masterdata_audit (id, tenant_id, resource_type, resource_id, action, actor, detail, trace_id) "
    "SELECT CAST(:audit_id AS uuid), tenant_id, 'channel', id, :action, :actor, CAST(:detail AS jsonb), :trace "
    "FROM c"
)


def channel_of(r) -> Channel:
    return Channel(
        id=r.id,
        tenant_id=r.tenant_id,
        name=r.name,
        channel_type=r.channel_type,
        commission_mode=r.commission_mode,
        commission_value=r.commission_value,
        is_active=r.is_active,
        billing_account_id=r.billing_account_id,
        default_credits=r.default_credits,
        portal_user_ids=tuple(r.portal_user_ids or ()),
        created_by=r.created_by,
        created_at=r.created_at,
        updated_at=r.updated_at,
        version=r.version,
    )


def _params(values: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def _name_taken(exc: IntegrityError, field: str):
    if violated_constraint(exc) == "channels_name_unique":
        return taken("CHANNEL_NAME_TAKEN", field, "is already used by another channel")
    return exc


async def insert(
    conn: AsyncConnection, values: ChannelValues, *, tenant_id: str, actor: str, trace_id: str = ""
) -> Channel:
    """The channel, its channel_directory row and its audit row."""
    columns = {k: getattr(values, k) for k in _VALUES}
    statement = text(f"""
        WITH c AS (
            INSERT INTO channels (id, tenant_id, {", ".join(_VALUES)}, created_by)
            VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), {", ".join(_VALUES.values())}, :actor)
            RETURNING *
        ), directory AS (
            INSERT INTO channel_directory (channel_id, tenant_id) SELECT id, tenant_id FROM c
        ), audit AS ({_AUDIT})
        SELECT {_COLUMNS} FROM c""")
    params = {
        **_params(columns),
        "id": str(uuid.uuid4()),
        "tid": tenant_id,
        "actor": actor,
        "audit_id": str(uuid.uuid4()),
        "action": "created",
        "trace": trace_id,
        "detail": json.dumps(_params(columns), default=str),
    }
    try:
        row = (await conn.execute(statement, params)).one()
    except IntegrityError as exc:
        raise _name_taken(exc, "name") from None
    return channel_of(row)


async def get(conn: AsyncConnection, channel_id: str, *, for_update: bool = False) -> Channel | None:
    lock = " FOR UPDATE" if for_update else ""
    row = (
        await conn.execute(
            text(f"SELECT {_COLUMNS} FROM channels WHERE id = CAST(:id AS uuid){lock}"), {"id": channel_id}
        )
    ).first()
    return channel_of(row) if row is not None else None


async def update(
    conn: AsyncConnection,
    before: Channel,
    changes: dict,
    *,
    actor: str,
    trace_id: str = "",
    field_prefix: str = "channel.",
) -> Channel:
    """`changes`: column → new value (only what differs); bumps version and updated_at and
    records before/after."""
    sets = ", ".join(f"{k} = {_VALUES[k]}" for k in changes)
    detail = {
        "fields": sorted(changes),
        "before": _params({k: getattr(before, k) for k in changes}),
        "after": _params(changes),
    }
    statement = text(f"""
        WITH c AS (
            UPDATE channels SET {sets}, updated_at = now(), version = version + 1
            WHERE id = CAST(:id AS uuid)
            RETURNING *
        ), audit AS ({_AUDIT})
        SELECT {_COLUMNS} FROM c""")
    params = {
        **_params(changes),
        "id": before.id,
        "actor": actor,
        "audit_id": str(uuid.uuid4()),
        "action": "updated",
        "trace": trace_id,
        "detail": json.dumps(detail, default=str),
    }
    try:
        row = (await conn.execute(statement, params)).one()
    except IntegrityError as exc:
        raise _name_taken(exc, field_prefix + "name") from None
    return channel_of(row)


async def page(
    conn: AsyncConnection,
    *,
    channel_type: str | None,
    active: bool | None,
    query: str,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Channel]:
    """Newest first; `after` = (created_at, id) of the previous page's last channel."""
    clauses: list[str] = []
    params: dict = {"limit": limit}
    if channel_type:
        clauses.append("channel_type = :channel_type")
        params["channel_type"] = channel_type
    if active is not None:
        clauses.append("is_active = :active")
        params["active"] = active
    if query:
        clauses.append("name ILIKE :q")
        params["q"] = like_pattern(query)
    if after is not None:
        clauses.append("(created_at, id) < (:after_at, CAST(:after_id AS uuid))")
        params.update(after_at=after[0], after_id=after[1])
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = await conn.execute(
        text(f"SELECT {_COLUMNS} FROM channels {where} ORDER BY created_at DESC, id DESC LIMIT :limit"), params
    )
    return [channel_of(r) for r in rows]
