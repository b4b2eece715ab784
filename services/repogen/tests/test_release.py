"""ReleaseDeliverable against the REAL billing service (started with the same token signer as
repogen and ops; repogen asks it with its own service token), on work orders the real factory
rendered:

- a CREDIT account with a reservation for the work order: billing consumes it
  (CREDITS_CONSUMED), the release records the pack's artifact hashes and billing's decision,
  the work order is RELEASED, repogen.deliverable.released is in the outbox and ops (its
  consumer running) marks the assignment DELIVERED; the same key answers the same release,
  another key is RELEASE_EXISTS;
- a POSTPAID account without a paid invoice: INVOICE_UNPAID and nothing changes; an override
  needs billing.override (and is then billing's OVERRIDDEN);
- billing unreachable: UNAVAILABLE, nothing changes, and the same key works once billing is back.
"""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
from factory_harness import factory_suite, finished_job, listing, ready_work_order, running_billing
from repogen_harness import MANAGER_CAPS, VALUER_CAPS

from zenops.billing.v1 import billing_pb2 as bpb
from zenops.events.v1 import repogen_pb2 as events
from zenops.ops.v1 import ops_pb2 as opb
from zenops.repogen.v1 import repogen_pb2 as pb
from zenops_devstack.process import free_port
from zenops_devstack.testing import poll
from zenops_kit.events import unpack_payload
from zenops_repogen import outbox
from zenops_repogen.billing_client import install_billing_client

RENDERED, RELEASED = pb.WORK_ORDER_STATUS_RENDERED, pb.WORK_ORDER_STATUS_RELEASED


@pytest.fixture
def suite(start_service, tmp_path):
    return lambda **kw: factory_suite(start_service, tmp_path, **kw)


async def rendered_work_order(h, **create) -> pb.WorkOrder:
    wo = await ready_work_order(h, **create)
    job = await finished_job(h, wo.id)
    assert job.status == pb.JOB_STATUS_SUCCEEDED, job.last_error
    got = await h.get(wo.id)
    assert got.status == RENDERED
    return got


def release(work_order_id: str, key: str = "", **fields) -> pb.ReleaseDeliverableRequest:
    return pb.ReleaseDeliverableRequest(work_order_id=work_order_id, idempotency_key=key, **fields)


async def nothing_changed(h, before: pb.WorkOrder) -> None:
    after = await h.get(before.id)
    assert (after.status, after.version) == (before.status, before.version)
    assert await h.sql("SELECT 1 FROM releases WHERE work_order_id = CAST(:id AS uuid)", {"id": before.id}) == []
    released = [e for e in await h.outbox(outbox.DELIVERABLE_RELEASED) if e.aggregate_id == before.id]
    assert released == []


async def test_credit_release_consumes_the_reservation_once(start_service, suite):
    async with suite(ops_workers=False) as h, running_billing(start_service, h) as billing:
        account = await billing.account(bpb.BILLING_POLICY_CREDIT, credits=5)
        wo = await rendered_work_order(h, billing_account_id=account.id, credits=2)
        # What billing does when the work order is accepted: 2 credits held for it.
        reservation = await billing.reserve(account.id, 2, wo.id)
        assert (await billing.wallet(account.id)).reserved == 2

        denied = await h.fails("ReleaseDeliverable", release(wo.id, "rel-1"), h.token(VALUER_CAPS))
        assert (denied.code, denied.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_CAPABILITY")

        done = await h.call("ReleaseDeliverable", release(wo.id, "rel-1"))
        r = done.release
        assert (done.work_order.status, done.work_order.version) == (RELEASED, wo.version + 1)
        assert (r.work_order_id, r.snapshot_version, r.billing_basis, r.billing_reservation_id) == (
            wo.id,
            wo.snapshot_version,
            "CREDITS_CONSUMED",
            reservation.id,
        )
        assert (r.released_by, r.override_reason) == (h.manager_id, "") and r.HasField("released_at")
        artifacts = (await listing(h, wo.id)).artifacts
        assert dict(r.artifact_hashes) == {a.kind: a.sha256 for a in artifacts}
        assert "docx" in r.artifact_hashes and "export_bundle" in r.artifact_hashes

        # Billing consumed the reservation: the credits are spent, nothing is held.
        consumed = await billing.reservation(account.id, reservation.id)
        assert (consumed.status, consumed.consumed_amount) == (bpb.RESERVATION_STATUS_CONSUMED, 2)
        wallet = await billing.wallet(account.id)
        assert (wallet.reserved, wallet.available) == (0, 3)

        # The same key answers the same release; another key finds it released.
        assert await h.call("ReleaseDeliverable", release(wo.id, "rel-1")) == done
        again = await h.fails("ReleaseDeliverable", release(wo.id, "rel-2"))
        assert (again.code, again.reason, again.metadata["release_id"]) == (
            grpc.StatusCode.ALREADY_EXISTS,
            "RELEASE_EXISTS",
            r.id,
        )
        assert (await billing.wallet(account.id)).available == 3

        # The event ops and billing react to.
        [env] = [e for e in await h.outbox(outbox.DELIVERABLE_RELEASED) if e.aggregate_id == wo.id]
        payload = unpack_payload(env, events.DeliverableReleased)
        assert (
            payload.work_order_id,
            payload.deliverable_id,
            payload.billing_account_id,
            payload.assignment_id,
            payload.snapshot_version,
            payload.channel_request_id,
        ) == (wo.id, r.id, account.id, wo.assignment_id, wo.snapshot_version, "")
        assert (env.tenant_id, env.aggregate_version) == (h.tenant, done.work_order.version)

        audit = await h.audit(wo.id)
        assert (audit[-1]["to"], audit[-1]["detail"]["release_id"], audit[-1]["detail"]["billing_basis"]) == (
            "RELEASED",
            r.id,
            "CREDITS_CONSUMED",
        )
        monitor = await h.call("ListMonitor", pb.ListMonitorRequest(statuses=[RELEASED]))
        assert [(row.work_order.id, row.billing_gate, row.job_status) for row in monitor.rows] == [
            (wo.id, "released", pb.JOB_STATUS_SUCCEEDED)
        ]

        # A release is never changed or removed, even by the service's own role.
        for statement in ("UPDATE releases SET billing_basis = 'OVERRIDDEN'", "DELETE FROM releases"):
            with pytest.raises(Exception, match="immutable"):
                await h.sql(statement)


async def test_released_report_reaches_ops(start_service, suite):
    """ops' consumer of repogen.deliverable.released marks the assignment DELIVERED."""
    async with suite(ops_workers=True) as h, running_billing(start_service, h) as billing:
        account = await billing.account(bpb.BILLING_POLICY_CREDIT, credits=1)
        wo = await rendered_work_order(h, billing_account_id=account.id, credits=1)
        await billing.reserve(account.id, 1, wo.id)
        await h.call("ReleaseDeliverable", release(wo.id, "deliver"))

        async def delivered():
            got = await h.ops_call("GetAssignment", opb.GetAssignmentRequest(id=wo.assignment_id))
            return got.assignment.status == opb.ASSIGNMENT_STATUS_DELIVERED

        await poll(delivered, timeout=30, what="ops to mark the assignment delivered")


async def test_postpaid_without_a_paid_invoice_is_refused_and_nothing_changes(start_service, suite):
    async with suite() as h, running_billing(start_service, h) as billing:
        account = await billing.account(bpb.BILLING_POLICY_POSTPAID)
        wo = await rendered_work_order(h, billing_account_id=account.id)
        audit = await h.audit(wo.id)

        refused = await h.fails("ReleaseDeliverable", release(wo.id, "try-1"))
        assert (refused.code, refused.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVOICE_UNPAID")
        assert refused.metadata["work_order_id"] == wo.id
        await nothing_changed(h, wo)
        assert await h.audit(wo.id) == audit

        # An override needs billing.override besides repogen.release (and a reason).
        lacking = await h.fails("ReleaseDeliverable", release(wo.id, "try-2", override_reason="Paid in cash"))
        assert (lacking.code, lacking.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_CAPABILITY")
        blank = await h.fails("ReleaseDeliverable", release(wo.id, "try-3", override_reason="   "))
        assert [v.field for v in blank.violations] == ["override_reason"]
        await nothing_changed(h, wo)

        admin_id, admin = h.user((*MANAGER_CAPS, "billing.read", "billing.write", "billing.override"))
        done = await h.call(
            "ReleaseDeliverable", release(wo.id, "try-4", override_reason="Paid in cash at branch"), admin
        )
        assert (done.release.billing_basis, done.release.override_reason, done.release.released_by) == (
            "OVERRIDDEN",
            "Paid in cash at branch",
            admin_id,
        )
        assert done.work_order.status == RELEASED


async def test_only_a_rendered_work_order_is_released(start_service, suite):
    async with suite(run_workers=False) as h, running_billing(start_service, h) as billing:
        account = await billing.account(bpb.BILLING_POLICY_CREDIT, credits=1)
        wo = await ready_work_order(h, billing_account_id=account.id)
        refused = await h.fails("ReleaseDeliverable", release(wo.id, "early"))
        assert (refused.code, refused.reason, refused.metadata["status"]) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "WORK_ORDER_NOT_RENDERED",
            "READY_FOR_RENDER",
        )
        unknown = await h.fails("ReleaseDeliverable", release(str(uuid.uuid4())))
        assert (unknown.code, unknown.reason) == (grpc.StatusCode.NOT_FOUND, "WORK_ORDER_NOT_FOUND")
        malformed = await h.fails("ReleaseDeliverable", release("not-an-id"))
        assert [v.field for v in malformed.violations] == ["work_order_id"]


async def test_billing_unreachable_is_unavailable_and_changes_nothing(start_service, suite):
    async with suite() as h, running_billing(start_service, h) as billing:
        account = await billing.account(bpb.BILLING_POLICY_CREDIT, credits=1)
        wo = await rendered_work_order(h, billing_account_id=account.id, credits=1)
        await billing.reserve(account.id, 1, wo.id)

        install_billing_client(h.app.runtime, billing_addr=f"127.0.0.1:{free_port()}")  # nobody listens
        away = await h.fails("ReleaseDeliverable", release(wo.id, "rel"))
        assert (away.code, away.reason) == (grpc.StatusCode.UNAVAILABLE, "BILLING_UNAVAILABLE")
        await nothing_changed(h, wo)

        install_billing_client(h.app.runtime, billing_addr=f"127.0.0.1:{billing.app.port}")
        done = await h.call("ReleaseDeliverable", release(wo.id, "rel"))
        assert (done.release.billing_basis, done.work_order.status) == ("CREDITS_CONSUMED", RELEASED)
        stored = await h.sql(
            "SELECT artifact_hashes::text AS hashes FROM releases WHERE work_order_id = CAST(:id AS uuid)",
            {"id": wo.id},
        )
        assert json.loads(stored[0].hashes) == dict(done.release.artifact_hashes)
