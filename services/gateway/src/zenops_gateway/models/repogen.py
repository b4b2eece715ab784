"""HTTP models of repogen (work orders, contract snapshots, rules outputs, readiness,
evidence, field links, comments, templates, artifacts, release, monitor) and their
conversions from zenops.repogen.v1.

JSON conventions (as everywhere in the gateway): enums are lower-case strings (`draft`,
`ready_for_render`, `site_photo`, `docx`, `credits_consumed`), timestamps ISO-8601 UTC,
money integer rupees, empty proto strings `null`. The contract is the work order's JSON
document as repogen keeps it (decimals as strings); a patch of it is a JSON merge patch
(RFC 7396) that the gateway forwards as it came (`patch_json`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from zenops.repogen.v1 import repogen_pb2 as pb

from .common import Strict, enum_name, enum_value, or_none, timestamp
from .ops_common import Reason, id_text

# -- enums (lower-case spellings) ------------------------------------------------------------------

WorkOrderStatus = Literal["draft", "data_pending", "ready_for_render", "rendered", "released", "cancelled"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "dead"]
# repogen's evidence kinds (SALE_DEED, …), in annexure order.
EvidenceKind = Literal[
    "sale_deed",
    "index_ii",
    "tax_receipt",
    "electricity_bill",
    "approved_plan",
    "site_photo",
    "location_map",
    "society_noc",
    "other",
]
CommentKind = Literal["justification", "enclosures", "checklist", "notes"]
ArtifactKind = Literal["export_bundle", "docx", "pdf"]
BillingGate = Literal["not_reserved", "reserved", "released", "postpaid", "unknown"]
BillingBasis = Literal["credits_consumed", "invoice_paid", "overridden"]
Severity = Literal["error", "warning"]

STATUS_PREFIX = "WORK_ORDER_STATUS_"
JOB_PREFIX = "JOB_STATUS_"

# Bounds as repogen applies them (it checks again and names the field).
MAX_CREDITS = 100_000
Caption = Annotated[str, Field(max_length=500)]
Note = Annotated[str, Field(max_length=1000)]
CommentBody = Annotated[str, Field(min_length=1, max_length=10_000)]
OverrideReason = Annotated[str, Field(min_length=1, max_length=500)]
TemplateId = Annotated[str, Field(min_length=1, max_length=100, description="e.g. `SBI_UNDER_5CR_V1`.")]
FieldKey = Annotated[
    str, Field(min_length=1, max_length=200, description="A canonical contract field key, e.g. `areas.carpet`.")
]
Version = Annotated[int, Field(strict=True, ge=0, le=2**53)]


def status_value(name: str) -> int:
    return enum_value(pb.WorkOrderStatus, name, STATUS_PREFIX)


def lower(value: str) -> str:
    """repogen's upper-case codes (SITE_PHOTO, CREDITS_CONSUMED, ERROR) as the API spells them."""
    return value.lower()


# -- work orders -----------------------------------------------------------------------------------


class WorkOrder(BaseModel):
    id: str
    assignment_id: str
    channel_request_id: str | None = Field(description="Set when born from a channel request.")
    channel_id: str | None = Field(description="The channel of that request (portal scoping).")
    bank_code: str | None = Field(description="From the assignment's bank, e.g. `SBI`.")
    template_id: str = Field(description="The selected template, or the override.")
    template_overridden: bool
    template_override_reason: str | None
    billing_account_id: str | None = Field(description="The billing account charged at release.")
    status: WorkOrderStatus
    snapshot_version: int = Field(description="The latest snapshot's version (0 for a new work order).")
    evidence_profile: str | None
    credits: int = Field(description="Credits charged at acceptance (CREDIT accounts; 0 for none).")
    created_by: str | None
    created_at: datetime | None
    updated_at: datetime | None
    version: int = Field(description="Increases with every change of the work order.")
    last_error: str | None = Field(description="The factory's last error, if the latest render job failed.")

    @staticmethod
    def fields(w: pb.WorkOrder) -> dict[str, Any]:
        return {
            "id": w.id,
            "assignment_id": w.assignment_id,
            "channel_request_id": or_none(w.channel_request_id),
            "channel_id": or_none(w.channel_id),
            "bank_code": or_none(w.bank_code),
            "template_id": w.template_id,
            "template_overridden": w.template_overridden,
            "template_override_reason": or_none(w.template_override_reason),
            "billing_account_id": or_none(w.billing_account_id),
            "status": enum_name(pb.WorkOrderStatus, w.status, STATUS_PREFIX),
            "snapshot_version": w.snapshot_version,
            "evidence_profile": or_none(w.evidence_profile),
            "credits": w.credits,
            "created_by": or_none(w.created_by),
            "created_at": timestamp(w, "created_at"),
            "updated_at": timestamp(w, "updated_at"),
            "version": w.version,
            "last_error": or_none(w.last_error),
        }

    @classmethod
    def from_proto(cls, w: pb.WorkOrder) -> WorkOrder:
        return cls(**cls.fields(w))


class WorkOrderList(BaseModel):
    items: list[WorkOrder]
    next_cursor: str | None = Field(description="Cursor of the next page; null on the last page.")


class CreateWorkOrderBody(Strict):
    """A work order for an ops assignment (checked with ops; the bank code comes from its bank)."""

    assignment_id: UUID
    billing_account_id: UUID | None = Field(None, description="Default: the assignment's channel's account.")
    credits: Annotated[int, Field(strict=True, ge=0, le=MAX_CREDITS)] | None = Field(
        None, description="Credits charged at acceptance (CREDIT accounts); default 0."
    )

    def to_proto(self, idempotency_key: str | None) -> pb.CreateWorkOrderRequest:
        return pb.CreateWorkOrderRequest(
            assignment_id=str(self.assignment_id),
            billing_account_id=id_text(self.billing_account_id),
            credits=self.credits or 0,
            idempotency_key=idempotency_key or "",
        )


class TransitionBody(Strict):
    to: WorkOrderStatus = Field(
        description="`data_pending` (acceptance), `ready_for_render` (readiness must pass) or `cancelled`; "
        "`rendered` and `released` are reached by the factory and the release only."
    )
    reason: Reason | None = Field(None, description="Required for `cancelled`.")


class TemplateOverrideBody(Strict):
    template_id: TemplateId
    reason: Reason = Field(description="Why the selected template is replaced (recorded).")


# -- rules outputs, readiness, snapshots -----------------------------------------------------------


class Area(BaseModel):
    """An area as entered and standardised (decimals as text)."""

    value: str
    unit: str = Field(description="`sqft` or `sqm`, as entered.")
    sqm: str = Field(description="Square metres, 2 decimals (half-up).")


class RuleMessage(BaseModel):
    severity: Severity
    code: str = Field(description="e.g. `BELOW_GUIDELINE`, `MISSING_RATE`.")
    field: str | None = Field(description="The contract field (canonical key) it is about, if any.")
    message: str


class Outputs(BaseModel):
    """What the rules engine computed from a snapshot's contract. Money in whole rupees."""

    fair_market_value: int
    realisable_value: int
    distress_value: int
    fair_market_value_in_words: str = Field(examples=["Rupees Forty-Five Lakh Twenty Thousand Only"])
    realisable_value_in_words: str
    distress_value_in_words: str
    template_id: str
    completeness_score: int = Field(description="0–100: required fields present ÷ required fields.")
    areas: dict[str, Area] = Field(description="`land`, `carpet`, `built_up`, `super_built_up` → the area.")
    guideline_value: int | None = Field(description="The guideline (circle-rate) value; null when none is known.")
    below_guideline: bool
    messages: list[RuleMessage]
    rules_version: str

    @classmethod
    def from_proto(cls, o: pb.Outputs) -> Outputs:
        return cls(
            fair_market_value=o.fair_market_value,
            realisable_value=o.realisable_value,
            distress_value=o.distress_value,
            fair_market_value_in_words=o.fair_market_value_in_words,
            realisable_value_in_words=o.realisable_value_in_words,
            distress_value_in_words=o.distress_value_in_words,
            template_id=o.template_id,
            completeness_score=o.completeness_score,
            areas={name: Area(value=a.value, unit=a.unit, sqm=a.sqm) for name, a in sorted(o.areas.items())},
            guideline_value=o.guideline_value or None,
            below_guideline=o.below_guideline,
            messages=[
                RuleMessage(severity=lower(m.severity), code=m.code, field=or_none(m.field), message=m.message)
                for m in o.messages
            ],
            rules_version=o.rules_version,
        )


class MissingEvidence(BaseModel):
    kind: EvidenceKind
    required: int
    present: int


class Readiness(BaseModel):
    """Whether the work order may move to `ready_for_render`: blocking items (missing fields,
    missing evidence, rules errors) and non-blocking warnings."""

    ready: bool
    score: int = Field(description="0–100.")
    missing_fields: list[str] = Field(description="Blocking: required fields of the template that are missing.")
    missing_evidence: list[MissingEvidence] = Field(description="Blocking: evidence below its minimum count.")
    errors: list[str] = Field(description="Blocking: rules errors.")
    warnings: list[str] = Field(description="Non-blocking.")
    evaluated_at: datetime | None

    @staticmethod
    def fields(r: pb.Readiness) -> dict[str, Any]:
        return {
            "ready": r.ready,
            "score": r.score,
            "missing_fields": list(r.missing_fields),
            "missing_evidence": [
                MissingEvidence(kind=lower(m.kind), required=m.required, present=m.present) for m in r.missing_evidence
            ],
            "errors": list(r.errors),
            "warnings": list(r.warnings),
            "evaluated_at": timestamp(r, "evaluated_at"),
        }

    @classmethod
    def from_proto(cls, r: pb.Readiness) -> Readiness:
        return cls(**cls.fields(r))

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> Readiness:
        """The report repogen puts in a READINESS_NOT_MET error (the proto's field names)."""
        return cls(
            ready=bool(report.get("ready", False)),
            score=int(report.get("score", 0)),
            missing_fields=[str(f) for f in report.get("missing_fields", ())],
            missing_evidence=[
                MissingEvidence(kind=lower(str(m["kind"])), required=int(m["required"]), present=int(m["present"]))
                for m in report.get("missing_evidence", ())
            ],
            errors=[str(e) for e in report.get("errors", ())],
            warnings=[str(w) for w in report.get("warnings", ())],
            evaluated_at=None,
        )


class ReadinessReport(Readiness):
    """Readiness of the latest snapshot with the evidence as it is now."""

    snapshot_version: int


def contract_of(contract_json: str) -> dict[str, Any] | None:
    if not contract_json:
        return None
    value = json.loads(contract_json)
    return value if isinstance(value, dict) else {"value": value}


class Snapshot(BaseModel):
    """One immutable version of the contract with what the rules made of it."""

    work_order_id: str
    version: int
    contract: dict[str, Any] | None = Field(
        description="The contract (schema-versioned JSON, decimals as strings); null in lists (read one snapshot)."
    )
    outputs: Outputs
    readiness: Readiness
    actor: str | None
    created_at: datetime | None

    @staticmethod
    def fields(s: pb.Snapshot) -> dict[str, Any]:
        return {
            "work_order_id": s.work_order_id,
            "version": s.version,
            "contract": contract_of(s.contract_json),
            "outputs": Outputs.from_proto(s.outputs),
            "readiness": Readiness.from_proto(s.readiness),
            "actor": or_none(s.actor),
            "created_at": timestamp(s, "created_at"),
        }

    @classmethod
    def from_proto(cls, s: pb.Snapshot) -> Snapshot:
        return cls(**cls.fields(s))


class SnapshotList(BaseModel):
    items: list[Snapshot] = Field(description="Newest first; `contract` is null (read one snapshot for it).")
    next_cursor: str | None


class WorkOrderDetail(WorkOrder):
    """A work order with its latest snapshot (version 0 for a new one: the empty contract)."""

    snapshot: Snapshot

    @classmethod
    def of(cls, work_order: pb.WorkOrder, snapshot: pb.Snapshot) -> WorkOrderDetail:
        return cls(**WorkOrder.fields(work_order), snapshot=Snapshot.from_proto(snapshot))


class TransitionedWorkOrder(WorkOrder):
    readiness: Readiness | None = Field(description="The readiness that let a move to `ready_for_render` pass.")

    @classmethod
    def from_response(cls, r: pb.TransitionWorkOrderResponse) -> TransitionedWorkOrder:
        readiness = Readiness.from_proto(r.readiness) if r.HasField("readiness") else None
        return cls(**WorkOrder.fields(r.work_order), readiness=readiness)


class ContractPatchBody(Strict):
    """`patch` is a JSON merge patch (RFC 7396) of the contract: members present are set, `null`
    removes one, objects merge, arrays are replaced. Decimals travel as strings (`"1012.5"`)."""

    expected_version: Version = Field(
        description="The snapshot version the patch was made against; another is 409 `VERSION_CONFLICT`."
    )
    patch: dict[str, Any] = Field(description="A JSON object: the merge patch of the contract.")

    def patch_json(self) -> str | None:
        """The patch as JSON text; None when it holds a number JSON cannot carry (NaN, ±inf)."""
        try:
            return json.dumps(self.patch, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except ValueError:
            return None


class PatchedContract(Snapshot):
    """The new snapshot (`version` n+1, its `outputs` and `readiness`) and the work order after it
    (a `ready_for_render` work order goes back to `data_pending` when its contract changes)."""

    work_order: WorkOrder

    @classmethod
    def from_response(cls, r: pb.PatchContractResponse) -> PatchedContract:
        return cls(**Snapshot.fields(r.snapshot), work_order=WorkOrder.from_proto(r.work_order))


# -- templates -------------------------------------------------------------------------------------


class EvidenceRequirement(BaseModel):
    kind: EvidenceKind
    min_count: int


class Template(BaseModel):
    id: str = Field(examples=["SBI_UNDER_5CR_V1"])
    version: int
    bank_code: str | None
    description: str
    required_fields: list[str] = Field(description="Canonical field keys the template requires.")
    evidence_profile: str
    evidence_requirements: list[EvidenceRequirement]
    realisable_percent: str = Field(description="Percent of FMV, decimal text (e.g. `95`).")
    distress_percent: str

    @classmethod
    def from_proto(cls, t: pb.Template) -> Template:
        return cls(
            id=t.id,
            version=t.version,
            bank_code=or_none(t.bank_code),
            description=t.description,
            required_fields=list(t.required_fields),
            evidence_profile=t.evidence_profile,
            evidence_requirements=[
                EvidenceRequirement(kind=lower(e.kind), min_count=e.min_count) for e in t.evidence_requirements
            ],
            realisable_percent=t.realisable_percent,
            distress_percent=t.distress_percent,
        )


class TemplateList(BaseModel):
    registry_version: str
    items: list[Template]


# -- evidence, field links, comments ---------------------------------------------------------------


class EvidenceItem(BaseModel):
    id: str
    work_order_id: str
    document_id: str = Field(description="The ops document.")
    kind: EvidenceKind
    caption: str | None
    annexure_order: int | None = Field(description="1-based annexure position; null until ordered.")
    captured_at: datetime | None
    added_by: str | None
    created_at: datetime | None
    filename: str | None = Field(description="The document's file name as ops knows it.")
    content_type: str | None

    @classmethod
    def from_proto(cls, e: pb.EvidenceItem) -> EvidenceItem:
        return cls(
            id=e.id,
            work_order_id=e.work_order_id,
            document_id=e.document_id,
            kind=lower(e.kind),
            caption=or_none(e.caption),
            annexure_order=e.annexure_order or None,
            captured_at=timestamp(e, "captured_at"),
            added_by=or_none(e.added_by),
            created_at=timestamp(e, "created_at"),
            filename=or_none(e.filename),
            content_type=or_none(e.content_type),
        )


class EvidenceList(BaseModel):
    items: list[EvidenceItem] = Field(description="In annexure order.")


class AddEvidenceBody(Strict):
    document_id: UUID = Field(description="An uploaded ops document the caller may read.")
    kind: EvidenceKind
    caption: Caption | None = None

    def to_proto(self, work_order_id: str, idempotency_key: str | None) -> pb.AddEvidenceRequest:
        return pb.AddEvidenceRequest(
            work_order_id=work_order_id,
            document_id=str(self.document_id),
            kind=self.kind.upper(),
            caption=self.caption or "",
            idempotency_key=idempotency_key or "",
        )


class AddedEvidence(BaseModel):
    evidence: EvidenceItem
    readiness: Readiness = Field(description="Readiness recomputed with the new evidence.")


class RemovedEvidence(BaseModel):
    readiness: Readiness = Field(description="Readiness recomputed without the evidence.")


class ReasonBody(Strict):
    reason: Reason


class FieldLink(BaseModel):
    """Which evidence supports which contract field. Links are added and removed (who, when,
    why), never overwritten: a removed link stays, for the audit trail."""

    id: str
    work_order_id: str
    field_key: str
    evidence_id: str
    note: str | None
    linked_by: str | None
    linked_at: datetime | None
    removed_by: str | None
    removed_at: datetime | None
    removal_reason: str | None

    @classmethod
    def from_proto(cls, link: pb.FieldLink) -> FieldLink:
        return cls(
            id=link.id,
            work_order_id=link.work_order_id,
            field_key=link.field_key,
            evidence_id=link.evidence_id,
            note=or_none(link.note),
            linked_by=or_none(link.linked_by),
            linked_at=timestamp(link, "linked_at"),
            removed_by=or_none(link.removed_by),
            removed_at=timestamp(link, "removed_at"),
            removal_reason=or_none(link.removal_reason),
        )


class FieldLinkList(BaseModel):
    items: list[FieldLink]


class LinkBody(Strict):
    field_key: FieldKey
    evidence_id: UUID
    note: Note | None = None


class UnlinkBody(Strict):
    link_id: UUID
    reason: Reason


class Comment(BaseModel):
    id: str
    work_order_id: str
    kind: CommentKind
    body: str
    author: str | None
    created_at: datetime | None

    @classmethod
    def from_proto(cls, c: pb.Comment) -> Comment:
        return cls(
            id=c.id,
            work_order_id=c.work_order_id,
            kind=c.kind,
            body=c.body,
            author=or_none(c.author),
            created_at=timestamp(c, "created_at"),
        )


class CommentList(BaseModel):
    items: list[Comment]


class CommentBodyIn(Strict):
    kind: CommentKind
    body: CommentBody


# -- artifacts, release, monitor -------------------------------------------------------------------


class Artifact(BaseModel):
    id: str
    work_order_id: str
    snapshot_version: int
    kind: ArtifactKind
    content_type: str
    size_bytes: int
    sha256: str = Field(description="Lower-case hex SHA-256 of the artifact.")
    template_id: str | None
    template_version: int | None
    bundle_sha256: str | None = Field(description="The export bundle the artifact was rendered from.")
    filename: str | None
    created_at: datetime | None

    @classmethod
    def from_proto(cls, a: pb.Artifact) -> Artifact:
        return cls(
            id=a.id,
            work_order_id=a.work_order_id,
            snapshot_version=a.snapshot_version,
            kind=lower(a.kind),
            content_type=a.content_type,
            size_bytes=a.size_bytes,
            sha256=a.sha256,
            template_id=or_none(a.template_id),
            template_version=a.template_version or None,
            bundle_sha256=or_none(a.bundle_sha256),
            filename=or_none(a.filename),
            created_at=timestamp(a, "created_at"),
        )


class RenderJob(BaseModel):
    id: str = Field(description="`<work_order_id>:<snapshot_version>`.")
    work_order_id: str
    snapshot_version: int
    status: JobStatus
    attempts: int
    last_error: str | None
    created_at: datetime | None
    finished_at: datetime | None
    pdf_note: str | None = Field(description="Why no PDF was produced (no converter on the machine), if so.")

    @classmethod
    def from_proto(cls, j: pb.RenderJob) -> RenderJob:
        return cls(
            id=j.id,
            work_order_id=j.work_order_id,
            snapshot_version=j.snapshot_version,
            status=enum_name(pb.JobStatus, j.status, JOB_PREFIX),
            attempts=j.attempts,
            last_error=or_none(j.last_error),
            created_at=timestamp(j, "created_at"),
            finished_at=timestamp(j, "finished_at"),
            pdf_note=or_none(j.pdf_note),
        )


class ArtifactList(BaseModel):
    items: list[Artifact]
    jobs: list[RenderJob] = Field(description="The render jobs, newest first.")


class ArtifactDownloadUrl(BaseModel):
    """A short-lived signed URL of the artifact (absolute, or relative to this API:
    `GET /v1/artifact-files/{token}`, no bearer token)."""

    url: str
    expires_at: datetime | None

    @classmethod
    def from_proto(cls, r: pb.PresignArtifactDownloadResponse) -> ArtifactDownloadUrl:
        return cls(url=r.url, expires_at=timestamp(r, "expires_at"))


class ReleaseBody(Strict):
    override_reason: OverrideReason | None = Field(
        None, description="Overrides billing's gate (needs billing.override): why."
    )


class Release(BaseModel):
    id: str
    work_order_id: str
    snapshot_version: int
    artifact_hashes: dict[str, str] = Field(description="SHA-256 of each released artifact, by kind.")
    billing_basis: BillingBasis = Field(description="Billing's decision.")
    billing_reservation_id: str | None = Field(description="The reservation billing consumed, if any.")
    override_reason: str | None
    released_by: str | None
    released_at: datetime | None

    @classmethod
    def from_proto(cls, r: pb.Release) -> Release:
        return cls(
            id=r.id,
            work_order_id=r.work_order_id,
            snapshot_version=r.snapshot_version,
            artifact_hashes={lower(k): v for k, v in sorted(r.artifact_hashes.items())},
            billing_basis=lower(r.billing_basis),
            billing_reservation_id=or_none(r.billing_reservation_id),
            override_reason=or_none(r.override_reason),
            released_by=or_none(r.released_by),
            released_at=timestamp(r, "released_at"),
        )


class Released(BaseModel):
    release: Release
    work_order: WorkOrder

    @classmethod
    def from_response(cls, r: pb.ReleaseDeliverableResponse) -> Released:
        return cls(release=Release.from_proto(r.release), work_order=WorkOrder.from_proto(r.work_order))


class MonitorRow(BaseModel):
    work_order: WorkOrder
    readiness_score: int
    job_status: JobStatus | None = Field(description="The latest render job's status; null when none.")
    billing_gate: BillingGate
    last_error: str | None

    @classmethod
    def from_proto(cls, r: pb.MonitorRow) -> MonitorRow:
        return cls(
            work_order=WorkOrder.from_proto(r.work_order),
            readiness_score=r.readiness_score,
            job_status=enum_name(pb.JobStatus, r.job_status, JOB_PREFIX) if r.job_status else None,
            billing_gate=lower(r.billing_gate) if r.billing_gate else "unknown",
            last_error=or_none(r.last_error),
        )


class Monitor(BaseModel):
    items: list[MonitorRow]
    next_cursor: str | None
    counts: dict[str, int] = Field(description="Work orders by (lower-case) status.")
