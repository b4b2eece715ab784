"""SQL of the release gate's decisions (release_authorizations, append-only)."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def lock_work_order(conn: AsyncConnection, tenant_id: str, work_order_id: str) -> None:
    """Serialise gate decisions on one work order until the transaction ends (two calls
    with different keys must not both charge)."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": f"release_gate:{tenant_id}:{work_order_id}"},
    )


async def decision(conn: AsyncConnection, work_order_id: str) -> tuple[str, str | None] | None:
    """(basis, reservation id) of the gate's decision on this work order, if it decided already."""
    row = (
        await conn.execute(
            text("SELECT basis, reservation_id::text FROM release_authorizations WHERE work_order_id = :w"),
            {"w": work_order_id},
        )
    ).first()
    return (row[0], row[1]) if row else None


async def record(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    work_order_id: str,
    account_id: str,
    channel_request_id: str,
    basis: str,
    reservation_id: str | None,
    override_reason: str,
    actor: str,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO release_authorizations (id, tenant_id, work_order_id, account_id, channel_request_id, basis, "
            "reservation_id, override_reason, actor) VALUES (:id, :t, :w, :a, :cr, :basis, CAST(:r AS uuid), :why, "
            ":actor)"
        ),
        {
            "id": uuid.uuid4(),
            "t": tenant_id,
            "w": work_order_id,
            "a": account_id,
            "cr": channel_request_id,
            "basis": basis,
            "r": reservation_id,
            "why": override_reason,
            "actor": actor,
        },
    )
