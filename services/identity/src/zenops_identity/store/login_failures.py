"""login_failures (tenant table: call inside tenant_tx): failed logins per lower-case email,
known or not (domain/login_throttle.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.login_throttle import NONE, Failures


async def get(conn: AsyncConnection, tenant_id: str, email: str) -> Failures:
    r = (
        await conn.execute(
            text(
                "SELECT failures, last_failure_at FROM login_failures "
                "WHERE tenant_id = CAST(:tid AS uuid) AND email = lower(:email)"
            ),
            {"tid": tenant_id, "email": email},
        )
    ).first()
    return Failures(r.failures, r.last_failure_at) if r else NONE


async def add(conn: AsyncConnection, tenant_id: str, email: str, now: datetime, window: timedelta) -> Failures:
    """One more failure (the count restarts once the previous failure is older than `window`)."""
    r = (
        await conn.execute(
            text(
                "INSERT INTO login_failures (tenant_id, email, failures, last_failure_at) "
                "VALUES (CAST(:tid AS uuid), lower(:email), 1, :now) "
                "ON CONFLICT (tenant_id, email) DO UPDATE SET "
                "failures = CASE WHEN login_failures.last_failure_at <= :forget_before THEN 1 "
                "ELSE login_failures.failures + 1 END, last_failure_at = :now "
                "RETURNING failures, last_failure_at"
            ),
            {"tid": tenant_id, "email": email, "now": now, "forget_before": now - window},
        )
    ).one()
    return Failures(r.failures, r.last_failure_at)


async def clear(conn: AsyncConnection, tenant_id: str, email: str) -> int:
    """Forget the failures (success, password change, unlock); returns how many there were."""
    r = (
        await conn.execute(
            text(
                "DELETE FROM login_failures WHERE tenant_id = CAST(:tid AS uuid) AND email = lower(:email) "
                "RETURNING failures"
            ),
            {"tid": tenant_id, "email": email},
        )
    ).first()
    return r.failures if r else 0
