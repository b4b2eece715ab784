"""ListAuditEvents: the caller's tenant's trail, newest first."""

from __future__ import annotations

from zenops_kit.context import RequestContext
from zenops_kit.db import tenant_tx
from zenops_kit.paging import decode_cursor, encode_cursor, page_limit

from ..auth.common import require_user
from ..core import Identity
from ..store import audit
from ..store.audit import AuditRow


async def list_page(
    idn: Identity, ctx: RequestContext, *, limit: int, cursor: str, kind: str, subject: str
) -> tuple[list[AuditRow], str]:
    tenant_id, _ = require_user(ctx)
    limit = page_limit(limit)
    before = decode_cursor(cursor, "audit", 2, types=("timestamp", "uuid"))
    async with tenant_tx(idn.engine, tenant_id) as conn:
        rows = await audit.page(conn, kind=kind[:100], subject=subject[:200], before=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor("audit", [rows[-1].occurred_at.isoformat(), rows[-1].id]) if more else ""
    return rows, next_cursor
