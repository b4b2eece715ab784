"""Wallet reads: reservations list, an account's timeline, the tenant's credit aggregate."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from zenops_kit.db import tenant_tx
from zenops_kit.paging import decode_cursor, encode_cursor, page_limit

from ..accounts import check_cursor_position
from ..domain.wallet import REF_TYPES, Reservation, Wallet, account_not_found, invalid, parse_uuid
from ..store import accounts as account_store
from ..store import timeline as timeline_store
from ..store import wallet as store
from ..store.timeline import TimelineItem


async def list_reservations(
    engine: AsyncEngine,
    tenant_id: str,
    *,
    limit: int,
    cursor: str,
    account_id: str,
    status: str,
    ref_type: str,
    ref_id: str,
) -> tuple[list[Reservation], str]:
    limit = page_limit(limit)
    if account_id:
        account_id = parse_uuid(account_id, "account_id")
    if ref_type and ref_type not in REF_TYPES:
        raise invalid("ref_type", "must be one of " + "|".join(REF_TYPES))
    before = decode_cursor(cursor, "reservations", 2)
    if before is not None:
        check_cursor_position(*before)
    async with tenant_tx(engine, tenant_id) as conn:
        rows = await store.page_reservations(
            conn, account_id=account_id, status=status, ref_type=ref_type, ref_id=ref_id, before=before, limit=limit + 1
        )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor("reservations", [rows[-1].created_at.isoformat(), rows[-1].id]) if more else ""
    return rows, next_cursor


async def timeline(
    engine: AsyncEngine, tenant_id: str, *, account_id: str, limit: int, cursor: str
) -> tuple[list[TimelineItem], str]:
    account_id = parse_uuid(account_id, "account_id")
    limit = page_limit(limit)
    position = decode_cursor(cursor, "timeline", 3)
    before = None
    if position is not None:
        at, rank, key = position
        check_cursor_position(at, key, key_is_uuid=False)
        if rank not in ("0", "1", "2"):
            raise invalid("page.cursor", "is not a cursor returned by this list")
        if rank == str(timeline_store.LEDGER) and not key.isdigit():
            raise invalid("page.cursor", "is not a cursor returned by this list")
        before = (datetime.fromisoformat(at), int(rank), key)
    async with tenant_tx(engine, tenant_id) as conn:
        if await account_store.get(conn, account_id) is None:
            raise account_not_found(account_id)
        items = await timeline_store.page(conn, account_id, before=before, limit=limit + 1)
    more = len(items) > limit
    items = items[:limit]
    next_cursor = ""
    if more:
        at, rank, key, _ = items[-1]
        next_cursor = encode_cursor("timeline", [at.isoformat(), str(rank), key])
    return items, next_cursor


async def aggregate(engine: AsyncEngine, tenant_id: str) -> tuple[Wallet, int, int, int]:
    """(totals, accounts, ACTIVE reservations, accounts below zero)."""
    async with tenant_tx(engine, tenant_id) as conn:
        return await store.aggregate(conn)
