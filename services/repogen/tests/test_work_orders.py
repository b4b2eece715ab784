"""Work orders against the real repogen and the real ops (assignments are checked over gRPC):
creation with snapshot 0, the lifecycle table (allowed and illegal moves, their events and
audit rows), the readiness gate, the factory's and the release's hooks, template overrides,
portal channel scoping and billing's GetBillingRefState."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
from repogen_harness import FULL_CONTRACT, STUDIO_CAPS, VALUER_CAPS, running_suite

from zenops.common.v1 import common_pb2
from zenops.events.v1 import repogen_pb2 as events
from zenops.ops.v1 import ops_pb2 as opb
from zenops.repogen.v1 import repogen_pb2 as pb
from zenops_kit.events import unpack_payload
from zenops_kit.rls import scoped_tx
from zenops_repogen import rules, work_orders
from zenops_repogen.domain import lifecycle

DRAFT, DATA_PENDING = pb.WORK_ORDER_STATUS_DRAFT, pb.WORK_ORDER_STATUS_DATA_PENDING
READY, RENDERED = pb.WORK_ORDER_STATUS_READY_FOR_RENDER, pb.WORK_ORDER_STATUS_RENDERED
RELEASED, CANCELLED = pb.WORK_ORDER_STATUS_RELEASED, pb.WORK_ORDER_STATUS_CANCELLED
ALL = (DRAFT, DATA_PENDING, READY, RENDERED, RELEASED, CANCELLED)
NAME = {v: pb.WorkOrderStatus.Name(v).removeprefix("WORK_ORDER_STATUS_") for v in ALL}


@pytest.fixture
def suite(start_service, tmp_path):
    return lambda **kw: running_suite(start_service, tmp_path, **kw)


def fields_of(detail) -> list[str]:
    return [v.field for v in detail.violations]


async def rendered(h, work_order_id: str) -> None:
    """The factory's hook, as R3's worker calls it: READY_FOR_RENDER → RENDERED."""
    wo = await h.get(work_order_id)
    async with scoped_tx(h.engine, h.tenant) as conn:
        await work_orders.mark_rendered(
            conn,
            work_order_id=work_order_id,
            snapshot_version=wo.snapshot_version,
            actor="service:repogen-factory",
            detail={"job_id": f"{wo.id}:1"},
        )


async def released(h, work_order_id: str) -> None:
    async with scoped_tx(h.engine, h.tenant) as conn:
        await work_orders.mark_released(
            conn, work_order_id=work_order_id, actor=h.manager_id, detail={"release_id": str(uuid.uuid4())}
        )


# -- create, read, list ---------------------------------------------------------------------------


async def test_create_from_an_ops_assignment_with_snapshot_zero(suite):
    async with suite() as h:
        assignment = await h.assignment("SBI")
        created = await h.call(
            "CreateWorkOrder", pb.CreateWorkOrderRequest(assignment_id=assignment.id, credits=3, idempotency_key="wo-1")
        )
        wo, snap = created.work_order, created.snapshot
        assert (wo.assignment_id, wo.bank_code, wo.status, wo.snapshot_version, wo.version, wo.credits) == (
            assignment.id,
            "SBI",
            DRAFT,
            0,
            1,
            3,
        )
        assert (wo.template_id, wo.template_overridden, wo.evidence_profile) == (
            "SBI_UNDER_5CR_V1",
            False,
            (await h.template("SBI_UNDER_5CR_V1")).evidence_profile,
        )
        assert (wo.created_by, wo.channel_request_id, wo.billing_account_id) == (h.manager_id, "", "")
        assert (snap.version, snap.work_order_id, snap.actor) == (0, wo.id, h.manager_id)
        assert json.loads(snap.contract_json) == rules.empty_contract()
        assert snap.outputs.fair_market_value == 0 and snap.outputs.template_id == "SBI_UNDER_5CR_V1"
        assert not snap.readiness.ready and snap.readiness.missing_fields

        # the same key answers the same work order; another request under it is refused
        again = await h.call(
            "CreateWorkOrder", pb.CreateWorkOrderRequest(assignment_id=assignment.id, credits=3, idempotency_key="wo-1")
        )
        assert again == created
        reused = await h.fails(
            "CreateWorkOrder", pb.CreateWorkOrderRequest(assignment_id=assignment.id, credits=4, idempotency_key="wo-1")
        )
        assert (reused.code, reused.reason, fields_of(reused)) == (
            grpc.StatusCode.ALREADY_EXISTS,
            "IDEMPOTENCY_KEY_REUSED",
            ["credits"],
        )
        # one live work order per assignment
        twice = await h.fails("CreateWorkOrder", pb.CreateWorkOrderRequest(assignment_id=assignment.id))
        assert (twice.code, twice.reason, twice.metadata["field"], twice.metadata["work_order_id"]) == (
            grpc.StatusCode.ALREADY_EXISTS,
            "WORK_ORDER_EXISTS",
            "assignment_id",
            wo.id,
        )

        # what was written, in one transaction: the row, snapshot 0, its rules run and readiness, the audit row
        [run] = await h.sql(
            "SELECT snapshot_version, rules_version, registry_version, duration_us FROM rules_runs "
            "WHERE work_order_id = CAST(:id AS uuid)",
            {"id": wo.id},
        )
        assert run.snapshot_version == 0 and run.rules_version and run.registry_version
        [ready] = await h.sql(
            "SELECT trigger, ready, snapshot_version FROM readiness_results WHERE work_order_id = CAST(:id AS uuid)",
            {"id": wo.id},
        )
        assert (ready.trigger, ready.ready, ready.snapshot_version) == ("create", False, 0)
        [created_event] = await h.audit(wo.id)
        assert (created_event["kind"], created_event["to"], created_event["actor"]) == (
            "work_order.created",
            "DRAFT",
            h.manager_id,
        )
        assert created_event["detail"]["reference_number"] == assignment.reference_number

        # another bank's assignment gets the generic template; one without a bank too
        other = (await h.work_order("HDFC")).work_order
        assert (other.bank_code, other.template_id) == ("HDFC", "GENERIC_BANK_V1")
        direct = (await h.work_order(None, billing_account_id=(account := str(uuid.uuid4())))).work_order
        assert (direct.bank_code, direct.template_id, direct.billing_account_id) == ("", "GENERIC_BANK_V1", account)

        got = await h.call("GetWorkOrder", pb.GetWorkOrderRequest(id=wo.id), h.token(STUDIO_CAPS))
        assert got.work_order == wo and got.latest_snapshot == snap


async def test_create_refuses_what_ops_does_not_know_and_bad_input(suite):
    async with suite() as h:
        unknown = str(uuid.uuid4())
        missing = await h.fails("CreateWorkOrder", pb.CreateWorkOrderRequest(assignment_id=unknown))
        assert (missing.code, missing.reason, missing.metadata["field"]) == (
            grpc.StatusCode.NOT_FOUND,
            "ASSIGNMENT_NOT_FOUND",
            "assignment_id",
        )
        # another tenant's assignment is unknown too (ops is asked in the caller's tenant)
        theirs = await h.assignment("SBI")
        foreign = await h.fails(
            "CreateWorkOrder", pb.CreateWorkOrderRequest(assignment_id=theirs.id), h.token(tenant=str(uuid.uuid4()))
        )
        assert foreign.reason == "ASSIGNMENT_NOT_FOUND"
        for request, field in [
            (pb.CreateWorkOrderRequest(), "assignment_id"),
            (pb.CreateWorkOrderRequest(assignment_id="ZA-2026-000001"), "assignment_id"),
            (pb.CreateWorkOrderRequest(assignment_id=theirs.id, credits=-1), "credits"),
            (pb.CreateWorkOrderRequest(assignment_id=theirs.id, billing_account_id="acct-1"), "billing_account_id"),
        ]:
            detail = await h.fails("CreateWorkOrder", request)
            assert (detail.code, fields_of(detail)) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
        # a cancelled assignment takes no work order
        await h.ops_call(
            "TransitionAssignment",
            opb.TransitionAssignmentRequest(id=theirs.id, to=opb.ASSIGNMENT_STATUS_CANCELLED, reason="duplicate"),
        )
        closed = await h.fails("CreateWorkOrder", pb.CreateWorkOrderRequest(assignment_id=theirs.id))
        assert (closed.code, closed.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ASSIGNMENT_CLOSED")
        # capabilities: studio operators read only; nobody without a token
        denied = await h.fails(
            "CreateWorkOrder", pb.CreateWorkOrderRequest(assignment_id=theirs.id), h.token(STUDIO_CAPS)
        )
        assert (denied.code, denied.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_CAPABILITY")
        assert await h.sql("SELECT id FROM work_orders") == []


async def test_list_pages_newest_first_with_filters(suite):
    async with suite() as h:
        made = [(await h.work_order()).work_order for _ in range(5)]
        await h.transition(made[0].id, DATA_PENDING)
        await h.transition(made[1].id, CANCELLED, "duplicate file")
        seen, cursor = [], ""
        while True:
            page = await h.call(
                "ListWorkOrders",
                pb.ListWorkOrdersRequest(page=common_pb2.PageRequest(limit=2, cursor=cursor)),
                h.token(STUDIO_CAPS),
            )
            seen += [w.id for w in page.work_orders]
            cursor = page.page.next_cursor
            if not cursor:
                break
        assert seen == [w.id for w in reversed(made)]
        drafts = await h.call("ListWorkOrders", pb.ListWorkOrdersRequest(statuses=[DRAFT]))
        assert [w.id for w in drafts.work_orders] == [w.id for w in reversed(made[2:])]
        by_assignment = await h.call("ListWorkOrders", pb.ListWorkOrdersRequest(assignment_id=made[3].assignment_id))
        assert [w.id for w in by_assignment.work_orders] == [made[3].id]
        bad = await h.fails("ListWorkOrders", pb.ListWorkOrdersRequest(page=common_pb2.PageRequest(cursor="x")))
        assert fields_of(bad) == ["page.cursor"]
        other_tenant = await h.call("ListWorkOrders", pb.ListWorkOrdersRequest(), h.token(tenant=str(uuid.uuid4())))
        assert list(other_tenant.work_orders) == []


# -- the lifecycle -----------------------------------------------------------------------------------


def test_the_transition_table():
    """Every (from, to) pair: a person may accept, ask for render and cancel before release;
    rendering and releasing are the factory's and the release's; a change demotes."""
    by_person = {(a, b) for (a, b), m in lifecycle.TRANSITIONS.items() if m.by is lifecycle.By.TRANSITION}
    assert by_person == {
        ("DRAFT", "DATA_PENDING"),
        ("DATA_PENDING", "READY_FOR_RENDER"),
        *((s, "CANCELLED") for s in ("DRAFT", "DATA_PENDING", "READY_FOR_RENDER", "RENDERED")),
    }
    for a in lifecycle.STATUSES:
        for b in lifecycle.STATUSES:
            for by in lifecycle.By:
                move = lifecycle.TRANSITIONS.get((a, b))
                if move is not None and move.by is by:
                    assert lifecycle.move(a, b, by) is move
                else:
                    with pytest.raises(Exception) as info:
                        lifecycle.move(a, b, by)
                    assert info.value.reason == "ILLEGAL_TRANSITION"
    assert lifecycle.TRANSITIONS[("READY_FOR_RENDER", "RENDERED")].by is lifecycle.By.FACTORY
    assert lifecycle.TRANSITIONS[("RENDERED", "RELEASED")].by is lifecycle.By.RELEASE
    assert lifecycle.TRANSITIONS[("READY_FOR_RENDER", "DATA_PENDING")].by is lifecycle.By.CHANGE


async def test_illegal_moves_are_refused_and_change_nothing(suite):
    async with suite() as h:
        wo = (await h.work_order()).work_order
        for to in (READY, RENDERED, RELEASED, DRAFT):
            detail = await h.fails("TransitionWorkOrder", pb.TransitionWorkOrderRequest(id=wo.id, to=to))
            assert (detail.code, detail.reason, detail.metadata) == (
                grpc.StatusCode.FAILED_PRECONDITION,
                "ILLEGAL_TRANSITION",
                {"from": "DRAFT", "to": NAME[to]},
            )
        accepted = (await h.transition(wo.id, DATA_PENDING)).work_order
        for to in (DRAFT, DATA_PENDING, RENDERED, RELEASED):
            assert (
                await h.fails("TransitionWorkOrder", pb.TransitionWorkOrderRequest(id=wo.id, to=to))
            ).reason == "ILLEGAL_TRANSITION"
        no_reason = await h.fails("TransitionWorkOrder", pb.TransitionWorkOrderRequest(id=wo.id, to=CANCELLED))
        assert (no_reason.code, fields_of(no_reason)) == (grpc.StatusCode.INVALID_ARGUMENT, ["reason"])
        for request, field in [
            (pb.TransitionWorkOrderRequest(id="x", to=DATA_PENDING), "id"),
            (pb.TransitionWorkOrderRequest(id=wo.id), "to"),
            (pb.TransitionWorkOrderRequest(id=wo.id, to=99), "to"),
        ]:
            assert fields_of(await h.fails("TransitionWorkOrder", request)) == [field]
        unknown = await h.fails(
            "TransitionWorkOrder", pb.TransitionWorkOrderRequest(id=str(uuid.uuid4()), to=DATA_PENDING)
        )
        assert (unknown.code, unknown.reason, unknown.metadata["field"]) == (
            grpc.StatusCode.NOT_FOUND,
            "WORK_ORDER_NOT_FOUND",
            "id",
        )
        # studio operators cannot move work orders; valuers can
        denied = await h.fails(
            "TransitionWorkOrder",
            pb.TransitionWorkOrderRequest(id=wo.id, to=CANCELLED, reason="x"),
            h.token(STUDIO_CAPS),
        )
        assert denied.reason == "MISSING_CAPABILITY"
        assert await h.get(wo.id) == accepted

        cancelled = (await h.transition(wo.id, CANCELLED, "client withdrew", h.token(VALUER_CAPS))).work_order
        assert (cancelled.status, cancelled.version) == (CANCELLED, accepted.version + 1)
        for to in ALL:
            assert (
                await h.fails("TransitionWorkOrder", pb.TransitionWorkOrderRequest(id=wo.id, to=to, reason="again"))
            ).reason == "ILLEGAL_TRANSITION"
        closed = await h.fails(
            "PatchContract", pb.PatchContractRequest(work_order_id=wo.id, expected_version=0, patch_json="{}")
        )
        assert (closed.code, closed.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "WORK_ORDER_CLOSED")
        # the assignment may have a new work order now
        again = (await h.work_order(assignment_id=wo.assignment_id)).work_order
        assert again.id != wo.id and again.status == DRAFT

        moves = [(e["kind"], e["from"], e["to"], e["reason"]) for e in await h.audit(wo.id)]
        assert moves == [
            ("work_order.created", None, "DRAFT", ""),
            ("work_order.status_changed", "DRAFT", "DATA_PENDING", ""),
            ("work_order.status_changed", "DATA_PENDING", "CANCELLED", "client withdrew"),
        ]
        [cancel] = [
            unpack_payload(e, events.WorkOrderCancelled) for e in await h.outbox("repogen.work_order.cancelled")
        ]
        assert (cancel.work_order_id, cancel.reason) == (wo.id, "client withdrew")


async def test_acceptance_and_the_readiness_gate(suite):
    async with suite() as h:
        account = str(uuid.uuid4())
        wo = (await h.work_order(billing_account_id=account, credits=2)).work_order
        accepted = await h.transition(wo.id, DATA_PENDING, idempotency_key="accept-1")
        assert (accepted.work_order.status, accepted.work_order.version) == (DATA_PENDING, 2)
        assert not accepted.HasField("readiness")
        # the same key answers the same move, without a second event
        assert await h.transition(wo.id, DATA_PENDING, idempotency_key="accept-1") == accepted
        [env] = await h.outbox("repogen.work_order.accepted")
        p = unpack_payload(env, events.WorkOrderAccepted)
        assert (p.work_order_id, p.billing_account_id, p.channel_request_id, p.credits) == (wo.id, account, "", 2)
        assert (env.tenant_id, env.aggregate_type, env.aggregate_id, env.aggregate_version) == (
            h.tenant,
            "work_order",
            wo.id,
            2,
        )

        # nothing filled in: refused with the report naming what is missing
        empty = await h.fails("TransitionWorkOrder", pb.TransitionWorkOrderRequest(id=wo.id, to=READY))
        assert (empty.code, empty.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "READINESS_NOT_MET")
        report = json.loads(empty.metadata["readiness"])
        assert report["ready"] is False and "parties.borrower_name" in report["missing_fields"]
        assert "contract.parties.borrower_name" in fields_of(empty)
        assert "evidence.SITE_PHOTO" in fields_of(empty)

        # the fields in, the evidence not yet: still refused, for the evidence only
        patched = (await h.patch(wo.id, 0, FULL_CONTRACT)).work_order
        no_evidence = await h.fails("TransitionWorkOrder", pb.TransitionWorkOrderRequest(id=wo.id, to=READY))
        assert no_evidence.reason == "READINESS_NOT_MET"
        assert {f for f in fields_of(no_evidence)} == {
            "evidence.SITE_PHOTO",
            "evidence.SALE_DEED",
            "evidence.TAX_RECEIPT",
            "evidence.LOCATION_MAP",
        }
        assert no_evidence.metadata["missing_fields"] == ""
        assert "SITE_PHOTO:0/4" in no_evidence.metadata["missing_evidence"]
        template = await h.template(patched.template_id)
        for requirement in template.evidence_requirements:
            for _ in range(requirement.min_count - (1 if requirement.kind == "SITE_PHOTO" else 0)):
                await h.add_evidence(wo.id, requirement.kind)
        one_short = await h.fails("TransitionWorkOrder", pb.TransitionWorkOrderRequest(id=wo.id, to=READY))
        assert fields_of(one_short) == ["evidence.SITE_PHOTO"]
        assert "needs at least 4, has 3" in one_short.violations[0].description
        await h.add_evidence(wo.id, "SITE_PHOTO")
        assert (await h.readiness(wo.id)).ready

        moved = await h.transition(wo.id, READY)
        assert moved.work_order.status == READY and moved.readiness.ready and moved.readiness.score == 100
        [ready_env] = await h.outbox("repogen.work_order.ready_for_render")
        r = unpack_payload(ready_env, events.WorkOrderReadyForRender)
        assert (r.work_order_id, r.billing_account_id, r.snapshot_version) == (wo.id, account, 1)
        triggers = [
            row.trigger
            for row in await h.sql(
                "SELECT trigger FROM readiness_results WHERE work_order_id = CAST(:id AS uuid) ORDER BY created_at",
                {"id": wo.id},
            )
        ]
        assert triggers[:2] == ["create", "patch"] and triggers[-1] == "transition"
        assert triggers.count("evidence") == 7

        # patching again demotes it to DATA_PENDING (with the audit row saying so), and the gate applies again
        demoted = (await h.patch(wo.id, 1, {"sections": {"notes": "revised"}})).work_order
        assert (demoted.status, demoted.snapshot_version) == (DATA_PENDING, 2)
        last = (await h.audit(wo.id))[-1]
        assert (last["kind"], last["from"], last["to"], last["reason"]) == (
            "contract.patched",
            "READY_FOR_RENDER",
            "DATA_PENDING",
            "the contract changed",
        )
        again = await h.transition(wo.id, READY)
        assert again.work_order.snapshot_version == 2
        envs = await h.outbox("repogen.work_order.ready_for_render")
        assert [unpack_payload(e, events.WorkOrderReadyForRender).snapshot_version for e in envs] == [1, 2]


async def test_rendered_and_released_by_the_factory_and_the_release_only(suite):
    async with suite() as h:
        wo = (await h.work_order()).work_order
        await h.make_ready(wo.id)
        stale = await h.get(wo.id)
        # the factory's hook checks the snapshot it rendered is still the current one
        async with scoped_tx(h.engine, h.tenant) as conn:
            with pytest.raises(Exception) as info:
                await work_orders.mark_rendered(conn, work_order_id=wo.id, snapshot_version=0, actor="factory")
        assert info.value.reason == "SNAPSHOT_OUTDATED"
        async with scoped_tx(h.engine, h.tenant) as conn:
            with pytest.raises(Exception) as info:
                await work_orders.mark_released(conn, work_order_id=wo.id, actor="x")
        assert info.value.reason == "ILLEGAL_TRANSITION"
        async with scoped_tx(h.engine, h.tenant) as conn:
            await work_orders.record_factory_error(
                conn, work_order_id=wo.id, error="template missing", actor="service:repogen-factory"
            )
        assert (await h.get(wo.id)).last_error == "template missing"
        await rendered(h, wo.id)
        done = await h.get(wo.id)
        assert (done.status, done.last_error, done.version) == (RENDERED, "", stale.version + 2)
        # a rendered report's data is fixed
        for method, request in [
            (
                "PatchContract",
                pb.PatchContractRequest(work_order_id=wo.id, expected_version=done.snapshot_version, patch_json="{}"),
            ),
            (
                "AddEvidence",
                pb.AddEvidenceRequest(work_order_id=wo.id, document_id=(await h.document()).id, kind="OTHER"),
            ),
            ("OverrideTemplate", pb.OverrideTemplateRequest(id=wo.id, template_id="GENERIC_BANK_V1", reason="x")),
            ("AutoOrderAnnexures", pb.AutoOrderAnnexuresRequest(work_order_id=wo.id)),
        ]:
            detail = await h.fails(method, request)
            assert (detail.code, detail.reason, detail.metadata["status"]) == (
                grpc.StatusCode.FAILED_PRECONDITION,
                "WORK_ORDER_CLOSED",
                "RENDERED",
            ), method
        assert (
            await h.fails("TransitionWorkOrder", pb.TransitionWorkOrderRequest(id=wo.id, to=RELEASED))
        ).reason == "ILLEGAL_TRANSITION"
        await released(h, wo.id)
        assert (await h.get(wo.id)).status == RELEASED
        final = await h.fails(
            "TransitionWorkOrder", pb.TransitionWorkOrderRequest(id=wo.id, to=CANCELLED, reason="too late")
        )
        assert final.reason == "ILLEGAL_TRANSITION"
        kinds = [(e["kind"], e["from"], e["to"]) for e in await h.audit(wo.id)][-3:]
        assert kinds == [
            ("factory.failed", None, None),
            ("work_order.status_changed", "READY_FOR_RENDER", "RENDERED"),
            ("work_order.status_changed", "RENDERED", "RELEASED"),
        ]


async def test_billing_ref_state(suite):
    async with suite() as h:
        open_wo = (await h.work_order()).work_order
        cancelled = (await h.work_order()).work_order
        await h.transition(cancelled.id, CANCELLED, "duplicate")
        delivered = (await h.work_order()).work_order
        await h.make_ready(delivered.id)
        await rendered(h, delivered.id)
        await released(h, delivered.id)
        service = h.service_token()

        async def state(ref_id: str, token: str | None = None, tenant: str | None = None, ref_type="work_order"):
            return (
                await h.call(
                    "GetBillingRefState",
                    pb.GetBillingRefStateRequest(
                        ref_type=ref_type, ref_id=ref_id, tenant_id=tenant if tenant is not None else h.tenant
                    ),
                    token or service,
                )
            ).state

        assert await state(open_wo.id) == pb.BILLING_REF_STATE_OPEN
        assert await state(cancelled.id) == pb.BILLING_REF_STATE_CANCELLED
        assert await state(delivered.id) == pb.BILLING_REF_STATE_DELIVERED
        assert await state(str(uuid.uuid4())) == pb.BILLING_REF_STATE_NOT_FOUND
        assert await state("garbage") == pb.BILLING_REF_STATE_NOT_FOUND
        assert await state(open_wo.id, tenant=str(uuid.uuid4())) == pb.BILLING_REF_STATE_NOT_FOUND
        # a user with billing.reconcile asks in its own tenant
        assert await state(open_wo.id, h.token(("billing.reconcile",)), tenant="") == pb.BILLING_REF_STATE_OPEN
        wrong = await h.fails(
            "GetBillingRefState",
            pb.GetBillingRefStateRequest(ref_type="channel_request", ref_id=open_wo.id, tenant_id=h.tenant),
            service,
        )
        assert (wrong.code, fields_of(wrong)) == (grpc.StatusCode.INVALID_ARGUMENT, ["ref_type"])
        no_tenant = await h.fails(
            "GetBillingRefState", pb.GetBillingRefStateRequest(ref_type="work_order", ref_id=open_wo.id), service
        )
        assert fields_of(no_tenant) == ["tenant_id"]
        denied = await h.fails(
            "GetBillingRefState",
            pb.GetBillingRefStateRequest(ref_type="work_order", ref_id=open_wo.id),
            h.token(STUDIO_CAPS),
        )
        assert denied.reason == "MISSING_CAPABILITY"
        mismatch = await h.fails(
            "GetBillingRefState",
            pb.GetBillingRefStateRequest(ref_type="work_order", ref_id=open_wo.id, tenant_id=str(uuid.uuid4())),
            h.token(("billing.reconcile",)),
        )
        assert mismatch.reason == "TENANT_MISMATCH"


# -- templates ---------------------------------------------------------------------------------------


async def test_template_override_with_a_reason_survives_patches(suite):
    async with suite() as h:
        listed = await h.call("ListTemplates", pb.ListTemplatesRequest(), h.token(STUDIO_CAPS))
        assert listed.registry_version
        assert {t.id for t in listed.templates} >= {"SBI_UNDER_5CR_V1", "SBI_5CR_AND_ABOVE_V1", "GENERIC_BANK_V1"}
        assert all(t.required_fields and t.evidence_requirements for t in listed.templates)

        wo = (await h.work_order()).work_order
        patched = (await h.patch(wo.id, 0, FULL_CONTRACT)).work_order
        for request, field in [
            (pb.OverrideTemplateRequest(id=wo.id, template_id="NO_SUCH_V9", reason="bank asked"), "template_id"),
            (pb.OverrideTemplateRequest(id=wo.id, reason="bank asked"), "template_id"),
            (pb.OverrideTemplateRequest(id=wo.id, template_id="SBI_5CR_AND_ABOVE_V1"), "reason"),
            (pb.OverrideTemplateRequest(id="nope", template_id="SBI_5CR_AND_ABOVE_V1", reason="x"), "id"),
        ]:
            detail = await h.fails("OverrideTemplate", request)
            assert (detail.code, fields_of(detail)) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
        denied = await h.fails(
            "OverrideTemplate",
            pb.OverrideTemplateRequest(id=wo.id, template_id="SBI_5CR_AND_ABOVE_V1", reason="x"),
            h.token(STUDIO_CAPS),
        )
        assert denied.reason == "MISSING_CAPABILITY"

        over = (
            await h.call(
                "OverrideTemplate",
                pb.OverrideTemplateRequest(
                    id=wo.id, template_id="SBI_5CR_AND_ABOVE_V1", reason="the branch wants the long format"
                ),
            )
        ).work_order
        stricter = await h.template("SBI_5CR_AND_ABOVE_V1")
        assert (over.template_id, over.template_overridden, over.template_override_reason) == (
            "SBI_5CR_AND_ABOVE_V1",
            True,
            "the branch wants the long format",
        )
        assert over.evidence_profile == stricter.evidence_profile
        # the outputs were re-evaluated into a new snapshot with the template's parameters
        assert over.snapshot_version == patched.snapshot_version + 1
        snap = (await h.call("GetSnapshot", pb.GetSnapshotRequest(work_order_id=wo.id, latest=True))).snapshot
        assert snap.outputs.template_id == "SBI_5CR_AND_ABOVE_V1"
        assert json.loads(snap.contract_json) == {**rules.empty_contract(), **FULL_CONTRACT}
        # later patches keep the override
        kept = (await h.patch(wo.id, over.snapshot_version, {"sections": {"notes": "checked"}})).work_order
        assert (kept.template_id, kept.template_overridden) == ("SBI_5CR_AND_ABOVE_V1", True)
        kinds = [e["kind"] for e in await h.audit(wo.id)]
        assert kinds[-3:] == ["template.overridden", "contract.re_evaluated", "contract.patched"]
        override = next(e for e in await h.audit(wo.id) if e["kind"] == "template.overridden")
        assert override["reason"] == "the branch wants the long format"
        assert override["detail"]["before"] == {"template_id": "SBI_UNDER_5CR_V1", "overridden": False}


# -- portal scoping ----------------------------------------------------------------------------------


async def test_portal_users_see_only_their_channels_work_orders(suite):
    async with suite() as h:
        ours, theirs = await h.channel(), await h.channel()
        mine = (
            await h.work_order(
                assignment_id=(await h.assignment(None, source_type=opb.SOURCE_TYPE_CHANNEL, channel_id=ours)).id
            )
        ).work_order
        other = (
            await h.work_order(
                assignment_id=(await h.assignment(None, source_type=opb.SOURCE_TYPE_CHANNEL, channel_id=theirs)).id
            )
        ).work_order
        staff_only = (await h.work_order()).work_order
        assert (mine.channel_id, other.channel_id) == (ours, theirs)
        # a portal role that could read work orders (none has repogen.read today) sees its channel's only
        portal = h.portal(ours, caps=("repogen.read",))
        listed = await h.call("ListWorkOrders", pb.ListWorkOrdersRequest(), portal)
        assert [w.id for w in listed.work_orders] == [mine.id]
        assert (await h.call("GetWorkOrder", pb.GetWorkOrderRequest(id=mine.id), portal)).work_order.id == mine.id
        for wo in (other, staff_only):
            hidden = await h.fails("GetWorkOrder", pb.GetWorkOrderRequest(id=wo.id), portal)
            assert (hidden.code, hidden.reason) == (grpc.StatusCode.NOT_FOUND, "WORK_ORDER_NOT_FOUND")
            assert (
                await h.fails("GetExportBundle", pb.GetExportBundleRequest(work_order_id=wo.id), portal)
            ).code == grpc.StatusCode.NOT_FOUND
        unknown = await h.fails(
            "ListWorkOrders", pb.ListWorkOrdersRequest(), h.portal(str(uuid.uuid4()), caps=("repogen.read",))
        )
        assert (unknown.code, unknown.reason) == (grpc.StatusCode.PERMISSION_DENIED, "CHANNEL_UNKNOWN")
        # today's portal users hold no repogen capability at all
        assert (
            await h.fails("ListWorkOrders", pb.ListWorkOrdersRequest(), h.portal(ours))
        ).reason == "MISSING_CAPABILITY"
