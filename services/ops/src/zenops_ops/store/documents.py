"""documents, document_tags and document_audit.

Every read returns the document with its tags in the same round trip (a correlated
aggregate), so a list of N documents is one query, not N+1. Functions run on the caller's
transaction: scoped to the tenant, and for a portal user to its channel (zenops_kit.rls), which
the queries also filter on.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.documents import LINK_FIELDS, Document, Links, ListFilter, NewDocument

_COLUMNS = """
    d.id::text AS id, d.filename, d.content_type, d.size_bytes, d.sha256, d.status, d.source, d.classification,
    d.sensitivity, d.captured_at, d.captured_by_employee_id, d.metadata::text AS metadata,
    COALESCE((SELECT jsonb_object_agg(t.key, t.value) FROM document_tags t WHERE t.document_id = d.id),
             '{}'::jsonb)::text AS tags,
    d.assignment_id::text AS assignment_id, d.channel_request_id::text AS channel_request_id,
    d.work_order_id::text AS work_order_id, d.invoice_id::text AS invoice_id, d.employee_id::text AS employee_id,
    d.channel_id::text AS channel_id, d.storage_driver, d.storage_key, d.created_by, d.created_at, d.uploaded_at
"""

_LINK_TARGETS = text(
    "SELECT 'assignment' AS kind, channel_id::text AS channel_id FROM assignments WHERE id = CAST(:aid AS uuid) "
    "UNION ALL "
    "SELECT 'channel_request', channel_id::text FROM channel_requests WHERE id = CAST(:crid AS uuid)"
)

_INSERT = text(f"""
    WITH d AS (
        INSERT INTO documents (id, tenant_id, channel_id, filename, content_type, size_bytes, sha256, source,
                               classification, sensitivity, captured_at, captured_by_employee_id, metadata,
                               storage_driver, storage_key, assignment_id, channel_request_id, work_order_id,
                               invoice_id, employee_id, created_by, created_at, updated_at)
        VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), CAST(:channel AS uuid), :filename, :content_type, :size,
                :sha256, :source, :classification, :sensitivity, :captured_at, :captured_by,
                CAST(:metadata AS jsonb), :driver, :key, CAST(:assignment_id AS uuid),
                CAST(:channel_request_id AS uuid), CAST(:work_order_id AS uuid), CAST(:invoice_id AS uuid),
                CAST(:employee_id AS uuid), :actor, :created_at, :created_at)
        RETURNING *
    )
    SELECT {_COLUMNS} FROM d
""")

_GET = text(f"SELECT {_COLUMNS} FROM documents d WHERE d.id = CAST(:id AS uuid)")
_GET_FOR_UPDATE = text(f"SELECT {_COLUMNS} FROM documents d WHERE d.id = CAST(:id AS uuid) FOR UPDATE OF d")
_STATUS_FOR_SHARE = text("SELECT status FROM documents WHERE id = CAST(:id AS uuid) FOR SHARE")

_MARK_UPLOADED = text(f"""
    WITH d AS (
        UPDATE documents SET status = 'UPLOADED', uploaded_at = now(), updated_at = now()
        WHERE id = CAST(:id AS uuid) AND status = 'PENDING'
        RETURNING *
    )
    SELECT {_COLUMNS} FROM d
""")

# Upserts and removals in one statement; the document's updated_at moves with its tags.
_SET_TAGS = text("""
    WITH removed AS (
        DELETE FROM document_tags WHERE document_id = CAST(:id AS uuid) AND key = ANY(CAST(:removals AS text[]))
    ), upserted AS (
        INSERT INTO document_tags (tenant_id, document_id, key, value)
        SELECT CAST(:tid AS uuid), CAST(:id AS uuid), u.key, u.value
        FROM jsonb_each_text(CAST(:upserts AS jsonb)) AS u (key, value)
        ON CONFLICT (document_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
    )
    UPDATE documents SET updated_at = now() WHERE id = CAST(:id AS uuid)
""")

_AUDIT = text(
    "INSERT INTO document_audit (id, tenant_id, document_id, action, actor, detail, trace_id) "
    "VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), CAST(:did AS uuid), :action, :actor, CAST(:detail AS jsonb), "
    ":trace)"
)


def _document(row) -> Document:
    return Document(
        id=row.id,
        filename=row.filename,
        content_type=row.content_type,
        size_bytes=int(row.size_bytes),
        sha256=row.sha256,
        status=row.status,
        source=row.source,
        classification=row.classification,
        sensitivity=row.sensitivity,
        captured_at=row.captured_at,
        captured_by_employee_id=row.captured_by_employee_id,
        metadata=json.loads(row.metadata),
        tags=json.loads(row.tags),
        links=Links(**{f: getattr(row, f) for f in LINK_FIELDS}),
        channel_id=row.channel_id,
        storage_driver=row.storage_driver,
        storage_key=row.storage_key,
        created_by=row.created_by,
        created_at=row.created_at,
        uploaded_at=row.uploaded_at,
    )


async def link_targets(
    conn: AsyncConnection, *, assignment_id: str | None, channel_request_id: str | None
) -> dict[str, str | None]:
    """{'assignment': its channel id or None, 'channel_request': ...} for those that exist
    (and that this transaction may see)."""
    rows = await conn.execute(_LINK_TARGETS, {"aid": assignment_id, "crid": channel_request_id})
    return {r.kind: r.channel_id for r in rows}


async def insert(
    conn: AsyncConnection,
    *,
    document_id: str,
    tenant_id: str,
    channel_id: str | None,
    new: NewDocument,
    driver: str,
    key: str,
    actor: str,
    created_at: datetime,
) -> Document:
    row = (
        await conn.execute(
            _INSERT,
            {
                "id": document_id,
                "tid": tenant_id,
                "channel": channel_id,
                "filename": new.filename,
                "content_type": new.content_type,
                "size": new.size_bytes,
                "sha256": new.sha256,
                "source": new.source,
                "classification": new.classification,
                "sensitivity": new.sensitivity,
                "captured_at": new.captured_at,
                "captured_by": new.captured_by_employee_id,
                "metadata": json.dumps(new.metadata),
                "driver": driver,
                "key": key,
                **{f: getattr(new.links, f) for f in LINK_FIELDS},
                "actor": actor,
                "created_at": created_at,
            },
        )
    ).one()
    return _document(row)


async def get(conn: AsyncConnection, document_id: str, *, for_update: bool = False) -> Document | None:
    row = (await conn.execute(_GET_FOR_UPDATE if for_update else _GET, {"id": document_id})).first()
    return None if row is None else _document(row)


async def status_for_share(conn: AsyncConnection, document_id: str) -> str | None:
    """The document's status, locked against a concurrent confirm until the transaction ends."""
    return (await conn.execute(_STATUS_FOR_SHARE, {"id": document_id})).scalar()


async def mark_uploaded(conn: AsyncConnection, document_id: str) -> Document:
    return _document((await conn.execute(_MARK_UPLOADED, {"id": document_id})).one())


async def set_tags(
    conn: AsyncConnection, *, tenant_id: str, document_id: str, upserts: dict[str, str], removals: list[str]
) -> None:
    await conn.execute(
        _SET_TAGS, {"tid": tenant_id, "id": document_id, "upserts": json.dumps(upserts), "removals": removals}
    )


async def audit(
    conn: AsyncConnection, *, tenant_id: str, document_id: str, action: str, actor: str, detail: dict, trace_id: str
) -> None:
    await conn.execute(
        _AUDIT,
        {
            "id": str(uuid.uuid4()),
            "tid": tenant_id,
            "did": document_id,
            "action": action,
            "actor": actor,
            "detail": json.dumps(detail, default=str),
            "trace": trace_id,
        },
    )


def _where(flt: ListFilter, params: dict) -> list[str]:
    where = []
    for f in LINK_FIELDS:
        value = getattr(flt.links, f)
        if value:
            where.append(f"d.{f} = CAST(:{f} AS uuid)")
            params[f] = value
    for column in ("classification", "source", "sensitivity", "status"):
        value = getattr(flt, column)
        if value:
            where.append(f"d.{column} = :{column}")
            params[column] = value
    if not flt.include_sensitive:
        where.append("d.sensitivity NOT IN ('PII', 'CONFIDENTIAL')")
    if flt.channel_id:
        where.append("d.channel_id = CAST(:channel_id AS uuid)")
        params["channel_id"] = flt.channel_id
    if flt.tag_key:
        params["tag_key"] = flt.tag_key
        value = ""
        if flt.tag_value:
            params["tag_value"] = flt.tag_value
            value = " AND t.value = :tag_value"
        where.append(f"EXISTS (SELECT 1 FROM document_tags t WHERE t.document_id = d.id AND t.key = :tag_key{value})")
    return where


async def page(
    conn: AsyncConnection, flt: ListFilter, *, after: tuple[datetime, str] | None, limit: int
) -> list[Document]:
    """Newest first; `after` = (created_at, id) of the previous page's last document; one more
    than `limit` rows tell the caller whether a next page exists."""
    params: dict = {"limit": limit + 1}
    where = _where(flt, params)
    if after is not None:
        where.append("(d.created_at, d.id) < (:after_at, CAST(:after_id AS uuid))")
        params["after_at"], params["after_id"] = after
    sql = (
        f"SELECT {_COLUMNS} FROM documents d"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY d.created_at DESC, d.id DESC LIMIT :limit"
    )
    return [_document(r) for r in await conn.execute(text(sql), params)]
