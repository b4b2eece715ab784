"""Tasks: the rules, without I/O.

- A task has a title, an optional assignment, an assignee (a user) and its creator, a due
  time, a priority (LOW | MEDIUM | HIGH) and a status (OPEN | DONE | BLOCKED).
- Visibility: super admins and ops managers see every task of the tenant; everyone else
  sees the tasks assigned to them or created by them. A task one cannot see does not exist
  for them (NOT_FOUND, never PERMISSION_DENIED: its id tells them nothing).
- `overdue` = due time passed and not done. It is never stored: the store computes it on
  every read against the database clock, with the same predicate the `overdue` filter uses,
  so a list's flags and its filter always agree and are never stale.
- `due_soon` = not done and due within the next DUE_SOON_WINDOW (already overdue tasks are
  not "due soon": they have their own filter).
- Status DONE stamps `done_at` (kept when the task was already done); any other status
  clears it. Marking a done task done changes nothing (same `done_at`, same version).
- Tasks are the firm's staff's work: portal users (channel partners) have none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from zenops_kit.errors import PermissionDenied
from zenops_kit.fields import invalid, is_uuid, not_found, optional_uuid, parse_uuid, text

MAX_TITLE = 200
MAX_DESCRIPTION = 5000
DUE_SOON_WINDOW = timedelta(hours=48)
# Roles that see every task of the tenant (the rest: assigned to or created by them).
SEE_ALL_ROLES = frozenset({"super_admin", "ops_manager"})

PRIORITIES = ("LOW", "MEDIUM", "HIGH")
STATUSES = ("OPEN", "DONE", "BLOCKED")
DONE = "DONE"
DEFAULT_PRIORITY = "MEDIUM"

# UpdateTask's update_mask paths, in the order they are applied and reported.
UPDATABLE = ("title", "description", "assignee_id", "due_at", "priority", "status")

# A due time outside these years is a typo, not a plan.
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)

# Activity kinds written on a linked assignment's trail.
TASK_CREATED = "task.created"
TASK_UPDATED = "task.updated"
TASK_DONE = "task.done"


@dataclass(frozen=True)
class Task:
    id: str
    title: str
    description: str
    assignment_id: str | None
    assignee_id: str
    created_by: str
    due_at: datetime | None
    priority: str
    status: str
    overdue: bool
    done_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


@dataclass(frozen=True)
class NewTask:
    title: str
    description: str
    assignment_id: str | None
    assignee_id: str
    due_at: datetime | None
    priority: str


@dataclass(frozen=True)
class Viewer:
    """Whose tasks a caller sees: `person` (the caller as tasks record it) and whether they
    see the whole tenant's."""

    person: str
    sees_all: bool


@dataclass(frozen=True)
class TaskFilter:
    assignee_id: str | None = None  # assigned_to_me: the viewer
    status: str | None = None
    due_soon: bool = False
    overdue: bool = False
    assignment_id: str | None = None


def person(actor: str) -> str:
    """The caller as task rows record it: a user id in canonical (lower-case) form, or the
    service subject as is."""
    return actor.lower() if is_uuid(actor) else actor


def viewer(actor: str, roles: Iterable[str]) -> Viewer:
    return Viewer(person(actor), bool(SEE_ALL_ROLES.intersection(roles)))


def require_staff(is_portal: bool) -> None:
    if is_portal:
        raise PermissionDenied("tasks belong to the firm's staff, not to channel partners", reason="STAFF_ONLY")


def task_not_found(task_id: str):
    return not_found("task", task_id)


def assignment_not_found(assignment_id: str):
    return not_found("assignment", assignment_id, field="assignment_id")


def _due(value: datetime | None, field: str) -> datetime | None:
    if value is not None and not _EARLIEST <= value < _LATEST:
        raise invalid(field, "must be between the years 2000 and 2099")
    return value


def _title(value: str, field: str) -> str:
    return text(value, field, max_length=MAX_TITLE)


def _description(value: str, field: str) -> str:
    return text(value, field, max_length=MAX_DESCRIPTION, required=False)


def new_task(
    *,
    title: str,
    description: str,
    assignment_id: str,
    assignee_id: str,
    due_at: datetime | None,
    priority: str,
    actor: str,
) -> NewTask:
    """CreateTask's input, checked (errors name the request's fields). An empty assignee is
    the caller, who must then be a user."""
    title = _title(title, "title")
    description = _description(description, "description")
    assignment = optional_uuid(assignment_id, "assignment_id")
    if assignee_id:
        assignee = parse_uuid(assignee_id, "assignee_id")
    elif is_uuid(actor):
        assignee = actor.lower()
    else:
        raise invalid("assignee_id", "is required when a service creates a task")
    return NewTask(
        title=title,
        description=description,
        assignment_id=assignment,
        assignee_id=assignee,
        due_at=_due(due_at, "due_at"),
        priority=priority,
    )


def mask_paths(paths: Iterable[str]) -> list[str]:
    """UpdateTask's update_mask: known paths only, at least one, each once."""
    paths = list(paths)
    unknown = [p for p in paths if p not in UPDATABLE]
    if unknown:
        raise invalid("update_mask", f"unknown path {unknown[0]!r}; updatable: " + ", ".join(UPDATABLE))
    if not paths:
        raise invalid("update_mask", "must name the fields to update: " + ", ".join(UPDATABLE))
    return [p for p in UPDATABLE if p in paths]


def clean_changes(values: dict) -> dict:
    """The masked fields' new values (enums already translated to their names, due_at None to
    clear it), checked; errors name `task.<field>`."""
    cleaned = dict(values)
    if "title" in cleaned:
        cleaned["title"] = _title(cleaned["title"], "task.title")
    if "description" in cleaned:
        cleaned["description"] = _description(cleaned["description"], "task.description")
    if "assignee_id" in cleaned:
        cleaned["assignee_id"] = parse_uuid(cleaned["assignee_id"], "task.assignee_id")
    if "due_at" in cleaned:
        cleaned["due_at"] = _due(cleaned["due_at"], "task.due_at")
    return cleaned


def diff(task: Task, changes: dict) -> dict:
    """Only the changes that change something (an update that changes nothing is no update:
    same version, no activity)."""
    return {k: v for k, v in changes.items() if getattr(task, k) != v}


def list_filter(
    *, me: str, assigned_to_me: bool, status: str | None, due_soon: bool, overdue: bool, assignment_id: str
) -> TaskFilter:
    return TaskFilter(
        assignee_id=me if assigned_to_me else None,
        status=status,
        due_soon=due_soon,
        overdue=overdue,
        assignment_id=optional_uuid(assignment_id, "assignment_id"),
    )


def activity_detail(task: Task, fields: Iterable[str] = ()) -> dict:
    """What a linked assignment's activity entry records about the task."""
    detail = {
        "task_id": task.id,
        "title": task.title,
        "assignee_id": task.assignee_id,
        "status": task.status,
        "priority": task.priority,
        "due_at": task.due_at.isoformat() if task.due_at else None,
    }
    fields = list(fields)
    if fields:
        detail["fields"] = fields
    return detail
