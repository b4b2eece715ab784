"""Repogen routes: work orders and their lifecycle, the contract and its snapshots, readiness,
templates, evidence, field-evidence links, annexures, comments, the export bundle, artifacts,
the billing-gated release and the monitor.

Capabilities (repogen.read / repogen.write / repogen.transition / repogen.release) and portal
scoping (channel-scoped work orders) are checked by repogen. The lifecycle is repogen's:
`draft → data_pending` (acceptance) `→ ready_for_render` (only when readiness passes, else 409
`READINESS_NOT_MET` carrying the readiness report) `→ rendered` (the factory) `→ released`
(the release); `cancelled` (with a reason) before `released`; a contract patch moves a
`ready_for_render` work order back to `data_pending`.

Repogen names fields as its request messages do (`id`, `work_order_id`, `patch_json`,
`statuses`, `page.cursor`, …); each route renames them to what the caller sent (`path.…`,
`patch`, `query.status`, `query.cursor`), so a 400 or a 409 `IDEMPOTENCY_KEY_REUSED` names
the HTTP request's fields.
"""

from __future__ import annotations

import json
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Header, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import Field

from zenops.repogen.v1 import repogen_pb2 as pb

from ..deps import CallerDep, RepogenDep
from ..errors import FieldError, Problem, ProblemResponse, UpstreamError, expand_violations, http_status_for, problem
from ..errors import problem_responses as problems
from ..handler import LeanRoute
from ..models.common import Cursor, Limit, or_none
from ..models.ops_common import Reason, id_text
from ..models.repogen import (
    AddedEvidence,
    AddEvidenceBody,
    ArtifactDownloadUrl,
    ArtifactList,
    CommentBodyIn,
    CommentKind,
    CommentList,
    ContractPatchBody,
    CreateWorkOrderBody,
    EvidenceList,
    FieldLink,
    FieldLinkList,
    LinkBody,
    Monitor,
    PatchedContract,
    Readiness,
    ReadinessReport,
    ReasonBody,
    ReleaseBody,
    Released,
    RemovedEvidence,
    RenderJob,
    Snapshot,
    SnapshotList,
    TemplateList,
    TemplateOverrideBody,
    TransitionBody,
    TransitionedWorkOrder,
    UnlinkBody,
    WorkOrder,
    WorkOrderDetail,
    WorkOrderList,
    WorkOrderStatus,
    status_value,
)
from ..models.repogen import Artifact as ArtifactModel
from ..models.repogen import Comment as CommentModel
from ..models.repogen import EvidenceItem as EvidenceModel
from ..models.repogen import MonitorRow as MonitorRowModel
from ..models.repogen import Template as TemplateModel
from .ops_common import (
    CREATED,
    IDEMPOTENCY_DOC,
    MAX_IDEMPOTENCY_KEY,
    OptionalIdempotencyKey,
    page,
    query_fields,
)
from .ops_common import ops_field_names as repogen_field_names

router = APIRouter(prefix="/v1", tags=["repogen"], route_class=LeanRoute)

_KEY_PATTERN = r"^[!-~]+$"  # visible ASCII, as every Idempotency-Key of the API
WorkOrderId = Annotated[UUID, Path(description="Work order id.")]
EvidenceId = Annotated[UUID, Path(description="Evidence item id.")]
ArtifactId = Annotated[UUID, Path(description="Artifact id.")]
SnapshotVersion = Annotated[int, Path(ge=0, le=2**53, description="Snapshot version (0 is the first).")]
# The release moves money (billing consumes the reservation): its key is required.
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY,
        pattern=_KEY_PATTERN,
        description="Required. " + IDEMPOTENCY_DOC,
    ),
]
StatusFilter = Annotated[
    list[WorkOrderStatus] | None,
    Query(max_length=6, description="Only work orders in these states (repeat the parameter for several)."),
]

# repogen's request fields → the HTTP request's, per route.
WORK_ORDER_ID = {"work_order_id": "path.work_order_id"}
ID = {"id": "path.work_order_id"}

READINESS_NOT_MET = "READINESS_NOT_MET"


class ReadinessProblem(Problem):
    """409 `READINESS_NOT_MET`: the work order cannot move to `ready_for_render`; `readiness`
    is the report (what is missing), `errors` name each blocking item (`contract.<field>`,
    `evidence.<kind>`)."""

    readiness: Readiness | None = Field(None, description="The readiness report that refused the move.")


def readiness_problem(err: UpstreamError) -> ProblemResponse:
    """READINESS_NOT_MET as problem+json with the readiness report as an object (repogen sends
    it as JSON text in the error's metadata `readiness`). Everything else of the error is
    mapped as errors.py maps every upstream error."""
    d = err.detail
    metadata = dict(d.metadata)
    report = metadata.pop("readiness", "")
    try:
        readiness = Readiness.from_report(json.loads(report)) if report else None
    except (ValueError, TypeError, KeyError):
        readiness = None
    errors = []
    for v in expand_violations(d):
        head, _, kind = v.field.partition(".")
        field = f"evidence.{kind.lower()}" if head == "evidence" and kind else v.field
        errors.append(FieldError(field=field, message=v.description))
    return problem(
        http_status_for(d.code),
        d.reason,
        d.message,
        errors=errors,
        metadata=metadata or None,
        model=ReadinessProblem,
        readiness=readiness,
    )


# == work orders ==========================================================================================


@router.post(
    "/work-orders",
    status_code=201,
    response_model=WorkOrderDetail,
    summary="Create a work order from an ops assignment (repogen.write)",
    description="The assignment is checked with ops (unknown: 404 naming `assignment_id`); the bank code comes "
    "from its bank and selects the template. Starts in `draft` with snapshot 0 (the empty contract, its outputs "
    "and readiness). `Location` is the work order.",
    responses={**problems(401, 403, 404, 409, 503), **CREATED},
)
async def create_work_order(
    body: CreateWorkOrderBody,
    caller: CallerDep,
    repogen: RepogenDep,
    response: Response,
    idempotency_key: OptionalIdempotencyKey = None,
) -> WorkOrderDetail:
    with repogen_field_names():
        resp = await repogen.create_work_order(body.to_proto(idempotency_key), token=caller.token)
    response.headers["location"] = f"/v1/work-orders/{resp.work_order.id}"
    return WorkOrderDetail.of(resp.work_order, resp.snapshot)


@router.get(
    "/work-orders",
    response_model=WorkOrderList,
    summary="Work orders, newest first (repogen.read)",
    description="Portal users see only their channel's work orders.",
    responses=problems(401, 403, 503),
)
async def list_work_orders(
    caller: CallerDep,
    repogen: RepogenDep,
    status: StatusFilter = None,
    assignment_id: Annotated[UUID | None, Query()] = None,
    channel_id: Annotated[UUID | None, Query()] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> WorkOrderList:
    with repogen_field_names(query_fields("assignment_id", "channel_id", statuses="status")):
        resp = await repogen.list_work_orders(
            pb.ListWorkOrdersRequest(
                page=page(limit, cursor),
                statuses=[status_value(s) for s in dict.fromkeys(status or ())],
                assignment_id=id_text(assignment_id),
                channel_id=id_text(channel_id),
            ),
            token=caller.token,
        )
    return WorkOrderList(
        items=[WorkOrder.from_proto(w) for w in resp.work_orders], next_cursor=or_none(resp.page.next_cursor)
    )


@router.get(
    "/work-orders/{work_order_id}",
    response_model=WorkOrderDetail,
    summary="One work order with its latest snapshot (repogen.read)",
    responses=problems(401, 403, 404, 503),
)
async def get_work_order(work_order_id: WorkOrderId, caller: CallerDep, repogen: RepogenDep) -> WorkOrderDetail:
    with repogen_field_names(ID):
        resp = await repogen.get_work_order(pb.GetWorkOrderRequest(id=str(work_order_id)), token=caller.token)
    return WorkOrderDetail.of(resp.work_order, resp.latest_snapshot)


@router.post(
    "/work-orders/{work_order_id}/transitions",
    response_model=TransitionedWorkOrder,
    summary="Move a work order along its lifecycle (repogen.transition)",
    description="`{to, reason?}`: `data_pending` (acceptance: billing reserves the credits or plans an invoice), "
    "`ready_for_render` (only when readiness passes: otherwise 409 `READINESS_NOT_MET` with the readiness "
    "report in `readiness` and each blocking item in `errors`), `cancelled` (a reason is required). Other moves "
    "are 409 `ILLEGAL_TRANSITION`.",
    responses={**problems(401, 403, 404, 503), 409: {"model": ReadinessProblem, "description": "Conflict"}},
)
async def transition_work_order(
    work_order_id: WorkOrderId,
    body: TransitionBody,
    caller: CallerDep,
    repogen: RepogenDep,
    idempotency_key: OptionalIdempotencyKey = None,
) -> TransitionedWorkOrder | ProblemResponse:
    try:
        with repogen_field_names(ID):
            resp = await repogen.transition_work_order(
                pb.TransitionWorkOrderRequest(
                    id=str(work_order_id),
                    to=status_value(body.to),
                    reason=body.reason or "",
                    idempotency_key=idempotency_key or "",
                ),
                token=caller.token,
            )
    except UpstreamError as err:
        if err.detail.reason == READINESS_NOT_MET:
            return readiness_problem(err)
        raise
    return TransitionedWorkOrder.from_response(resp)


@router.post(
    "/work-orders/{work_order_id}/template",
    response_model=WorkOrder,
    summary="Override the selected template, with a reason (repogen.write)",
    description="`{template_id, reason}`: the template replaces the one the rules selected (an unknown template "
    "is 400 naming `template_id`); the reason is recorded. Outputs and readiness are recomputed.",
    responses=problems(401, 403, 404, 409, 503),
)
async def override_template(
    work_order_id: WorkOrderId,
    body: TemplateOverrideBody,
    caller: CallerDep,
    repogen: RepogenDep,
    idempotency_key: OptionalIdempotencyKey = None,
) -> WorkOrder:
    with repogen_field_names(ID):
        resp = await repogen.override_template(
            pb.OverrideTemplateRequest(id=str(work_order_id), template_id=body.template_id, reason=body.reason),
            token=caller.token,
            idempotency_key=idempotency_key,
        )
    return WorkOrder.from_proto(resp.work_order)


@router.get(
    "/repogen/templates",
    response_model=TemplateList,
    summary="The versioned template registry (repogen.read)",
    description="Each template's required fields, evidence profile (kinds with minimum counts) and its "
    "realisable / distress percentages.",
    responses=problems(401, 403, 503),
)
async def list_templates(caller: CallerDep, repogen: RepogenDep) -> TemplateList:
    resp = await repogen.list_templates(pb.ListTemplatesRequest(), token=caller.token)
    return TemplateList(
        registry_version=resp.registry_version, items=[TemplateModel.from_proto(t) for t in resp.templates]
    )


# == contract, snapshots, readiness =========================================================================


@router.patch(
    "/work-orders/{work_order_id}/contract",
    response_model=PatchedContract,
    summary="Patch the contract: a new snapshot with its outputs and readiness (repogen.write)",
    description="`{expected_version, patch}`: `patch` is a JSON merge patch (RFC 7396) of the contract (decimals "
    "as strings). Merged, validated (every bad field named `patch.<path>`), valued by the rules and checked for "
    "readiness in one transaction: the answer is snapshot `expected_version + 1`. Another version than the "
    "latest is 409 `VERSION_CONFLICT`. A `ready_for_render` work order goes back to `data_pending`.",
    responses=problems(401, 403, 404, 409, 503),
)
async def patch_contract(
    work_order_id: WorkOrderId,
    body: ContractPatchBody,
    caller: CallerDep,
    repogen: RepogenDep,
    idempotency_key: OptionalIdempotencyKey = None,
) -> PatchedContract:
    patch_json = body.patch_json()
    if patch_json is None:
        raise RequestValidationError(
            [{"loc": ("body", "patch"), "msg": "Numbers must be finite (send decimals as strings)", "type": "value"}]
        )
    with repogen_field_names({**WORK_ORDER_ID, "patch_json": "patch"}):
        resp = await repogen.patch_contract(
            pb.PatchContractRequest(
                work_order_id=str(work_order_id),
                expected_version=body.expected_version,
                patch_json=patch_json,
                idempotency_key=idempotency_key or "",
            ),
            token=caller.token,
        )
    return PatchedContract.from_response(resp)


@router.get(
    "/work-orders/{work_order_id}/snapshots",
    response_model=SnapshotList,
    summary="Snapshots of the contract, newest first (repogen.read)",
    description="Each with its outputs and readiness; `contract` is null here (read one snapshot for it).",
    responses=problems(401, 403, 404, 503),
)
async def list_snapshots(
    work_order_id: WorkOrderId, caller: CallerDep, repogen: RepogenDep, limit: Limit = None, cursor: Cursor = None
) -> SnapshotList:
    with repogen_field_names(WORK_ORDER_ID):
        resp = await repogen.list_snapshots(
            pb.ListSnapshotsRequest(work_order_id=str(work_order_id), page=page(limit, cursor)), token=caller.token
        )
    return SnapshotList(
        items=[Snapshot.from_proto(s) for s in resp.snapshots], next_cursor=or_none(resp.page.next_cursor)
    )


@router.get(
    "/work-orders/{work_order_id}/snapshots/{version}",
    response_model=Snapshot,
    summary="One snapshot: the contract, its outputs and readiness (repogen.read)",
    responses=problems(401, 403, 404, 503),
)
async def get_snapshot(
    work_order_id: WorkOrderId, version: SnapshotVersion, caller: CallerDep, repogen: RepogenDep
) -> Snapshot:
    with repogen_field_names({**WORK_ORDER_ID, "version": "path.version"}):
        resp = await repogen.get_snapshot(
            pb.GetSnapshotRequest(work_order_id=str(work_order_id), version=version), token=caller.token
        )
    return Snapshot.from_proto(resp.snapshot)


@router.get(
    "/work-orders/{work_order_id}/readiness",
    response_model=ReadinessReport,
    summary="Readiness of the latest snapshot with the evidence as it is now (repogen.read)",
    responses=problems(401, 403, 404, 503),
)
async def evaluate_readiness(work_order_id: WorkOrderId, caller: CallerDep, repogen: RepogenDep) -> ReadinessReport:
    with repogen_field_names(WORK_ORDER_ID):
        resp = await repogen.evaluate_readiness(
            pb.EvaluateReadinessRequest(work_order_id=str(work_order_id)), token=caller.token
        )
    return ReadinessReport(**Readiness.fields(resp.readiness), snapshot_version=resp.snapshot_version)


# == evidence, field links, annexures, comments ============================================================


@router.post(
    "/work-orders/{work_order_id}/evidence",
    status_code=201,
    response_model=AddedEvidence,
    summary="Add an ops document as evidence of a kind (repogen.write)",
    description="The document is checked with ops (unknown or unreadable: 404 naming `document_id`; still "
    "`pending`: 409). Answers the evidence item and the readiness recomputed with it.",
    responses=problems(401, 403, 404, 409, 503),
)
async def add_evidence(
    work_order_id: WorkOrderId,
    body: AddEvidenceBody,
    caller: CallerDep,
    repogen: RepogenDep,
    idempotency_key: OptionalIdempotencyKey = None,
) -> AddedEvidence:
    with repogen_field_names(WORK_ORDER_ID):
        resp = await repogen.add_evidence(body.to_proto(str(work_order_id), idempotency_key), token=caller.token)
    return AddedEvidence(
        evidence=EvidenceModel.from_proto(resp.evidence), readiness=Readiness.from_proto(resp.readiness)
    )


@router.get(
    "/work-orders/{work_order_id}/evidence",
    response_model=EvidenceList,
    summary="Evidence of a work order, in annexure order (repogen.read)",
    responses=problems(401, 403, 404, 503),
)
async def list_evidence(work_order_id: WorkOrderId, caller: CallerDep, repogen: RepogenDep) -> EvidenceList:
    with repogen_field_names(WORK_ORDER_ID):
        resp = await repogen.list_evidence(pb.ListEvidenceRequest(work_order_id=str(work_order_id)), token=caller.token)
    return EvidenceList(items=[EvidenceModel.from_proto(e) for e in resp.evidence])


@router.delete(
    "/work-orders/{work_order_id}/evidence/{evidence_id}",
    response_model=RemovedEvidence,
    summary="Remove evidence, with a reason (repogen.write)",
    description="The reason as `?reason=` or as a body `{reason}`. Its field links are removed with it (kept "
    "for the audit trail). Answers the readiness recomputed without it.",
    responses=problems(401, 403, 404, 409, 503),
)
async def remove_evidence(
    work_order_id: WorkOrderId,
    evidence_id: EvidenceId,
    caller: CallerDep,
    repogen: RepogenDep,
    reason: Annotated[Reason | None, Query(description="Why (or in the body).")] = None,
    body: Annotated[ReasonBody | None, Body()] = None,
    idempotency_key: OptionalIdempotencyKey = None,
) -> RemovedEvidence:
    if body is not None and reason is not None and body.reason != reason:
        raise RequestValidationError(
            [{"loc": ("query", "reason"), "msg": "Differs from the body's reason: send one", "type": "value"}]
        )
    why = body.reason if body is not None else reason
    if why is None:
        raise RequestValidationError([{"loc": ("query", "reason"), "msg": "Field required", "type": "missing"}])
    reason_field = "reason" if body is not None else "query.reason"
    with repogen_field_names({**WORK_ORDER_ID, "evidence_id": "path.evidence_id", "reason": reason_field}):
        resp = await repogen.remove_evidence(
            pb.RemoveEvidenceRequest(work_order_id=str(work_order_id), evidence_id=str(evidence_id), reason=why),
            token=caller.token,
            idempotency_key=idempotency_key,
        )
    return RemovedEvidence(readiness=Readiness.from_proto(resp.readiness))


@router.post(
    "/work-orders/{work_order_id}/field-links",
    status_code=201,
    response_model=FieldLink,
    summary="Link evidence to a contract field (repogen.write)",
    description="`{field_key, evidence_id, note?}`: `field_key` is a canonical key of the contract "
    "(`areas.carpet`, `parties.borrower_name`). Links are added and removed, never overwritten.",
    responses=problems(401, 403, 404, 409, 503),
)
async def link_field_evidence(
    work_order_id: WorkOrderId,
    body: LinkBody,
    caller: CallerDep,
    repogen: RepogenDep,
    idempotency_key: OptionalIdempotencyKey = None,
) -> FieldLink:
    with repogen_field_names(WORK_ORDER_ID):
        resp = await repogen.link_field_evidence(
            pb.LinkFieldEvidenceRequest(
                work_order_id=str(work_order_id),
                field_key=body.field_key,
                evidence_id=str(body.evidence_id),
                note=body.note or "",
            ),
            token=caller.token,
            idempotency_key=idempotency_key,
        )
    return FieldLink.from_proto(resp.link)


@router.delete(
    "/work-orders/{work_order_id}/field-links",
    response_model=FieldLink,
    summary="Remove a field-evidence link, with a reason (repogen.write)",
    description="`{link_id, reason}`. The link stays, marked removed (who, when, why).",
    responses=problems(401, 403, 404, 409, 503),
)
async def unlink_field_evidence(
    work_order_id: WorkOrderId,
    body: UnlinkBody,
    caller: CallerDep,
    repogen: RepogenDep,
    idempotency_key: OptionalIdempotencyKey = None,
) -> FieldLink:
    with repogen_field_names(WORK_ORDER_ID):
        resp = await repogen.unlink_field_evidence(
            pb.UnlinkFieldEvidenceRequest(
                work_order_id=str(work_order_id), link_id=str(body.link_id), reason=body.reason
            ),
            token=caller.token,
            idempotency_key=idempotency_key,
        )
    return FieldLink.from_proto(resp.link)


@router.get(
    "/work-orders/{work_order_id}/field-links",
    response_model=FieldLinkList,
    summary="Field-evidence links of a work order (repogen.read)",
    description="`?include_removed=true`: the removed links too (the audit trail).",
    responses=problems(401, 403, 404, 503),
)
async def list_field_links(
    work_order_id: WorkOrderId,
    caller: CallerDep,
    repogen: RepogenDep,
    include_removed: Annotated[bool, Query()] = False,
) -> FieldLinkList:
    with repogen_field_names({**WORK_ORDER_ID, **query_fields("include_removed")}):
        resp = await repogen.list_field_links(
            pb.ListFieldLinksRequest(work_order_id=str(work_order_id), include_removed=include_removed),
            token=caller.token,
        )
    return FieldLinkList(items=[FieldLink.from_proto(link) for link in resp.links])


@router.post(
    "/work-orders/{work_order_id}/annexures/auto-order",
    response_model=EvidenceList,
    summary="Order the annexures deterministically (repogen.write)",
    description="By kind (title deeds first, then tax and utility proof, plan, photographs, map, NOC, other), "
    "then capture time, then id. Answers the evidence in its new order.",
    responses=problems(401, 403, 404, 409, 503),
)
async def auto_order_annexures(
    work_order_id: WorkOrderId, caller: CallerDep, repogen: RepogenDep, idempotency_key: OptionalIdempotencyKey = None
) -> EvidenceList:
    with repogen_field_names(WORK_ORDER_ID):
        resp = await repogen.auto_order_annexures(
            pb.AutoOrderAnnexuresRequest(work_order_id=str(work_order_id)),
            token=caller.token,
            idempotency_key=idempotency_key,
        )
    return EvidenceList(items=[EvidenceModel.from_proto(e) for e in resp.evidence])


@router.post(
    "/work-orders/{work_order_id}/comments",
    status_code=201,
    response_model=CommentModel,
    summary="Add a typed comment (repogen.write)",
    description="`{kind: justification|enclosures|checklist|notes, body}`.",
    responses=problems(401, 403, 404, 409, 503),
)
async def add_comment(
    work_order_id: WorkOrderId,
    body: CommentBodyIn,
    caller: CallerDep,
    repogen: RepogenDep,
    idempotency_key: OptionalIdempotencyKey = None,
) -> CommentModel:
    with repogen_field_names(WORK_ORDER_ID):
        resp = await repogen.add_comment(
            pb.AddCommentRequest(
                work_order_id=str(work_order_id), kind=body.kind, body=body.body, idempotency_key=idempotency_key or ""
            ),
            token=caller.token,
        )
    return CommentModel.from_proto(resp.comment)


@router.get(
    "/work-orders/{work_order_id}/comments",
    response_model=CommentList,
    summary="Comments of a work order (repogen.read)",
    responses=problems(401, 403, 404, 503),
)
async def list_comments(
    work_order_id: WorkOrderId,
    caller: CallerDep,
    repogen: RepogenDep,
    kind: Annotated[CommentKind | None, Query(description="Only comments of this kind.")] = None,
) -> CommentList:
    with repogen_field_names({**WORK_ORDER_ID, **query_fields("kind")}):
        resp = await repogen.list_comments(
            pb.ListCommentsRequest(work_order_id=str(work_order_id), kind=kind or ""), token=caller.token
        )
    return CommentList(items=[CommentModel.from_proto(c) for c in resp.comments])


# == export bundle, artifacts, release, monitor ============================================================


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2 (weak comparison): `*`, or one of the listed tags."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag in (t.removeprefix("W/") for t in tags)


@router.get(
    "/work-orders/{work_order_id}/export-bundle",
    summary="The export bundle: canonical JSON of the work order's state (repogen.read)",
    description="The bytes exactly as repogen made them (sorted keys, UTF-8, no insignificant whitespace, decimals "
    "as strings): the same state always gives the same bytes. `ETag` is the quoted SHA-256 and "
    "`X-Content-SHA256` the hex SHA-256 of the body; `If-None-Match` with it answers 304.",
    responses={
        200: {
            "content": {"application/json": {"schema": {"type": "object"}}},
            "headers": {
                "ETag": {"schema": {"type": "string"}},
                "X-Content-SHA256": {
                    "schema": {"type": "string"},
                    "description": "Lower-case hex SHA-256 of the body.",
                },
            },
        },
        304: {"description": "Not Modified: the bundle still has the `If-None-Match` hash."},
        **problems(401, 403, 404, 503),
    },
)
async def export_bundle(
    work_order_id: WorkOrderId,
    caller: CallerDep,
    repogen: RepogenDep,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
) -> Response:
    with repogen_field_names(WORK_ORDER_ID):
        resp = await repogen.get_export_bundle(
            pb.GetExportBundleRequest(work_order_id=str(work_order_id)), token=caller.token
        )
    etag = f'"{resp.sha256}"'
    headers = {"etag": etag, "x-content-sha256": resp.sha256, "cache-control": "private, no-cache"}
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(content=resp.bundle, media_type="application/json", headers=headers)


@router.get(
    "/work-orders/{work_order_id}/artifacts",
    response_model=ArtifactList,
    summary="Artifacts of a work order (export bundle, DOCX, PDF) and its render jobs (repogen.read)",
    responses=problems(401, 403, 404, 503),
)
async def list_artifacts(work_order_id: WorkOrderId, caller: CallerDep, repogen: RepogenDep) -> ArtifactList:
    with repogen_field_names(WORK_ORDER_ID):
        resp = await repogen.list_artifacts(
            pb.ListArtifactsRequest(work_order_id=str(work_order_id)), token=caller.token
        )
    return ArtifactList(
        items=[ArtifactModel.from_proto(a) for a in resp.artifacts], jobs=[RenderJob.from_proto(j) for j in resp.jobs]
    )


@router.get(
    "/artifacts/{artifact_id}/download",
    response_model=ArtifactDownloadUrl,
    summary="A short-lived signed download URL of an artifact (repogen.read)",
    description="`url` is absolute (S3-compatible storage) or relative to this API (local storage: "
    "`GET /v1/artifact-files/{token}`, no bearer token). Handing out the URL is audited on the work order.",
    responses=problems(401, 403, 404, 409, 503),
)
async def artifact_download_url(artifact_id: ArtifactId, caller: CallerDep, repogen: RepogenDep) -> ArtifactDownloadUrl:
    with repogen_field_names({"artifact_id": "path.artifact_id"}):
        resp = await repogen.presign_artifact_download(
            pb.PresignArtifactDownloadRequest(artifact_id=str(artifact_id)), token=caller.token
        )
    return ArtifactDownloadUrl.from_proto(resp)


@router.post(
    "/work-orders/{work_order_id}/release",
    response_model=Released,
    summary="Release the rendered report, billing-gated (repogen.release)",
    description="Needs an `Idempotency-Key`. Only a `rendered` work order. Billing decides: a CREDIT account's "
    "reservation is consumed; a POSTPAID account needs a paid invoice; `override_reason` overrides the gate (needs "
    "billing.override). Billing's refusal is 409 with billing's reason (`INVOICE_UNPAID`, `INSUFFICIENT_CREDITS`, "
    "…) and changes nothing. One release per work order: the same key answers the same release.",
    responses=problems(401, 403, 404, 409, 503),
)
async def release(
    work_order_id: WorkOrderId,
    caller: CallerDep,
    repogen: RepogenDep,
    idempotency_key: IdempotencyKey,
    body: Annotated[ReleaseBody | None, Body()] = None,
) -> Released:
    with repogen_field_names(WORK_ORDER_ID):
        resp = await repogen.release_deliverable(
            pb.ReleaseDeliverableRequest(
                work_order_id=str(work_order_id),
                override_reason=(body.override_reason if body else None) or "",
                idempotency_key=idempotency_key,
            ),
            token=caller.token,
        )
    return Released.from_response(resp)


@router.get(
    "/repogen/monitor",
    response_model=Monitor,
    summary="The work-order queue: readiness, render job, billing gate, last error (repogen.read)",
    description="Rows newest first, with `counts` of work orders by status.",
    responses=problems(401, 403, 503),
)
async def monitor(
    caller: CallerDep, repogen: RepogenDep, status: StatusFilter = None, limit: Limit = None, cursor: Cursor = None
) -> Monitor:
    with repogen_field_names(query_fields(statuses="status")):
        resp = await repogen.list_monitor(
            pb.ListMonitorRequest(
                page=page(limit, cursor), statuses=[status_value(s) for s in dict.fromkeys(status or ())]
            ),
            token=caller.token,
        )
    return Monitor(
        items=[MonitorRowModel.from_proto(r) for r in resp.rows],
        next_cursor=or_none(resp.page.next_cursor),
        counts={k.lower(): v for k, v in sorted(resp.counts.items())},
    )
