"""usage_events (tenant table): usage from events and external systems, once per event id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

COLUMNS = """
    u.id::text AS u_id, u.event_id AS u_event_id, COALESCE(u.account_id::text, '') AS u_account_id, u.kind AS u_kind,
    u.quantity AS u_quantity, u.ref_type AS u_ref_type, u.ref_id AS u_ref_id, u.occurred_at AS u_occurred_at,
    u.source AS u_source, u.recorded_at AS u_recorded_at
"""


@dataclass(frozen=True)
class UsageEvent:
    id: str
    event_id: str
    account_id: str  # '' when the usage names no account
    kind: str
    quantity: int
    ref_type: str
    ref_id: str
    occurred_at: datetime
    source: str
    recorded_at: datetime


def usage_of(r) -> UsageEvent:
    return UsageEvent(
        r.u_id,
        r.u_event_id,
        r.u_account_id,
        r.u_kind,
        r.u_quantity,
        r.u_ref_type,
        r.u_ref_id,
        r.u_occurred_at,
        r.u_source,
        r.u_recorded_at,
    )


async def insert(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    event_id: str,
    account_id: str,
    kind: str,
    quantity: int,
    ref_type: str = "",
    ref_id: str = "",
    occurred_at: datetime,
    source: str = "",
) -> tuple[UsageEvent, bool]:
    """(the event, True) when recorded now; (the event recorded before, False) when this
    event id was already recorded (nothing changes). `account_id` must exist (or be '')."""
    row = (
        await conn.execute(
            text(f"""
        WITH u AS (
            INSERT INTO usage_events (id, tenant_id, event_id, account_id, kind, quantity, ref_type, ref_id,
                                      occurred_at, source)
            VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), :eid, CAST(NULLIF(:aid, '') AS uuid), :kind, :qty, :rt, :ri,
                    :at, :source)
            ON CONFLICT (tenant_id, event_id) DO NOTHING
            RETURNING *
        )
        SELECT {COLUMNS} FROM u
        """),
            {
                "id": str(uuid.uuid4()),
                "tid": tenant_id,
                "eid": event_id,
                "aid": account_id,
                "kind": kind,
                "qty": quantity,
                "rt": ref_type,
                "ri": ref_id,
                "at": occurred_at,
                "source": source,
            },
        )
    ).first()
    if row is not None:
        return usage_of(row), True
    existing = await by_event_id(conn, event_id)
    assert existing is not None  # the conflict was on this event id, committed (ON CONFLICT waited for it)
    return existing, False


async def by_event_id(conn: AsyncConnection, event_id: str) -> UsageEvent | None:
    row = (
        await conn.execute(text(f"SELECT {COLUMNS} FROM usage_events u WHERE u.event_id = :eid"), {"eid": event_id})
    ).first()
    return usage_of(row) if row else None
