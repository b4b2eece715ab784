"""releases: one per work order (unique), immutable (a trigger refuses UPDATE and DELETE)."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from . import dumps

COLUMNS = (
    "r.id::text AS id, r.tenant_id::text AS tenant_id, r.work_order_id::text AS work_order_id, "
    "r.snapshot_version, r.pack_id::text AS pack_id, r.artifact_hashes::text AS artifact_hashes, "
    "r.billing_basis, r.billing_reservation_id, r.override_reason, r.released_by, r.released_at"
)

_GET = text(f"SELECT {COLUMNS} FROM releases r WHERE r.work_order_id = CAST(:wo AS uuid)")
_INSERT = text(f"""
    INSERT INTO releases AS r (id, tenant_id, work_order_id, snapshot_version, pack_id, artifact_hashes,
                               billing_basis, billing_reservation_id, override_reason, released_by)
    VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), CAST(:wo AS uuid), :version, CAST(:pack AS uuid),
            CAST(:hashes AS jsonb), :basis, :reservation, :override, :actor)
    RETURNING {COLUMNS}
""")
_RENDERED_PACK = text("""
    SELECT p.id::text AS pack_id FROM packs p JOIN render_jobs j ON j.pack_id = p.id
    WHERE p.work_order_id = CAST(:wo AS uuid) AND p.snapshot_version = :version AND j.status = 'SUCCEEDED'
""")


async def of_work_order(conn: AsyncConnection, work_order_id: str) -> Row | None:
    return (await conn.execute(_GET, {"wo": work_order_id})).first()


async def rendered_pack(conn: AsyncConnection, work_order_id: str, snapshot_version: int) -> str | None:
    """The pack whose job rendered the work order's snapshot (None when none did)."""
    return (await conn.execute(_RENDERED_PACK, {"wo": work_order_id, "version": snapshot_version})).scalar()


async def insert(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    work_order_id: str,
    snapshot_version: int,
    pack_id: str,
    artifact_hashes: dict[str, str],
    billing_basis: str,
    billing_reservation_id: str,
    override_reason: str,
    actor: str,
) -> Row:
    return (
        await conn.execute(
            _INSERT,
            {
                "id": str(uuid.uuid4()),
                "tid": tenant_id,
                "wo": work_order_id,
                "version": snapshot_version,
                "pack": pack_id,
                "hashes": dumps(artifact_hashes),
                "basis": billing_basis,
                "reservation": billing_reservation_id,
                "override": override_reason,
                "actor": actor,
            },
        )
    ).one()
