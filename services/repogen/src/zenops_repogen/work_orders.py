"""Use cases of work orders and their lifecycle: decide with domain.lifecycle, write with the
store, in the caller's transaction.

`create` and `transition` take the connection of a transaction the caller owns (the
servicer's idempotent transaction, or the consumer's for a work order born from an accepted
channel request), so a work order made by hand and one made by the reaction are the same
write with the same rows: the work order, snapshot 0 (the empty contract, its outputs and
readiness), its rules run and readiness result, the audit row and the channel directory row.

The factory and the release move work orders too, through `mark_rendered` and
`mark_released` (each with its audit row); `record_factory_error` keeps the factory's last
error on the work order for the monitor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops.events.v1 import repogen_pb2 as events
from zenops_kit.caller import Caller
from zenops_kit.errors import AlreadyExists, FailedPrecondition, FieldViolation
from zenops_kit.fields import invalid, is_uuid, parse_uuid, text
from zenops_kit.paging import decode_cursor, encode_cursor, page_limit
from zenops_kit.rls import scoped_tx

from . import contract, outbox, rules
from .domain import lifecycle
from .ops_client import ASSIGNMENT_CLOSED, AssignmentInfo
from .store import dumps, loads
from .store import snapshots as snapshot_store
from .store import work_orders as store

MAX_CREDITS = 100_000
MAX_TEMPLATE_REASON = 1000


def credits(value: int) -> int:
    if value < 0:
        raise invalid("credits", "must not be negative")
    if value > MAX_CREDITS:
        raise invalid("credits", f"must be at most {MAX_CREDITS}")
    return value


# -- create ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    work_order: Row
    snapshot: Row


async def create(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    actor: str,
    trace_id: str,
    assignment: AssignmentInfo,
    billing_account_id: str | None,
    credits: int,
    channel_request_id: str | None,
    inspection_max_age_days: int = contract.DEFAULT_INSPECTION_MAX_AGE_DAYS,
) -> Created:
    """A DRAFT work order for `assignment` (as ops answered it) with snapshot 0."""
    if assignment.status in ASSIGNMENT_CLOSED:
        raise FailedPrecondition(
            f"assignment {assignment.reference_number or assignment.id} is {assignment.status}",
            reason="ASSIGNMENT_CLOSED",
            metadata={"field": "assignment_id", "status": assignment.status},
        )
    existing = await store.live_for_assignment(conn, assignment.id)
    if existing is not None:
        raise AlreadyExists(
            f"assignment {assignment.id} already has work order {existing.id}",
            reason="WORK_ORDER_EXISTS",
            violations=[FieldViolation("assignment_id", "has a work order")],
            metadata={"field": "assignment_id", "assignment_id": assignment.id, "work_order_id": existing.id},
        )
    empty = rules.empty_contract()
    evaluated = contract.evaluate(
        empty, bank_code=contract.bank_code_for(None, empty, bank_code=assignment.bank_code), template_override=None
    )
    template = evaluated.evaluation.template
    row = await store.insert(
        conn,
        tenant_id=tenant_id,
        assignment_id=assignment.id,
        channel_request_id=channel_request_id,
        channel_id=assignment.channel_id,
        bank_code=assignment.bank_code,
        template_id=template.id,
        billing_account_id=billing_account_id,
        status=lifecycle.DRAFT,
        evidence_profile=template.evidence_profile,
        credits=credits,
        actor=actor,
        trace_id=trace_id,
        detail={
            "assignment_id": assignment.id,
            "reference_number": assignment.reference_number,
            "bank_code": assignment.bank_code,
            "channel_id": assignment.channel_id,
            "channel_request_id": channel_request_id,
            "billing_account_id": billing_account_id,
            "credits": credits,
            "template_id": template.id,
        },
    )
    snapshot = await contract.first_snapshot(
        conn, row, evaluated, empty, actor=actor, inspection_max_age_days=inspection_max_age_days
    )
    if assignment.channel_id:
        await store.learn_channel(conn, assignment.channel_id, tenant_id)
    return Created(row, snapshot)


async def channel_request_for(conn: AsyncConnection, assignment: AssignmentInfo) -> str | None:
    """The channel request a new work order of `assignment` carries: the assignment's, unless
    an earlier (cancelled) work order carried it — its cancellation released what billing held
    for the request, so the new one is billed on its own acceptance, as a work order."""
    if assignment.channel_request_id is None:
        return None
    taken = await store.by_channel_request(conn, assignment.channel_request_id)
    return None if taken is not None else assignment.channel_request_id


# -- lifecycle ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moved:
    work_order: Row
    readiness: contract.ReadinessNow | None = None  # for a move to READY_FOR_RENDER


def readiness_not_met(readiness, work_order_id: str, snapshot_version: int) -> FailedPrecondition:
    """FAILED_PRECONDITION READINESS_NOT_MET: the readiness report in the metadata (as JSON
    and in parts) and each blocking item as a field violation."""
    report = contract.readiness_dict(readiness)
    violations = [FieldViolation(f"contract.{key}", "is required by the template") for key in readiness.missing_fields]
    violations += [
        FieldViolation(f"evidence.{kind}", f"needs at least {required}, has {present}")
        for kind, required, present in readiness.missing_evidence
    ]
    violations += [FieldViolation("contract", error) for error in readiness.errors]
    blocking = len(readiness.missing_fields) + len(readiness.missing_evidence) + len(readiness.errors)
    return FailedPrecondition(
        f"work order {work_order_id} is not ready for render ({blocking} blocking item(s))",
        reason="READINESS_NOT_MET",
        violations=violations,
        metadata={
            "readiness": dumps(report),
            "score": str(readiness.score),
            "snapshot_version": str(snapshot_version),
            "missing_fields": ",".join(readiness.missing_fields),
            "missing_evidence": ",".join(f"{k}:{p}/{r}" for k, r, p in readiness.missing_evidence),
        },
    )


async def transition(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    actor: str,
    trace_id: str,
    work_order_id: str,
    to_status: str,
    reason: str = "",
    inspection_max_age_days: int = contract.DEFAULT_INSPECTION_MAX_AGE_DAYS,
) -> Moved:
    """A person's move along the lifecycle (domain.lifecycle), in one transaction: the row
    locked, version up by one, the audit row, and the move's event in the outbox. The move to
    READY_FOR_RENDER is refused (READINESS_NOT_MET) unless readiness passes now."""
    work_order_id = parse_uuid(work_order_id, "id")
    reason = lifecycle.clean_reason(reason)
    work_order = await contract.visible(conn, work_order_id, field="id", lock=True)
    move = lifecycle.check_manual(work_order.status, to_status, reason)
    ready = None
    detail: dict = {"snapshot_version": work_order.snapshot_version}
    if to_status == lifecycle.READY_FOR_RENDER:
        now = await contract.current_readiness(conn, work_order, inspection_max_age_days=inspection_max_age_days)
        if not now.readiness.ready:
            raise readiness_not_met(now.readiness, work_order.id, now.snapshot_version)
        ready = await contract.record_readiness(conn, work_order, now, trigger="transition")
        detail.update(score=ready.readiness.score, warnings=list(ready.readiness.warnings))
    moved = await store.set_status(
        conn,
        work_order.id,
        from_status=work_order.status,
        to_status=to_status,
        actor=actor,
        reason=reason,
        trace_id=trace_id,
        detail=detail,
    )
    if move.event is not None:
        await _announce(conn, moved, move.event, reason=reason)
    return Moved(moved, ready)


async def _announce(conn: AsyncConnection, row: Row, event: str, *, reason: str = "") -> None:
    account, request = row.billing_account_id or "", row.channel_request_id or ""
    if event == lifecycle.ACCEPTED:
        event_type = outbox.WORK_ORDER_ACCEPTED
        payload = events.WorkOrderAccepted(
            work_order_id=row.id, billing_account_id=account, channel_request_id=request, credits=row.credits
        )
    elif event == lifecycle.READY:
        event_type = outbox.WORK_ORDER_READY_FOR_RENDER
        payload = events.WorkOrderReadyForRender(
            work_order_id=row.id,
            billing_account_id=account,
            channel_request_id=request,
            snapshot_version=row.snapshot_version,
        )
    elif event == lifecycle.CANCELLED_EVENT:
        event_type = outbox.WORK_ORDER_CANCELLED
        payload = events.WorkOrderCancelled(
            work_order_id=row.id, billing_account_id=account, channel_request_id=request, reason=reason
        )
    else:  # pragma: no cover - the table names only these
        raise AssertionError(f"no event {event!r}")
    await outbox.emit(
        conn,
        event_type=event_type,
        payload=payload,
        tenant_id=row.tenant_id,
        aggregate_type="work_order",
        aggregate_id=row.id,
        aggregate_version=row.version,
    )


async def mark_rendered(
    conn: AsyncConnection,
    *,
    work_order_id: str,
    snapshot_version: int,
    actor: str,
    trace_id: str = "",
    detail: dict | None = None,
) -> Row:
    """READY_FOR_RENDER → RENDERED (the factory, its job for `snapshot_version` succeeded):
    ILLEGAL_TRANSITION from any other state, SNAPSHOT_OUTDATED when the contract has moved
    on since. Clears the last error. Call in the transaction that records the job's success."""
    work_order = await contract.visible(conn, work_order_id, field="work_order_id", lock=True)
    lifecycle.move(work_order.status, lifecycle.RENDERED, lifecycle.By.FACTORY)
    if work_order.snapshot_version != snapshot_version:
        raise FailedPrecondition(
            f"work order {work_order_id} is at snapshot {work_order.snapshot_version}, not {snapshot_version}",
            reason="SNAPSHOT_OUTDATED",
            metadata={"snapshot_version": str(work_order.snapshot_version), "rendered_version": str(snapshot_version)},
        )
    return await store.set_status(
        conn,
        work_order.id,
        from_status=work_order.status,
        to_status=lifecycle.RENDERED,
        actor=actor,
        reason="",
        trace_id=trace_id,
        clear_last_error=True,
        detail={"snapshot_version": snapshot_version, **(detail or {})},
    )


async def mark_released(
    conn: AsyncConnection,
    *,
    work_order_id: str,
    actor: str,
    trace_id: str = "",
    reason: str = "",
    detail: dict | None = None,
) -> Row:
    """RENDERED → RELEASED (the billing-gated release; the caller writes the release row and
    emits repogen.deliverable.released in the same transaction). ILLEGAL_TRANSITION from any
    other state."""
    work_order = await contract.visible(conn, work_order_id, field="work_order_id", lock=True)
    lifecycle.move(work_order.status, lifecycle.RELEASED, lifecycle.By.RELEASE)
    return await store.set_status(
        conn,
        work_order.id,
        from_status=work_order.status,
        to_status=lifecycle.RELEASED,
        actor=actor,
        reason=reason,
        trace_id=trace_id,
        detail={"snapshot_version": work_order.snapshot_version, **(detail or {})},
    )


async def record_factory_error(
    conn: AsyncConnection, *, work_order_id: str, error: str, actor: str, trace_id: str = "", detail: dict | None = None
) -> Row:
    """The factory's last error on the work order (the monitor shows it), with an audit row."""
    await contract.visible(conn, work_order_id, field="work_order_id", lock=True)
    return await store.set_last_error(
        conn, work_order_id, error=error[:2000], actor=actor, trace_id=trace_id, detail=detail
    )


# -- template override -------------------------------------------------------------------------


async def override_template(
    conn: AsyncConnection,
    *,
    actor: str,
    trace_id: str,
    work_order_id: str,
    template_id: str,
    reason: str,
    inspection_max_age_days: int = contract.DEFAULT_INSPECTION_MAX_AGE_DAYS,
) -> Row:
    """The template replaced by hand (a reason is required and recorded). The outputs depend
    on the template (its percentages, required fields, evidence profile), so the contract is
    re-evaluated into a new snapshot, as a patch would be."""
    work_order_id = parse_uuid(work_order_id, "id")
    template_id = (template_id or "").strip()
    if not template_id:
        raise invalid("template_id", "is required")
    template = rules.template(template_id)
    if template is None:
        raise invalid("template_id", "is not a template of the registry")
    reason = text(reason, "reason", max_length=MAX_TEMPLATE_REASON)
    work_order = await contract.visible(conn, work_order_id, field="id", lock=True)
    lifecycle.require_editable(work_order.status, work_order_id)
    overridden = await store.override_template(
        conn,
        work_order_id,
        template_id=template.id,
        reason=reason,
        evidence_profile=template.evidence_profile,
        actor=actor,
        trace_id=trace_id,
        detail={
            "before": {"template_id": work_order.template_id, "overridden": work_order.template_overridden},
            "after": {"template_id": template.id, "overridden": True},
        },
    )
    current = await snapshot_store.get(conn, work_order_id, work_order.snapshot_version)
    written = await contract.write_snapshot(
        conn,
        overridden,
        loads(current.contract),
        actor=actor,
        trace_id=trace_id,
        trigger="template",
        kind="contract.re_evaluated",
        detail={"from_version": work_order.snapshot_version, "cause": "template overridden"},
        inspection_max_age_days=inspection_max_age_days,
    )
    return written.work_order


# -- reads -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detail:
    work_order: Row
    snapshot: Row


async def get(engine: AsyncEngine, caller: Caller, work_order_id: str) -> Detail:
    work_order_id = parse_uuid(work_order_id, "id")
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        row = await contract.visible(conn, work_order_id, field="id")
        snapshot = await snapshot_store.get(conn, work_order_id, row.snapshot_version)
    return Detail(row, snapshot)


def _cursor(cursor: str) -> tuple[datetime, str] | None:
    position = decode_cursor(cursor, "work_orders", 2)
    if position is None:
        return None
    try:
        at = datetime.fromisoformat(position[0])
    except ValueError:
        at = None
    if at is None or at.tzinfo is None or not is_uuid(position[1]):
        raise invalid("page.cursor", "is not a cursor returned by this list")
    return at, position[1]


async def list_page(
    engine: AsyncEngine,
    caller: Caller,
    *,
    statuses: list[str],
    assignment_id: str | None,
    channel_id: str | None,
    limit: int,
    cursor: str,
) -> tuple[list[Row], str]:
    """Newest first."""
    limit = page_limit(limit)
    before = _cursor(cursor)
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        rows = await store.page(
            conn, statuses=statuses, assignment_id=assignment_id, channel_id=channel_id, before=before, limit=limit + 1
        )
    if len(rows) <= limit:
        return rows, ""
    rows = rows[:limit]
    return rows, encode_cursor("work_orders", [rows[-1].created_at.isoformat(), rows[-1].id])


REF_TYPES = ("work_order",)


async def billing_ref_state(engine: AsyncEngine, *, tenant_id: str, ref_type: str, ref_id: str) -> str:
    """Where a work order billing holds a reservation for stands: OPEN, DELIVERED (released),
    CANCELLED or NOT_FOUND."""
    if (ref_type or "").strip() not in REF_TYPES:
        raise invalid("ref_type", "must be work_order (channel requests and assignments are ops')")
    if not is_uuid(ref_id):
        return lifecycle.billing_ref_state(None)
    async with scoped_tx(engine, tenant_id) as conn:
        row = await store.get(conn, ref_id.lower())
    return lifecycle.billing_ref_state(row.status if row is not None else None)
