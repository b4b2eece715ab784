"""The analytics overview's counters: one statement, one round trip, under the caller's
tenant (RLS). Each branch of the UNION is an index-backed count of one table; a table with
no rows yields no group, and the use case fills the zeros."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from .tasks import OVERDUE

ASSIGNMENTS = "assignments"
CHANNEL_REQUESTS = "channel_requests"
TASKS = "tasks"
OPEN = "open"
OVERDUE_KEY = "overdue"

_COUNTS = text(f"""
    SELECT '{ASSIGNMENTS}' AS kind, status AS key, count(*) AS n FROM assignments GROUP BY status
    UNION ALL
    SELECT '{CHANNEL_REQUESTS}', status, count(*) FROM channel_requests GROUP BY status
    UNION ALL
    SELECT '{TASKS}', '{OPEN}', count(*) FROM tasks t WHERE t.status <> 'DONE'
    UNION ALL
    SELECT '{TASKS}', '{OVERDUE_KEY}', count(*) FROM tasks t WHERE {OVERDUE}
""")


async def counts(conn: AsyncConnection) -> dict[str, dict[str, int]]:
    """kind → key → count: assignments and channel requests by stored status, tasks open and
    overdue (overdue as store.tasks computes it, on the database clock)."""
    result: dict[str, dict[str, int]] = {ASSIGNMENTS: {}, CHANNEL_REQUESTS: {}, TASKS: {}}
    for row in await conn.execute(_COUNTS):
        result[row.kind][row.key] = int(row.n)
    return result
