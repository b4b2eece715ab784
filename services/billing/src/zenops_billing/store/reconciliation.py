"""The reconciliation scan (reads B1's reservations table in the caller's tenant transaction)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class StaleReservation:
    id: str
    account_id: str
    ref_type: str
    ref_id: str
    amount: int
    created_at: datetime


async def stale_reservations(conn: AsyncConnection, *, created_before: datetime, limit: int) -> list[StaleReservation]:
    """ACTIVE reservations made before `created_before`, oldest first."""
    rows = await conn.execute(
        text(
            "SELECT id::text, account_id::text, ref_type, ref_id, amount, created_at FROM reservations "
            "WHERE status = 'ACTIVE' AND created_at <= :before ORDER BY created_at, id LIMIT :limit"
        ),
        {"before": created_before, "limit": limit},
    )
    return [StaleReservation(*r) for r in rows]
