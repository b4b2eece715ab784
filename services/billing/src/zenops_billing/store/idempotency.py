"""idempotency_keys (tenant table; permanent: rows are never pruned)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class StoredKey:
    key: str
    operation: str
    request_hash: bytes
    request: dict
    response: bytes | None
    error: dict | None
    # A credit operation's last ledger entry (its response is rebuilt from it).
    ledger_entry_id: str | None = None


async def claim(
    conn: AsyncConnection, *, tenant_id: str, key: str, operation: str, request_hash: bytes, request: dict
) -> bool:
    """Insert the key (no result yet); False when it exists. A concurrent claim of the same
    key waits here until the first transaction ends (the unique index), so same-key requests
    serialise."""
    row = (
        await conn.execute(
            text(
                "INSERT INTO idempotency_keys (tenant_id, key, operation, request_hash, request) "
                "VALUES (CAST(:tid AS uuid), :key, :op, :hash, CAST(:request AS jsonb)) "
                "ON CONFLICT DO NOTHING RETURNING true"
            ),
            {
                "tid": tenant_id,
                "key": key,
                "op": operation,
                "hash": request_hash,
                "request": json.dumps(request, sort_keys=True, default=str),
            },
        )
    ).first()
    return row is not None


async def save_response(conn: AsyncConnection, *, key: str, response: bytes) -> None:
    await conn.execute(
        text("UPDATE idempotency_keys SET response = :resp WHERE key = :key"), {"key": key, "resp": response}
    )


async def save_failure(
    conn: AsyncConnection, *, tenant_id: str, key: str, operation: str, request_hash: bytes, request: dict, error: dict
) -> bool:
    """Record a failed first attempt (its effects were rolled back); False when the key was
    recorded meanwhile (a concurrent attempt with the same key won)."""
    row = (
        await conn.execute(
            text(
                "INSERT INTO idempotency_keys (tenant_id, key, operation, request_hash, request, error) "
                "VALUES (CAST(:tid AS uuid), :key, :op, :hash, CAST(:request AS jsonb), CAST(:error AS jsonb)) "
                "ON CONFLICT DO NOTHING RETURNING true"
            ),
            {
                "tid": tenant_id,
                "key": key,
                "op": operation,
                "hash": request_hash,
                "request": json.dumps(request, sort_keys=True, default=str),
                "error": json.dumps(error),
            },
        )
    ).first()
    return row is not None


async def get(conn: AsyncConnection, key: str, *, for_update: bool = False) -> StoredKey | None:
    lock = " FOR UPDATE" if for_update else ""
    row = (
        await conn.execute(
            text(
                "SELECT key, operation, request_hash, request::text AS request, response, error::text AS error, "
                "ledger_entry_id::text AS ledger_entry_id "
                f"FROM idempotency_keys WHERE key = :key{lock}"
            ),
            {"key": key},
        )
    ).first()
    if row is None:
        return None
    return StoredKey(
        row.key,
        row.operation,
        bytes(row.request_hash),
        json.loads(row.request),
        bytes(row.response) if row.response is not None else None,
        json.loads(row.error) if row.error is not None else None,
        row.ledger_entry_id,
    )
