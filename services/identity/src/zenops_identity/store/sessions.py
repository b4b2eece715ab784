"""sessions and refresh_tokens (tenant tables: call inside tenant_tx)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_COLUMNS = """
    s.id::text AS id, s.tenant_id::text AS tenant_id, s.user_id::text AS user_id, s.audience, s.ip, s.user_agent,
    s.created_at, s.last_used_at, s.expires_at, s.idle_expires_at, s.revoked_at, s.revoked_reason
"""


@dataclass(frozen=True)
class Session:
    id: str
    tenant_id: str
    user_id: str
    audience: str
    ip: str
    user_agent: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    idle_expires_at: datetime
    revoked_at: datetime | None
    revoked_reason: str | None


@dataclass(frozen=True)
class RefreshRow:
    id: str
    used_at: datetime | None
    session: Session


async def create(
    conn: AsyncConnection,
    *,
    session_id: str,
    tenant_id: str,
    user_id: str,
    audience: str,
    ip: str,
    user_agent: str,
    now: datetime,
    expires_at: datetime,
    idle_expires_at: datetime,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO sessions (id, tenant_id, user_id, audience, ip, user_agent, created_at, last_used_at, "
            "expires_at, idle_expires_at) VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), CAST(:uid AS uuid), "
            ":aud, :ip, :ua, :now, :now, :exp, :idle)"
        ),
        {
            "id": session_id,
            "tid": tenant_id,
            "uid": user_id,
            "aud": audience,
            "ip": ip[:100],
            "ua": user_agent[:500],
            "now": now,
            "exp": expires_at,
            "idle": idle_expires_at,
        },
    )


async def get(conn: AsyncConnection, session_id: str) -> Session | None:
    r = (
        await conn.execute(
            text(f"SELECT {_COLUMNS} FROM sessions s WHERE s.id = CAST(:id AS uuid)"), {"id": session_id}
        )
    ).first()
    return Session(*r) if r else None


async def is_active(conn: AsyncConnection, session_id: str, now: datetime) -> bool:
    """One primary-key look-up: not revoked, within both deadlines."""
    return bool(
        (
            await conn.execute(
                text(
                    "SELECT 1 FROM sessions WHERE id = CAST(:id AS uuid) AND revoked_at IS NULL "
                    "AND expires_at > :now AND idle_expires_at > :now"
                ),
                {"id": session_id, "now": now},
            )
        ).first()
    )


async def active_for_user(conn: AsyncConnection, user_id: str, now: datetime) -> list[Session]:
    rows = await conn.execute(
        text(
            f"SELECT {_COLUMNS} FROM sessions s WHERE s.user_id = CAST(:uid AS uuid) AND s.revoked_at IS NULL "
            "AND s.expires_at > :now AND s.idle_expires_at > :now ORDER BY s.last_used_at DESC"
        ),
        {"uid": user_id, "now": now},
    )
    return [Session(*r) for r in rows]


async def revoke(conn: AsyncConnection, session_ids: list[str], reason: str, now: datetime) -> list[str]:
    """Revoke those of `session_ids` still open; returns the ones this call revoked."""
    rows = await conn.execute(
        text(
            "UPDATE sessions SET revoked_at = :now, revoked_reason = :reason "
            "WHERE id = ANY(CAST(:ids AS uuid[])) AND revoked_at IS NULL RETURNING id::text"
        ),
        {"ids": session_ids, "reason": reason, "now": now},
    )
    return sorted(r[0] for r in rows)


async def revoke_user_sessions(
    conn: AsyncConnection, user_id: str, reason: str, now: datetime, *, keep: str | None = None
) -> list[str]:
    """Revoke every open session of the user (but `keep`); returns the ids revoked."""
    rows = await conn.execute(
        text(
            "UPDATE sessions SET revoked_at = :now, revoked_reason = :reason "
            "WHERE user_id = CAST(:uid AS uuid) AND revoked_at IS NULL "
            "AND (CAST(:keep AS uuid) IS NULL OR id <> CAST(:keep AS uuid)) RETURNING id::text"
        ),
        {"uid": user_id, "reason": reason, "now": now, "keep": keep},
    )
    return sorted(r[0] for r in rows)


async def touch(conn: AsyncConnection, session_id: str, now: datetime, idle_expires_at: datetime) -> None:
    await conn.execute(
        text("UPDATE sessions SET last_used_at = :now, idle_expires_at = :idle WHERE id = CAST(:id AS uuid)"),
        {"id": session_id, "now": now, "idle": idle_expires_at},
    )


async def add_refresh_token(
    conn: AsyncConnection,
    *,
    token_id: str,
    tenant_id: str,
    session_id: str,
    token_hash: bytes,
    parent_id: str | None,
    now: datetime,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO refresh_tokens (id, tenant_id, session_id, token_hash, parent_id, created_at) "
            "VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), CAST(:sid AS uuid), :hash, CAST(:parent AS uuid), :now)"
        ),
        {"id": token_id, "tid": tenant_id, "sid": session_id, "hash": token_hash, "parent": parent_id, "now": now},
    )


async def refresh_token_for_update(conn: AsyncConnection, token_hash: bytes) -> RefreshRow | None:
    """The refresh token and its session, both locked: concurrent refreshes of one token
    are decided one after the other."""
    r = (
        await conn.execute(
            text(
                f"SELECT t.id::text AS token_id, t.used_at, {_COLUMNS} FROM refresh_tokens t "
                "JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = :hash FOR UPDATE"
            ),
            {"hash": token_hash},
        )
    ).first()
    return RefreshRow(r.token_id, r.used_at, Session(*r[2:])) if r else None


async def spend_refresh_token(conn: AsyncConnection, token_id: str, now: datetime) -> None:
    await conn.execute(
        text("UPDATE refresh_tokens SET used_at = :now WHERE id = CAST(:id AS uuid)"), {"id": token_id, "now": now}
    )
