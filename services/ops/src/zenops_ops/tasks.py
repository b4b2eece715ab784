"""Tasks: create, list, update, mark done (rules: domain.tasks; SQL: store.tasks).

Each use case owns its transaction, scoped to the caller's tenant, except `create`, which
runs in the transaction of its idempotency key (the servicer's `idempotent_as()`). A task linked to an
assignment leaves an entry on that assignment's activity trail when it is created, changed
or done, in the same transaction as the change.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops_kit.fields import invalid, is_uuid, parse_uuid
from zenops_kit.paging import decode_cursor, encode_cursor, page_limit
from zenops_kit.rls import scoped_tx

from .api.caller import Caller
from .domain import tasks as rules
from .domain.tasks import NewTask, Task, TaskFilter
from .store import activity
from .store import tasks as store

CURSOR_KIND = "tasks"


def viewer(caller: Caller) -> rules.Viewer:
    rules.require_staff(caller.is_portal)
    return rules.viewer(caller.actor, caller.ctx.roles)


async def create(conn: AsyncConnection, caller: Caller, task: NewTask, *, trace_id: str = "") -> Task:
    """The new task, in the caller's transaction (the servicer runs it under its idempotency
    key). NOT_FOUND `assignment_id` when the assignment is not the tenant's."""
    rules.require_staff(caller.is_portal)
    creator = rules.person(caller.actor)
    created = await store.insert(
        conn, task_id=str(uuid.uuid4()), tenant_id=caller.tenant_id, task=task, creator=creator
    )
    if created is None:
        raise rules.assignment_not_found(task.assignment_id or "")
    if created.assignment_id:
        await activity.record(
            conn,
            tenant_id=caller.tenant_id,
            kind=rules.TASK_CREATED,
            actor=creator,
            summary=f"Task created: {created.title}",
            detail=rules.activity_detail(created),
            assignment_id=created.assignment_id,
            trace_id=trace_id,
        )
    return created


async def list_page(
    engine: AsyncEngine,
    caller: Caller,
    *,
    limit: int,
    cursor: str,
    assigned_to_me: bool,
    status: str | None,
    due_soon: bool,
    overdue: bool,
    assignment_id: str,
) -> tuple[list[Task], str]:
    """Newest first, the caller's visible tasks matching every filter given."""
    who = viewer(caller)
    where: TaskFilter = rules.list_filter(
        me=who.person,
        assigned_to_me=assigned_to_me,
        status=status,
        due_soon=due_soon,
        overdue=overdue,
        assignment_id=assignment_id,
    )
    limit = page_limit(limit)
    after = _after(decode_cursor(cursor, CURSOR_KIND, 2))
    async with scoped_tx(engine, caller.tenant_id) as conn:
        rows = await store.page(conn, who, where, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(CURSOR_KIND, [rows[-1].created_at.isoformat(), rows[-1].id]) if more else ""
    return rows, next_cursor


def _after(position: list[str] | None) -> tuple[datetime, str] | None:
    if position is None:
        return None
    try:
        at = datetime.fromisoformat(position[0])
    except ValueError:
        at = None
    if at is None or at.tzinfo is None or not is_uuid(position[1]):
        raise invalid("page.cursor", "is not a cursor returned by this list")
    return at, position[1]


async def update(engine: AsyncEngine, caller: Caller, task_id: str, changes: dict, *, trace_id: str = "") -> Task:
    """`changes`: the masked fields' checked values (domain.tasks.clean_changes). Only what
    differs is written (version + 1); an update that changes nothing answers the task as is."""
    task_id = parse_uuid(task_id, "id")
    who = viewer(caller)
    async with scoped_tx(engine, caller.tenant_id) as conn:
        task = await store.get(conn, task_id, who, for_update=True)
        if task is None:
            raise rules.task_not_found(task_id)
        delta = rules.diff(task, changes)
        if not delta:
            return task
        updated = await store.update(conn, task_id, delta)
        if updated.assignment_id:
            done = delta.get("status") == rules.DONE
            await activity.record(
                conn,
                tenant_id=caller.tenant_id,
                kind=rules.TASK_DONE if done else rules.TASK_UPDATED,
                actor=who.person,
                summary=f"Task {'done' if done else 'updated'}: {updated.title}",
                detail=rules.activity_detail(updated, delta),
                assignment_id=updated.assignment_id,
                trace_id=trace_id,
            )
        return updated


async def mark_done(engine: AsyncEngine, caller: Caller, task_id: str, *, trace_id: str = "") -> Task:
    """The task, done. Idempotent: a task already done is answered unchanged (same done_at)."""
    task_id = parse_uuid(task_id, "id")
    who = viewer(caller)
    async with scoped_tx(engine, caller.tenant_id) as conn:
        task = await store.mark_done(conn, task_id, who)
        if task is None:
            task = await store.get(conn, task_id, who)
            if task is None:
                raise rules.task_not_found(task_id)
            return task
        if task.assignment_id:
            await activity.record(
                conn,
                tenant_id=caller.tenant_id,
                kind=rules.TASK_DONE,
                actor=who.person,
                summary=f"Task done: {task.title}",
                detail=rules.activity_detail(task),
                assignment_id=task.assignment_id,
                trace_id=trace_id,
            )
        return task
