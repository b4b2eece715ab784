"""The assignment lifecycle against the real ops service: every pair of states is tried
(parametrised over the whole table), the allowed ones write their history, stage, activity
and ops.assignment.status_changed; every other one is ILLEGAL_TRANSITION and changes nothing.
"""

from __future__ import annotations

import itertools

import grpc
import pytest
from ops_harness import VALUER_CAPS, running_ops

from zenops.events.v1 import ops_pb2 as events
from zenops.ops.v1 import ops_pb2 as pb
from zenops_kit.events import unpack_payload
from zenops_ops.domain import lifecycle

STATUS = {name: pb.AssignmentStatus.Value(f"ASSIGNMENT_STATUS_{name}") for name in lifecycle.STATUSES}
# How to reach each state from DRAFT along allowed transitions.
PATH = {
    "DRAFT": [],
    "COLLECTING": ["COLLECTING"],
    "SITE_VISIT": ["COLLECTING", "SITE_VISIT"],
    "UNDER_REVIEW": ["COLLECTING", "SITE_VISIT", "UNDER_REVIEW"],
    "DELIVERED": ["COLLECTING", "SITE_VISIT", "UNDER_REVIEW", "DELIVERED"],
    "CANCELLED": ["CANCELLED"],
}
ALLOWED = sorted(lifecycle.TRANSITIONS)
ILLEGAL = sorted(set(itertools.product(lifecycle.STATUSES, repeat=2)) - set(lifecycle.TRANSITIONS))


@pytest.fixture
def ops(start_service):
    return lambda **kw: running_ops(start_service, **kw)


async def reach(h, state: str) -> pb.Assignment:
    a = await h.create_assignment()
    for step in PATH[state]:
        a = await h.transition(a.id, STATUS[step], reason="setting up")
    assert a.status == STATUS[state]
    return a


async def stages(h, assignment_id: str) -> list:
    return await h.sql(
        "SELECT stage, exited_at FROM assignment_stages WHERE assignment_id = CAST(:id AS uuid) "
        "ORDER BY entered_at, id",
        {"id": assignment_id},
    )


def test_the_table_is_the_spec():
    assert set(lifecycle.TRANSITIONS) == {
        ("DRAFT", "COLLECTING"),
        ("COLLECTING", "SITE_VISIT"),
        ("SITE_VISIT", "UNDER_REVIEW"),
        ("UNDER_REVIEW", "DELIVERED"),
        ("UNDER_REVIEW", "COLLECTING"),
        ("DRAFT", "CANCELLED"),
        ("COLLECTING", "CANCELLED"),
        ("SITE_VISIT", "CANCELLED"),
        ("UNDER_REVIEW", "CANCELLED"),
    }
    assert {k for k, reason in lifecycle.TRANSITIONS.items() if reason} == {
        ("UNDER_REVIEW", "COLLECTING"),
        *((s, "CANCELLED") for s in lifecycle.OPEN),
    }
    assert len(ALLOWED) + len(ILLEGAL) == 36


@pytest.mark.parametrize(("from_status", "to_status"), ALLOWED, ids=[f"{a}->{b}" for a, b in ALLOWED])
async def test_allowed_transition_writes_everything(ops, from_status, to_status):
    async with ops(run_workers=False) as h:
        a = await reach(h, from_status)
        events_before = len(await h.outbox("ops.assignment.status_changed"))
        if lifecycle.needs_reason(from_status, to_status):
            missing = await h.fails(
                "TransitionAssignment", pb.TransitionAssignmentRequest(id=a.id, to=STATUS[to_status])
            )
            assert (missing.code, missing.violations[0].field) == (grpc.StatusCode.INVALID_ARGUMENT, "reason")
            reason = "  the bank withdrew the file  "
        else:
            reason = ""

        moved = await h.transition(a.id, STATUS[to_status], reason=reason)
        assert moved.status == STATUS[to_status]
        assert moved.version == a.version + 1
        detail = await h.call("GetAssignment", pb.GetAssignmentRequest(id=a.id))
        assert detail.assignment == moved
        last = detail.history[-1]
        assert (last.from_status, last.to_status, last.actor, last.reason) == (
            STATUS[from_status],
            STATUS[to_status],
            h.manager_id,
            reason.strip(),
        )
        assert [(e.from_status, e.to_status) for e in detail.history][0] == (
            pb.ASSIGNMENT_STATUS_UNSPECIFIED,
            pb.ASSIGNMENT_STATUS_DRAFT,
        )
        assert len(detail.history) == len(PATH[from_status]) + 2

        # the stage it left is closed, the one it entered is the only open one
        rows = await stages(h, a.id)
        assert [r.stage for r in rows] == ["DRAFT", *PATH[from_status], to_status]
        assert [r.exited_at is None for r in rows] == [False] * (len(rows) - 1) + [True]

        [activity] = [x for x in await h.activities(assignment_id=a.id) if x["kind"] == "assignment.status_changed"][
            -1:
        ]
        assert (activity["actor"], activity["detail"]["from"], activity["detail"]["to"]) == (
            h.manager_id,
            from_status,
            to_status,
        )

        emitted = await h.outbox("ops.assignment.status_changed")
        assert len(emitted) == events_before + 1
        env = emitted[-1]
        body = unpack_payload(env, events.AssignmentStatusChanged)
        assert (env.aggregate_type, env.aggregate_id, env.aggregate_version, env.tenant_id) == (
            "assignment",
            a.id,
            moved.version,
            h.tenant,
        )
        assert (
            body.assignment_id,
            body.reference_number,
            body.from_status,
            body.to_status,
            body.actor,
            body.reason,
        ) == (a.id, a.reference_number, from_status, to_status, h.manager_id, reason.strip())


@pytest.mark.parametrize(("from_status", "to_status"), ILLEGAL, ids=[f"{a}->{b}" for a, b in ILLEGAL])
async def test_illegal_transition_changes_nothing(ops, from_status, to_status):
    async with ops(run_workers=False) as h:
        a = await reach(h, from_status)
        emitted = len(await h.outbox("ops.assignment.status_changed"))
        err = await h.fails(
            "TransitionAssignment", pb.TransitionAssignmentRequest(id=a.id, to=STATUS[to_status], reason="because")
        )
        assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ILLEGAL_TRANSITION")
        assert err.metadata == {"from": from_status, "to": to_status}
        after = (await h.call("GetAssignment", pb.GetAssignmentRequest(id=a.id))).assignment
        assert (after.status, after.version) == (a.status, a.version)
        assert len(await h.outbox("ops.assignment.status_changed")) == emitted


async def test_manual_delivery_needs_the_release_capability(ops):
    async with ops(run_workers=False) as h:
        a = await reach(h, "UNDER_REVIEW")
        valuer_id, valuer = h.user(VALUER_CAPS)
        err = await h.fails(
            "TransitionAssignment",
            pb.TransitionAssignmentRequest(id=a.id, to=pb.ASSIGNMENT_STATUS_DELIVERED),
            token=valuer,
        )
        assert (err.code, err.reason, err.metadata["missing"]) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "MISSING_CAPABILITY",
            "repogen.release",
        )
        # the valuer moves it along otherwise, and sends it back for rework
        reworked = await h.transition(a.id, pb.ASSIGNMENT_STATUS_COLLECTING, "photos are blurred", token=valuer)
        assert reworked.status == pb.ASSIGNMENT_STATUS_COLLECTING
        # without assignments.transition nothing moves
        _, reader = h.user(("assignments.read", "repogen.release"))
        err = await h.fails(
            "TransitionAssignment",
            pb.TransitionAssignmentRequest(id=a.id, to=pb.ASSIGNMENT_STATUS_SITE_VISIT),
            token=reader,
        )
        assert (err.code, err.metadata["missing"]) == (grpc.StatusCode.PERMISSION_DENIED, "assignments.transition")


async def test_transition_input_and_idempotency(ops):
    async with ops(run_workers=False) as h:
        a = await reach(h, "DRAFT")
        for request, field in [
            (pb.TransitionAssignmentRequest(id=a.id), "to"),
            (pb.TransitionAssignmentRequest(id="nope", to=pb.ASSIGNMENT_STATUS_COLLECTING), "id"),
            (pb.TransitionAssignmentRequest(id=a.id, to=pb.ASSIGNMENT_STATUS_CANCELLED, reason="x" * 1001), "reason"),
            (pb.TransitionAssignmentRequest(id=a.id, to=pb.ASSIGNMENT_STATUS_CANCELLED, reason="bad\x00"), "reason"),
        ]:
            err = await h.fails("TransitionAssignment", request)
            assert (err.code, [v.field for v in err.violations]) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
        missing = await h.fails(
            "TransitionAssignment",
            pb.TransitionAssignmentRequest(
                id="0d1c2b3a-0000-4000-8000-000000000000", to=pb.ASSIGNMENT_STATUS_COLLECTING
            ),
        )
        assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "ASSIGNMENT_NOT_FOUND")

        # a retried transition with the same key answers the first result, moving nothing more
        first = await h.transition(a.id, pb.ASSIGNMENT_STATUS_COLLECTING, idempotency_key="move-1")
        again = await h.transition(a.id, pb.ASSIGNMENT_STATUS_COLLECTING, idempotency_key="move-1")
        assert again == first
        assert len(await h.outbox("ops.assignment.status_changed")) == 1
        reused = await h.fails(
            "TransitionAssignment",
            pb.TransitionAssignmentRequest(id=a.id, to=pb.ASSIGNMENT_STATUS_SITE_VISIT, idempotency_key="move-1"),
        )
        assert (reused.code, reused.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
        assert [v.field for v in reused.violations] == ["to"]

        # a closed assignment cannot be edited
        await h.transition(a.id, pb.ASSIGNMENT_STATUS_CANCELLED, "client withdrew")
        closed = await h.fails(
            "UpdateAssignment",
            pb.UpdateAssignmentRequest(
                id=a.id, assignment=pb.Assignment(notes="late note"), update_mask={"paths": ["notes"]}
            ),
        )
        assert (closed.code, closed.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ASSIGNMENT_CLOSED")


async def test_history_newest_first_with_activity_pages(ops):
    async with ops(run_workers=False) as h:
        a = await reach(h, "UNDER_REVIEW")
        await h.transition(a.id, pb.ASSIGNMENT_STATUS_COLLECTING, "rework: valuation grid missing")
        history = await h.call("GetAssignmentHistory", pb.GetAssignmentHistoryRequest(id=a.id, page={"limit": 2}))
        assert [(e.from_status, e.to_status) for e in history.history] == [
            (pb.ASSIGNMENT_STATUS_UNDER_REVIEW, pb.ASSIGNMENT_STATUS_COLLECTING),
            (pb.ASSIGNMENT_STATUS_SITE_VISIT, pb.ASSIGNMENT_STATUS_UNDER_REVIEW),
            (pb.ASSIGNMENT_STATUS_COLLECTING, pb.ASSIGNMENT_STATUS_SITE_VISIT),
            (pb.ASSIGNMENT_STATUS_DRAFT, pb.ASSIGNMENT_STATUS_COLLECTING),
            (pb.ASSIGNMENT_STATUS_UNSPECIFIED, pb.ASSIGNMENT_STATUS_DRAFT),
        ]
        assert history.history[0].reason == "rework: valuation grid missing"
        seen = list(history.activity)
        assert len(seen) == 2 and history.page.next_cursor
        cursor = history.page.next_cursor
        while cursor:
            page = await h.call(
                "GetAssignmentHistory", pb.GetAssignmentHistoryRequest(id=a.id, page={"limit": 2, "cursor": cursor})
            )
            seen.extend(page.activity)
            cursor = page.page.next_cursor
        assert [e.kind for e in seen] == ["assignment.status_changed"] * 4 + ["assignment.created"]
        assert [e.at.ToDatetime() for e in seen] == sorted((e.at.ToDatetime() for e in seen), reverse=True)
        assert len({e.id for e in seen}) == 5
        bad = await h.fails("GetAssignmentHistory", pb.GetAssignmentHistoryRequest(id=a.id, page={"cursor": "garbage"}))
        assert [v.field for v in bad.violations] == ["page.cursor"]
