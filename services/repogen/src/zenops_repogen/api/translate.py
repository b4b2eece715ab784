"""Proto ↔ stored values of repogen: the status enum (stored as the name without its prefix,
WORK_ORDER_STATUS_DRAFT ↔ 'DRAFT'), timestamps, and rows → messages."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.engine import Row

from zenops.repogen.v1 import repogen_pb2 as pb

from ..store import dumps, loads

STATUS_OF = {
    v.number: v.name.removeprefix("WORK_ORDER_STATUS_") for v in pb.WorkOrderStatus.DESCRIPTOR.values if v.number != 0
}
STATUS_PB = {name: number for number, name in STATUS_OF.items()}


def ts(target: Timestamp, value: datetime | None) -> None:
    """Set a Timestamp field from an aware datetime (left unset for None)."""
    if value is not None:
        target.FromDatetime(value.astimezone(UTC))


def _parse(data: dict | None, message):
    return json_format.ParseDict(data or {}, message, ignore_unknown_fields=True)


def work_order_pb(row: Row) -> pb.WorkOrder:
    w = pb.WorkOrder(
        id=row.id,
        assignment_id=row.assignment_id,
        channel_request_id=row.channel_request_id or "",
        channel_id=row.channel_id or "",
        bank_code=row.bank_code,
        template_id=row.template_id,
        template_overridden=row.template_overridden,
        template_override_reason=row.template_override_reason,
        billing_account_id=row.billing_account_id or "",
        status=STATUS_PB[row.status],
        snapshot_version=row.snapshot_version,
        evidence_profile=row.evidence_profile,
        credits=row.credits,
        created_by=row.created_by,
        version=row.version,
        last_error=row.last_error,
    )
    ts(w.created_at, row.created_at)
    ts(w.updated_at, row.updated_at)
    return w


def readiness_pb(data: dict, evaluated_at: datetime | None) -> pb.Readiness:
    r = _parse(data, pb.Readiness())
    ts(r.evaluated_at, evaluated_at)
    return r


def snapshot_pb(row: Row, *, with_contract: bool = True) -> pb.Snapshot:
    s = pb.Snapshot(
        work_order_id=row.work_order_id,
        version=row.version,
        actor=row.actor,
        contract_json=dumps(loads(row.contract)) if with_contract else "",
        outputs=_parse(loads(row.outputs), pb.Outputs()),
        readiness=readiness_pb(loads(row.readiness), row.created_at),
    )
    ts(s.created_at, row.created_at)
    return s


def template_pb(t) -> pb.Template:
    return pb.Template(
        id=t.id,
        version=t.version,
        bank_code=t.bank_code,
        description=t.description,
        required_fields=list(t.required_fields),
        evidence_profile=t.evidence_profile,
        evidence_requirements=[
            pb.EvidenceRequirement(kind=kind, min_count=count) for kind, count in t.evidence_requirements
        ],
        realisable_percent=str(t.realisable_percent),
        distress_percent=str(t.distress_percent),
    )


def evidence_pb(row: Row) -> pb.EvidenceItem:
    e = pb.EvidenceItem(
        id=row.id,
        work_order_id=row.work_order_id,
        document_id=row.document_id,
        kind=row.kind,
        caption=row.caption,
        annexure_order=row.annexure_order,
        added_by=row.added_by,
        filename=row.filename,
        content_type=row.content_type,
    )
    ts(e.captured_at, row.captured_at)
    ts(e.created_at, row.created_at)
    return e


def link_pb(row: Row) -> pb.FieldLink:
    link = pb.FieldLink(
        id=row.id,
        work_order_id=row.work_order_id,
        field_key=row.field_key,
        evidence_id=row.evidence_id,
        note=row.note,
        linked_by=row.linked_by,
        removed_by=row.removed_by or "",
        removal_reason=row.removal_reason or "",
    )
    ts(link.linked_at, row.linked_at)
    ts(link.removed_at, row.removed_at)
    return link


def comment_pb(row: Row) -> pb.Comment:
    c = pb.Comment(id=row.id, work_order_id=row.work_order_id, kind=row.kind, body=row.body, author=row.author)
    ts(c.created_at, row.created_at)
    return c
