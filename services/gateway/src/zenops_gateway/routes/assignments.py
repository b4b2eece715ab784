"""Assignment routes: create, list, read (with status history and documents), merge patch,
lifecycle transitions, history with activity.

Capabilities (assignments.read / assignments.write / assignments.transition) are checked by
ops. The lifecycle is ops' one transition table: `draft → collecting → site_visit →
under_review → delivered`, `under_review → collecting` (rework, with a reason), `cancelled`
(with a reason) from any state before `delivered`; anything else is 409
`ILLEGAL_TRANSITION`.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Path, Query, Response
from google.protobuf.field_mask_pb2 import FieldMask

from zenops.ops.v1 import ops_pb2 as pb

from ..deps import CallerDep, OpsDep
from ..errors import problem_responses
from ..handler import LeanRoute
from ..models.assignments import (
    Activity,
    Assignment,
    AssignmentDetail,
    AssignmentHistory,
    AssignmentList,
    AssignmentPatch,
    CreateAssignmentBody,
    StatusChange,
    TransitionBody,
)
from ..models.common import Cursor, Limit, or_none
from ..models.ops_common import AssignmentStatus, Search, UtcDatetime, enum_value, id_text, to_timestamp
from .ops_common import CREATED, MERGE_PATCH, OptionalIdempotencyKey, ops_field_names, page, query_fields

router = APIRouter(prefix="/v1", tags=["assignments"], route_class=LeanRoute)

AssignmentId = Annotated[UUID, Path(description="Assignment id.")]
PATH_ID = {"id": "path.assignment_id"}


@router.post(
    "/assignments",
    status_code=201,
    response_model=Assignment,
    summary="Create an assignment (assignments.write)",
    description="Allocates the next reference number (`ZA-<yyyy>-<6 digits>`, gapless per year) and starts "
    "in `draft`. Unknown refs are 400/404 naming the field. `Location` is the assignment.",
    responses={**problem_responses(401, 403, 404, 409, 503), **CREATED},
)
async def create_assignment(
    body: CreateAssignmentBody,
    caller: CallerDep,
    ops: OpsDep,
    response: Response,
    idempotency_key: OptionalIdempotencyKey = None,
) -> Assignment:
    with ops_field_names():
        resp = await ops.create_assignment(body.to_proto(idempotency_key), token=caller.token)
    response.headers["location"] = f"/v1/assignments/{resp.assignment.id}"
    return Assignment.from_proto(resp.assignment)


@router.get(
    "/assignments",
    response_model=AssignmentList,
    summary="Assignments, newest first (assignments.read)",
    responses=problem_responses(401, 403, 503),
)
async def list_assignments(
    caller: CallerDep,
    ops: OpsDep,
    status: Annotated[
        list[AssignmentStatus] | None,
        Query(max_length=6, description="Only assignments in these states (repeat the parameter for several)."),
    ] = None,
    assignee_id: Annotated[UUID | None, Query(description="Only assignments this user is assigned to.")] = None,
    bank_id: Annotated[UUID | None, Query()] = None,
    channel_id: Annotated[UUID | None, Query()] = None,
    due_after: Annotated[UtcDatetime | None, Query(description="Due at or after (ISO-8601 with offset).")] = None,
    due_before: Annotated[UtcDatetime | None, Query(description="Due before (ISO-8601 with offset).")] = None,
    q: Annotated[
        Search | None, Query(description="Text search: reference number, borrower name, notes, property address.")
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> AssignmentList:
    renames = query_fields(
        "assignee_id", "bank_id", "channel_id", "due_after", "due_before", statuses="status", query="q"
    )
    with ops_field_names(renames):
        resp = await ops.list_assignments(
            pb.ListAssignmentsRequest(
                page=page(limit, cursor),
                statuses=[
                    enum_value(pb.AssignmentStatus, s, "ASSIGNMENT_STATUS_") for s in dict.fromkeys(status or ())
                ],
                assignee_id=id_text(assignee_id),
                bank_id=id_text(bank_id),
                channel_id=id_text(channel_id),
                due_after=to_timestamp(due_after),
                due_before=to_timestamp(due_before),
                query=q or "",
            ),
            token=caller.token,
        )
    return AssignmentList(
        items=[Assignment.from_proto(a) for a in resp.assignments], next_cursor=or_none(resp.page.next_cursor)
    )


@router.get(
    "/assignments/{assignment_id}",
    response_model=AssignmentDetail,
    summary="One assignment with its status history and linked documents (assignments.read)",
    responses=problem_responses(401, 403, 404, 503),
)
async def get_assignment(assignment_id: AssignmentId, caller: CallerDep, ops: OpsDep) -> AssignmentDetail:
    with ops_field_names(PATH_ID):
        resp = await ops.get_assignment(pb.GetAssignmentRequest(id=str(assignment_id)), token=caller.token)
    return AssignmentDetail.from_response(resp)


@router.patch(
    "/assignments/{assignment_id}",
    response_model=Assignment,
    summary="Change an assignment (JSON merge patch; assignments.write)",
    description="Members present are changed, absent ones kept (RFC 7396): the refs, `due_at`, `priority`, "
    "`assignee_ids`, `fee_paise`, `notes`, `borrower_name`; `null` clears the nullable ones. With "
    "`expected_version` the change is refused with 409 `VERSION_CONFLICT` unless the assignment is at that "
    "version. The status changes only by transitions. A patch without members changes nothing.",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def update_assignment(
    assignment_id: AssignmentId,
    patch: Annotated[AssignmentPatch, Body(media_type=MERGE_PATCH)],
    caller: CallerDep,
    ops: OpsDep,
) -> Assignment:
    paths = patch.mask()
    with ops_field_names({**PATH_ID, "assignment": "", "update_mask": "body"}):
        if not paths:
            # Never an empty update_mask: by AIP-134 that would mean "replace every field".
            resp = await ops.get_assignment(pb.GetAssignmentRequest(id=str(assignment_id)), token=caller.token)
        else:
            resp = await ops.update_assignment(
                pb.UpdateAssignmentRequest(
                    id=str(assignment_id),
                    assignment=patch.to_proto(),
                    update_mask=FieldMask(paths=paths),
                    expected_version=patch.expected_version or 0,
                ),
                token=caller.token,
            )
    return Assignment.from_proto(resp.assignment)


@router.post(
    "/assignments/{assignment_id}/transitions",
    response_model=Assignment,
    summary="Move an assignment along its lifecycle (assignments.transition)",
    description="`{to, reason?}`. A reason is required for `cancelled` and for rework (`under_review` → "
    "`collecting`). What the lifecycle does not allow is 409 `ILLEGAL_TRANSITION`. Each transition is "
    "recorded in the status history and the activity and emits `ops.assignment.status_changed`.",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def transition_assignment(
    assignment_id: AssignmentId,
    body: TransitionBody,
    caller: CallerDep,
    ops: OpsDep,
    idempotency_key: OptionalIdempotencyKey = None,
) -> Assignment:
    with ops_field_names(PATH_ID):
        resp = await ops.transition_assignment(
            pb.TransitionAssignmentRequest(
                id=str(assignment_id),
                to=enum_value(pb.AssignmentStatus, body.to, "ASSIGNMENT_STATUS_"),
                reason=body.reason or "",
                idempotency_key=idempotency_key or "",
            ),
            token=caller.token,
        )
    return Assignment.from_proto(resp.assignment)


@router.get(
    "/assignments/{assignment_id}/history",
    response_model=AssignmentHistory,
    summary="Status history and activity of an assignment, newest first (assignments.read)",
    description="`history`: every status change; `items`: one page of the activity (paged with `limit`/`cursor`).",
    responses=problem_responses(401, 403, 404, 503),
)
async def assignment_history(
    assignment_id: AssignmentId, caller: CallerDep, ops: OpsDep, limit: Limit = None, cursor: Cursor = None
) -> AssignmentHistory:
    with ops_field_names(PATH_ID):
        resp = await ops.get_assignment_history(
            pb.GetAssignmentHistoryRequest(id=str(assignment_id), page=page(limit, cursor)), token=caller.token
        )
    return AssignmentHistory(
        history=[StatusChange.from_proto(h) for h in resp.history],
        items=[Activity.from_proto(e) for e in resp.activity],
        next_cursor=or_none(resp.page.next_cursor),
    )
