"""billing_accounts with their balance row (wallets), account_events (append-only audit) and
billing_tenants (the tenant ids that have billing data; global, no RLS)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from zenops_kit.errors import AlreadyExists, FieldViolation

from ..domain.accounts import Account
from ..domain.wallet import Wallet
from . import violated_constraint
from .sql import Statement, fetch, first

ACCOUNT_COLUMNS = """
    a.id::text AS id, a.tenant_id::text AS tenant_id, COALESCE(a.external_key, '') AS external_key,
    a.display_name, a.policy, a.status, COALESCE(a.gstin, '') AS gstin, a.billing_address, a.currency,
    a.created_at, a.updated_at, a.version,
    w.granted, w.consumed, w.reserved, w.overdraft
"""
_FROM = "billing_accounts a JOIN wallets w ON w.account_id = a.id"


def account_of(r) -> Account:
    return Account(
        id=r.id,
        tenant_id=r.tenant_id,
        external_key=r.external_key,
        display_name=r.display_name,
        policy=r.policy,
        status=r.status,
        gstin=r.gstin,
        billing_address=r.billing_address,
        currency=r.currency,
        wallet=Wallet(r.granted, r.consumed, r.reserved, r.overdraft),
        created_at=r.created_at,
        updated_at=r.updated_at,
        version=r.version,
    )


def _external_key_taken(exc: IntegrityError, field: str) -> AlreadyExists | None:
    if violated_constraint(exc) == "billing_accounts_external_key":
        return AlreadyExists(
            "another billing account has this external_key",
            reason="EXTERNAL_KEY_TAKEN",
            violations=[FieldViolation(field, "is already used by another account")],
            metadata={"field": field},
        )
    return None


async def insert(
    conn: AsyncConnection,
    *,
    account_id: str,
    tenant_id: str,
    external_key: str,
    display_name: str,
    policy: str,
    gstin: str,
    billing_address: str,
) -> Account:
    """The account and its (empty) balance row, and the tenant in billing_tenants."""
    try:
        row = (
            await conn.execute(
                text(f"""
            WITH t AS (
                INSERT INTO billing_tenants (tenant_id) VALUES (CAST(:tid AS uuid)) ON CONFLICT DO NOTHING
            ), a AS (
                INSERT INTO billing_accounts (id, tenant_id, external_key, display_name, policy, gstin,
                                              billing_address)
                VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), NULLIF(:ekey, ''), :name, :policy, NULLIF(:gstin, ''),
                        :address)
                RETURNING *
            ), w AS (
                INSERT INTO wallets (account_id, tenant_id) SELECT id, tenant_id FROM a RETURNING *
            )
            SELECT {ACCOUNT_COLUMNS} FROM a JOIN w ON w.account_id = a.id
            """),
                {
                    "id": account_id,
                    "tid": tenant_id,
                    "ekey": external_key,
                    "name": display_name,
                    "policy": policy,
                    "gstin": gstin,
                    "address": billing_address,
                },
            )
        ).one()
    except IntegrityError as exc:
        raise (_external_key_taken(exc, "external_key") or exc) from None
    return account_of(row)


_GET = Statement(f"SELECT {ACCOUNT_COLUMNS} FROM {_FROM} WHERE a.id = CAST(:id AS uuid)")
_GET_FOR_UPDATE = Statement(f"SELECT {ACCOUNT_COLUMNS} FROM {_FROM} WHERE a.id = CAST(:id AS uuid) FOR UPDATE OF a")


async def get(conn, account_id: str, *, for_update: bool = False) -> Account | None:
    """The account with its wallet; `conn` of either kind (store.sql)."""
    row = await first(conn, _GET_FOR_UPDATE if for_update else _GET, {"id": account_id})
    return account_of(row) if row else None


async def by_external_key(conn: AsyncConnection, external_key: str) -> Account | None:
    row = (
        await conn.execute(
            text(f"SELECT {ACCOUNT_COLUMNS} FROM {_FROM} WHERE a.external_key = :k"), {"k": external_key}
        )
    ).first()
    return account_of(row) if row else None


async def page(
    conn: AsyncConnection, *, status: str | None, policy: str | None, after: list[str] | None, limit: int
) -> list[Account]:
    """Oldest first; `after` = (created_at ISO, id) of the previous page's last account."""
    clauses: list[str] = []
    params: dict = {"limit": limit}
    if status:
        clauses.append("a.status = :status")
        params["status"] = status
    if policy:
        clauses.append("a.policy = :policy")
        params["policy"] = policy
    if after:
        clauses.append("(a.created_at, a.id) > (:after_at, CAST(:after_id AS uuid))")
        params.update(after_at=datetime.fromisoformat(after[0]), after_id=after[1])
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = await conn.execute(
        text(f"SELECT {ACCOUNT_COLUMNS} FROM {_FROM} {where} ORDER BY a.created_at, a.id LIMIT :limit"), params
    )
    return [account_of(r) for r in rows]


_UPDATABLE = {
    "display_name": ":display_name",
    "policy": ":policy",
    "status": ":status",
    "gstin": "NULLIF(:gstin, '')",
    "billing_address": ":billing_address",
    "external_key": "NULLIF(:external_key, '')",
}


async def update(conn: AsyncConnection, account_id: str, changes: dict[str, str], *, field_prefix: str = "") -> None:
    """`changes`: column → new value ('' clears gstin and external_key)."""
    if not changes:
        return
    assignments = ", ".join(f"{name} = {_UPDATABLE[name]}" for name in changes)
    try:
        await conn.execute(
            text(
                f"UPDATE billing_accounts SET {assignments}, updated_at = now(), version = version + 1 "
                "WHERE id = CAST(:id AS uuid)"
            ),
            {**changes, "id": account_id},
        )
    except IntegrityError as exc:
        raise (_external_key_taken(exc, field_prefix + "external_key") or exc) from None


async def open_reservations(conn: AsyncConnection, account_id: str) -> int:
    return (
        await conn.execute(
            text("SELECT count(*) FROM reservations WHERE account_id = CAST(:id AS uuid) AND status = 'ACTIVE'"),
            {"id": account_id},
        )
    ).scalar()


_APPEND_EVENT = Statement(
    "INSERT INTO account_events (id, tenant_id, account_id, kind, actor, reason, detail, trace_id) "
    "VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), CAST(:aid AS uuid), :kind, :actor, :reason, "
    "CAST(:detail AS jsonb), :trace)"
)


async def append_event(
    conn,
    *,
    tenant_id: str,
    account_id: str,
    kind: str,
    actor: str,
    reason: str = "",
    detail: dict | None = None,
    trace_id: str = "",
) -> None:
    """(Either connection kind: store.sql.)"""
    await fetch(
        conn,
        _APPEND_EVENT,
        {
            "id": str(uuid.uuid4()),
            "tid": tenant_id,
            "aid": account_id,
            "kind": kind,
            "actor": actor,
            "reason": reason,
            "detail": json.dumps(detail or {}, default=str),
            "trace": trace_id,
        },
    )


async def events(conn: AsyncConnection, account_id: str) -> list:
    """An account's audit trail, oldest first (rows: kind, actor, reason, detail (dict), occurred_at)."""
    rows = await conn.execute(
        text(
            "SELECT kind, actor, reason, detail::text AS detail, occurred_at FROM account_events "
            "WHERE account_id = CAST(:id AS uuid) ORDER BY occurred_at, id"
        ),
        {"id": account_id},
    )
    return [(r.kind, r.actor, r.reason, json.loads(r.detail), r.occurred_at) for r in rows]


async def tenant_ids(conn: AsyncConnection) -> list[str]:
    """Every tenant that has billing accounts (any connection: the table is not tenant-scoped)."""
    rows = await conn.execute(text("SELECT tenant_id::text FROM billing_tenants ORDER BY tenant_id"))
    return [r[0] for r in rows]
