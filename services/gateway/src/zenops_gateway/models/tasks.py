"""HTTP models of tasks (create, merge patch, mark done) and the analytics overview, with
their conversions from zenops.ops.v1."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, Field, field_validator

from zenops.ops.v1 import ops_pb2 as pb

from .ops_common import (
    Notes,
    Priority,
    Strict,
    TaskStatus,
    UtcDatetime,
    enum_name,
    id_text,
    not_null,
    or_none,
    pb_enum,
    timestamp,
    to_timestamp,
)

Title = Annotated[str, Field(min_length=1, max_length=200)]


class Task(BaseModel):
    id: str
    title: str
    description: str | None
    assignment_id: str | None
    assignee_id: str | None
    created_by: str | None
    due_at: datetime | None
    priority: Priority
    status: TaskStatus
    overdue: bool = Field(description="Computed when read: `due_at` has passed and the task is not done.")
    done_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def from_proto(cls, t: pb.Task) -> Task:
        return cls(
            id=t.id,
            title=t.title,
            description=or_none(t.description),
            assignment_id=or_none(t.assignment_id),
            assignee_id=or_none(t.assignee_id),
            created_by=or_none(t.created_by),
            due_at=timestamp(t, "due_at"),
            priority=enum_name(pb.Priority, t.priority, "PRIORITY_"),
            status=enum_name(pb.TaskStatus, t.status, "TASK_STATUS_"),
            overdue=t.overdue,
            done_at=timestamp(t, "done_at"),
            created_at=timestamp(t, "created_at"),
            updated_at=timestamp(t, "updated_at"),
        )


class TaskList(BaseModel):
    items: list[Task]
    next_cursor: str | None = Field(description="Cursor of the next page; null on the last page.")


class CreateTaskBody(Strict):
    title: Title
    description: Notes | None = None
    assignment_id: UUID | None = None
    assignee_id: UUID | None = Field(None, description="Default: the caller.")
    due_at: UtcDatetime | None = None
    priority: Priority | None = Field(None, description="Default `medium`.")

    def to_proto(self, idempotency_key: str | None) -> pb.CreateTaskRequest:
        return pb.CreateTaskRequest(
            title=self.title,
            description=self.description or "",
            assignment_id=id_text(self.assignment_id),
            assignee_id=id_text(self.assignee_id),
            due_at=to_timestamp(self.due_at),
            priority=pb_enum(pb.Priority, self.priority, "PRIORITY_"),
            idempotency_key=idempotency_key or "",
        )


# Task members a merge patch may change (UpdateTaskRequest's updatable fields).
TASK_PATCHABLE = ("title", "description", "assignee_id", "due_at", "priority", "status")


class TaskPatch(Strict):
    """JSON merge patch (RFC 7396) of a task: members present are changed, absent ones kept;
    `description` and `due_at` may be `null` (cleared). Setting `status` to `done` is the
    same as mark-done."""

    title: Title | None = None
    description: Notes | None = None
    assignee_id: UUID | None = None
    due_at: UtcDatetime | None = None
    priority: Priority | None = None
    status: TaskStatus | None = None

    @field_validator("title", "assignee_id", "priority", "status")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        return not_null(value)

    def mask(self) -> list[str]:
        return sorted(set(TASK_PATCHABLE) & self.model_fields_set)

    def to_proto(self) -> pb.Task:
        return pb.Task(
            title=self.title or "",
            description=self.description or "",
            assignee_id=id_text(self.assignee_id),
            due_at=to_timestamp(self.due_at),
            priority=pb_enum(pb.Priority, self.priority, "PRIORITY_"),
            status=pb_enum(pb.TaskStatus, self.status, "TASK_STATUS_"),
        )


class AnalyticsOverview(BaseModel):
    """Zero-safe counters of the caller's tenant (every status present, 0 when none)."""

    assignments_by_status: dict[str, int] = Field(description="Lower-case status → count.")
    open_tasks: int
    overdue_tasks: int
    channel_requests_by_status: dict[str, int] = Field(description="Lower-case status → count.")
    outbox_failed: int = Field(description="Notification outbox (0 until notifications exist).")
    outbox_dead: int

    @classmethod
    def from_proto(cls, r: pb.GetAnalyticsOverviewResponse) -> AnalyticsOverview:
        return cls(
            assignments_by_status={k.lower(): v for k, v in sorted(r.assignments_by_status.items())},
            open_tasks=r.open_tasks,
            overdue_tasks=r.overdue_tasks,
            channel_requests_by_status={k.lower(): v for k, v in sorted(r.channel_requests_by_status.items())},
            outbox_failed=r.outbox_failed,
            outbox_dead=r.outbox_dead,
        )
