"""The export bundle: the canonical JSON of a work order's report state, and its SHA-256.

What it holds (BUNDLE_VERSION 1):
- `work_order`: what the report is of and for — ids, assignment, channel and channel
  request, bank, template (and its override), billing account, credits, evidence profile,
  the snapshot version, who created it and when. Lifecycle bookkeeping (status, row version,
  updated_at, the factory's last error) is left out: moving a work order from
  READY_FOR_RENDER to RENDERED or RELEASED does not change what its report says, so the
  bundle a report was rendered from keeps its hash through the release;
- `template`: the selected template's id, version and description;
- `snapshot`: the latest snapshot — version, schema version, the contract as entered, the
  rules outputs, who wrote it and when;
- `readiness`: the latest recorded readiness result (without its time);
- `evidence`: live evidence in annexure order; `field_links`: live links, oldest first;
  `comments`: all, oldest first.

Canonical form: keys sorted, separators "," and ":" (no insignificant whitespace), UTF-8
(non-ASCII as is), decimals as strings (never floats), timestamps ISO-8601 UTC with
microseconds and "Z". Everything in it is read from stored rows, so the same state gives the
same bytes, in any process, on any day.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops_kit.caller import Caller
from zenops_kit.db import set_tenant
from zenops_kit.fields import parse_uuid

from . import contract, rules
from .store import evidence as evidence_store
from .store import loads
from .store import snapshots as snapshot_store

BUNDLE_VERSION = 1
_SET_CHANNEL = text("SELECT set_config('app.channel_id', :channel_id, true)")


def _default(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError("naive datetime in the export bundle")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not bundle data")


def canonical(value) -> bytes:
    """Canonical JSON bytes of `value` (floats are refused: they have no canonical form here)."""
    return json.dumps(
        _no_floats(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
    ).encode("utf-8")


def _no_floats(value):
    if isinstance(value, float):
        raise TypeError("float in the export bundle")
    if isinstance(value, dict):
        return {str(k): _no_floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_floats(v) for v in value]
    return value


def _template(template_id: str) -> dict:
    template = rules.template(template_id)
    if template is None:
        return {"id": template_id}
    return {"id": template.id, "version": template.version, "description": template.description}


async def state(conn: AsyncConnection, work_order_id: str) -> dict:
    """The bundle's content (a visible work order of the transaction)."""
    wo = await contract.visible(conn, work_order_id)
    snapshot = await snapshot_store.get(conn, wo.id, wo.snapshot_version)
    readiness = await snapshot_store.latest_readiness(conn, wo.id)
    evidence = await evidence_store.live_evidence(conn, wo.id)
    links = await evidence_store.links(conn, wo.id)
    comments = await evidence_store.comments(conn, wo.id)
    return {
        "bundle_version": BUNDLE_VERSION,
        "work_order": {
            "id": wo.id,
            "assignment_id": wo.assignment_id,
            "channel_request_id": wo.channel_request_id,
            "channel_id": wo.channel_id,
            "bank_code": wo.bank_code,
            "template_id": wo.template_id,
            "template_overridden": wo.template_overridden,
            "template_override_reason": wo.template_override_reason,
            "billing_account_id": wo.billing_account_id,
            "credits": wo.credits,
            "evidence_profile": wo.evidence_profile,
            "snapshot_version": wo.snapshot_version,
            "created_by": wo.created_by,
            "created_at": wo.created_at,
        },
        "template": _template(wo.template_id),
        "snapshot": {
            "version": snapshot.version,
            "schema_version": snapshot.schema_version,
            "contract": loads(snapshot.contract),
            "outputs": loads(snapshot.outputs),
            "actor": snapshot.actor,
            "created_at": snapshot.created_at,
        },
        "readiness": loads(readiness.result) if readiness is not None else loads(snapshot.readiness),
        "evidence": [
            {
                "id": e.id,
                "annexure_number": position,
                "annexure_order": e.annexure_order,
                "document_id": e.document_id,
                "kind": e.kind,
                "caption": e.caption,
                "filename": e.filename,
                "content_type": e.content_type,
                "captured_at": e.captured_at,
                "added_by": e.added_by,
                "created_at": e.created_at,
            }
            for position, e in enumerate(evidence, start=1)
        ],
        "field_links": [
            {
                "id": link.id,
                "field_key": link.field_key,
                "evidence_id": link.evidence_id,
                "note": link.note,
                "linked_by": link.linked_by,
                "linked_at": link.linked_at,
            }
            for link in links
        ],
        "comments": [
            {"id": c.id, "kind": c.kind, "body": c.body, "author": c.author, "created_at": c.created_at}
            for c in comments
        ],
    }


async def bundle(conn: AsyncConnection, work_order_id: str) -> tuple[bytes, str]:
    """The canonical bundle of the work order and its lower-case hex SHA-256 (in the caller's
    transaction: the factory renders from exactly these bytes)."""
    data = canonical(await state(conn, work_order_id))
    return data, hashlib.sha256(data).hexdigest()


@asynccontextmanager
async def _one_snapshot(engine: AsyncEngine, caller: Caller) -> AsyncIterator[AsyncConnection]:
    """A REPEATABLE READ transaction of the caller's tenant (and channel): every part of the
    bundle read from one snapshot of the database, even while evidence is being added."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            await set_tenant(conn, caller.tenant_id)
            if caller.channel_id:
                await conn.execute(_SET_CHANNEL, {"channel_id": caller.channel_id})
            yield conn


async def export_bundle(engine: AsyncEngine, caller: Caller, work_order_id: str) -> tuple[bytes, str]:
    work_order_id = parse_uuid(work_order_id, "work_order_id")
    async with _one_snapshot(engine, caller) as conn:
        return await bundle(conn, work_order_id)
