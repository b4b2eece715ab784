"""evidence, field_links and comments.

Evidence and field links are never deleted and change only by being removed, once
(removed_by/at/reason; a link's trigger enforces it, evidence's too — only its annexure
position may also move while it is live). Comments are append-only.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from zenops_kit.errors import AlreadyExists

from . import violated_constraint

EVIDENCE = (
    "e.id::text AS id, e.work_order_id::text AS work_order_id, e.document_id::text AS document_id, e.kind, "
    "e.caption, e.annexure_order, e.captured_at, e.filename, e.content_type, e.added_by, e.created_at, "
    "e.removed_by, e.removed_at, e.removal_reason"
)
# Annexure order: positioned items first (1..n), then the ones not ordered yet, oldest first.
_ANNEXURE_ORDER = "(e.annexure_order = 0), e.annexure_order, e.created_at, e.id"

LINKS = (
    "l.id::text AS id, l.work_order_id::text AS work_order_id, l.field_key, l.evidence_id::text AS evidence_id, "
    "l.note, l.linked_by, l.linked_at, l.removed_by, l.removed_at, l.removal_reason"
)

COMMENTS = "c.id::text AS id, c.work_order_id::text AS work_order_id, c.kind, c.body, c.author, c.created_at"

# -- evidence ------------------------------------------------------------------------------

_INSERT_EVIDENCE = text(f"""
    WITH e AS (
        INSERT INTO evidence (id, tenant_id, work_order_id, document_id, kind, caption, captured_at, filename,
                              content_type, added_by)
        VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), CAST(:wo AS uuid), CAST(:doc AS uuid), :kind, :caption,
                :captured_at, :filename, :content_type, :actor)
        RETURNING *
    )
    SELECT {EVIDENCE} FROM e
""")
_GET_EVIDENCE = text(
    f"SELECT {EVIDENCE} FROM evidence e WHERE e.work_order_id = CAST(:wo AS uuid) AND e.id = CAST(:id AS uuid)"
)
_LIVE_EVIDENCE = text(
    f"SELECT {EVIDENCE} FROM evidence e WHERE e.work_order_id = CAST(:wo AS uuid) "
    f"AND e.removed_at IS NULL ORDER BY {_ANNEXURE_ORDER}"
)
_EVIDENCE_COUNTS = text(
    "SELECT kind, count(*) AS n FROM evidence WHERE work_order_id = CAST(:wo AS uuid) "
    "AND removed_at IS NULL GROUP BY kind"
)
# Removing evidence removes its live links the same way, and closes the gap it leaves in
# the annexure order.
_REMOVE_EVIDENCE = text(f"""
    WITH e AS (
        UPDATE evidence SET removed_by = :actor, removed_at = clock_timestamp(), removal_reason = :reason
        WHERE work_order_id = CAST(:wo AS uuid) AND id = CAST(:id AS uuid) AND removed_at IS NULL
        RETURNING *
    ), links AS (
        UPDATE field_links SET removed_by = :actor, removed_at = clock_timestamp(), removal_reason = :link_reason
        WHERE evidence_id IN (SELECT id FROM e) AND removed_at IS NULL
        RETURNING id
    ), shifted AS (
        UPDATE evidence SET annexure_order = annexure_order - 1
        WHERE work_order_id = CAST(:wo AS uuid) AND removed_at IS NULL AND id <> CAST(:id AS uuid)
          AND annexure_order > (SELECT annexure_order FROM e) AND (SELECT annexure_order FROM e) > 0
    )
    SELECT {EVIDENCE}, (SELECT count(*) FROM links) AS links_removed FROM e
""")
_SET_ORDER = text("""
    UPDATE evidence SET annexure_order = o.position
    FROM unnest(CAST(:ids AS uuid[])) WITH ORDINALITY AS o(id, position)
    WHERE evidence.id = o.id AND evidence.work_order_id = CAST(:wo AS uuid) AND evidence.removed_at IS NULL
      AND evidence.annexure_order IS DISTINCT FROM o.position
""")


async def insert_evidence(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    work_order_id: str,
    document_id: str,
    kind: str,
    caption: str,
    captured_at: datetime | None,
    filename: str,
    content_type: str,
    actor: str,
) -> Row:
    """ALREADY_EXISTS when the document is live evidence of the work order already."""
    try:
        async with conn.begin_nested():
            return (
                await conn.execute(
                    _INSERT_EVIDENCE,
                    {
                        "id": str(uuid.uuid4()),
                        "tid": tenant_id,
                        "wo": work_order_id,
                        "doc": document_id,
                        "kind": kind,
                        "caption": caption,
                        "captured_at": captured_at,
                        "filename": filename[:500],
                        "content_type": content_type[:200],
                        "actor": actor,
                    },
                )
            ).one()
    except IntegrityError as exc:
        if violated_constraint(exc) == "evidence_document":
            raise AlreadyExists(
                f"document {document_id} is evidence of this work order already",
                reason="EVIDENCE_EXISTS",
                metadata={"field": "document_id", "document_id": document_id},
            ) from None
        raise


async def get_evidence(conn: AsyncConnection, work_order_id: str, evidence_id: str) -> Row | None:
    return (await conn.execute(_GET_EVIDENCE, {"wo": work_order_id, "id": evidence_id})).first()


async def live_evidence(conn: AsyncConnection, work_order_id: str) -> list[Row]:
    """Live evidence in annexure order."""
    return list(await conn.execute(_LIVE_EVIDENCE, {"wo": work_order_id}))


async def evidence_counts(conn: AsyncConnection, work_order_id: str) -> dict[str, int]:
    return {r.kind: r.n for r in await conn.execute(_EVIDENCE_COUNTS, {"wo": work_order_id})}


async def remove_evidence(
    conn: AsyncConnection, *, work_order_id: str, evidence_id: str, actor: str, reason: str
) -> Row | None:
    """The removed evidence (with `links_removed`); None when it was not live."""
    return (
        await conn.execute(
            _REMOVE_EVIDENCE,
            {
                "wo": work_order_id,
                "id": evidence_id,
                "actor": actor,
                "reason": reason,
                "link_reason": f"evidence removed: {reason}"[:1000],
            },
        )
    ).first()


async def set_annexure_order(conn: AsyncConnection, work_order_id: str, ids: list[str]) -> None:
    """Positions 1..n in the order of `ids` (live evidence of the work order)."""
    await conn.execute(_SET_ORDER, {"wo": work_order_id, "ids": ids})


# -- field links ---------------------------------------------------------------------------

_INSERT_LINK = text(f"""
    WITH l AS (
        INSERT INTO field_links (id, tenant_id, work_order_id, field_key, evidence_id, note, linked_by)
        VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), CAST(:wo AS uuid), :field_key, CAST(:evidence AS uuid), :note,
                :actor)
        RETURNING *
    )
    SELECT {LINKS} FROM l
""")
_GET_LINK = text(
    f"SELECT {LINKS} FROM field_links l WHERE l.work_order_id = CAST(:wo AS uuid) AND l.id = CAST(:id AS uuid)"
)
_REMOVE_LINK = text(f"""
    WITH l AS (
        UPDATE field_links SET removed_by = :actor, removed_at = clock_timestamp(), removal_reason = :reason
        WHERE work_order_id = CAST(:wo AS uuid) AND id = CAST(:id AS uuid) AND removed_at IS NULL
        RETURNING *
    )
    SELECT {LINKS} FROM l
""")
_LINKS = text(
    f"SELECT {LINKS} FROM field_links l WHERE l.work_order_id = CAST(:wo AS uuid) "
    "AND (:all OR l.removed_at IS NULL) ORDER BY l.linked_at, l.id"
)
_LINKED_FIELDS = text(
    "SELECT DISTINCT l.field_key FROM field_links l JOIN evidence e ON e.id = l.evidence_id "
    "WHERE l.work_order_id = CAST(:wo AS uuid) AND l.removed_at IS NULL AND e.removed_at IS NULL"
)


async def insert_link(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    work_order_id: str,
    field_key: str,
    evidence_id: str,
    note: str,
    actor: str,
) -> Row:
    """ALREADY_EXISTS when the same live link exists."""
    try:
        async with conn.begin_nested():
            return (
                await conn.execute(
                    _INSERT_LINK,
                    {
                        "id": str(uuid.uuid4()),
                        "tid": tenant_id,
                        "wo": work_order_id,
                        "field_key": field_key,
                        "evidence": evidence_id,
                        "note": note,
                        "actor": actor,
                    },
                )
            ).one()
    except IntegrityError as exc:
        if violated_constraint(exc) == "field_links_live":
            raise AlreadyExists(
                f"{field_key} is linked to evidence {evidence_id} already",
                reason="LINK_EXISTS",
                metadata={"field": "field_key", "field_key": field_key, "evidence_id": evidence_id},
            ) from None
        raise


async def get_link(conn: AsyncConnection, work_order_id: str, link_id: str) -> Row | None:
    return (await conn.execute(_GET_LINK, {"wo": work_order_id, "id": link_id})).first()


async def remove_link(
    conn: AsyncConnection, *, work_order_id: str, link_id: str, actor: str, reason: str
) -> Row | None:
    """The removed link; None when it was not live."""
    return (
        await conn.execute(_REMOVE_LINK, {"wo": work_order_id, "id": link_id, "actor": actor, "reason": reason})
    ).first()


async def links(conn: AsyncConnection, work_order_id: str, *, include_removed: bool = False) -> list[Row]:
    """Oldest first."""
    return list(await conn.execute(_LINKS, {"wo": work_order_id, "all": include_removed}))


async def linked_fields(conn: AsyncConnection, work_order_id: str) -> set[str]:
    """Field keys with a live link to live evidence."""
    return {r.field_key for r in await conn.execute(_LINKED_FIELDS, {"wo": work_order_id})}


# -- comments ------------------------------------------------------------------------------

_INSERT_COMMENT = text(f"""
    WITH c AS (
        INSERT INTO comments (id, tenant_id, work_order_id, kind, body, author)
        VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), CAST(:wo AS uuid), :kind, :body, :actor)
        RETURNING *
    )
    SELECT {COMMENTS} FROM c
""")
_COMMENTS = text(
    f"SELECT {COMMENTS} FROM comments c WHERE c.work_order_id = CAST(:wo AS uuid) "
    "AND (CAST(:kind AS text) IS NULL OR c.kind = :kind) ORDER BY c.created_at, c.id"
)


async def insert_comment(
    conn: AsyncConnection, *, tenant_id: str, work_order_id: str, kind: str, body: str, actor: str
) -> Row:
    return (
        await conn.execute(
            _INSERT_COMMENT,
            {
                "id": str(uuid.uuid4()),
                "tid": tenant_id,
                "wo": work_order_id,
                "kind": kind,
                "body": body,
                "actor": actor,
            },
        )
    ).one()


async def comments(conn: AsyncConnection, work_order_id: str, *, kind: str | None = None) -> list[Row]:
    """Oldest first."""
    return list(await conn.execute(_COMMENTS, {"wo": work_order_id, "kind": kind}))
