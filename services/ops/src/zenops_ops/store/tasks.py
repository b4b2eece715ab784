"""tasks: one statement per operation, under the caller's tenant (RLS).

Every read computes `overdue` with the database clock (OVERDUE below), the very predicate
the `overdue` filter uses, so flags and filters agree and nothing stored can go stale.
Visibility (domain.tasks.Viewer) is part of every statement's WHERE: a task the caller may
not see is simply not found.

An assignment linked at creation must be visible to the tenant: the check is an EXISTS
under RLS in the INSERT itself (a foreign key alone would accept another tenant's
assignment, since PostgreSQL checks foreign keys without row-level security).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.tasks import DONE, DUE_SOON_WINDOW, NewTask, Task, TaskFilter, Viewer, assignment_not_found
from . import violated_constraint

OVERDUE = "COALESCE(t.status <> 'DONE' AND t.due_at < now(), false)"
COLUMNS = f"""
    t.id::text AS id, t.title, t.description, t.assignment_id::text AS assignment_id, t.assignee_id, t.created_by,
    t.due_at, t.priority, t.status, {OVERDUE} AS overdue, t.done_at, t.created_at, t.updated_at, t.version
"""
VISIBLE = "(CAST(:all AS boolean) OR t.assignee_id = :me OR t.created_by = :me)"

_INSERT = text(f"""
    INSERT INTO tasks AS t (id, tenant_id, title, description, assignment_id, assignee_id, created_by, due_at,
                            priority)
    SELECT CAST(:id AS uuid), CAST(:tid AS uuid), :title, :description, CAST(:aid AS uuid), :assignee, :creator,
           CAST(:due_at AS timestamptz), :priority
    WHERE CAST(:aid AS uuid) IS NULL OR EXISTS (SELECT 1 FROM assignments a WHERE a.id = CAST(:aid AS uuid))
    RETURNING {COLUMNS}
""")
_GET = text(f"SELECT {COLUMNS} FROM tasks t WHERE t.id = CAST(:id AS uuid) AND {VISIBLE}")
_GET_FOR_UPDATE = text(f"SELECT {COLUMNS} FROM tasks t WHERE t.id = CAST(:id AS uuid) AND {VISIBLE} FOR UPDATE")
_MARK_DONE = text(f"""
    UPDATE tasks AS t SET status = 'DONE', done_at = now(), updated_at = now(), version = t.version + 1
    WHERE t.id = CAST(:id AS uuid) AND {VISIBLE} AND t.status <> 'DONE'
    RETURNING {COLUMNS}
""")

# column → SET expression of UpdateTask (status also decides done_at: kept when it stays
# DONE, stamped when it becomes DONE, cleared otherwise; the right-hand side sees the old row).
_SETS = {
    "title": "title = :title",
    "description": "description = :description",
    "assignee_id": "assignee_id = :assignee_id",
    "due_at": "due_at = CAST(:due_at AS timestamptz)",
    "priority": "priority = :priority",
    "status": (
        "status = :status, done_at = CASE WHEN CAST(:status AS text) = 'DONE' THEN COALESCE(t.done_at, now()) END"
    ),
}


def task_of(r) -> Task:
    return Task(
        id=r.id,
        title=r.title,
        description=r.description,
        assignment_id=r.assignment_id,
        assignee_id=r.assignee_id,
        created_by=r.created_by,
        due_at=r.due_at,
        priority=r.priority,
        status=r.status,
        overdue=r.overdue,
        done_at=r.done_at,
        created_at=r.created_at,
        updated_at=r.updated_at,
        version=r.version,
    )


def _seen_by(viewer: Viewer) -> dict:
    return {"all": viewer.sees_all, "me": viewer.person}


async def insert(conn: AsyncConnection, *, task_id: str, tenant_id: str, task: NewTask, creator: str) -> Task | None:
    """The new task; None when its assignment does not exist in the tenant."""
    try:
        row = (
            await conn.execute(
                _INSERT,
                {
                    "id": task_id,
                    "tid": tenant_id,
                    "title": task.title,
                    "description": task.description,
                    "aid": task.assignment_id,
                    "assignee": task.assignee_id,
                    "creator": creator,
                    "due_at": task.due_at,
                    "priority": task.priority,
                },
            )
        ).first()
    except IntegrityError as exc:
        if violated_constraint(exc) == "tasks_assignment_id_fkey":
            raise assignment_not_found(task.assignment_id or "") from None
        raise
    return task_of(row) if row else None


async def get(conn: AsyncConnection, task_id: str, viewer: Viewer, *, for_update: bool = False) -> Task | None:
    row = (await conn.execute(_GET_FOR_UPDATE if for_update else _GET, {"id": task_id, **_seen_by(viewer)})).first()
    return task_of(row) if row else None


async def update(conn: AsyncConnection, task_id: str, changes: dict) -> Task:
    """Apply `changes` (column → new value, non-empty) to a task the caller has locked."""
    sets = ", ".join(_SETS[name] for name in changes)
    row = (
        await conn.execute(
            text(
                f"UPDATE tasks AS t SET {sets}, updated_at = now(), version = t.version + 1 "
                f"WHERE t.id = CAST(:id AS uuid) RETURNING {COLUMNS}"
            ),
            {**changes, "id": task_id},
        )
    ).one()
    return task_of(row)


async def mark_done(conn: AsyncConnection, task_id: str, viewer: Viewer) -> Task | None:
    """The task, now done; None when it was already done or is not visible (one statement
    for the usual case)."""
    row = (await conn.execute(_MARK_DONE, {"id": task_id, **_seen_by(viewer)})).first()
    return task_of(row) if row else None


async def page(
    conn: AsyncConnection, viewer: Viewer, where: TaskFilter, *, after: tuple[datetime, str] | None, limit: int
) -> list[Task]:
    """Newest first; `after` = (created_at, id) of the previous page's last task."""
    clauses = [VISIBLE]
    params: dict = {**_seen_by(viewer), "limit": limit}
    if where.assignee_id is not None:
        clauses.append("t.assignee_id = :assignee")
        params["assignee"] = where.assignee_id
    if where.status is not None:
        clauses.append("t.status = :status")
        params["status"] = where.status
    if where.due_soon:
        clauses.append(f"t.status <> '{DONE}' AND t.due_at >= now() AND t.due_at < now() + CAST(:window AS interval)")
        params["window"] = DUE_SOON_WINDOW
    if where.overdue:
        clauses.append(OVERDUE)
    if where.assignment_id is not None:
        clauses.append("t.assignment_id = CAST(:aid AS uuid)")
        params["aid"] = where.assignment_id
    if after is not None:
        clauses.append("(t.created_at, t.id) < (CAST(:after_at AS timestamptz), CAST(:after_id AS uuid))")
        params.update(after_at=after[0], after_id=after[1])
    rows = await conn.execute(
        text(
            f"SELECT {COLUMNS} FROM tasks t WHERE {' AND '.join(clauses)} "
            "ORDER BY t.created_at DESC, t.id DESC LIMIT :limit"
        ),
        params,
    )
    return [task_of(r) for r in rows]
