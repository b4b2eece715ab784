"""Use cases of assignments and their lifecycle: decide with the domain's rules, write with
the store, in the caller's transaction.

`create`, `update` and `transition` take the connection of a transaction the caller owns
(the servicer's idempotent transaction, AcceptChannelRequest's, or an event handler's), so
an assignment made while accepting a channel request, or delivered when repogen releases
its report, is the same write with the same rows (status history, stage, activity, event)
as one made by hand. Reads open their own transaction scoped to the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops.events.v1 import ops_pb2 as events
from zenops.ops.v1 import ops_pb2 as pb
from zenops_kit.errors import Aborted, FailedPrecondition
from zenops_kit.fields import invalid, is_uuid, not_found, parse_uuid
from zenops_kit.paging import decode_cursor, encode_cursor, page_limit
from zenops_kit.rls import scoped_tx

from . import outbox
from .api.caller import Caller
from .documents import linked_documents
from .domain import assignments as rules
from .domain import lifecycle
from .store import activity
from .store import assignments as store

# The order missing references are reported in (the first one missing is named).
_REFERENCE_FIELDS = ("channel_id", "bank_id", "branch_id", "client_org_id", "property_id", "contact_id")
MAX_QUERY = 200


def _now() -> datetime:
    return datetime.now(UTC)


async def _checked_references(
    conn: AsyncConnection, d: rules.Details, *, channel_id: str | None = None, changed: set[str] | None = None
) -> tuple[rules.Details, Row]:
    """Every reference `d` makes names a record of the tenant (NOT_FOUND naming the field);
    the branch belongs to the bank (a branch without a bank brings its bank). `changed`:
    only those fields are checked (the others were checked when they were set)."""

    def given(field: str):
        value = channel_id if field == "channel_id" else getattr(d, field)
        return value if changed is None or field in changed else None

    refs = await store.missing_references(
        conn,
        bank_id=given("bank_id"),
        branch_id=d.branch_id,
        client_org_id=given("client_org_id"),
        property_id=given("property_id"),
        contact_id=given("contact_id"),
        channel_id=given("channel_id"),
    )
    for field in _REFERENCE_FIELDS:
        if not getattr(refs, field):
            value = given(field)
            raise not_found(rules.REFERENCES[field], value, field=field)
    if d.branch_id and (changed is None or {"bank_id", "branch_id"} & changed):
        if d.bank_id is None:
            d = replace(d, bank_id=refs.branch_bank_id)
        elif d.bank_id != refs.branch_bank_id:
            raise invalid("branch_id", "is a branch of another bank than bank_id")
    return d, refs


# -- create -----------------------------------------------------------------------------------


async def create(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    actor: str,
    trace_id: str,
    source_type: str,
    details: rules.Details,
    channel_id: str | None = None,
    channel_request_id: str | None = None,
    require_active_channel: bool = True,
) -> Row:
    """A new DRAFT assignment with its reference number, first status-history row, first
    stage and an "assignment.created" activity."""
    details, refs = await _checked_references(conn, details, channel_id=channel_id)
    rules.check_source(source_type, details, channel_id)
    if channel_id and require_active_channel and refs.channel_active is False:
        raise FailedPrecondition(
            f"channel {channel_id} is not active", reason="CHANNEL_INACTIVE", metadata={"channel_id": channel_id}
        )
    score = rules.completeness(source_type, details, channel_id)
    year = rules.reference_year(_now())
    # The counter row stays locked until this transaction ends: from here on, be brief.
    reference = rules.reference_number(year, await store.next_sequence(conn, tenant_id, year))
    row = await store.insert(
        conn,
        tenant_id=tenant_id,
        reference=reference,
        source_type=source_type,
        status=lifecycle.DRAFT,
        details=details,
        channel_id=channel_id,
        channel_request_id=channel_request_id,
        score=score,
        actor=actor,
        trace_id=trace_id,
    )
    await activity.record(
        conn,
        tenant_id=tenant_id,
        kind="assignment.created",
        actor=actor,
        assignment_id=row.id,
        channel_request_id=channel_request_id,
        trace_id=trace_id,
        summary=f"Assignment {reference} created ({source_type.lower()})",
        detail={
            "reference_number": reference,
            "source_type": source_type,
            "channel_id": channel_id,
            "channel_request_id": channel_request_id,
            **_jsonable(details.as_dict()),
        },
    )
    return row


def _jsonable(values: dict) -> dict:
    return {
        k: (v.isoformat() if isinstance(v, datetime) else list(v) if isinstance(v, tuple) else v)
        for k, v in values.items()
    }


# -- read -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detail:
    assignment: Row
    history: list[Row]  # oldest first
    documents: list[pb.Document]  # those the caller may read (documents.linked_documents)


async def get(engine: AsyncEngine, caller: Caller, assignment_id: str) -> Detail:
    """The assignment with its status history and linked documents, read in one transaction."""
    assignment_id = parse_uuid(assignment_id, "id")
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        row = await store.get(conn, assignment_id)
        if row is None:
            raise not_found("assignment", assignment_id)
        return Detail(
            row, await store.history(conn, assignment_id), await linked_documents(conn, caller, assignment_id)
        )


def cursor_position(cursor: str, kind: str) -> tuple[datetime, str] | None:
    position = decode_cursor(cursor, kind, 2)
    if position is None:
        return None
    try:
        at = datetime.fromisoformat(position[0])
    except ValueError:
        at = None
    if at is None or at.tzinfo is None or not is_uuid(position[1]):
        raise invalid("page.cursor", "is not a cursor returned by this list")
    return at, position[1]


def next_page(kind: str, rows: list[Row], limit: int) -> tuple[list[Row], str]:
    if len(rows) <= limit:
        return rows, ""
    rows = rows[:limit]
    return rows, encode_cursor(kind, [rows[-1].created_at.isoformat(), rows[-1].id])


def like_pattern(query: str) -> str | None:
    """An ILIKE pattern matching `query` anywhere (its wildcards taken literally)."""
    query = (query or "").strip()
    if not query:
        return None
    if len(query) > MAX_QUERY:
        raise invalid("query", f"must be at most {MAX_QUERY} characters")
    return "%" + re.sub(r"([\\%_])", r"\\\1", query) + "%"


@dataclass(frozen=True)
class Filters:
    statuses: list[str]
    assignee_id: str | None
    bank_id: str | None
    channel_id: str | None
    due_after: datetime | None
    due_before: datetime | None
    query: str


async def list_page(
    engine: AsyncEngine, caller: Caller, filters: Filters, *, limit: int, cursor: str
) -> tuple[list[Row], str]:
    """Newest first."""
    limit = page_limit(limit)
    before = cursor_position(cursor, "assignments")
    pattern = like_pattern(filters.query)
    if filters.due_after and filters.due_before and filters.due_after > filters.due_before:
        raise invalid("due_before", "must not be before due_after")
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        rows = await store.page(
            conn,
            statuses=filters.statuses,
            assignee_id=filters.assignee_id,
            bank_id=filters.bank_id,
            channel_id=filters.channel_id,
            due_after=filters.due_after,
            due_before=filters.due_before,
            pattern=pattern,
            before=before,
            limit=limit + 1,
        )
    return next_page("assignments", rows, limit)


@dataclass(frozen=True)
class History:
    history: list[Row]  # newest first
    activity: list[Row]  # newest first, one page
    next_cursor: str


async def history(engine: AsyncEngine, caller: Caller, assignment_id: str, *, limit: int, cursor: str) -> History:
    assignment_id = parse_uuid(assignment_id, "id")
    limit = page_limit(limit)
    before = cursor_position(cursor, "activity")
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        if await store.get(conn, assignment_id) is None:
            raise not_found("assignment", assignment_id)
        statuses = await store.history(conn, assignment_id)
        entries = await store.activity(conn, assignment_id, before=before, limit=limit + 1)
    entries, next_cursor = next_page("activity", entries, limit)
    return History(list(reversed(statuses)), entries, next_cursor)


# -- update -----------------------------------------------------------------------------------


def details_of(row: Row) -> rules.Details:
    return rules.Details(
        bank_id=row.bank_id,
        branch_id=row.branch_id,
        client_org_id=row.client_org_id,
        property_id=row.property_id,
        contact_id=row.contact_id,
        due_at=row.due_at,
        priority=row.priority,
        assignee_ids=tuple(row.assignee_ids or ()),
        fee_paise=row.fee_paise,
        notes=row.notes,
        borrower_name=row.borrower_name,
    )


async def _locked(conn: AsyncConnection, assignment_id: str) -> Row:
    row = await store.get(conn, assignment_id, lock=True)
    if row is None:
        raise not_found("assignment", assignment_id)
    return row


async def update(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    actor: str,
    trace_id: str,
    assignment_id: str,
    values: dict,
    expected_version: int = 0,
) -> Row:
    """Apply `values` (update_mask path → raw value). DELIVERED and CANCELLED assignments are
    closed to edits; `expected_version` (when set) must be the assignment's version."""
    row = await _locked(conn, assignment_id)
    if row.status in lifecycle.CLOSED:
        raise FailedPrecondition(
            f"assignment {row.reference_number} is {row.status} and cannot be edited",
            reason="ASSIGNMENT_CLOSED",
            metadata={"status": row.status},
        )
    if expected_version and expected_version != row.version:
        raise Aborted(
            f"assignment {row.reference_number} is at version {row.version}, not {expected_version}",
            reason="VERSION_CONFLICT",
            metadata={"version": str(row.version), "expected_version": str(expected_version)},
        )
    before = details_of(row)
    after = rules.updated(before, values, _now())
    changed = {k for k, v in after.as_dict().items() if v != getattr(before, k)}
    if not changed:
        return row
    after, _ = await _checked_references(conn, after, changed=changed)
    changed = {k for k, v in after.as_dict().items() if v != getattr(before, k)}
    rules.check_source(row.source_type, after, row.channel_id)
    score = rules.completeness(row.source_type, after, row.channel_id)
    new = await store.update(conn, assignment_id, after, score)
    old_values, new_values = _jsonable(before.as_dict()), _jsonable(after.as_dict())
    await activity.record(
        conn,
        tenant_id=tenant_id,
        kind="assignment.updated",
        actor=actor,
        assignment_id=assignment_id,
        trace_id=trace_id,
        summary=f"Assignment {row.reference_number} updated: " + ", ".join(sorted(changed)),
        detail={
            "before": {k: old_values[k] for k in sorted(changed)},
            "after": {k: new_values[k] for k in sorted(changed)},
            "completeness_score": {"before": row.completeness_score, "after": score},
            "version": new.version,
        },
    )
    return new


# -- lifecycle --------------------------------------------------------------------------------


async def transition(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    actor: str,
    trace_id: str,
    assignment_id: str,
    to_status: str,
    reason: str = "",
    released: bool = False,
) -> Row:
    """Move the assignment to `to_status` as the lifecycle table allows (`released`: repogen
    released its report, which delivers it from any open state). One transaction: the row
    locked, its status-history row, the stage closed and the next opened, an activity entry,
    the version up by one and ops.assignment.status_changed in the outbox."""
    reason = lifecycle.clean_reason(reason)
    row = await _locked(conn, assignment_id)
    from_status = row.status
    if released:
        if to_status != lifecycle.DELIVERED or from_status not in lifecycle.RELEASE_FROM:
            raise lifecycle.illegal(from_status, to_status)
    else:
        lifecycle.check(from_status, to_status, reason)
    moved = await store.transition(
        conn,
        tenant_id=tenant_id,
        assignment_id=assignment_id,
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        reason=reason,
        trace_id=trace_id,
    )
    summary = f"Assignment {row.reference_number}: {from_status} → {to_status}"
    await activity.record(
        conn,
        tenant_id=tenant_id,
        kind="assignment.status_changed",
        actor=actor,
        assignment_id=assignment_id,
        trace_id=trace_id,
        summary=summary + (f" ({reason})" if reason else ""),
        detail={"from": from_status, "to": to_status, "reason": reason, "version": moved.version},
    )
    await outbox.emit(
        conn,
        event_type=outbox.ASSIGNMENT_STATUS_CHANGED,
        tenant_id=tenant_id,
        aggregate_type="assignment",
        aggregate_id=assignment_id,
        aggregate_version=moved.version,
        payload=events.AssignmentStatusChanged(
            assignment_id=assignment_id,
            reference_number=row.reference_number,
            from_status=from_status,
            to_status=to_status,
            actor=actor,
            reason=reason,
            channel_id=row.channel_id or "",
            channel_request_id=row.channel_request_id or "",
        ),
    )
    return moved


async def flag_credits_short(
    conn: AsyncConnection, *, tenant_id: str, assignment_id: str, actor: str, detail: dict, summary: str
) -> bool:
    """Mark the assignment "credits short" (billing could not reserve its credits), with an
    activity entry; False when there is no such assignment."""
    if await store.get(conn, assignment_id) is None:
        return False
    await store.flag_credits_short(conn, assignment_id)
    await activity.record(
        conn,
        tenant_id=tenant_id,
        kind="billing.credits_short",
        actor=actor,
        assignment_id=assignment_id,
        summary=summary,
        detail=detail,
    )
    return True
