"""channel_requests.

Every query of a portal user's transaction is scoped twice: by RLS (zenops_kit.rls.scoped_tx
sets the channel) and by the query itself (`channel` parameter), so neither a forgotten
filter nor a missing policy alone can show another channel's requests.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from zenops_kit.fields import not_found

from . import violated_constraint

COLUMNS = (
    "r.id::text AS id, r.channel_id::text AS channel_id, r.status, r.borrower_name, r.borrower_phone, "
    "r.property::text AS property, r.bank_id::text AS bank_id, r.branch_id::text AS branch_id, "
    "r.requested_service, r.credits, r.notes, r.assignment_id::text AS assignment_id, r.submitted_by, "
    "r.reviewed_by, r.reviewed_at, r.rejection_reason, r.credits_short, r.credits_short_reason, r.created_at, "
    "r.updated_at, r.version"
)

# The constraint a failed insert names → (field, kind of record).
_FOREIGN_KEYS = {
    "channel_requests_channel_id_fkey": ("channel_id", "channel"),
    "channel_requests_bank_fk": ("bank_id", "bank"),
    "channel_requests_branch_fk": ("branch_id", "bank_branch"),
}

_CHANNEL = text(
    "SELECT id::text AS id, name, is_active, billing_account_id::text AS billing_account_id, default_credits "
    "FROM channels WHERE id = CAST(:id AS uuid)"
)

_INSERT = text(f"""
    WITH r AS (
        INSERT INTO channel_requests (id, tenant_id, channel_id, borrower_name, borrower_phone, property, bank_id,
                                      branch_id, requested_service, credits, notes, submitted_by)
        VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), CAST(:channel AS uuid), :borrower, :phone,
                CAST(:property AS jsonb), CAST(:bank AS uuid), CAST(:branch AS uuid), :service, :credits, :notes,
                :actor)
        RETURNING *
    )
    SELECT {COLUMNS} FROM r
""")

_SCOPE = "(CAST(:channel AS uuid) IS NULL OR r.channel_id = CAST(:channel AS uuid))"
_GET = text(f"SELECT {COLUMNS} FROM channel_requests r WHERE r.id = CAST(:id AS uuid) AND {_SCOPE}")
_LOCK = text(f"SELECT {COLUMNS} FROM channel_requests r WHERE r.id = CAST(:id AS uuid) AND {_SCOPE} FOR NO KEY UPDATE")

_PAGE = text(f"""
    SELECT {COLUMNS} FROM channel_requests r
    WHERE {_SCOPE}
      AND (CAST(:filter_channel AS uuid) IS NULL OR r.channel_id = CAST(:filter_channel AS uuid))
      AND (CAST(:status AS text) IS NULL OR r.status = :status)
      AND (CAST(:at AS timestamptz) IS NULL
           OR (r.created_at, r.id) < (CAST(:at AS timestamptz), CAST(:key AS uuid)))
    ORDER BY r.created_at DESC, r.id DESC
    LIMIT :limit
""")

_ACCEPT = text(f"""
    WITH r AS (
        UPDATE channel_requests SET status = 'ACCEPTED', assignment_id = CAST(:assignment AS uuid),
            reviewed_by = :actor, reviewed_at = now(), updated_at = now(), version = version + 1
        WHERE id = CAST(:id AS uuid) AND status = 'SUBMITTED'
        RETURNING *
    )
    SELECT {COLUMNS} FROM r
""")

_REJECT = text(f"""
    WITH r AS (
        UPDATE channel_requests SET status = 'REJECTED', rejection_reason = :reason, reviewed_by = :actor,
            reviewed_at = now(), updated_at = now(), version = version + 1
        WHERE id = CAST(:id AS uuid) AND status = 'SUBMITTED'
        RETURNING *
    )
    SELECT {COLUMNS} FROM r
""")

_CREDITS_SHORT = text(
    "UPDATE channel_requests SET credits_short = true, credits_short_reason = :reason, updated_at = now(), "
    "version = version + 1 WHERE id = CAST(:id AS uuid)"
)

_REF_STATE = text(
    "SELECT r.status, a.status AS assignment_status FROM channel_requests r "
    "LEFT JOIN assignments a ON a.id = r.assignment_id WHERE r.id = CAST(:id AS uuid)"
)


async def channel(conn: AsyncConnection, channel_id: str) -> Row | None:
    return (await conn.execute(_CHANNEL, {"id": channel_id})).first()


async def insert(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    channel_id: str,
    borrower_name: str,
    borrower_phone: str,
    property: dict,
    bank_id: str | None,
    branch_id: str | None,
    requested_service: str,
    credits: int,
    notes: str,
    actor: str,
) -> Row:
    try:
        return (
            await conn.execute(
                _INSERT,
                {
                    "id": str(uuid.uuid4()),
                    "tid": tenant_id,
                    "channel": channel_id,
                    "borrower": borrower_name,
                    "phone": borrower_phone,
                    "property": json.dumps(property),
                    "bank": bank_id,
                    "branch": branch_id,
                    "service": requested_service,
                    "credits": credits,
                    "notes": notes,
                    "actor": actor,
                },
            )
        ).one()
    except IntegrityError as exc:  # the caller's transaction rolls back
        mapped = _FOREIGN_KEYS.get(violated_constraint(exc) or "")
        if mapped is None:
            raise
        field, kind, value = (
            mapped[0],
            mapped[1],
            {"channel_id": channel_id, "bank_id": bank_id, "branch_id": branch_id}[mapped[0]],
        )
        raise not_found(kind, value or "", field=field) from None


async def get(
    conn: AsyncConnection, request_id: str, *, channel_id: str | None = None, lock: bool = False
) -> Row | None:
    """The request (of `channel_id` only, when given); `lock`: FOR UPDATE."""
    return (await conn.execute(_LOCK if lock else _GET, {"id": request_id, "channel": channel_id})).first()


async def page(
    conn: AsyncConnection,
    *,
    channel_id: str | None,
    filter_channel_id: str | None,
    status: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Row]:
    at, key = before or (None, None)
    return list(
        await conn.execute(
            _PAGE,
            {
                "channel": channel_id,
                "filter_channel": filter_channel_id,
                "status": status,
                "at": at,
                "key": key,
                "limit": limit,
            },
        )
    )


async def accept(conn: AsyncConnection, request_id: str, *, assignment_id: str, actor: str) -> Row:
    return (await conn.execute(_ACCEPT, {"id": request_id, "assignment": assignment_id, "actor": actor})).one()


async def reject(conn: AsyncConnection, request_id: str, *, reason: str, actor: str) -> Row:
    return (await conn.execute(_REJECT, {"id": request_id, "reason": reason, "actor": actor})).one()


async def flag_credits_short(conn: AsyncConnection, request_id: str, reason: str) -> None:
    await conn.execute(_CREDITS_SHORT, {"id": request_id, "reason": reason})


async def ref_state(conn: AsyncConnection, request_id: str) -> Row | None:
    """(status, assignment_status) of a request."""
    return (await conn.execute(_REF_STATE, {"id": request_id})).first()
