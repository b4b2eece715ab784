"""tenants (global: read before any tenant is known, e.g. to route a login)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from zenops_kit.errors import AlreadyExists

from . import violated_constraint

_COLUMNS = "id::text AS id, slug, name, kind, status, created_at"


@dataclass(frozen=True)
class Tenant:
    id: str
    slug: str
    name: str
    kind: str
    status: str
    created_at: datetime


async def get(conn: AsyncConnection, tenant_id: str) -> Tenant | None:
    r = (
        await conn.execute(text(f"SELECT {_COLUMNS} FROM tenants WHERE id = CAST(:id AS uuid)"), {"id": tenant_id})
    ).first()
    return Tenant(*r) if r else None


async def list_all(conn: AsyncConnection) -> list[Tenant]:
    return [Tenant(*r) for r in await conn.execute(text(f"SELECT {_COLUMNS} FROM tenants ORDER BY created_at, slug"))]


async def insert(conn: AsyncConnection, tenant_id: str, slug: str, name: str, kind: str) -> Tenant:
    try:
        r = (
            await conn.execute(
                text(
                    f"INSERT INTO tenants (id, slug, name, kind) VALUES (CAST(:id AS uuid), :slug, :name, :kind) "
                    f"RETURNING {_COLUMNS}"
                ),
                {"id": tenant_id, "slug": slug, "name": name, "kind": kind},
            )
        ).one()
    except IntegrityError as exc:
        if violated_constraint(exc) == "tenants_slug_key":
            raise AlreadyExists(f"a tenant with slug {slug!r} exists", reason="SLUG_TAKEN") from None
        raise
    return Tenant(*r)


async def ensure(conn: AsyncConnection, tenant_id: str, slug: str, name: str, kind: str) -> bool:
    """Create the tenant unless it exists; True when created."""
    result = await conn.execute(
        text(
            "INSERT INTO tenants (id, slug, name, kind) VALUES (CAST(:id AS uuid), :slug, :name, :kind) "
            "ON CONFLICT (id) DO NOTHING"
        ),
        {"id": tenant_id, "slug": slug, "name": name, "kind": kind},
    )
    return result.rowcount == 1
