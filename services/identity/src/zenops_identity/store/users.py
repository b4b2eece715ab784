"""users and user_roles (tenant tables: call inside tenant_tx)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from zenops_kit.errors import AlreadyExists

from . import violated_constraint

_COLUMNS = """
    u.id::text AS id, u.tenant_id::text AS tenant_id, u.email, u.display_name, u.password_hash, u.status,
    COALESCE(f.failures, 0) AS failed_logins, f.last_failure_at, u.last_login_at, u.channel_id::text AS channel_id,
    u.created_at, u.updated_at, u.version,
    ARRAY(SELECT r.role FROM user_roles r WHERE r.user_id = u.id ORDER BY r.role) AS roles
"""


# The account's failed-login count lives in login_failures (keyed by email, known or not).
_FROM = "users u LEFT JOIN login_failures f ON f.tenant_id = u.tenant_id AND f.email = lower(u.email)"


@dataclass(frozen=True)
class User:
    id: str
    tenant_id: str
    email: str
    display_name: str
    password_hash: str
    status: str
    # Counted failed logins (login_failures; the domain decides whether they still count).
    failed_logins: int
    last_failed_login_at: datetime | None
    last_login_at: datetime | None
    channel_id: str | None
    created_at: datetime
    updated_at: datetime
    version: int
    roles: list[str]


def _user(r) -> User:
    return User(*r[:13], list(r.roles))


def _email_taken(exc: IntegrityError, email: str) -> AlreadyExists | None:
    if violated_constraint(exc) == "users_tenant_email":
        return AlreadyExists(
            f"a user with email {email!r} exists in this tenant", reason="EMAIL_TAKEN", metadata={"field": "email"}
        )
    return None


async def by_email(conn: AsyncConnection, email: str) -> User | None:
    r = (
        await conn.execute(
            text(f"SELECT {_COLUMNS} FROM {_FROM} WHERE lower(u.email) = lower(:email)"), {"email": email}
        )
    ).first()
    return _user(r) if r else None


async def get(conn: AsyncConnection, user_id: str, *, for_update: bool = False) -> User | None:
    lock = " FOR UPDATE OF u" if for_update else ""
    r = (
        await conn.execute(
            text(f"SELECT {_COLUMNS} FROM {_FROM} WHERE u.id = CAST(:id AS uuid){lock}"), {"id": user_id}
        )
    ).first()
    return _user(r) if r else None


async def any_user(conn: AsyncConnection) -> bool:
    return (await conn.execute(text("SELECT EXISTS (SELECT 1 FROM users)"))).scalar()


async def insert(
    conn: AsyncConnection,
    *,
    user_id: str,
    tenant_id: str,
    email: str,
    display_name: str,
    password_hash: str,
    roles: list[str],
    channel_id: str | None,
    now: datetime,
) -> User:
    try:
        await conn.execute(
            text(
                "INSERT INTO users (id, tenant_id, email, display_name, password_hash, channel_id, created_at, "
                "updated_at) VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), :email, :name, :hash, "
                "CAST(:channel AS uuid), :now, :now)"
            ),
            {
                "id": user_id,
                "tid": tenant_id,
                "email": email,
                "name": display_name,
                "hash": password_hash,
                "channel": channel_id,
                "now": now,
            },
        )
    except IntegrityError as exc:
        raise (_email_taken(exc, email) or exc) from None
    await _insert_roles(conn, tenant_id, user_id, roles)
    return await get(conn, user_id)


async def _insert_roles(conn: AsyncConnection, tenant_id: str, user_id: str, roles: list[str]) -> None:
    await conn.execute(
        text(
            "INSERT INTO user_roles (tenant_id, user_id, role) "
            "SELECT CAST(:tid AS uuid), CAST(:uid AS uuid), unnest(CAST(:roles AS text[]))"
        ),
        {"tid": tenant_id, "uid": user_id, "roles": roles},
    )


async def set_roles(conn: AsyncConnection, user: User, roles: list[str], now: datetime) -> None:
    await conn.execute(text("DELETE FROM user_roles WHERE user_id = CAST(:id AS uuid)"), {"id": user.id})
    await _insert_roles(conn, user.tenant_id, user.id, roles)
    await _touch(conn, user.id, now)


async def _touch(conn: AsyncConnection, user_id: str, now: datetime) -> None:
    await conn.execute(
        text("UPDATE users SET updated_at = :now, version = version + 1 WHERE id = CAST(:id AS uuid)"),
        {"id": user_id, "now": now},
    )


async def update_profile(conn: AsyncConnection, user: User, changes: dict[str, str | None], now: datetime) -> None:
    """`changes`: any of email, display_name, channel_id."""
    assignments = ", ".join(
        f"{name} = CAST(:{name} AS uuid)" if name == "channel_id" else f"{name} = :{name}" for name in changes
    )
    try:
        await conn.execute(
            text(
                f"UPDATE users SET {assignments}, updated_at = :now, version = version + 1 WHERE id = CAST(:id AS uuid)"
            ),
            {**changes, "id": user.id, "now": now},
        )
    except IntegrityError as exc:
        raise (_email_taken(exc, changes.get("email", "")) or exc) from None


async def record_login(conn: AsyncConnection, user_id: str, now: datetime, new_hash: str | None) -> None:
    """A successful login; a re-hash replaces the stored hash."""
    await conn.execute(
        text(
            "UPDATE users SET last_login_at = :now, password_hash = COALESCE(:hash, password_hash) "
            "WHERE id = CAST(:id AS uuid)"
        ),
        {"id": user_id, "now": now, "hash": new_hash},
    )


async def set_password(conn: AsyncConnection, user_id: str, password_hash: str, now: datetime) -> None:
    await conn.execute(
        text(
            "UPDATE users SET password_hash = :hash, updated_at = :now, version = version + 1 "
            "WHERE id = CAST(:id AS uuid)"
        ),
        {"id": user_id, "hash": password_hash, "now": now},
    )


async def set_status(conn: AsyncConnection, user_id: str, status: str, now: datetime) -> None:
    await conn.execute(
        text(
            "UPDATE users SET status = :status, updated_at = :now, version = version + 1 WHERE id = CAST(:id AS uuid)"
        ),
        {"id": user_id, "status": status, "now": now},
    )


async def lock_roles(conn: AsyncConnection, tenant_id: str) -> None:
    """Serialise role changes and disables in a tenant (the last-super-admin rule reads then writes)."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended('identity.roles.' || :tid, 0))"), {"tid": tenant_id}
    )


async def count_active_with_role(conn: AsyncConnection, role: str, *, excluding: str) -> int:
    return (
        await conn.execute(
            text(
                "SELECT count(*) FROM users u JOIN user_roles r ON r.user_id = u.id "
                "WHERE r.role = :role AND u.status = 'ACTIVE' AND u.id <> CAST(:id AS uuid)"
            ),
            {"role": role, "id": excluding},
        )
    ).scalar()


async def page(
    conn: AsyncConnection, *, query: str, status: str | None, after: list[str] | None, limit: int
) -> list[User]:
    """Users ordered by lower(email), id; `after` = (lower(email), id) of the previous page's last."""
    clauses, params = [], {"limit": limit}
    if query:
        clauses.append("(u.email ILIKE :q ESCAPE '\\' OR u.display_name ILIKE :q ESCAPE '\\')")
        escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["q"] = f"%{escaped}%"
    if status:
        clauses.append("u.status = :status")
        params["status"] = status
    if after:
        clauses.append("(lower(u.email), u.id) > (:after_email, CAST(:after_id AS uuid))")
        params.update(after_email=after[0], after_id=after[1])
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = await conn.execute(
        text(f"SELECT {_COLUMNS} FROM {_FROM} {where} ORDER BY lower(u.email), u.id LIMIT :limit"), params
    )
    return [_user(r) for r in rows]
