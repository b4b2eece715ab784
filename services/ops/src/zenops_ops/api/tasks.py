"""RPCs of tasks (tasks.read / tasks.write): proto ↔ the use cases of zenops_ops.tasks."""

from __future__ import annotations

from datetime import UTC, datetime

from zenops.ops.v1 import ops_pb2 as pb
from zenops_kit.fields import choice, invalid
from zenops_kit.idempotency import idempotent_as

from .. import tasks
from ..domain import tasks as rules
from ..domain.tasks import Task
from .caller import caller, idempotency_key, trace_id
from .translate import PRIORITY_OF, PRIORITY_PB, TASK_STATUS_OF, TASK_STATUS_PB, ts


def task_pb(task: Task) -> pb.Task:
    message = pb.Task(
        id=task.id,
        title=task.title,
        description=task.description,
        assignment_id=task.assignment_id or "",
        assignee_id=task.assignee_id,
        created_by=task.created_by,
        priority=PRIORITY_PB[task.priority],
        status=TASK_STATUS_PB[task.status],
        overdue=task.overdue,
    )
    ts(message.due_at, task.due_at)
    ts(message.done_at, task.done_at)
    ts(message.created_at, task.created_at)
    ts(message.updated_at, task.updated_at)
    return message


def _time(message, name: str, field: str) -> datetime | None:
    """A Timestamp field as an aware UTC datetime (None when unset); INVALID_ARGUMENT `field`
    when it is not a representable time."""
    if not message.HasField(name):
        return None
    try:
        return getattr(message, name).ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        raise invalid(field, "is not a valid timestamp") from None


def _changes(request: pb.UpdateTaskRequest) -> dict:
    task = request.task
    values: dict = {}
    for path in rules.mask_paths(request.update_mask.paths):
        if path == "priority":
            values[path] = choice(task.priority, "task.priority", PRIORITY_OF)
        elif path == "status":
            values[path] = choice(task.status, "task.status", TASK_STATUS_OF)
        elif path == "due_at":
            values[path] = _time(task, "due_at", "task.due_at")
        else:
            values[path] = getattr(task, path)
    return rules.clean_changes(values)


class TaskRpcs:
    """Mixed into OpsServicer (self.engine, self.runtime)."""

    async def CreateTask(self, request, context):
        who = await caller(self.engine, context, "tasks.write")
        key = idempotency_key(request.idempotency_key, context)
        new = rules.new_task(
            title=request.title,
            description=request.description,
            assignment_id=request.assignment_id,
            assignee_id=request.assignee_id,
            due_at=_time(request, "due_at", "due_at"),
            priority=choice(request.priority, "priority", PRIORITY_OF, default=rules.DEFAULT_PRIORITY),
            actor=who.actor,
        )
        trace = trace_id()

        async def run(conn):
            return pb.CreateTaskResponse(task=task_pb(await tasks.create(conn, who, new, trace_id=trace)))

        return await idempotent_as(
            self.engine, who, key, "CreateTask", request, run=run, decode=pb.CreateTaskResponse.FromString
        )

    async def ListTasks(self, request, context):
        who = await caller(self.engine, context, "tasks.read")
        status = choice(request.status, "status", TASK_STATUS_OF) if request.status else None
        rows, next_cursor = await tasks.list_page(
            self.engine,
            who,
            limit=request.page.limit,
            cursor=request.page.cursor,
            assigned_to_me=request.assigned_to_me,
            status=status,
            due_soon=request.due_soon,
            overdue=request.overdue,
            assignment_id=request.assignment_id,
        )
        response = pb.ListTasksResponse(tasks=[task_pb(t) for t in rows])
        response.page.next_cursor = next_cursor
        return response

    async def UpdateTask(self, request, context):
        who = await caller(self.engine, context, "tasks.write")
        task = await tasks.update(self.engine, who, request.id, _changes(request), trace_id=trace_id())
        return pb.UpdateTaskResponse(task=task_pb(task))

    async def MarkTaskDone(self, request, context):
        who = await caller(self.engine, context, "tasks.write")
        task = await tasks.mark_done(self.engine, who, request.id, trace_id=trace_id())
        return pb.MarkTaskDoneResponse(task=task_pb(task))
