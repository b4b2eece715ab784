"""The contract of a work order: patches, immutable snapshots, the rules and readiness.

`PatchContract` merges a JSON merge patch (RFC 7396) into the latest snapshot's contract,
validates it (`rules.parse_contract`, every bad field named, prefixed "patch."), runs the
rules (`rules.evaluate`, the template override honoured), evaluates readiness with the
evidence as it is now, and writes in ONE transaction, with the work order row locked:
snapshot n+1 (contract, outputs, readiness), its rules_runs and readiness_results rows, and
the work order (snapshot version, the re-selected template unless overridden, its evidence
profile; READY_FOR_RENDER demoted to DATA_PENDING) with its audit row.

Readiness is evaluated on the latest snapshot's contract with the live evidence and field
links as they are, and "today" in Asia/Kolkata (the firm's day: inspections age by it). It is
stored with each snapshot and re-recorded whenever evidence or links change
(`recompute_readiness`, trigger "evidence").

The bank a template is selected for is the work order's (from the ops assignment's bank);
a work order whose assignment names no bank takes the contract's `parties.bank_code`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops_kit.caller import Caller
from zenops_kit.errors import Aborted, FieldViolation, InvalidArgument
from zenops_kit.fields import invalid, not_found, parse_uuid
from zenops_kit.paging import decode_cursor, encode_cursor, page_limit
from zenops_kit.rls import scoped_tx

from . import rules
from .domain import lifecycle
from .store import evidence as evidence_store
from .store import loads
from .store import snapshots as store
from .store import work_orders as work_order_store

FIRM_ZONE = ZoneInfo("Asia/Kolkata")
MAX_PATCH_BYTES = 256 * 1024
DEFAULT_INSPECTION_MAX_AGE_DAYS = 90


def today() -> date:
    """The firm's date (Asia/Kolkata)."""
    return datetime.now(FIRM_ZONE).date()


# -- evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluated:
    evaluation: rules.Evaluation
    outputs: dict
    messages: list
    duration_us: int


def bank_code_for(work_order: Row | None, contract: dict, *, bank_code: str | None = None) -> str:
    """The bank a template is selected for: the work order's, else the contract's."""
    code = bank_code if bank_code is not None else (work_order.bank_code if work_order is not None else "")
    if code:
        return code
    parties = contract.get("parties") if isinstance(contract, dict) else None
    value = parties.get("bank_code") if isinstance(parties, dict) else None
    return value.strip().upper() if isinstance(value, str) else ""


def parse(contract: dict, *, prefix: str = ""):
    """The typed contract; INVALID_ARGUMENT naming every bad field (`prefix` + its path)."""
    try:
        return rules.parse_contract(contract)
    except rules.ContractError as err:
        violations = [FieldViolation(f"{prefix}{path}", message) for path, message in err.violations]
        raise InvalidArgument(
            "the contract is not valid: " + "; ".join(f"{v.field} {v.description}" for v in violations[:5]),
            reason="CONTRACT_INVALID",
            violations=violations,
        ) from None


def evaluate(contract: dict, *, bank_code: str, template_override: str | None, prefix: str = "") -> Evaluated:
    started = time.perf_counter_ns()
    evaluation = rules.evaluate(
        parse(contract, prefix=prefix), bank_code=bank_code, template_override=template_override
    )
    outputs = rules.outputs_json(evaluation)
    duration_us = max(0, (time.perf_counter_ns() - started) // 1000)
    outputs.setdefault("rules_version", rules.rules_version())
    messages = [
        {"severity": m.severity, "code": m.code, "field": m.field or "", "message": m.message}
        for m in evaluation.messages
    ]
    return Evaluated(evaluation, outputs, messages, duration_us)


def _override(work_order: Row) -> str | None:
    return work_order.template_id if work_order.template_overridden else None


async def readiness_of(conn: AsyncConnection, work_order_id: str, evaluation, *, inspection_max_age_days: int):
    """rules.Readiness of `evaluation` with the work order's live evidence and links now."""
    counts = await evidence_store.evidence_counts(conn, work_order_id)
    linked = await evidence_store.linked_fields(conn, work_order_id)
    return rules.readiness(
        evaluation,
        evidence_counts=counts,
        linked_fields=linked,
        today=today(),
        inspection_max_age_days=inspection_max_age_days,
    )


def readiness_dict(readiness) -> dict:
    return rules.readiness_json(readiness)


# -- snapshots -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    snapshot: Row
    work_order: Row


async def first_snapshot(
    conn: AsyncConnection,
    work_order: Row,
    evaluated: Evaluated,
    contract: dict,
    *,
    actor: str,
    inspection_max_age_days: int,
) -> Row:
    """Snapshot 0 of a new work order (its rules run and readiness with it)."""
    readiness = await readiness_of(
        conn, work_order.id, evaluated.evaluation, inspection_max_age_days=inspection_max_age_days
    )
    return await _insert(conn, work_order, 0, contract, evaluated, readiness, actor=actor, trigger="create")


async def _insert(
    conn: AsyncConnection,
    work_order: Row,
    version: int,
    contract: dict,
    evaluated: Evaluated,
    readiness,
    *,
    actor: str,
    trigger: str,
) -> Row:
    return await store.insert(
        conn,
        tenant_id=work_order.tenant_id,
        work_order_id=work_order.id,
        version=version,
        schema_version=rules.SCHEMA_VERSION,
        contract=contract,
        outputs=evaluated.outputs,
        readiness=readiness_dict(readiness),
        ready=readiness.ready,
        score=readiness.score,
        actor=actor,
        rules_version=rules.RULES_VERSION,
        registry_version=rules.REGISTRY_VERSION,
        messages=evaluated.messages,
        duration_us=evaluated.duration_us,
        trigger=trigger,
    )


async def write_snapshot(
    conn: AsyncConnection,
    work_order: Row,
    contract: dict,
    *,
    actor: str,
    trace_id: str,
    trigger: str,
    kind: str,
    detail: dict,
    inspection_max_age_days: int,
    prefix: str = "",
) -> Written:
    """Snapshot n+1 of a LOCKED, editable work order with `contract`, and the work order at it."""
    evaluated = evaluate(
        contract, bank_code=bank_code_for(work_order, contract), template_override=_override(work_order), prefix=prefix
    )
    readiness = await readiness_of(
        conn, work_order.id, evaluated.evaluation, inspection_max_age_days=inspection_max_age_days
    )
    version = work_order.snapshot_version + 1
    snapshot = await _insert(conn, work_order, version, contract, evaluated, readiness, actor=actor, trigger=trigger)
    template = evaluated.evaluation.template
    status, from_status = work_order.status, None
    if work_order.status == lifecycle.READY_FOR_RENDER:
        lifecycle.move(work_order.status, lifecycle.DATA_PENDING, lifecycle.By.CHANGE)
        status, from_status = lifecycle.DATA_PENDING, work_order.status
    moved = await work_order_store.set_snapshot(
        conn,
        work_order.id,
        snapshot_version=version,
        template_id=template.id,
        evidence_profile=template.evidence_profile,
        status=status,
        kind=kind,
        actor=actor,
        trace_id=trace_id,
        from_status=from_status,
        reason="the contract changed" if from_status else "",
        detail={
            "snapshot_version": version,
            "template_id": template.id,
            "ready": readiness.ready,
            "score": readiness.score,
            **detail,
        },
    )
    return Written(snapshot, moved)


async def _locked(conn: AsyncConnection, work_order_id: str, field: str = "work_order_id") -> Row:
    row = await work_order_store.get(conn, work_order_id, lock=True)
    if row is None:
        raise not_found("work_order", work_order_id, field=field)
    return row


def _patch(patch_json: str) -> dict:
    if not patch_json or not patch_json.strip():
        raise invalid("patch_json", "is required (a JSON object)")
    if len(patch_json.encode()) > MAX_PATCH_BYTES:
        raise invalid("patch_json", f"must be at most {MAX_PATCH_BYTES} bytes")
    try:
        patch = json.loads(patch_json)
    except (ValueError, RecursionError):
        raise invalid("patch_json", "is not valid JSON") from None
    if not isinstance(patch, dict):
        raise invalid("patch_json", "must be a JSON object (a merge patch of the contract)")
    return patch


async def patch(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    actor: str,
    trace_id: str,
    work_order_id: str,
    expected_version: int,
    patch_json: str,
    inspection_max_age_days: int = DEFAULT_INSPECTION_MAX_AGE_DAYS,
) -> Written:
    work_order_id = parse_uuid(work_order_id, "work_order_id")
    if expected_version < 0:
        raise invalid("expected_version", "must not be negative")
    changes = _patch(patch_json)
    work_order = await _locked(conn, work_order_id)
    lifecycle.require_editable(work_order.status, work_order_id)
    if expected_version != work_order.snapshot_version:
        raise Aborted(
            f"the contract is at version {work_order.snapshot_version}, not {expected_version}",
            reason="VERSION_CONFLICT",
            metadata={"snapshot_version": str(work_order.snapshot_version), "expected_version": str(expected_version)},
        )
    current = await store.get(conn, work_order_id, work_order.snapshot_version)
    merged = rules.merge_patch(loads(current.contract), changes)
    return await write_snapshot(
        conn,
        work_order,
        merged,
        actor=actor,
        trace_id=trace_id,
        trigger="patch",
        kind="contract.patched",
        detail={"from_version": expected_version, "patch": changes},
        inspection_max_age_days=inspection_max_age_days,
        prefix="patch.",
    )


# -- reads -----------------------------------------------------------------------------------


async def visible(
    conn: AsyncConnection, work_order_id: str, *, field: str = "work_order_id", lock: bool = False
) -> Row:
    """The work order if the caller's transaction sees it (tenant, and channel for portal
    users: RLS); NOT_FOUND naming `field` otherwise."""
    row = await work_order_store.get(conn, work_order_id, lock=lock)
    if row is None:
        raise not_found("work_order", work_order_id, field=field)
    return row


async def get_snapshot(engine: AsyncEngine, caller: Caller, work_order_id: str, *, version: int, latest: bool) -> Row:
    work_order_id = parse_uuid(work_order_id, "work_order_id")
    if not latest and version < 0:
        raise invalid("version", "must not be negative")
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        work_order = await visible(conn, work_order_id)
        wanted = work_order.snapshot_version if latest else version
        row = await store.get(conn, work_order_id, wanted)
    if row is None:
        raise not_found("snapshot", f"{work_order_id}@{wanted}", field="version")
    return row


async def list_snapshots(
    engine: AsyncEngine, caller: Caller, work_order_id: str, *, limit: int, cursor: str
) -> tuple[list[Row], str]:
    work_order_id = parse_uuid(work_order_id, "work_order_id")
    limit = page_limit(limit)
    position = decode_cursor(cursor, "snapshots", 1)
    before = None
    if position is not None:
        if not position[0].isdigit():
            raise invalid("page.cursor", "is not a cursor returned by this list")
        before = int(position[0])
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        await visible(conn, work_order_id)
        rows = await store.page(conn, work_order_id, before=before, limit=limit + 1)
    if len(rows) <= limit:
        return rows, ""
    rows = rows[:limit]
    return rows, encode_cursor("snapshots", [str(rows[-1].version)])


@dataclass(frozen=True)
class ReadinessNow:
    readiness: rules.Readiness
    snapshot_version: int
    evaluated_at: datetime


async def current_readiness(conn: AsyncConnection, work_order: Row, *, inspection_max_age_days: int) -> ReadinessNow:
    """Readiness of the latest snapshot with the evidence as it is now."""
    snapshot = await store.get(conn, work_order.id, work_order.snapshot_version)
    contract = loads(snapshot.contract)
    evaluated = evaluate(
        contract, bank_code=bank_code_for(work_order, contract), template_override=_override(work_order)
    )
    readiness = await readiness_of(
        conn, work_order.id, evaluated.evaluation, inspection_max_age_days=inspection_max_age_days
    )
    return ReadinessNow(readiness, work_order.snapshot_version, datetime.now(UTC))


async def evaluate_readiness(
    engine: AsyncEngine, caller: Caller, work_order_id: str, *, inspection_max_age_days: int
) -> ReadinessNow:
    work_order_id = parse_uuid(work_order_id, "work_order_id")
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        work_order = await visible(conn, work_order_id)
        return await current_readiness(conn, work_order, inspection_max_age_days=inspection_max_age_days)


async def recompute_readiness(
    conn: AsyncConnection, work_order: Row, *, trigger: str, inspection_max_age_days: int
) -> ReadinessNow:
    """Readiness now, recorded as the work order's latest readiness result."""
    now = await current_readiness(conn, work_order, inspection_max_age_days=inspection_max_age_days)
    return await record_readiness(conn, work_order, now, trigger=trigger)


async def record_readiness(conn: AsyncConnection, work_order: Row, now: ReadinessNow, *, trigger: str) -> ReadinessNow:
    """`now` recorded as the work order's latest readiness result (its time the row's)."""
    at = await store.record_readiness(
        conn,
        tenant_id=work_order.tenant_id,
        work_order_id=work_order.id,
        snapshot_version=now.snapshot_version,
        trigger=trigger,
        ready=now.readiness.ready,
        score=now.readiness.score,
        result=readiness_dict(now.readiness),
    )
    return ReadinessNow(now.readiness, now.snapshot_version, at)
