"""activities: what happened to an assignment or a channel request (append-only)."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_INSERT = text(
    "INSERT INTO activities (id, tenant_id, assignment_id, channel_request_id, kind, actor, summary, detail, "
    "trace_id) VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), CAST(:aid AS uuid), CAST(:crid AS uuid), :kind, "
    ":actor, :summary, CAST(:detail AS jsonb), :trace)"
)


async def record(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    kind: str,
    actor: str,
    summary: str = "",
    detail: dict | None = None,
    assignment_id: str | None = None,
    channel_request_id: str | None = None,
    trace_id: str = "",
) -> None:
    await conn.execute(
        _INSERT,
        {
            "id": str(uuid.uuid4()),
            "tid": tenant_id,
            "aid": assignment_id,
            "crid": channel_request_id,
            "kind": kind,
            "actor": actor,
            "summary": summary,
            "detail": json.dumps(detail or {}, default=str),
            "trace": trace_id,
        },
    )
