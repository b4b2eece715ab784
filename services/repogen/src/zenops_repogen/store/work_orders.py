"""work_orders, their audit trail (work_order_events) and channel_tenants (channel id → the
firm's tenant; global, ids only).

Rows are locked FOR NO KEY UPDATE: writers of one work order queue up (a patch, a
transition, evidence changing readiness), while inserts that merely reference it
(snapshots, events, evidence) are not held up. Every change of the row bumps `version` and
`updated_at`, and writes its audit row in the same statement.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops_kit.db import autocommit
from zenops_kit.errors import AlreadyExists

from . import dumps, violated_constraint

COLUMNS = (
    "w.id::text AS id, w.tenant_id::text AS tenant_id, w.assignment_id::text AS assignment_id, "
    "w.channel_request_id::text AS channel_request_id, w.channel_id::text AS channel_id, w.bank_code, w.template_id, "
    "w.template_overridden, w.template_override_reason, w.billing_account_id::text AS billing_account_id, w.status, "
    "w.snapshot_version, w.evidence_profile, w.credits, w.last_error, w.created_by, w.created_at, w.updated_at, "
    "w.version"
)

# -- channel directory ---------------------------------------------------------------------

# A channel never changes owner: its tenant is cached for the life of the process.
_OWNERS: dict[str, str] = {}
_OWNER = text("SELECT tenant_id::text FROM channel_tenants WHERE channel_id = CAST(:id AS uuid)")
_LEARN_CHANNEL = text(
    "INSERT INTO channel_tenants (channel_id, tenant_id) VALUES (CAST(:c AS uuid), CAST(:t AS uuid)) "
    "ON CONFLICT (channel_id) DO NOTHING"
)


async def owner_tenant(engine: AsyncEngine, channel_id: str) -> str | None:
    """The tenant (the firm) that owns `channel_id`; None when repogen knows no work order of it."""
    tenant = _OWNERS.get(channel_id)
    if tenant is None:
        async with autocommit(engine) as conn:
            tenant = (await conn.execute(_OWNER, {"id": channel_id})).scalar()
        if tenant is not None:
            _OWNERS[channel_id] = tenant
    return tenant


async def learn_channel(conn: AsyncConnection, channel_id: str, tenant_id: str) -> None:
    await conn.execute(_LEARN_CHANNEL, {"c": channel_id, "t": tenant_id})


# -- reads ---------------------------------------------------------------------------------

_GET = text(f"SELECT {COLUMNS} FROM work_orders w WHERE w.id = CAST(:id AS uuid)")
_LOCK = text(f"SELECT {COLUMNS} FROM work_orders w WHERE w.id = CAST(:id AS uuid) FOR NO KEY UPDATE")
_LIVE_FOR_ASSIGNMENT = text(
    f"SELECT {COLUMNS} FROM work_orders w WHERE w.assignment_id = CAST(:id AS uuid) AND w.status <> 'CANCELLED'"
)
_BY_CHANNEL_REQUEST = text(f"SELECT {COLUMNS} FROM work_orders w WHERE w.channel_request_id = CAST(:id AS uuid)")
_PAGE = text(f"""
    SELECT {COLUMNS} FROM work_orders w
    WHERE (cardinality(CAST(:statuses AS text[])) = 0 OR w.status = ANY(CAST(:statuses AS text[])))
      AND (CAST(:assignment AS uuid) IS NULL OR w.assignment_id = CAST(:assignment AS uuid))
      AND (CAST(:channel AS uuid) IS NULL OR w.channel_id = CAST(:channel AS uuid))
      AND (CAST(:at AS timestamptz) IS NULL
           OR (w.created_at, w.id) < (CAST(:at AS timestamptz), CAST(:key AS uuid)))
    ORDER BY w.created_at DESC, w.id DESC
    LIMIT :limit
""")
_EVENTS = text("""
    SELECT id::text AS id, kind, from_status, to_status, actor, reason, detail::text AS detail, trace_id, created_at
    FROM work_order_events WHERE work_order_id = CAST(:id AS uuid) ORDER BY created_at, id
""")


async def get(conn: AsyncConnection, work_order_id: str, *, lock: bool = False) -> Row | None:
    return (await conn.execute(_LOCK if lock else _GET, {"id": work_order_id})).first()


async def live_for_assignment(conn: AsyncConnection, assignment_id: str) -> Row | None:
    return (await conn.execute(_LIVE_FOR_ASSIGNMENT, {"id": assignment_id})).first()


async def by_channel_request(conn: AsyncConnection, channel_request_id: str) -> Row | None:
    return (await conn.execute(_BY_CHANNEL_REQUEST, {"id": channel_request_id})).first()


async def page(
    conn: AsyncConnection,
    *,
    statuses: list[str],
    assignment_id: str | None,
    channel_id: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Row]:
    at, key = before or (None, None)
    return list(
        await conn.execute(
            _PAGE,
            {
                "statuses": statuses,
                "assignment": assignment_id,
                "channel": channel_id,
                "at": at,
                "key": key,
                "limit": limit,
            },
        )
    )


async def events(conn: AsyncConnection, work_order_id: str) -> list[Row]:
    """The audit trail, oldest first."""
    return list(await conn.execute(_EVENTS, {"id": work_order_id}))


# -- writes --------------------------------------------------------------------------------

_AUDIT = (
    "INSERT INTO work_order_events (id, tenant_id, work_order_id, kind, from_status, to_status, actor, reason, "
    "detail, trace_id) SELECT CAST(:event_id AS uuid), w.tenant_id, w.id, :kind, :from_status, :to_status, "
    ":actor, :reason, CAST(:detail AS jsonb), :trace FROM w"
)

_INSERT = text(f"""
    WITH w AS (
        INSERT INTO work_orders (id, tenant_id, assignment_id, channel_request_id, channel_id, bank_code, template_id,
                                 billing_account_id, status, evidence_profile, credits, created_by)
        VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), CAST(:assignment AS uuid), CAST(:request AS uuid),
                CAST(:channel AS uuid), :bank_code, :template_id, CAST(:account AS uuid), :status, :profile, :credits,
                :actor)
        RETURNING *
    ), audit AS ({_AUDIT})
    SELECT {COLUMNS} FROM w
""")


async def insert(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    assignment_id: str,
    channel_request_id: str | None,
    channel_id: str | None,
    bank_code: str,
    template_id: str,
    billing_account_id: str | None,
    status: str,
    evidence_profile: str,
    credits: int,
    actor: str,
    trace_id: str,
    detail: dict,
) -> Row:
    """A new work order and its "work_order.created" audit row. ALREADY_EXISTS when the
    assignment has a live work order, or the channel request one."""
    params = {
        "id": str(uuid.uuid4()),
        "tid": tenant_id,
        "assignment": assignment_id,
        "request": channel_request_id,
        "channel": channel_id,
        "bank_code": bank_code,
        "template_id": template_id,
        "account": billing_account_id,
        "status": status,
        "profile": evidence_profile,
        "credits": credits,
        "actor": actor,
        "event_id": str(uuid.uuid4()),
        "kind": "work_order.created",
        "from_status": None,
        "to_status": status,
        "reason": "",
        "detail": dumps(detail),
        "trace": trace_id,
    }
    try:
        async with conn.begin_nested():
            return (await conn.execute(_INSERT, params)).one()
    except IntegrityError as exc:
        constraint = violated_constraint(exc)
        if constraint == "work_orders_assignment":
            raise AlreadyExists(
                f"assignment {assignment_id} already has a live work order",
                reason="WORK_ORDER_EXISTS",
                metadata={"field": "assignment_id", "assignment_id": assignment_id},
            ) from None
        if constraint == "work_orders_channel_request":
            raise AlreadyExists(
                f"channel request {channel_request_id} already has a work order",
                reason="WORK_ORDER_EXISTS",
                metadata={"field": "channel_request_id", "channel_request_id": channel_request_id or ""},
            ) from None
        raise


def _changed(assignments: str) -> text:
    return text(f"""
        WITH w AS (
            UPDATE work_orders SET {assignments}, updated_at = now(), version = version + 1
            WHERE id = CAST(:id AS uuid)
            RETURNING *
        ), audit AS ({_AUDIT})
        SELECT {COLUMNS} FROM w
    """)


_SET_STATUS = _changed("status = :to_status")
_SET_SNAPSHOT = _changed(
    "snapshot_version = :snapshot_version, template_id = :template_id, evidence_profile = :profile, status = :status"
)
_OVERRIDE = _changed(
    "template_id = :template_id, template_overridden = true, template_override_reason = :reason, "
    "evidence_profile = :profile"
)
_SET_LAST_ERROR = _changed("last_error = :error")
_SET_RENDERED = _changed("status = :to_status, last_error = ''")


def _audit(
    kind: str,
    actor: str,
    trace_id: str,
    *,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str = "",
    detail: dict | None = None,
) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "kind": kind,
        "from_status": from_status,
        "to_status": to_status,
        "actor": actor,
        "reason": reason,
        "detail": dumps(detail or {}),
        "trace": trace_id,
    }


async def set_status(
    conn: AsyncConnection,
    work_order_id: str,
    *,
    from_status: str,
    to_status: str,
    actor: str,
    reason: str,
    trace_id: str,
    detail: dict | None = None,
    kind: str = "work_order.status_changed",
    clear_last_error: bool = False,
) -> Row:
    statement = _SET_RENDERED if clear_last_error else _SET_STATUS
    return (
        await conn.execute(
            statement,
            {
                "id": work_order_id,
                **_audit(
                    kind, actor, trace_id, from_status=from_status, to_status=to_status, reason=reason, detail=detail
                ),
            },
        )
    ).one()


async def set_snapshot(
    conn: AsyncConnection,
    work_order_id: str,
    *,
    snapshot_version: int,
    template_id: str,
    evidence_profile: str,
    status: str,
    kind: str,
    actor: str,
    trace_id: str,
    reason: str = "",
    from_status: str | None = None,
    detail: dict | None = None,
) -> Row:
    """The work order now stands at `snapshot_version` (template, profile and status with it)."""
    return (
        await conn.execute(
            _SET_SNAPSHOT,
            {
                "id": work_order_id,
                "snapshot_version": snapshot_version,
                "template_id": template_id,
                "profile": evidence_profile,
                "status": status,
                **_audit(
                    kind,
                    actor,
                    trace_id,
                    from_status=from_status,
                    to_status=status if from_status else None,
                    reason=reason,
                    detail=detail,
                ),
            },
        )
    ).one()


async def override_template(
    conn: AsyncConnection,
    work_order_id: str,
    *,
    template_id: str,
    reason: str,
    evidence_profile: str,
    actor: str,
    trace_id: str,
    detail: dict,
) -> Row:
    return (
        await conn.execute(
            _OVERRIDE,
            {
                "id": work_order_id,
                "template_id": template_id,
                "reason": reason,
                "profile": evidence_profile,
                **_audit("template.overridden", actor, trace_id, reason=reason, detail=detail),
            },
        )
    ).one()


async def set_last_error(
    conn: AsyncConnection, work_order_id: str, *, error: str, actor: str, trace_id: str, detail: dict | None = None
) -> Row:
    return (
        await conn.execute(
            _SET_LAST_ERROR,
            {
                "id": work_order_id,
                "error": error,
                **_audit("factory.failed", actor, trace_id, reason=error[:1000], detail=detail),
            },
        )
    ).one()


_RECORD = text(
    "INSERT INTO work_order_events (id, tenant_id, work_order_id, kind, from_status, to_status, actor, "
    "reason, detail, trace_id) VALUES (CAST(:event_id AS uuid), CAST(:tid AS uuid), CAST(:id AS uuid), "
    ":kind, :from_status, :to_status, :actor, :reason, CAST(:detail AS jsonb), :trace)"
)


async def record(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    work_order_id: str,
    kind: str,
    actor: str,
    trace_id: str,
    reason: str = "",
    detail: dict | None = None,
) -> None:
    """An audit row about the work order that does not change its row (evidence, links,
    annexures, comments)."""
    await conn.execute(
        _RECORD, {"tid": tenant_id, "id": work_order_id, **_audit(kind, actor, trace_id, reason=reason, detail=detail)}
    )
