"""An account's timeline: ledger entries, reservations and usage events, newest first.

Position of an item: (at, source rank, key) with rank ledger 2 > reservation 1 > usage 0 and
key the ledger seq or the row id; a page is every source read after the cursor's position,
merged. `at` is the ledger entry's and the reservation's created_at, and the usage's
occurred_at.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.wallet import LedgerEntry, Reservation
from .usage import COLUMNS as USAGE_COLUMNS
from .usage import UsageEvent, usage_of
from .wallet import LEDGER_COLUMNS, RESERVATION_COLUMNS, entry_of, reservation_of

LEDGER, RESERVATION, USAGE = 2, 1, 0

TimelineItem = tuple[datetime, int, str, LedgerEntry | Reservation | UsageEvent]


def _after(at_column: str, rank: int, key_sql: str, before: tuple[datetime, int, str] | None, params: dict) -> str:
    if before is None:
        return ""
    at, before_rank, key = before
    params["b_at"] = at
    if rank < before_rank:
        return f" AND {at_column} <= :b_at"
    if rank > before_rank:
        return f" AND {at_column} < :b_at"
    params["b_key"] = int(key) if rank == LEDGER else key
    return f" AND ({at_column} < :b_at OR ({at_column} = :b_at AND {key_sql} < :b_key))"


async def page(
    conn: AsyncConnection, account_id: str, *, before: tuple[datetime, int, str] | None, limit: int
) -> list[TimelineItem]:
    """Up to `limit` items after `before` (newest first): (at, rank, key, item)."""
    items: list[TimelineItem] = []
    params: dict = {"aid": account_id, "limit": limit}
    cond = _after("l.created_at", LEDGER, "l.seq", before, params)
    for r in await conn.execute(
        text(
            f"SELECT {LEDGER_COLUMNS.format(l='l')} FROM credit_ledger l WHERE l.account_id = CAST(:aid AS uuid)"
            f"{cond} ORDER BY l.created_at DESC, l.seq DESC LIMIT :limit"
        ),
        params,
    ):
        entry = entry_of(r)
        items.append((entry.created_at, LEDGER, str(entry.seq), entry))
    params = {"aid": account_id, "limit": limit}
    cond = _after("r.created_at", RESERVATION, 'r.id::text COLLATE "C"', before, params)
    for r in await conn.execute(
        text(
            f"SELECT {RESERVATION_COLUMNS.format(r='r')} FROM reservations r WHERE r.account_id = CAST(:aid AS uuid)"
            f'{cond} ORDER BY r.created_at DESC, r.id::text COLLATE "C" DESC LIMIT :limit'
        ),
        params,
    ):
        res = reservation_of(r)
        items.append((res.created_at, RESERVATION, res.id, res))
    params = {"aid": account_id, "limit": limit}
    cond = _after("u.occurred_at", USAGE, 'u.id::text COLLATE "C"', before, params)
    for r in await conn.execute(
        text(
            f"SELECT {USAGE_COLUMNS} FROM usage_events u WHERE u.account_id = CAST(:aid AS uuid)"
            f'{cond} ORDER BY u.occurred_at DESC, u.id::text COLLATE "C" DESC LIMIT :limit'
        ),
        params,
    ):
        usage = usage_of(r)
        items.append((usage.occurred_at, USAGE, usage.id, usage))
    # Ledger keys compare as numbers, the others as text (keys only compare within a source).
    items.sort(
        key=lambda i: (i[0], i[1], int(i[2]) if i[1] == LEDGER else 0, i[2] if i[1] != LEDGER else ""), reverse=True
    )
    return items[:limit]
