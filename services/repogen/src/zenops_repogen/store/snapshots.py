"""snapshots (immutable: a trigger refuses UPDATE and DELETE), rules_runs and
readiness_results.

A new snapshot is written with its rules run and its readiness result in one statement
(`insert`); readiness re-evaluated later (evidence changed, a move to READY_FOR_RENDER)
adds a readiness_results row of the same snapshot (`record_readiness`). The latest row of a
work order is its readiness now.
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from . import dumps

COLUMNS = (
    "s.work_order_id::text AS work_order_id, s.version, s.schema_version, s.contract::text AS contract, "
    "s.outputs::text AS outputs, s.readiness::text AS readiness, s.actor, s.created_at"
)

_INSERT = text(f"""
    WITH s AS (
        INSERT INTO snapshots (tenant_id, work_order_id, version, schema_version, contract, outputs, readiness, actor)
        VALUES (CAST(:tid AS uuid), CAST(:wo AS uuid), :version, :schema_version, CAST(:contract AS jsonb),
                CAST(:outputs AS jsonb), CAST(:readiness AS jsonb), :actor)
        RETURNING *
    ), run AS (
        INSERT INTO rules_runs (id, tenant_id, work_order_id, snapshot_version, rules_version, registry_version,
                                messages, duration_us)
        SELECT CAST(:run_id AS uuid), s.tenant_id, s.work_order_id, s.version, :rules_version, :registry_version,
               CAST(:messages AS jsonb), :duration_us FROM s
    ), ready AS (
        INSERT INTO readiness_results (id, tenant_id, work_order_id, snapshot_version, trigger, ready, score, result)
        SELECT CAST(:result_id AS uuid), s.tenant_id, s.work_order_id, s.version, :trigger, :ready, :score,
               CAST(:readiness AS jsonb) FROM s
    )
    SELECT {COLUMNS} FROM s
""")

_GET = text(f"SELECT {COLUMNS} FROM snapshots s WHERE s.work_order_id = CAST(:wo AS uuid) AND s.version = :version")
_PAGE = text(f"""
    SELECT {COLUMNS} FROM snapshots s
    WHERE s.work_order_id = CAST(:wo AS uuid) AND (CAST(:before AS bigint) IS NULL OR s.version < :before)
    ORDER BY s.version DESC
    LIMIT :limit
""")

_RECORD_READINESS = text("""
    INSERT INTO readiness_results (id, tenant_id, work_order_id, snapshot_version, trigger, ready, score, result)
    VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), CAST(:wo AS uuid), :version, :trigger, :ready, :score,
            CAST(:result AS jsonb))
    RETURNING created_at
""")
_LATEST_READINESS = text("""
    SELECT snapshot_version, trigger, ready, score, result::text AS result, created_at FROM readiness_results
    WHERE work_order_id = CAST(:wo AS uuid) ORDER BY created_at DESC, id DESC LIMIT 1
""")
_RULES_RUNS = text("""
    SELECT snapshot_version, rules_version, registry_version, messages::text AS messages, duration_us, created_at
    FROM rules_runs WHERE work_order_id = CAST(:wo AS uuid) ORDER BY snapshot_version, created_at
""")


async def insert(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    work_order_id: str,
    version: int,
    schema_version: int,
    contract: dict,
    outputs: dict,
    readiness: dict,
    ready: bool,
    score: int,
    actor: str,
    rules_version: str,
    registry_version: str,
    messages: list,
    duration_us: int,
    trigger: str,
) -> Row:
    return (
        await conn.execute(
            _INSERT,
            {
                "tid": tenant_id,
                "wo": work_order_id,
                "version": version,
                "schema_version": schema_version,
                "contract": dumps(contract),
                "outputs": dumps(outputs),
                "readiness": dumps(readiness),
                "actor": actor,
                "run_id": str(uuid.uuid4()),
                "rules_version": rules_version,
                "registry_version": registry_version,
                "messages": dumps(messages),
                "duration_us": duration_us,
                "result_id": str(uuid.uuid4()),
                "trigger": trigger,
                "ready": ready,
                "score": score,
            },
        )
    ).one()


async def get(conn: AsyncConnection, work_order_id: str, version: int) -> Row | None:
    return (await conn.execute(_GET, {"wo": work_order_id, "version": version})).first()


async def page(conn: AsyncConnection, work_order_id: str, *, before: int | None, limit: int) -> list[Row]:
    """Newest first, versions below `before`."""
    return list(await conn.execute(_PAGE, {"wo": work_order_id, "before": before, "limit": limit}))


async def record_readiness(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    work_order_id: str,
    snapshot_version: int,
    trigger: str,
    ready: bool,
    score: int,
    result: dict,
):
    """A readiness result of the snapshot; returns its time."""
    return (
        await conn.execute(
            _RECORD_READINESS,
            {
                "id": str(uuid.uuid4()),
                "tid": tenant_id,
                "wo": work_order_id,
                "version": snapshot_version,
                "trigger": trigger,
                "ready": ready,
                "score": score,
                "result": dumps(result),
            },
        )
    ).scalar_one()


async def latest_readiness(conn: AsyncConnection, work_order_id: str) -> Row | None:
    return (await conn.execute(_LATEST_READINESS, {"wo": work_order_id})).first()


async def rules_runs(conn: AsyncConnection, work_order_id: str) -> list[Row]:
    return list(await conn.execute(_RULES_RUNS, {"wo": work_order_id}))
