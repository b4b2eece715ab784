"""packs, render_jobs and artifacts (migration 0004), and the monitor's read.

One pack and one job per (work order, snapshot version): `create_job` inserts both with ON
CONFLICT DO NOTHING in one statement, so a redelivered or concurrent trigger finds them made
and creates nothing. A job row is locked FOR UPDATE while an attempt starts or ends; the
rendering itself holds no lock. Artifacts are inserted once per (pack, kind), by the attempt
that succeeds, in the transaction that marks the job SUCCEEDED.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from .work_orders import COLUMNS as WORK_ORDER_COLUMNS

JOB_COLUMNS = (
    "j.id, j.tenant_id::text AS tenant_id, j.work_order_id::text AS work_order_id, j.snapshot_version, "
    "j.pack_id::text AS pack_id, j.status, j.attempts, j.last_error, j.pdf_note, j.created_at, "
    "j.started_at, j.finished_at"
)
ARTIFACT_COLUMNS = (
    "a.id::text AS id, a.tenant_id::text AS tenant_id, a.work_order_id::text AS work_order_id, "
    "a.pack_id::text AS pack_id, a.snapshot_version, a.kind, a.content_type, a.filename, a.size_bytes, "
    "a.sha256, a.template_id, a.template_version, a.bundle_sha256, a.storage_driver, a.storage_key, "
    "a.created_at"
)

# -- packs and jobs -----------------------------------------------------------------------------

_CREATE = text("""
    WITH new_pack AS (
        INSERT INTO packs (id, tenant_id, work_order_id, snapshot_version, template_id, template_version)
        VALUES (CAST(:pack_id AS uuid), CAST(:tid AS uuid), CAST(:wo AS uuid), :version, :template_id,
                :template_version)
        ON CONFLICT (work_order_id, snapshot_version) DO NOTHING
        RETURNING id
    ), pack AS (
        SELECT id FROM new_pack
        UNION ALL
        SELECT id FROM packs WHERE work_order_id = CAST(:wo AS uuid) AND snapshot_version = :version
        LIMIT 1
    ), job AS (
        INSERT INTO render_jobs (id, tenant_id, work_order_id, snapshot_version, pack_id)
        SELECT :job_id, CAST(:tid AS uuid), CAST(:wo AS uuid), :version, pack.id FROM pack
        ON CONFLICT DO NOTHING
        RETURNING id
    )
    SELECT (SELECT id::text FROM pack) AS pack_id, EXISTS (SELECT 1 FROM job) AS created
""")


async def create_job(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    work_order_id: str,
    snapshot_version: int,
    job_id: str,
    template_id: str,
    template_version: int,
) -> bool:
    """The pack and job of (work order, snapshot); False when they were already made."""
    row = (
        await conn.execute(
            _CREATE,
            {
                "pack_id": str(uuid.uuid4()),
                "tid": tenant_id,
                "wo": work_order_id,
                "version": snapshot_version,
                "job_id": job_id,
                "template_id": template_id,
                "template_version": template_version,
            },
        )
    ).one()
    return bool(row.created)


_JOB = text(f"""
    SELECT {JOB_COLUMNS}, p.template_id, p.template_version, p.created_at AS pack_created_at
    FROM render_jobs j JOIN packs p ON p.id = j.pack_id
    WHERE j.id = :id
""")
_LOCK_JOB = text(f"""
    SELECT {JOB_COLUMNS}, p.template_id, p.template_version, p.created_at AS pack_created_at
    FROM render_jobs j JOIN packs p ON p.id = j.pack_id
    WHERE j.id = :id FOR UPDATE OF j
""")
_START = text(f"""
    UPDATE render_jobs j SET status = 'RUNNING', attempts = attempts + 1, started_at = now(), finished_at = NULL
    WHERE j.id = :id
    RETURNING {JOB_COLUMNS}
""")
_FINISH = text(f"""
    UPDATE render_jobs j SET status = :status, last_error = :error, pdf_note = :pdf_note, finished_at = now()
    WHERE j.id = :id
    RETURNING {JOB_COLUMNS}
""")
_PACK_BUNDLE = text("UPDATE packs SET bundle_sha256 = :sha WHERE id = CAST(:id AS uuid)")


async def job(conn: AsyncConnection, job_id: str, *, lock: bool = False) -> Row | None:
    """The job with its pack's template and creation time."""
    return (await conn.execute(_LOCK_JOB if lock else _JOB, {"id": job_id})).first()


async def start_attempt(conn: AsyncConnection, job_id: str) -> Row:
    return (await conn.execute(_START, {"id": job_id})).one()


async def finish(conn: AsyncConnection, job_id: str, *, status: str, error: str = "", pdf_note: str = "") -> Row:
    return (await conn.execute(_FINISH, {"id": job_id, "status": status, "error": error, "pdf_note": pdf_note})).one()


async def set_pack_bundle(conn: AsyncConnection, pack_id: str, sha256: str) -> None:
    await conn.execute(_PACK_BUNDLE, {"id": pack_id, "sha": sha256})


_JOBS_OF = text(f"""
    SELECT {JOB_COLUMNS} FROM render_jobs j WHERE j.work_order_id = CAST(:wo AS uuid)
    ORDER BY j.created_at DESC, j.snapshot_version DESC
""")


async def jobs_of(conn: AsyncConnection, work_order_id: str) -> list[Row]:
    """Newest first."""
    return list(await conn.execute(_JOBS_OF, {"wo": work_order_id}))


# -- artifacts ---------------------------------------------------------------------------------

_INSERT_ARTIFACT = text(f"""
    INSERT INTO artifacts AS a (id, tenant_id, work_order_id, pack_id, snapshot_version, kind, content_type, filename,
                             size_bytes, sha256, template_id, template_version, bundle_sha256, storage_driver,
                             storage_key)
    VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), CAST(:wo AS uuid), CAST(:pack_id AS uuid), :version, :kind,
            :content_type, :filename, :size, :sha256, :template_id, :template_version, :bundle_sha256, :driver, :key)
    RETURNING {ARTIFACT_COLUMNS}
""")
_ARTIFACTS_OF = text(f"""
    SELECT {ARTIFACT_COLUMNS} FROM artifacts a WHERE a.work_order_id = CAST(:wo AS uuid)
    ORDER BY a.snapshot_version DESC, array_position(ARRAY['docx', 'pdf', 'export_bundle'], a.kind), a.id
""")
_ARTIFACT = text(f"SELECT {ARTIFACT_COLUMNS} FROM artifacts a WHERE a.id = CAST(:id AS uuid)")
_PACK_ARTIFACTS = text(
    f"SELECT {ARTIFACT_COLUMNS} FROM artifacts a WHERE a.pack_id = CAST(:pack AS uuid) ORDER BY a.kind"
)


async def insert_artifact(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    work_order_id: str,
    pack_id: str,
    snapshot_version: int,
    kind: str,
    content_type: str,
    filename: str,
    size_bytes: int,
    sha256: str,
    template_id: str,
    template_version: int,
    bundle_sha256: str,
    driver: str,
    key: str,
) -> Row:
    return (
        await conn.execute(
            _INSERT_ARTIFACT,
            {
                "id": str(uuid.uuid4()),
                "tid": tenant_id,
                "wo": work_order_id,
                "pack_id": pack_id,
                "version": snapshot_version,
                "kind": kind,
                "content_type": content_type,
                "filename": filename,
                "size": size_bytes,
                "sha256": sha256,
                "template_id": template_id,
                "template_version": template_version,
                "bundle_sha256": bundle_sha256,
                "driver": driver,
                "key": key,
            },
        )
    ).one()


async def artifacts_of(conn: AsyncConnection, work_order_id: str) -> list[Row]:
    """Newest snapshot first; within one, the report (DOCX, PDF) before the bundle."""
    return list(await conn.execute(_ARTIFACTS_OF, {"wo": work_order_id}))


async def artifact(conn: AsyncConnection, artifact_id: str) -> Row | None:
    return (await conn.execute(_ARTIFACT, {"id": artifact_id})).first()


async def pack_artifacts(conn: AsyncConnection, pack_id: str) -> list[Row]:
    return list(await conn.execute(_PACK_ARTIFACTS, {"pack": pack_id}))


# -- the monitor -------------------------------------------------------------------------------

_MONITOR = text(f"""
    SELECT {WORK_ORDER_COLUMNS},
           (SELECT r.score FROM readiness_results r WHERE r.work_order_id = w.id
            ORDER BY r.created_at DESC, r.id DESC LIMIT 1) AS readiness_score,
           (SELECT j.status FROM render_jobs j WHERE j.work_order_id = w.id
            ORDER BY j.snapshot_version DESC, j.created_at DESC LIMIT 1) AS job_status,
           (SELECT j.last_error FROM render_jobs j WHERE j.work_order_id = w.id
            ORDER BY j.snapshot_version DESC, j.created_at DESC LIMIT 1) AS job_error,
           EXISTS (SELECT 1 FROM releases rel WHERE rel.work_order_id = w.id) AS released
    FROM work_orders w
    WHERE (cardinality(CAST(:statuses AS text[])) = 0 OR w.status = ANY(CAST(:statuses AS text[])))
      AND (CAST(:at AS timestamptz) IS NULL
           OR (w.created_at, w.id) < (CAST(:at AS timestamptz), CAST(:key AS uuid)))
    ORDER BY w.created_at DESC, w.id DESC
    LIMIT :limit
""")
_COUNTS = text("SELECT status, count(*) AS n FROM work_orders GROUP BY status")


async def monitor_page(
    conn: AsyncConnection, *, statuses: list[str], before: tuple[datetime, str] | None, limit: int
) -> list[Row]:
    """Work orders with their readiness score, latest job and release flag, newest
    first; `limit` + 1 rows when there are more."""
    at, key = before or (None, None)
    return list(await conn.execute(_MONITOR, {"statuses": statuses, "at": at, "key": key, "limit": limit + 1}))


async def status_counts(conn: AsyncConnection) -> dict[str, int]:
    return {row.status: row.n for row in await conn.execute(_COUNTS)}
