"""The analytics overview against the real ops service: zeros for an empty tenant (every
status present), exact counts after rows of every kind are inserted, one statement per
overview, tenant isolation and who may ask.

Assignments and channel requests belong to other areas: their rows are inserted with SQL."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta

import grpc
import pytest
from ops_harness import MANAGER_CAPS, VALUER_CAPS, pb, running_ops
from sqlalchemy import event

ASSIGNMENT_STATUSES = {"draft", "collecting", "site_visit", "under_review", "delivered", "cancelled"}
REQUEST_STATUSES = {"submitted", "accepted", "rejected"}
_REFERENCES = itertools.count(1)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


@pytest.fixture
def ops(start_service):
    return lambda **settings: running_ops(start_service, run_workers=False, **settings)


async def overview(h, token: str | None = None) -> pb.GetAnalyticsOverviewResponse:
    return await h.call("GetAnalyticsOverview", pb.GetAnalyticsOverviewRequest(), token)


async def assignment(h, status: str = "DRAFT", *, tenant: str | None = None) -> str:
    tenant = tenant or h.tenant
    assignment_id = str(uuid.uuid4())
    await h.sql(
        "INSERT INTO assignments (id, tenant_id, reference_number, source_type, status, created_by) "
        "VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), :ref, 'DIRECT', :status, :by)",
        {
            "id": assignment_id,
            "tid": tenant,
            "ref": f"ZA-2026-{next(_REFERENCES):06d}",
            "status": status,
            "by": h.manager_id,
        },
        tenant=tenant,
    )
    return assignment_id


async def channel(h, *, tenant: str | None = None) -> str:
    tenant = tenant or h.tenant
    channel_id = str(uuid.uuid4())
    await h.sql(
        "INSERT INTO channels (id, tenant_id, name, channel_type, commission_mode, created_by) "
        "VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), :name, 'AGENT', 'FLAT', :by)",
        {"id": channel_id, "tid": tenant, "name": f"Partner {channel_id[:8]}", "by": h.manager_id},
        tenant=tenant,
    )
    await h.sql(
        "INSERT INTO channel_directory (channel_id, tenant_id) VALUES (CAST(:c AS uuid), CAST(:t AS uuid))",
        {"c": channel_id, "t": tenant},
        tenant=None,
    )
    return channel_id


async def channel_request(h, channel_id: str, status: str = "SUBMITTED", *, tenant: str | None = None) -> str:
    """A request of `channel_id` in `status` (accepted ones linked to a new assignment)."""
    tenant = tenant or h.tenant
    linked = await assignment(h, "COLLECTING", tenant=tenant) if status == "ACCEPTED" else None
    request_id = str(uuid.uuid4())
    await h.sql(
        "INSERT INTO channel_requests (id, tenant_id, channel_id, status, borrower_name, property, "
        "requested_service, credits, submitted_by, assignment_id, reviewed_by, reviewed_at, rejection_reason) "
        "VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), CAST(:cid AS uuid), :status, 'Asha Patel', "
        "CAST('{\"city\": \"Mumbai\"}' AS jsonb), 'valuation_report', 1, :by, CAST(:aid AS uuid), "
        "CASE WHEN :status <> 'SUBMITTED' THEN :by END, CASE WHEN :status <> 'SUBMITTED' THEN now() END, "
        "CASE WHEN :status = 'REJECTED' THEN 'Duplicate request' ELSE '' END)",
        {"id": request_id, "tid": tenant, "cid": channel_id, "status": status, "by": h.manager_id, "aid": linked},
        tenant=tenant,
    )
    return request_id


async def task(h, *, status: str = "OPEN", due: timedelta | None = None, tenant: str | None = None) -> None:
    """A task row; `due` relative to now (negative: overdue unless done)."""
    tenant = tenant or h.tenant
    await h.sql(
        "INSERT INTO tasks (id, tenant_id, title, assignee_id, created_by, due_at, status, done_at) "
        "VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), 'Task', :who, :who, now() + CAST(:due AS interval), :status, "
        "CASE WHEN :status = 'DONE' THEN now() END)",
        {"id": str(uuid.uuid4()), "tid": tenant, "who": h.manager_id, "due": due, "status": status},
        tenant=tenant,
    )


def counts(view: pb.GetAnalyticsOverviewResponse) -> tuple:
    return (
        dict(view.assignments_by_status),
        view.open_tasks,
        view.overdue_tasks,
        dict(view.channel_requests_by_status),
        view.outbox_failed,
        view.outbox_dead,
    )


async def test_empty_tenant_gives_zeros_for_every_status(ops):
    async with ops() as h:
        view = await overview(h)
        assert counts(view) == ({s: 0 for s in ASSIGNMENT_STATUSES}, 0, 0, {s: 0 for s in REQUEST_STATUSES}, 0, 0)
        # a tenant ops has never seen is just as empty
        _, stranger = h.user(["analytics.read"], tenant=str(uuid.uuid4()))
        assert counts(await overview(h, stranger)) == counts(view)


async def test_exact_counts_in_one_statement_and_only_the_tenants_rows(ops):
    async with ops() as h:
        for status, n in (("DRAFT", 2), ("SITE_VISIT", 1), ("UNDER_REVIEW", 3), ("CANCELLED", 1)):
            for _ in range(n):
                await assignment(h, status)
        partner = await channel(h)
        for status, n in (("SUBMITTED", 3), ("ACCEPTED", 2), ("REJECTED", 1)):  # accepted: +2 COLLECTING
            for _ in range(n):
                await channel_request(h, partner, status)
        await task(h)  # open, undated
        await task(h, status="BLOCKED", due=2 * DAY)  # open
        await task(h, due=-HOUR)  # open, overdue
        await task(h, status="BLOCKED", due=-3 * DAY)  # open, overdue
        await task(h, status="DONE", due=-HOUR)  # done: neither
        await task(h, status="DONE")
        # another firm's rows count for it, not here
        other = str(uuid.uuid4())
        await assignment(h, "DELIVERED", tenant=other)
        await channel_request(h, await channel(h, tenant=other), "REJECTED", tenant=other)
        await task(h, due=-DAY, tenant=other)

        statements: list[str] = []

        def seen(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        event.listen(h.engine.sync_engine, "before_cursor_execute", seen)
        try:
            view = await overview(h)
        finally:
            event.remove(h.engine.sync_engine, "before_cursor_execute", seen)
        assert counts(view) == (
            {"draft": 2, "collecting": 2, "site_visit": 1, "under_review": 3, "delivered": 0, "cancelled": 1},
            4,
            2,
            {"submitted": 3, "accepted": 2, "rejected": 1},
            0,
            0,
        )
        assert len([s for s in statements if "set_config" not in s]) == 1

        # counts are the tenant's, whoever of its staff asks (task visibility does not narrow them)
        _, valuer = h.user([*VALUER_CAPS, "analytics.read"], roles=["valuer"])
        assert counts(await overview(h, valuer)) == counts(view)
        _, theirs = h.user(MANAGER_CAPS, tenant=other)
        assert counts(await overview(h, theirs)) == (
            {**{s: 0 for s in ASSIGNMENT_STATUSES}, "delivered": 1},
            1,
            1,
            {"submitted": 0, "accepted": 0, "rejected": 1},
            0,
            0,
        )


async def test_who_may_read_the_overview(ops):
    async with ops() as h:
        _, valuer = h.user(VALUER_CAPS, roles=["valuer"])
        err = await h.fails("GetAnalyticsOverview", pb.GetAnalyticsOverviewRequest(), valuer)
        assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_CAPABILITY")
        # the firm's figures are not a channel partner's, whatever its token says
        portal = h.portal(await channel(h), caps=["analytics.read"])
        err = await h.fails("GetAnalyticsOverview", pb.GetAnalyticsOverviewRequest(), portal)
        assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "STAFF_ONLY")
        err = await h.fails("GetAnalyticsOverview", pb.GetAnalyticsOverviewRequest(), "not-a-token")
        assert err.code == grpc.StatusCode.UNAUTHENTICATED
