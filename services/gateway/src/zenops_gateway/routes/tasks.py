"""Task routes (create, list, merge patch, mark done) and the analytics overview.

Capabilities (tasks.read / tasks.write; analytics.read) are checked by ops. Visibility is
ops' too: admins and ops managers see every task of the tenant, others the tasks assigned
to or created by them. `overdue` is computed when read.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Path, Query
from fastapi.exceptions import RequestValidationError
from google.protobuf.field_mask_pb2 import FieldMask

from zenops.ops.v1 import ops_pb2 as pb

from ..deps import CallerDep, OpsDep
from ..errors import problem_responses
from ..handler import LeanRoute
from ..models.common import Cursor, Limit, or_none
from ..models.ops_common import TaskStatus, id_text, pb_enum
from ..models.tasks import TASK_PATCHABLE, AnalyticsOverview, CreateTaskBody, Task, TaskList, TaskPatch
from .ops_common import MERGE_PATCH, OptionalIdempotencyKey, ops_field_names, page, query_fields

router = APIRouter(prefix="/v1", tags=["tasks"], route_class=LeanRoute)
analytics_router = APIRouter(prefix="/v1", tags=["analytics"], route_class=LeanRoute)

TaskId = Annotated[UUID, Path(description="Task id.")]
PATH_ID = {"id": "path.task_id"}


@router.post(
    "/tasks",
    status_code=201,
    response_model=Task,
    summary="Create a task (tasks.write)",
    description="Assigned to `assignee_id`, or to the caller when absent. Tasks have no single-task route: "
    "find them with the list's filters.",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def create_task(
    body: CreateTaskBody, caller: CallerDep, ops: OpsDep, idempotency_key: OptionalIdempotencyKey = None
) -> Task:
    with ops_field_names():
        resp = await ops.create_task(body.to_proto(idempotency_key), token=caller.token)
    return Task.from_proto(resp.task)


@router.get(
    "/tasks",
    response_model=TaskList,
    summary="Tasks the caller may see (tasks.read)",
    responses=problem_responses(401, 403, 503),
)
async def list_tasks(
    caller: CallerDep,
    ops: OpsDep,
    assigned_to_me: Annotated[bool, Query(description="Only tasks assigned to the caller.")] = False,
    status: Annotated[TaskStatus | None, Query(description="Only tasks in this state.")] = None,
    due_soon: Annotated[bool, Query(description="Due within 48 hours and not done.")] = False,
    overdue: Annotated[bool, Query(description="Past their due time and not done.")] = False,
    assignment_id: Annotated[UUID | None, Query(description="Only this assignment's tasks.")] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> TaskList:
    with ops_field_names(query_fields("assigned_to_me", "status", "due_soon", "overdue", "assignment_id")):
        resp = await ops.list_tasks(
            pb.ListTasksRequest(
                page=page(limit, cursor),
                assigned_to_me=assigned_to_me,
                status=pb_enum(pb.TaskStatus, status, "TASK_STATUS_"),
                due_soon=due_soon,
                overdue=overdue,
                assignment_id=id_text(assignment_id),
            ),
            token=caller.token,
        )
    return TaskList(items=[Task.from_proto(t) for t in resp.tasks], next_cursor=or_none(resp.page.next_cursor))


@router.patch(
    "/tasks/{task_id}",
    response_model=Task,
    summary="Change a task (JSON merge patch; tasks.write)",
    description="Members present are changed, absent ones kept (RFC 7396): `title`, `description` "
    "(nullable), `assignee_id`, `due_at` (nullable), `priority`, `status`. A patch must change at least one.",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def update_task(
    task_id: TaskId,
    patch: Annotated[TaskPatch, Body(media_type=MERGE_PATCH)],
    caller: CallerDep,
    ops: OpsDep,
) -> Task:
    paths = patch.mask()
    if not paths:
        # Never an empty update_mask (AIP-134: "replace every field"), and there is no
        # single-task read to answer instead.
        raise RequestValidationError(
            [
                {
                    "type": "missing",
                    "loc": ("body",),
                    "msg": "A patch must change at least one of: " + ", ".join(TASK_PATCHABLE),
                }
            ]
        )
    with ops_field_names({**PATH_ID, "task": "", "update_mask": "body"}):
        resp = await ops.update_task(
            pb.UpdateTaskRequest(id=str(task_id), task=patch.to_proto(), update_mask=FieldMask(paths=paths)),
            token=caller.token,
        )
    return Task.from_proto(resp.task)


@router.post(
    "/tasks/{task_id}/done",
    response_model=Task,
    summary="Mark a task done (tasks.write)",
    description="Idempotent: a done task stays done and is answered as it is.",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def mark_task_done(task_id: TaskId, caller: CallerDep, ops: OpsDep) -> Task:
    with ops_field_names(PATH_ID):
        resp = await ops.mark_task_done(pb.MarkTaskDoneRequest(id=str(task_id)), token=caller.token)
    return Task.from_proto(resp.task)


@analytics_router.get(
    "/analytics/overview",
    response_model=AnalyticsOverview,
    summary="Operational counters of the tenant (analytics.read)",
    description="Assignments and channel requests by status, open and overdue tasks, notification outbox "
    "failures; zeros when there is no data.",
    responses=problem_responses(401, 403, 503),
)
async def analytics_overview(caller: CallerDep, ops: OpsDep) -> AnalyticsOverview:
    resp = await ops.get_analytics_overview(pb.GetAnalyticsOverviewRequest(), token=caller.token)
    return AnalyticsOverview.from_proto(resp)
