"""audit_events (tenant table; append-only — the database refuses UPDATE and DELETE)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class AuditRow:
    id: str
    tenant_id: str
    kind: str
    actor: str
    target: str
    ip: str
    user_agent: str
    trace_id: str
    detail: dict[str, str]
    occurred_at: datetime


async def append(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    kind: str,
    actor: str,
    target: str,
    ip: str,
    user_agent: str,
    trace_id: str,
    detail: dict[str, str],
) -> None:
    await conn.execute(
        text(
            "INSERT INTO audit_events (id, tenant_id, kind, actor, target, ip, user_agent, trace_id, detail) "
            "VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), :kind, :actor, :target, :ip, :ua, :trace, "
            "CAST(:detail AS jsonb))"
        ),
        {
            "id": str(uuid.uuid4()),
            "tid": tenant_id,
            "kind": kind,
            "actor": actor,
            "target": target,
            "ip": ip[:100],
            "ua": user_agent[:500],
            "trace": trace_id,
            "detail": json.dumps(detail),
        },
    )


async def page(
    conn: AsyncConnection, *, kind: str, subject: str, before: list[str] | None, limit: int
) -> list[AuditRow]:
    """Newest first; `before` = (occurred_at ISO, id) of the previous page's last row."""
    clauses, params = [], {"limit": limit}
    if kind:
        clauses.append("kind = :kind")
        params["kind"] = kind
    if subject:
        clauses.append("(actor = :subject OR target = :subject)")
        params["subject"] = subject
    if before:
        clauses.append("(occurred_at, id) < (:before_at, CAST(:before_id AS uuid))")
        params.update(before_at=datetime.fromisoformat(before[0]), before_id=before[1])
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = await conn.execute(
        text(
            "SELECT id::text, tenant_id::text, kind, actor, target, ip, user_agent, trace_id, detail::text, "
            f"occurred_at FROM audit_events {where} ORDER BY occurred_at DESC, id DESC LIMIT :limit"
        ),
        params,
    )
    return [AuditRow(*r[:8], json.loads(r[8]), r[9]) for r in rows]
