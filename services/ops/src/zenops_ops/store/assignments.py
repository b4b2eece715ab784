"""assignments, reference_counters, assignment_status_history, assignment_stages.

Reference numbers: `next_sequence` increments the (tenant, year) counter row with INSERT …
ON CONFLICT DO UPDATE … RETURNING in the assignment's own transaction. The row lock it takes
is held until that transaction ends, so concurrent creates of one tenant and year take
their numbers one after another, and a create that rolls back gives its number back: the
numbers are unique and gapless. (The lock is taken as late as possible in the create: after
the references are checked, before the one statement that writes the assignment.)

References are checked in one query under RLS (`missing_references`) before writing:
PostgreSQL's foreign-key checks bypass row-level security (the tenant-qualified keys of the
migrations catch what this misses). FK violations are mapped to the field they name.

Rows are locked FOR NO KEY UPDATE: writers of one assignment queue up, while inserts that
merely reference it (documents, tasks, activity) are not held up.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from zenops_kit.errors import FailedPrecondition
from zenops_kit.fields import not_found

from ..domain import assignments as rules
from . import violated_constraint

COLUMNS = (
    "a.id::text AS id, a.reference_number, a.source_type, a.status, a.bank_id::text AS bank_id, "
    "a.branch_id::text AS branch_id, a.client_org_id::text AS client_org_id, a.property_id::text AS property_id, "
    "a.contact_id::text AS contact_id, a.channel_id::text AS channel_id, "
    "a.channel_request_id::text AS channel_request_id, a.due_at, a.priority, "
    "CAST(a.assignee_ids AS text[]) AS assignee_ids, a.fee_paise, a.notes, a.borrower_name, a.completeness_score, "
    "a.credits_short, a.created_by, a.created_at, a.updated_at, a.version, "
    # what repogen needs from an assignment: the bank's code and the channel's billing account
    "COALESCE((SELECT b.code FROM banks b WHERE b.id = a.bank_id), '') AS bank_code, "
    "COALESCE((SELECT c.billing_account_id::text FROM channels c WHERE c.id = a.channel_id), '') "
    "AS billing_account_id, "
    "COALESCE((SELECT p.state FROM properties p WHERE p.id = a.property_id), '') AS property_state"
)

# The constraint a failed write names → the field (and kind of record) it is about.
_FOREIGN_KEYS = {
    "assignments_bank_fk": ("bank_id", "bank"),
    "assignments_branch_fk": ("branch_id", "bank_branch"),
    "assignments_client_org_fk": ("client_org_id", "client_org"),
    "assignments_property_id_fkey": ("property_id", "property"),
    "assignments_contact_fk": ("contact_id", "contact"),
    "assignments_channel_id_fkey": ("channel_id", "channel"),
    "assignments_channel_request_fk": ("channel_request_id", "channel_request"),
}

_REFERENCES = text("""
    SELECT
        CAST(:bank AS uuid) IS NULL OR EXISTS (SELECT 1 FROM banks WHERE id = CAST(:bank AS uuid)) AS bank_id,
        CAST(:branch AS uuid) IS NULL
            OR EXISTS (SELECT 1 FROM bank_branches WHERE id = CAST(:branch AS uuid)) AS branch_id,
        CAST(:org AS uuid) IS NULL
            OR EXISTS (SELECT 1 FROM client_orgs WHERE id = CAST(:org AS uuid)) AS client_org_id,
        CAST(:property AS uuid) IS NULL
            OR EXISTS (SELECT 1 FROM properties WHERE id = CAST(:property AS uuid)) AS property_id,
        CAST(:contact AS uuid) IS NULL
            OR EXISTS (SELECT 1 FROM contacts WHERE id = CAST(:contact AS uuid)) AS contact_id,
        CAST(:channel AS uuid) IS NULL
            OR EXISTS (SELECT 1 FROM channels WHERE id = CAST(:channel AS uuid)) AS channel_id,
        (SELECT bank_id::text FROM bank_branches WHERE id = CAST(:branch AS uuid)) AS branch_bank_id,
        (SELECT is_active FROM channels WHERE id = CAST(:channel AS uuid)) AS channel_active
""")

_NEXT_SEQUENCE = text(
    "INSERT INTO reference_counters (tenant_id, year, last_value) VALUES (CAST(:tid AS uuid), :year, 1) "
    "ON CONFLICT (tenant_id, year) DO UPDATE SET last_value = reference_counters.last_value + 1 "
    "RETURNING last_value"
)

# The assignment, its first status-history row (NULL → DRAFT) and its first stage, at once.
_INSERT = text(f"""
    WITH a AS (
        INSERT INTO assignments (id, tenant_id, reference_number, source_type, status, bank_id, branch_id,
                                 client_org_id, property_id, contact_id, channel_id, channel_request_id, due_at,
                                 priority, assignee_ids, fee_paise, notes, borrower_name, completeness_score,
                                 created_by)
        VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), :reference, :source, :status, CAST(:bank AS uuid),
                CAST(:branch AS uuid), CAST(:org AS uuid), CAST(:property AS uuid), CAST(:contact AS uuid),
                CAST(:channel AS uuid), CAST(:request AS uuid), :due_at, :priority, CAST(:assignees AS uuid[]),
                :fee, :notes, :borrower, :score, :actor)
        RETURNING *
    ), history AS (
        INSERT INTO assignment_status_history (id, tenant_id, assignment_id, from_status, to_status, actor, trace_id)
        SELECT CAST(:history_id AS uuid), a.tenant_id, a.id, NULL, a.status, :actor, :trace FROM a
    ), stage AS (
        INSERT INTO assignment_stages (id, tenant_id, assignment_id, stage)
        SELECT CAST(:stage_id AS uuid), a.tenant_id, a.id, a.status FROM a
    )
    SELECT {COLUMNS} FROM a
""")

_GET = text(f"SELECT {COLUMNS} FROM assignments a WHERE a.id = CAST(:id AS uuid)")
_LOCK = text(f"SELECT {COLUMNS} FROM assignments a WHERE a.id = CAST(:id AS uuid) FOR NO KEY UPDATE")
_BY_REQUEST = text(f"SELECT {COLUMNS} FROM assignments a WHERE a.channel_request_id = CAST(:id AS uuid)")

_UPDATE = text(f"""
    WITH a AS (
        UPDATE assignments SET bank_id = CAST(:bank AS uuid), branch_id = CAST(:branch AS uuid),
            client_org_id = CAST(:org AS uuid), property_id = CAST(:property AS uuid),
            contact_id = CAST(:contact AS uuid), due_at = :due_at, priority = :priority,
            assignee_ids = CAST(:assignees AS uuid[]), fee_paise = :fee, notes = :notes, borrower_name = :borrower,
            completeness_score = :score, updated_at = now(), version = version + 1
        WHERE id = CAST(:id AS uuid)
        RETURNING *
    )
    SELECT {COLUMNS} FROM a
""")

# A transition: the row moves, the history records it, the open stage closes and the next opens.
_TRANSITION = text(f"""
    WITH a AS (
        UPDATE assignments SET status = :to, updated_at = now(), version = version + 1
        WHERE id = CAST(:id AS uuid)
        RETURNING *
    ), history AS (
        INSERT INTO assignment_status_history (id, tenant_id, assignment_id, from_status, to_status, actor, reason,
                                               trace_id)
        SELECT CAST(:history_id AS uuid), a.tenant_id, a.id, :from, :to, :actor, :reason, :trace FROM a
    ), closed AS (
        UPDATE assignment_stages SET exited_at = greatest(clock_timestamp(), entered_at)
        WHERE assignment_id = CAST(:id AS uuid) AND exited_at IS NULL
    )
    SELECT {COLUMNS} FROM a
""")
# After the previous stage closed (the unique index allows one open stage per assignment).
_OPEN_STAGE = text(
    "INSERT INTO assignment_stages (id, tenant_id, assignment_id, stage) "
    "VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), CAST(:aid AS uuid), :stage)"
)

_SET_CREDITS_SHORT = text(
    "UPDATE assignments SET credits_short = true, updated_at = now(), version = version + 1 "
    "WHERE id = CAST(:id AS uuid) AND NOT credits_short RETURNING version"
)

_HISTORY = text(
    "SELECT from_status, to_status, actor, reason, created_at FROM assignment_status_history "
    "WHERE assignment_id = CAST(:id AS uuid) ORDER BY created_at, id"
)

_ACTIVITY = text("""
    SELECT id::text AS id, kind, actor, summary, detail::text AS detail, created_at FROM activities
    WHERE assignment_id = CAST(:id AS uuid)
      AND (CAST(:at AS timestamptz) IS NULL OR (created_at, id) < (CAST(:at AS timestamptz), CAST(:key AS uuid)))
    ORDER BY created_at DESC, id DESC
    LIMIT :limit
""")

_PAGE = text(f"""
    SELECT {COLUMNS} FROM assignments a
    LEFT JOIN properties p ON p.id = a.property_id
    WHERE (cardinality(CAST(:statuses AS text[])) = 0 OR a.status = ANY(CAST(:statuses AS text[])))
      AND (CAST(:assignee AS uuid) IS NULL OR CAST(:assignee AS uuid) = ANY(a.assignee_ids))
      AND (CAST(:bank AS uuid) IS NULL OR a.bank_id = CAST(:bank AS uuid))
      AND (CAST(:channel AS uuid) IS NULL OR a.channel_id = CAST(:channel AS uuid))
      AND (CAST(:due_after AS timestamptz) IS NULL OR a.due_at >= CAST(:due_after AS timestamptz))
      AND (CAST(:due_before AS timestamptz) IS NULL OR a.due_at < CAST(:due_before AS timestamptz))
      AND (CAST(:pattern AS text) IS NULL
           OR a.reference_number ILIKE :pattern OR a.borrower_name ILIKE :pattern OR a.notes ILIKE :pattern
           OR concat_ws(' ', p.address_line1, p.address_line2, p.locality, p.city, p.state, p.pin_code)
              ILIKE :pattern)
      AND (CAST(:at AS timestamptz) IS NULL
           OR (a.created_at, a.id) < (CAST(:at AS timestamptz), CAST(:key AS uuid)))
    ORDER BY a.created_at DESC, a.id DESC
    LIMIT :limit
""")


def _fk_error(exc: IntegrityError, values: dict[str, str | None]) -> Exception | None:
    mapped = _FOREIGN_KEYS.get(violated_constraint(exc) or "")
    if mapped is None:
        return None
    field, kind = mapped
    return not_found(kind, values.get(field) or "", field=field)


async def missing_references(
    conn: AsyncConnection,
    *,
    bank_id=None,
    branch_id=None,
    client_org_id=None,
    property_id=None,
    contact_id=None,
    channel_id=None,
) -> Row:
    """One row: per field, whether the record it names exists in the tenant (True when
    unset); `branch_bank_id` (the branch's bank) and `channel_active`."""
    return (
        await conn.execute(
            _REFERENCES,
            {
                "bank": bank_id,
                "branch": branch_id,
                "org": client_org_id,
                "property": property_id,
                "contact": contact_id,
                "channel": channel_id,
            },
        )
    ).one()


async def next_sequence(conn: AsyncConnection, tenant_id: str, year: int) -> int:
    """The next reference number of (tenant, year); locks the counter row until the
    transaction ends."""
    try:
        return (await conn.execute(_NEXT_SEQUENCE, {"tid": tenant_id, "year": year})).scalar_one()
    except IntegrityError:  # the counter's CHECK: the year's 999,999 numbers are all taken
        raise FailedPrecondition(
            f"no reference numbers are left for {year}",
            reason="REFERENCE_NUMBERS_EXHAUSTED",
            metadata={"year": str(year)},
        ) from None


def _detail_params(d: rules.Details) -> dict:
    return {
        "bank": d.bank_id,
        "branch": d.branch_id,
        "org": d.client_org_id,
        "property": d.property_id,
        "contact": d.contact_id,
        "due_at": d.due_at,
        "priority": d.priority,
        "assignees": list(d.assignee_ids),
        "fee": d.fee_paise,
        "notes": d.notes,
        "borrower": d.borrower_name,
    }


async def insert(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    reference: str,
    source_type: str,
    status: str,
    details: rules.Details,
    channel_id: str | None,
    channel_request_id: str | None,
    score: int,
    actor: str,
    trace_id: str,
) -> Row:
    params = {
        "id": str(uuid.uuid4()),
        "tid": tenant_id,
        "reference": reference,
        "source": source_type,
        "status": status,
        "channel": channel_id,
        "request": channel_request_id,
        "score": score,
        "actor": actor,
        "trace": trace_id,
        "history_id": str(uuid.uuid4()),
        "stage_id": str(uuid.uuid4()),
        **_detail_params(details),
    }
    try:
        return (await conn.execute(_INSERT, params)).one()
    except IntegrityError as exc:  # the transaction is lost either way: the caller's rolls back
        error = _fk_error(
            exc, {**details.as_dict(), "channel_id": channel_id, "channel_request_id": channel_request_id}
        )
        if error is None and violated_constraint(exc) == "assignments_channel_request":
            error = FailedPrecondition(
                "the channel request already has an assignment", reason="CHANNEL_REQUEST_ALREADY_LINKED"
            )
        if error is None:
            raise
        raise error from None


async def get(conn: AsyncConnection, assignment_id: str, *, lock: bool = False) -> Row | None:
    return (await conn.execute(_LOCK if lock else _GET, {"id": assignment_id})).first()


async def by_channel_request(conn: AsyncConnection, channel_request_id: str) -> Row | None:
    return (await conn.execute(_BY_REQUEST, {"id": channel_request_id})).first()


async def update(conn: AsyncConnection, assignment_id: str, details: rules.Details, score: int) -> Row:
    params = {"id": assignment_id, "score": score, **_detail_params(details)}
    try:
        return (await conn.execute(_UPDATE, params)).one()
    except IntegrityError as exc:
        error = _fk_error(exc, details.as_dict())
        if error is None:
            raise
        raise error from None


async def transition(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    assignment_id: str,
    from_status: str,
    to_status: str,
    actor: str,
    reason: str,
    trace_id: str,
) -> Row:
    """Move a locked assignment: the row, its history row, its stages. Returns the row."""
    row = (
        await conn.execute(
            _TRANSITION,
            {
                "id": assignment_id,
                "from": from_status,
                "to": to_status,
                "actor": actor,
                "reason": reason,
                "trace": trace_id,
                "history_id": str(uuid.uuid4()),
            },
        )
    ).one()
    await conn.execute(
        _OPEN_STAGE, {"id": str(uuid.uuid4()), "tid": tenant_id, "aid": assignment_id, "stage": to_status}
    )
    return row


async def flag_credits_short(conn: AsyncConnection, assignment_id: str) -> bool:
    """Set credits_short; False when it was set already."""
    return (await conn.execute(_SET_CREDITS_SHORT, {"id": assignment_id})).first() is not None


async def history(conn: AsyncConnection, assignment_id: str) -> list[Row]:
    """Status history, oldest first."""
    return list(await conn.execute(_HISTORY, {"id": assignment_id}))


async def activity(
    conn: AsyncConnection, assignment_id: str, *, before: tuple[datetime, str] | None, limit: int
) -> list[Row]:
    """Activity newest first, after the cursor position `before` (created_at, id)."""
    at, key = before or (None, None)
    return list(await conn.execute(_ACTIVITY, {"id": assignment_id, "at": at, "key": key, "limit": limit}))


async def page(
    conn: AsyncConnection,
    *,
    statuses: list[str],
    assignee_id: str | None,
    bank_id: str | None,
    channel_id: str | None,
    due_after: datetime | None,
    due_before: datetime | None,
    pattern: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Row]:
    at, key = before or (None, None)
    return list(
        await conn.execute(
            _PAGE,
            {
                "statuses": statuses,
                "assignee": assignee_id,
                "bank": bank_id,
                "channel": channel_id,
                "due_after": due_after,
                "due_before": due_before,
                "pattern": pattern,
                "at": at,
                "key": key,
                "limit": limit,
            },
        )
    )
