"""Database access: one async engine per process, transactions scoped to a tenant.

Tenant isolation is enforced by PostgreSQL row-level security: every tenant table has a
policy comparing `tenant_id` with the transaction-local setting `app.tenant_id`, and the
service role has no BYPASSRLS. `tenant_tx` sets it with `set_config(..., is_local => true)`
(the parameterisable form of `SET LOCAL`), so it can never leak to the next transaction
on a pooled connection.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from .errors import InvalidArgument

_SET_TENANT = text("SELECT set_config('app.tenant_id', :tenant_id, true)")


def async_url(url: str) -> str:
    """Accept the `postgresql://` URLs operators have (CloudNativePG's `uri`), use asyncpg."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 4, application_name: str = "zenops") -> AsyncEngine:
    # The default async pool is right (QueuePool is rejected for async engines). A fixed
    # pool: overflow connections would be opened and closed under load (a PostgreSQL
    # process and a SCRAM handshake each). No pre-ping: it costs a round trip per checkout;
    # a connection lost with the database is invalidated on its first error (the caller gets
    # UNAVAILABLE) and the health loop reports the outage.
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=5,
        connect_args={"server_settings": {"application_name": application_name}, "timeout": 5},
        hide_parameters=True,  # SQL parameters (emails, hashes, tokens) never reach logs or error text
    )


def _tenant_uuid(tenant_id: str | uuid.UUID) -> str:
    try:
        return str(uuid.UUID(str(tenant_id)))
    except ValueError as exc:
        raise InvalidArgument("tenant_id must be a UUID", reason="INVALID_TENANT") from exc


async def set_tenant(conn: AsyncConnection, tenant_id: str | uuid.UUID) -> None:
    """Scope the rest of `conn`'s current transaction to `tenant_id` (RLS); for transactions
    the kit opened, e.g. an event handler's, whose tenant is the envelope's."""
    await conn.execute(_SET_TENANT, {"tenant_id": _tenant_uuid(tenant_id)})


@asynccontextmanager
async def tenant_tx(engine: AsyncEngine, tenant_id: str | uuid.UUID) -> AsyncIterator[AsyncConnection]:
    """A transaction whose statements see only `tenant_id`'s rows (RLS)."""
    async with engine.begin() as conn:
        await set_tenant(conn, tenant_id)
        yield conn


@asynccontextmanager
async def system_tx(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction with no tenant: tenant tables show no rows; for infrastructure tables
    (outbox, inbox, dead letters) that are not tenant-scoped."""
    async with engine.begin() as conn:
        yield conn


# engine → its AUTOCOMMIT view: same pool, same listeners, made once (an
# `execution_options` call per checkout costs a greenlet hop per call).
_autocommit_engines: weakref.WeakKeyDictionary[AsyncEngine, AsyncEngine] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection without BEGIN/ROLLBACK around it: one round trip per single-statement read.
    The pool resets the isolation level when the connection is checked in."""
    view = _autocommit_engines.get(engine)
    if view is None:
        view = _autocommit_engines[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with view.connect() as conn:
        yield conn


async def ping(engine: AsyncEngine) -> None:
    async with autocommit(engine) as conn:
        await conn.execute(text("SELECT 1"))
