"""Evidence, field-evidence links, annexure order and comments of a work order.

- AddEvidence: the document must be an UPLOADED ops document of the tenant (asked of ops with
  repogen's service token, inside the idempotent transaction so the key records the true
  outcome: an unknown document is replayed as unknown, ops being away is not recorded). The
  file name, content type and capture time are kept as ops knows them.
- Evidence and links are removed, never deleted or overwritten: removed_by/at/reason are set
  once (the database refuses anything else). Removing evidence removes its live links the
  same way and closes the gap it leaves in the annexure order.
- Every change of evidence or links re-evaluates readiness and records it (trigger
  "evidence"): evidence counts are blocking items, links are warnings.
- AutoOrderAnnexures: domain.evidence.annexure_order (kind, capture time, added, id), 1..n.
- Comments are typed and append-only.
Each mutation writes its audit row (work_order_events).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops_kit.caller import Caller
from zenops_kit.errors import FailedPrecondition
from zenops_kit.fields import not_found, parse_uuid
from zenops_kit.rls import scoped_tx

from . import contract
from . import rules as engine
from .domain import evidence as rules
from .domain import lifecycle
from .ops_client import OpsClient
from .store import evidence as store
from .store import work_orders as work_order_store


def known_fields() -> frozenset[str]:
    """The canonical field keys evidence may be linked to (the rules' field definitions)."""
    return frozenset(engine.FIELDS)


@dataclass(frozen=True)
class Changed:
    row: Row | None
    readiness: contract.ReadinessNow


async def _editable(conn: AsyncConnection, work_order_id: str) -> Row:
    work_order = await contract.visible(conn, work_order_id, lock=True)
    lifecycle.require_editable(work_order.status, work_order_id)
    return work_order


async def _live_evidence(conn: AsyncConnection, work_order_id: str, evidence_id: str) -> Row:
    row = await store.get_evidence(conn, work_order_id, evidence_id)
    if row is None:
        raise not_found("evidence", evidence_id, field="evidence_id")
    if row.removed_at is not None:
        raise FailedPrecondition(
            f"evidence {evidence_id} was removed",
            reason="EVIDENCE_REMOVED",
            metadata={"field": "evidence_id", "evidence_id": evidence_id},
        )
    return row


def _evidence_detail(row: Row) -> dict:
    return {"evidence_id": row.id, "document_id": row.document_id, "kind": row.kind, "caption": row.caption}


# -- evidence ----------------------------------------------------------------------------------


async def add(
    conn: AsyncConnection,
    *,
    ops: OpsClient,
    tenant_id: str,
    actor: str,
    trace_id: str,
    work_order_id: str,
    document_id: str,
    kind: str,
    caption: str,
    inspection_max_age_days: int = contract.DEFAULT_INSPECTION_MAX_AGE_DAYS,
) -> Changed:
    work_order_id = parse_uuid(work_order_id, "work_order_id")
    document_id = parse_uuid(document_id, "document_id")
    kind = rules.kind(kind)
    caption = rules.caption(caption)
    work_order = await contract.visible(conn, work_order_id)
    lifecycle.require_editable(work_order.status, work_order_id)
    document = await ops.document(tenant_id=tenant_id, document_id=document_id)
    if not document.uploaded:
        raise FailedPrecondition(
            f"document {document_id} is not uploaded yet",
            reason="DOCUMENT_NOT_UPLOADED",
            metadata={"field": "document_id", "document_id": document_id},
        )
    work_order = await _editable(conn, work_order_id)
    row = await store.insert_evidence(
        conn,
        tenant_id=tenant_id,
        work_order_id=work_order_id,
        document_id=document_id,
        kind=kind,
        caption=caption,
        captured_at=document.captured_at,
        filename=document.filename,
        content_type=document.content_type,
        actor=actor,
    )
    await work_order_store.record(
        conn,
        tenant_id=tenant_id,
        work_order_id=work_order_id,
        kind="evidence.added",
        actor=actor,
        trace_id=trace_id,
        detail={**_evidence_detail(row), "filename": row.filename},
    )
    readiness = await contract.recompute_readiness(
        conn, work_order, trigger="evidence", inspection_max_age_days=inspection_max_age_days
    )
    return Changed(row, readiness)


async def remove(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    actor: str,
    trace_id: str,
    work_order_id: str,
    evidence_id: str,
    reason: str,
    inspection_max_age_days: int = contract.DEFAULT_INSPECTION_MAX_AGE_DAYS,
) -> Changed:
    work_order_id = parse_uuid(work_order_id, "work_order_id")
    evidence_id = parse_uuid(evidence_id, "evidence_id")
    reason = rules.removal_reason(reason)
    work_order = await _editable(conn, work_order_id)
    await _live_evidence(conn, work_order_id, evidence_id)
    removed = await store.remove_evidence(
        conn, work_order_id=work_order_id, evidence_id=evidence_id, actor=actor, reason=reason
    )
    await work_order_store.record(
        conn,
        tenant_id=tenant_id,
        work_order_id=work_order_id,
        kind="evidence.removed",
        actor=actor,
        trace_id=trace_id,
        reason=reason,
        detail={**_evidence_detail(removed), "links_removed": removed.links_removed},
    )
    readiness = await contract.recompute_readiness(
        conn, work_order, trigger="evidence", inspection_max_age_days=inspection_max_age_days
    )
    return Changed(removed, readiness)


async def list_evidence(engine: AsyncEngine, caller: Caller, work_order_id: str) -> list[Row]:
    """Live evidence in annexure order."""
    work_order_id = parse_uuid(work_order_id, "work_order_id")
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        await contract.visible(conn, work_order_id)
        return await store.live_evidence(conn, work_order_id)


async def auto_order(
    conn: AsyncConnection, *, tenant_id: str, actor: str, trace_id: str, work_order_id: str
) -> list[Row]:
    """Annexure positions 1..n in the deterministic order; the evidence in that order."""
    work_order_id = parse_uuid(work_order_id, "work_order_id")
    await _editable(conn, work_order_id)
    live = await store.live_evidence(conn, work_order_id)
    order = rules.annexure_order(
        rules.Annexure(id=r.id, kind=r.kind, captured_at=r.captured_at, created_at=r.created_at) for r in live
    )
    before = [r.id for r in live if r.annexure_order]
    await store.set_annexure_order(conn, work_order_id, order)
    await work_order_store.record(
        conn,
        tenant_id=tenant_id,
        work_order_id=work_order_id,
        kind="annexures.ordered",
        actor=actor,
        trace_id=trace_id,
        detail={"before": before, "after": order},
    )
    return await store.live_evidence(conn, work_order_id)


# -- field links -------------------------------------------------------------------------------


async def link(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    actor: str,
    trace_id: str,
    work_order_id: str,
    field_key: str,
    evidence_id: str,
    note: str,
    inspection_max_age_days: int = contract.DEFAULT_INSPECTION_MAX_AGE_DAYS,
) -> Changed:
    work_order_id = parse_uuid(work_order_id, "work_order_id")
    field_key = rules.field_key(field_key, known_fields())
    evidence_id = parse_uuid(evidence_id, "evidence_id")
    note = rules.note(note)
    work_order = await _editable(conn, work_order_id)
    await _live_evidence(conn, work_order_id, evidence_id)
    row = await store.insert_link(
        conn,
        tenant_id=tenant_id,
        work_order_id=work_order_id,
        field_key=field_key,
        evidence_id=evidence_id,
        note=note,
        actor=actor,
    )
    await work_order_store.record(
        conn,
        tenant_id=tenant_id,
        work_order_id=work_order_id,
        kind="field_link.added",
        actor=actor,
        trace_id=trace_id,
        detail={"link_id": row.id, "field_key": field_key, "evidence_id": evidence_id, "note": note},
    )
    readiness = await contract.recompute_readiness(
        conn, work_order, trigger="evidence", inspection_max_age_days=inspection_max_age_days
    )
    return Changed(row, readiness)


async def unlink(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    actor: str,
    trace_id: str,
    work_order_id: str,
    link_id: str,
    reason: str,
    inspection_max_age_days: int = contract.DEFAULT_INSPECTION_MAX_AGE_DAYS,
) -> Changed:
    work_order_id = parse_uuid(work_order_id, "work_order_id")
    link_id = parse_uuid(link_id, "link_id")
    reason = rules.removal_reason(reason)
    work_order = await _editable(conn, work_order_id)
    current = await store.get_link(conn, work_order_id, link_id)
    if current is None:
        raise not_found("field_link", link_id, field="link_id")
    if current.removed_at is not None:
        raise FailedPrecondition(
            f"link {link_id} was removed already",
            reason="LINK_REMOVED",
            metadata={"field": "link_id", "link_id": link_id},
        )
    row = await store.remove_link(conn, work_order_id=work_order_id, link_id=link_id, actor=actor, reason=reason)
    await work_order_store.record(
        conn,
        tenant_id=tenant_id,
        work_order_id=work_order_id,
        kind="field_link.removed",
        actor=actor,
        trace_id=trace_id,
        reason=reason,
        detail={"link_id": row.id, "field_key": row.field_key, "evidence_id": row.evidence_id},
    )
    readiness = await contract.recompute_readiness(
        conn, work_order, trigger="evidence", inspection_max_age_days=inspection_max_age_days
    )
    return Changed(row, readiness)


async def list_links(engine: AsyncEngine, caller: Caller, work_order_id: str, *, include_removed: bool) -> list[Row]:
    work_order_id = parse_uuid(work_order_id, "work_order_id")
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        await contract.visible(conn, work_order_id)
        return await store.links(conn, work_order_id, include_removed=include_removed)


# -- comments ----------------------------------------------------------------------------------


async def add_comment(
    conn: AsyncConnection, *, tenant_id: str, actor: str, trace_id: str, work_order_id: str, kind: str, body: str
) -> Row:
    work_order_id = parse_uuid(work_order_id, "work_order_id")
    kind = rules.comment_kind(kind)
    body = rules.comment_body(body)
    work_order = await contract.visible(conn, work_order_id)
    lifecycle.require_open(work_order.status, work_order_id)
    row = await store.insert_comment(
        conn, tenant_id=tenant_id, work_order_id=work_order_id, kind=kind, body=body, actor=actor
    )
    await work_order_store.record(
        conn,
        tenant_id=tenant_id,
        work_order_id=work_order_id,
        kind="comment.added",
        actor=actor,
        trace_id=trace_id,
        detail={"comment_id": row.id, "kind": kind, "length": len(body)},
    )
    return row


async def list_comments(engine: AsyncEngine, caller: Caller, work_order_id: str, *, kind: str) -> list[Row]:
    work_order_id = parse_uuid(work_order_id, "work_order_id")
    kind_filter = rules.comment_kind(kind) if kind else None
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        await contract.visible(conn, work_order_id)
        return await store.comments(conn, work_order_id, kind=kind_filter)
