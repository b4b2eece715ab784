"""Tasks against the real ops service: create / list / update / mark done, the list filters
(due_soon and overdue computed when read), the visibility split between managers and
everyone else, idempotency, validation naming fields, capabilities and tenant isolation.

Assignments are written by another area: the ones these tests link are inserted with SQL."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from ops_harness import MANAGER_CAPS, VALUER_CAPS, pb, running_ops

from zenops.common.v1 import common_pb2

_REFERENCES = itertools.count(1)


@pytest.fixture
def ops(start_service):
    return lambda **settings: running_ops(start_service, run_workers=False, **settings)


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def stamp(value: datetime) -> Timestamp:
    message = Timestamp()
    message.FromDatetime(value)
    return message


def hours(n: float) -> Timestamp:
    return stamp(datetime.now(UTC) + timedelta(hours=n))


async def assignment(h, *, tenant: str | None = None, assignment_id: str | None = None) -> str:
    """A DIRECT assignment row of `tenant` (the harness tenant by default)."""
    tenant = tenant or h.tenant
    assignment_id = assignment_id or str(uuid.uuid4())
    await h.sql(
        "INSERT INTO assignments (id, tenant_id, reference_number, source_type, created_by) "
        "VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), :ref, 'DIRECT', :by)",
        {"id": assignment_id, "tid": tenant, "ref": f"ZA-2026-{next(_REFERENCES):06d}", "by": h.manager_id},
        tenant=tenant,
    )
    return assignment_id


async def partner_channel(h) -> str:
    """A channel of the firm and its channel_directory row (what CreateChannel writes)."""
    channel_id = str(uuid.uuid4())
    await h.sql(
        "INSERT INTO channels (id, tenant_id, name, channel_type, commission_mode, created_by) "
        "VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), :name, 'AGENT', 'FLAT', :by)",
        {"id": channel_id, "tid": h.tenant, "name": f"Partner {channel_id[:8]}", "by": h.manager_id},
    )
    await h.sql(
        "INSERT INTO channel_directory (channel_id, tenant_id) VALUES (CAST(:c AS uuid), CAST(:t AS uuid))",
        {"c": channel_id, "t": h.tenant},
        tenant=None,
    )
    return channel_id


def manager(h, *, role: str = "ops_manager", tenant: str | None = None) -> tuple[str, str]:
    return h.user(MANAGER_CAPS, roles=[role], tenant=tenant)


async def create(h, token: str, **fields) -> pb.Task:
    fields.setdefault("title", "Collect sale deed")
    return (await h.call("CreateTask", pb.CreateTaskRequest(**fields), token)).task


async def listed(h, token: str, **filters) -> list[pb.Task]:
    return list((await h.call("ListTasks", pb.ListTasksRequest(**filters), token)).tasks)


async def version(h, task_id: str) -> int:
    return (await h.sql("SELECT version FROM tasks WHERE id = CAST(:id AS uuid)", {"id": task_id}))[0].version


async def test_create_list_update_and_mark_done(ops):
    async with ops() as h:
        me, token = manager(h)
        plain = await create(h, token, title="  Call the bank  ")
        assert (plain.title, plain.assignee_id, plain.created_by) == ("Call the bank", me, me)
        assert (plain.priority, plain.status, plain.overdue) == (pb.PRIORITY_MEDIUM, pb.TASK_STATUS_OPEN, False)
        assert not plain.HasField("due_at") and not plain.HasField("done_at") and plain.assignment_id == ""
        assert plain.HasField("created_at") and plain.HasField("updated_at")

        work = await assignment(h)
        valuer = str(uuid.uuid4())
        due = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
        linked = await create(
            h,
            token,
            title="Site visit",
            description="Measure the carpet area",
            assignment_id=work,
            assignee_id=valuer.upper(),
            due_at=stamp(due),
            priority=pb.PRIORITY_HIGH,
        )
        assert (linked.assignment_id, linked.assignee_id, linked.priority) == (work, valuer, pb.PRIORITY_HIGH)
        assert linked.due_at.ToDatetime(tzinfo=UTC) == due and linked.description == "Measure the carpet area"
        trail = await h.activities(assignment_id=work)
        assert [(a["kind"], a["actor"]) for a in trail] == [("task.created", me)]
        assert trail[0]["detail"]["task_id"] == linked.id and trail[0]["detail"]["assignee_id"] == valuer

        # newest first, paged by cursor
        third = await create(h, token, title="Draft the report")
        assert [t.id for t in await listed(h, token)] == [third.id, linked.id, plain.id]
        first = await h.call("ListTasks", pb.ListTasksRequest(page=common_pb2.PageRequest(limit=2)), token)
        assert [t.id for t in first.tasks] == [third.id, linked.id] and first.page.next_cursor
        rest = await h.call(
            "ListTasks", pb.ListTasksRequest(page=common_pb2.PageRequest(limit=2, cursor=first.page.next_cursor)), token
        )
        assert [t.id for t in rest.tasks] == [plain.id] and rest.page.next_cursor == ""

        # update: only the masked fields; done stamps done_at, reopening clears it
        changed = (
            await h.call(
                "UpdateTask",
                pb.UpdateTaskRequest(
                    id=linked.id,
                    task=pb.Task(title="Site visit (2nd)", priority=pb.PRIORITY_LOW, description="ignored"),
                    update_mask=mask("title", "priority"),
                ),
                token,
            )
        ).task
        assert (changed.title, changed.priority, changed.description) == (
            "Site visit (2nd)",
            pb.PRIORITY_LOW,
            "Measure the carpet area",
        )
        assert await version(h, linked.id) == 2
        done = (
            await h.call(
                "UpdateTask",
                pb.UpdateTaskRequest(
                    id=linked.id, task=pb.Task(status=pb.TASK_STATUS_DONE), update_mask=mask("status")
                ),
                token,
            )
        ).task
        assert done.status == pb.TASK_STATUS_DONE and done.HasField("done_at")
        reopened = (
            await h.call(
                "UpdateTask",
                pb.UpdateTaskRequest(
                    id=linked.id, task=pb.Task(status=pb.TASK_STATUS_BLOCKED), update_mask=mask("status", "due_at")
                ),
                token,
            )
        ).task
        assert reopened.status == pb.TASK_STATUS_BLOCKED and not reopened.HasField("done_at")
        assert not reopened.HasField("due_at")  # due_at in the mask and unset: cleared
        assert await version(h, linked.id) == 4
        # an update that changes nothing is no update
        same = (
            await h.call(
                "UpdateTask",
                pb.UpdateTaskRequest(id=linked.id, task=pb.Task(title="Site visit (2nd)"), update_mask=mask("title")),
                token,
            )
        ).task
        assert same == reopened and await version(h, linked.id) == 4
        reassigned = (
            await h.call(
                "UpdateTask",
                pb.UpdateTaskRequest(id=plain.id, task=pb.Task(assignee_id=valuer), update_mask=mask("assignee_id")),
                token,
            )
        ).task
        assert reassigned.assignee_id == valuer and reassigned.created_by == me

        # mark done: idempotent, same done_at, one version bump and one activity entry
        marked = (await h.call("MarkTaskDone", pb.MarkTaskDoneRequest(id=linked.id), token)).task
        assert marked.status == pb.TASK_STATUS_DONE and marked.HasField("done_at")
        again = (await h.call("MarkTaskDone", pb.MarkTaskDoneRequest(id=linked.id), token)).task
        assert again == marked and await version(h, linked.id) == 5
        kinds = [a["kind"] for a in await h.activities(assignment_id=work)]
        assert kinds == ["task.created", "task.updated", "task.done", "task.updated", "task.done"]
        detail = (await h.activities(assignment_id=work))[1]["detail"]
        assert detail["fields"] == ["title", "priority"]
        # DONE by UpdateTask of a done task keeps its done_at
        kept = (
            await h.call(
                "UpdateTask",
                pb.UpdateTaskRequest(
                    id=linked.id,
                    task=pb.Task(status=pb.TASK_STATUS_DONE, priority=pb.PRIORITY_HIGH),
                    update_mask=mask("status", "priority"),
                ),
                token,
            )
        ).task
        assert kept.done_at == marked.done_at and kept.priority == pb.PRIORITY_HIGH


async def test_filters_due_soon_overdue_and_overdue_computed_when_read(ops):
    async with ops() as h:
        me, token = manager(h)
        other = str(uuid.uuid4())
        work = await assignment(h)
        late = await create(h, token, title="late", due_at=hours(-1))
        soon = await create(h, token, title="soon", due_at=hours(2), assignment_id=work)
        edge = await create(h, token, title="edge of window", due_at=hours(47.5), assignee_id=other)
        later = await create(h, token, title="later", due_at=hours(72))
        undated = await create(h, token, title="undated", assignment_id=work, assignee_id=other)
        late_done = await create(h, token, title="late but done", due_at=hours(-5))
        await h.call("MarkTaskDone", pb.MarkTaskDoneRequest(id=late_done.id), token)
        soon_done = await create(h, token, title="soon but done", due_at=hours(1))
        await h.call("MarkTaskDone", pb.MarkTaskDoneRequest(id=soon_done.id), token)

        assert late.overdue and not soon.overdue
        flags = {t.title: t.overdue for t in await listed(h, token)}
        assert flags == {
            "late": True,
            "soon": False,
            "edge of window": False,
            "later": False,
            "undated": False,
            "late but done": False,
            "soon but done": False,
        }
        assert [t.id for t in await listed(h, token, overdue=True)] == [late.id]
        assert [t.id for t in await listed(h, token, due_soon=True)] == [edge.id, soon.id]
        assert [t.id for t in await listed(h, token, assignment_id=work)] == [undated.id, soon.id]
        assert [t.id for t in await listed(h, token, assigned_to_me=True, due_soon=True)] == [soon.id]
        assert {t.id for t in await listed(h, token, status=pb.TASK_STATUS_DONE)} == {late_done.id, soon_done.id}
        assert [t.id for t in await listed(h, token, status=pb.TASK_STATUS_OPEN, assigned_to_me=True)] == [
            later.id,
            soon.id,
            late.id,
        ]
        assert await listed(h, token, due_soon=True, overdue=True) == []

        # never stale: the stored row has no overdue column; moving the due date moves the flag
        columns = await h.sql("SELECT column_name FROM information_schema.columns WHERE table_name = 'tasks'")
        assert "overdue" not in {c.column_name for c in columns}
        moved = (
            await h.call(
                "UpdateTask",
                pb.UpdateTaskRequest(id=later.id, task=pb.Task(due_at=hours(-0.5)), update_mask=mask("due_at")),
                token,
            )
        ).task
        assert moved.overdue
        assert {t.id for t in await listed(h, token, overdue=True)} == {late.id, later.id}
        # done: no longer overdue
        assert not (await h.call("MarkTaskDone", pb.MarkTaskDoneRequest(id=late.id), token)).task.overdue
        assert [t.id for t in await listed(h, token, overdue=True)] == [later.id]
        assert me


async def test_visibility_managers_see_all_others_own_or_created(ops):
    async with ops() as h:
        boss, boss_token = manager(h)
        admin, admin_token = manager(h, role="super_admin")
        alice, alice_token = h.user(VALUER_CAPS, roles=["valuer"])
        bob, bob_token = h.user(VALUER_CAPS, roles=["valuer"])

        for_alice = await create(h, boss_token, title="for alice", assignee_id=alice)
        by_alice_for_bob = await create(h, alice_token, title="alice asks bob", assignee_id=bob)
        alice_own = await create(h, alice_token, title="alice's own")
        for_boss = await create(h, boss_token, title="boss's own")
        everything = [for_boss.id, alice_own.id, by_alice_for_bob.id, for_alice.id]

        assert [t.id for t in await listed(h, boss_token)] == everything
        assert [t.id for t in await listed(h, admin_token)] == everything
        assert [t.id for t in await listed(h, alice_token)] == [alice_own.id, by_alice_for_bob.id, for_alice.id]
        assert [t.id for t in await listed(h, alice_token, assigned_to_me=True)] == [alice_own.id, for_alice.id]
        assert [t.id for t in await listed(h, bob_token)] == [by_alice_for_bob.id]
        assert [t.id for t in await listed(h, boss_token, assigned_to_me=True)] == [for_boss.id]

        # others' tasks are invisible: NOT_FOUND on update and done, nothing changes
        for call, request in (
            ("UpdateTask", pb.UpdateTaskRequest(id=for_boss.id, task=pb.Task(title="x"), update_mask=mask("title"))),
            ("MarkTaskDone", pb.MarkTaskDoneRequest(id=for_boss.id)),
        ):
            err = await h.fails(call, request, bob_token)
            assert (err.code, err.reason, err.metadata.get("field")) == (
                grpc.StatusCode.NOT_FOUND,
                "TASK_NOT_FOUND",
                "id",
            )
        assert (await listed(h, boss_token, assigned_to_me=True))[0] == for_boss

        # the assignee and the creator may both act on a task; a manager on anyone's
        assert (
            await h.call("MarkTaskDone", pb.MarkTaskDoneRequest(id=by_alice_for_bob.id), bob_token)
        ).task.status == pb.TASK_STATUS_DONE
        reopened = (
            await h.call(
                "UpdateTask",
                pb.UpdateTaskRequest(
                    id=by_alice_for_bob.id, task=pb.Task(status=pb.TASK_STATUS_OPEN), update_mask=mask("status")
                ),
                alice_token,
            )
        ).task
        assert reopened.status == pb.TASK_STATUS_OPEN
        # handing the task to someone else hides it from the previous assignee (not the creator)
        await h.call(
            "UpdateTask",
            pb.UpdateTaskRequest(id=for_alice.id, task=pb.Task(assignee_id=bob), update_mask=mask("assignee_id")),
            alice_token,
        )
        assert for_alice.id not in {t.id for t in await listed(h, alice_token)}
        assert for_alice.id in {t.id for t in await listed(h, bob_token)}
        err = await h.fails("MarkTaskDone", pb.MarkTaskDoneRequest(id=for_alice.id), alice_token)
        assert err.code == grpc.StatusCode.NOT_FOUND
        assert (await h.call("MarkTaskDone", pb.MarkTaskDoneRequest(id=for_alice.id), admin_token)).task.HasField(
            "done_at"
        )
        assert boss and admin


async def test_validation_errors_name_their_fields(ops):
    async with ops() as h:
        _, token = manager(h)
        task = await create(h, token)
        cases = [
            (pb.CreateTaskRequest(title="   "), "title"),
            (pb.CreateTaskRequest(title="x" * 201), "title"),
            (pb.CreateTaskRequest(title="bell\x07"), "title"),
            (pb.CreateTaskRequest(title="ok", description="d" * 5001), "description"),
            (pb.CreateTaskRequest(title="ok", assignment_id="ZA-2026-000001"), "assignment_id"),
            (pb.CreateTaskRequest(title="ok", assignee_id="alice"), "assignee_id"),
            (pb.CreateTaskRequest(title="ok", priority=99), "priority"),
            (pb.CreateTaskRequest(title="ok", due_at=stamp(datetime(1999, 12, 31, tzinfo=UTC))), "due_at"),
            (pb.CreateTaskRequest(title="ok", due_at=Timestamp(seconds=10**12)), "due_at"),
            (pb.CreateTaskRequest(title="ok", idempotency_key="k" * 201), "idempotency_key"),
        ]
        for request, field in cases:
            err = await h.fails("CreateTask", request, token)
            assert err.code == grpc.StatusCode.INVALID_ARGUMENT, (request, err)
            assert [v.field for v in err.violations] == [field], (request, err)

        updates = [
            (
                pb.UpdateTaskRequest(id=task.id, task=pb.Task(title="x"), update_mask=mask("title", "created_by")),
                "update_mask",
            ),
            (pb.UpdateTaskRequest(id=task.id, task=pb.Task(title="x")), "update_mask"),
            (pb.UpdateTaskRequest(id=task.id, task=pb.Task(), update_mask=mask("title")), "task.title"),
            (
                pb.UpdateTaskRequest(id=task.id, task=pb.Task(description="d" * 5001), update_mask=mask("description")),
                "task.description",
            ),
            (pb.UpdateTaskRequest(id=task.id, task=pb.Task(), update_mask=mask("assignee_id")), "task.assignee_id"),
            (pb.UpdateTaskRequest(id=task.id, task=pb.Task(), update_mask=mask("priority")), "task.priority"),
            (pb.UpdateTaskRequest(id=task.id, task=pb.Task(status=7), update_mask=mask("status")), "task.status"),
            (
                pb.UpdateTaskRequest(
                    id=task.id, task=pb.Task(due_at=stamp(datetime(2200, 1, 1, tzinfo=UTC))), update_mask=mask("due_at")
                ),
                "task.due_at",
            ),
            (pb.UpdateTaskRequest(id="nope", task=pb.Task(title="x"), update_mask=mask("title")), "id"),
        ]
        for request, field in updates:
            err = await h.fails("UpdateTask", request, token)
            assert err.code == grpc.StatusCode.INVALID_ARGUMENT, (request, err)
            assert [v.field for v in err.violations] == [field], (request, err)

        lists = [
            (pb.ListTasksRequest(assignment_id="x"), "assignment_id"),
            (pb.ListTasksRequest(status=9), "status"),
            (pb.ListTasksRequest(page=common_pb2.PageRequest(cursor="garbage")), "page.cursor"),
            (pb.ListTasksRequest(page=common_pb2.PageRequest(limit=-1)), "page.limit"),
        ]
        for request, field in lists:
            err = await h.fails("ListTasks", request, token)
            assert [v.field for v in err.violations] == [field], (request, err)
        err = await h.fails("MarkTaskDone", pb.MarkTaskDoneRequest(id=""), token)
        assert [v.field for v in err.violations] == ["id"]

        # unknown ids: NOT_FOUND naming the field
        missing = str(uuid.uuid4())
        err = await h.fails("CreateTask", pb.CreateTaskRequest(title="ok", assignment_id=missing), token)
        assert (err.code, err.reason, err.metadata["field"]) == (
            grpc.StatusCode.NOT_FOUND,
            "ASSIGNMENT_NOT_FOUND",
            "assignment_id",
        )
        for call, request in (
            ("MarkTaskDone", pb.MarkTaskDoneRequest(id=missing)),
            ("UpdateTask", pb.UpdateTaskRequest(id=missing, task=pb.Task(title="x"), update_mask=mask("title"))),
        ):
            err = await h.fails(call, request, token)
            assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "TASK_NOT_FOUND")
        assert [t.id for t in await listed(h, token)] == [task.id]


async def test_idempotent_create_and_service_callers(ops):
    async with ops() as h:
        me, token = manager(h)
        request = pb.CreateTaskRequest(title="Chase the builder", idempotency_key="task-1")
        first = (await h.call("CreateTask", request, token)).task
        assert (await h.call("CreateTask", request, token)).task == first
        by_metadata = pb.CreateTaskRequest(title="Chase the builder")
        assert (await h.call("CreateTask", by_metadata, token, metadata=[("idempotency-key", "task-1")])).task == first
        assert len(await listed(h, token)) == 1
        err = await h.fails("CreateTask", pb.CreateTaskRequest(title="Another", idempotency_key="task-1"), token)
        assert (err.code, err.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
        assert [v.field for v in err.violations] == ["title"]
        # a failure is answered again the same way, even once the cause is gone
        work = str(uuid.uuid4())
        failing = pb.CreateTaskRequest(title="Linked", assignment_id=work, idempotency_key="task-2")
        assert (await h.fails("CreateTask", failing, token)).reason == "ASSIGNMENT_NOT_FOUND"
        await assignment(h, assignment_id=work)
        assert (await h.fails("CreateTask", failing, token)).reason == "ASSIGNMENT_NOT_FOUND"
        linked = await create(h, token, title="Linked", assignment_id=work)
        assert linked.assignment_id == work

        # a service names the tenant and the assignee (it is nobody's "me")
        service = h.service_token(["tasks.read", "tasks.write"], name="repogen")
        tenant = [("x-tenant-id", h.tenant)]
        err = await h.fails("CreateTask", pb.CreateTaskRequest(title="QC"), service, metadata=tenant)
        assert [v.field for v in err.violations] == ["assignee_id"]
        made = (
            await h.call("CreateTask", pb.CreateTaskRequest(title="QC", assignee_id=me), service, metadata=tenant)
        ).task
        assert (made.assignee_id, made.created_by) == (me, "service:repogen")
        assert [t.id for t in await listed(h, token, assigned_to_me=True)] == [made.id, linked.id, first.id]


async def test_capabilities_portal_users_and_tenant_isolation(ops):
    async with ops() as h:
        _, token = manager(h)
        task = await create(h, token)
        _, reader = h.user(["tasks.read"], roles=["ops_manager"])
        assert [t.id for t in await listed(h, reader)] == [task.id]
        for call, request in (
            ("CreateTask", pb.CreateTaskRequest(title="x")),
            ("UpdateTask", pb.UpdateTaskRequest(id=task.id, task=pb.Task(title="x"), update_mask=mask("title"))),
            ("MarkTaskDone", pb.MarkTaskDoneRequest(id=task.id)),
        ):
            err = await h.fails(call, request, reader)
            assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_CAPABILITY")
        _, nobody = h.user(["assignments.read"], roles=["ops_manager"])
        err = await h.fails("ListTasks", pb.ListTasksRequest(), nobody)
        assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_CAPABILITY")
        # a channel partner has no tasks, whatever its token says
        portal = h.portal(await partner_channel(h), caps=["tasks.read", "tasks.write"])
        for call, request in (("ListTasks", pb.ListTasksRequest()), ("CreateTask", pb.CreateTaskRequest(title="x"))):
            err = await h.fails(call, request, portal)
            assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "STAFF_ONLY")

        # another firm's manager sees nothing of this tenant's and cannot link its assignments
        other_tenant = str(uuid.uuid4())
        _, outsider = manager(h, tenant=other_tenant)
        assert await listed(h, outsider) == []
        for call, request in (
            ("MarkTaskDone", pb.MarkTaskDoneRequest(id=task.id)),
            ("UpdateTask", pb.UpdateTaskRequest(id=task.id, task=pb.Task(title="x"), update_mask=mask("title"))),
        ):
            assert (await h.fails(call, request, outsider)).code == grpc.StatusCode.NOT_FOUND
        ours = await assignment(h)
        err = await h.fails("CreateTask", pb.CreateTaskRequest(title="x", assignment_id=ours), outsider)
        assert (err.code, err.metadata["field"]) == (grpc.StatusCode.NOT_FOUND, "assignment_id")
        theirs = await create(h, outsider, title="theirs", assignment_id=await assignment(h, tenant=other_tenant))
        assert [t.id for t in await listed(h, token)] == [task.id]
        assert [t.id for t in await listed(h, outsider)] == [theirs.id]
        assert (await h.call("ListTasks", pb.ListTasksRequest(assignment_id=theirs.assignment_id), token)).tasks == []
