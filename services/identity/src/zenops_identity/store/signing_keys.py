"""signing_keys (global)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# pg_advisory_xact_lock key: one creator/rotator at a time across replicas.
_LOCK_KEY = 0x5A454E4F_50534B31  # "ZENOPSK1"

_COLUMNS = "kid, alg, private_key, public_jwk::text AS public_jwk, created_at, retired_at, publish_until"


@dataclass(frozen=True)
class KeyRow:
    kid: str
    alg: str
    private_key: bytes  # encrypted
    public_jwk: dict
    created_at: datetime
    retired_at: datetime | None
    publish_until: datetime | None


def _row(r) -> KeyRow:
    return KeyRow(
        r.kid, r.alg, bytes(r.private_key), json.loads(r.public_jwk), r.created_at, r.retired_at, r.publish_until
    )


async def lock(conn: AsyncConnection) -> None:
    await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


async def active(conn: AsyncConnection) -> KeyRow | None:
    r = (await conn.execute(text(f"SELECT {_COLUMNS} FROM signing_keys WHERE retired_at IS NULL"))).first()
    return _row(r) if r else None


async def published(conn: AsyncConnection, now: datetime) -> list[KeyRow]:
    rows = await conn.execute(
        text(
            f"SELECT {_COLUMNS} FROM signing_keys WHERE publish_until IS NULL OR publish_until > :now "
            "ORDER BY created_at DESC"
        ),
        {"now": now},
    )
    return [_row(r) for r in rows]


async def insert(conn: AsyncConnection, row: KeyRow) -> None:
    await conn.execute(
        text(
            "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at) "
            "VALUES (:kid, :alg, :pk, CAST(:jwk AS jsonb), :at)"
        ),
        {
            "kid": row.kid,
            "alg": row.alg,
            "pk": row.private_key,
            "jwk": json.dumps(row.public_jwk),
            "at": row.created_at,
        },
    )


async def retire(conn: AsyncConnection, kid: str, now: datetime, publish_until: datetime) -> None:
    await conn.execute(
        text("UPDATE signing_keys SET retired_at = :now, publish_until = :until WHERE kid = :kid"),
        {"kid": kid, "now": now, "until": publish_until},
    )


async def all_keys(conn: AsyncConnection) -> list[KeyRow]:
    rows = await conn.execute(text(f"SELECT {_COLUMNS} FROM signing_keys ORDER BY created_at"))
    return [_row(r) for r in rows]


async def set_private_key(conn: AsyncConnection, kid: str, private_key: bytes) -> None:
    await conn.execute(
        text("UPDATE signing_keys SET private_key = :pk WHERE kid = :kid"), {"kid": kid, "pk": private_key}
    )
