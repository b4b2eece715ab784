"""Partner intake against the real ops service: portal users submit for their own channel
and see only its requests (in the queries and by RLS); reviewers accept (one assignment and
one event, however often and however concurrently) or reject; GetBillingRefState tells
billing where each ref stands."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from ops_harness import MANAGER_CAPS, VALUER_CAPS, outcome, property_details, running_ops
from sqlalchemy import text

from zenops.events.v1 import ops_pb2 as events
from zenops.ops.v1 import ops_pb2 as pb
from zenops_kit.events import unpack_payload
from zenops_kit.rls import scoped_tx

MISSING = "5a0c2a47-98c6-4b7e-9d41-0a2f5e0c1b11"


@pytest.fixture
def ops(start_service):
    return lambda **kw: running_ops(start_service, **kw)


def in_days(days: float) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(datetime.now(UTC) + timedelta(days=days))
    return t


async def test_portal_user_submits_for_its_channel_and_sees_only_its_own(ops):
    async with ops(run_workers=False) as h:
        account = str(uuid.uuid4())
        mine, theirs = await h.channel(billing_account_id=account, default_credits=3), await h.channel()
        bank = await h.bank()
        branch = await h.branch(bank)
        partner_id = str(uuid.uuid4())
        partner, other = h.portal(mine, user_id=partner_id), h.portal(theirs)

        r = await h.submit(
            partner,
            branch_id=branch,
            borrower_phone="098765 43210",
            notes="Urgent, bank waiting",
            requested_service=" Valuation_Report ",
            property=property_details(latitude="19.0544", longitude="72.8406"),
        )
        assert (r.channel_id, r.status, r.credits, r.submitted_by, r.bank_id, r.branch_id) == (
            mine,
            pb.CHANNEL_REQUEST_STATUS_SUBMITTED,
            3,
            partner_id,
            bank,
            branch,
        )
        assert (r.borrower_phone, r.requested_service, r.property.pin_code, r.property.latitude) == (
            "+919876543210",
            "valuation_report",
            "400050",
            "19.054400",
        )
        assert not r.assignment_id and not r.HasField("reviewed_at")
        # stored in the firm's tenant (the portal token carries the external one)
        [row] = await h.sql("SELECT tenant_id::text AS tenant, channel_id::text AS channel FROM channel_requests")
        assert (row.tenant, row.channel) == (h.tenant, mine)
        [activity] = await h.activities(channel_request_id=r.id)
        assert (activity["kind"], activity["actor"], activity["detail"]["credits"]) == (
            "channel_request.submitted",
            partner_id,
            3,
        )

        # naming its own channel is fine; explicit credits win over the default
        r2 = await h.submit(partner, channel_id=mine.upper(), credits=5)
        assert (r2.channel_id, r2.credits) == (mine, 5)
        # another channel's id is refused
        err = await h.fails(
            "SubmitChannelRequest",
            pb.SubmitChannelRequestRequest(
                channel_id=theirs, borrower_name="A", property=property_details(), requested_service="revaluation"
            ),
            token=partner,
        )
        assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "CHANNEL_MISMATCH")
        r3 = await h.submit(other, borrower_name="Someone Else")

        # fetch and list: own channel only, for the partner; everything for staff
        fetched = await h.call("FetchChannelRequest", pb.FetchChannelRequestRequest(id=r.id), partner)
        assert fetched.channel_request == r
        hidden = await h.fails("FetchChannelRequest", pb.FetchChannelRequestRequest(id=r.id), other)
        assert (hidden.code, hidden.reason) == (grpc.StatusCode.NOT_FOUND, "CHANNEL_REQUEST_NOT_FOUND")

        async def listed(token, **filters) -> list[str]:
            resp = await h.call("ListChannelRequests", pb.ListChannelRequestsRequest(**filters), token)
            return [x.id for x in resp.channel_requests]

        assert await listed(partner) == [r2.id, r.id]
        assert await listed(other) == [r3.id]
        assert await listed(other, channel_id=mine) == []
        assert await listed(h.manager) == [r3.id, r2.id, r.id]
        assert await listed(h.manager, channel_id=mine) == [r2.id, r.id]
        assert await listed(h.manager, status=pb.CHANNEL_REQUEST_STATUS_ACCEPTED) == []
        assert await listed(partner, page={"limit": 1}) == [r2.id]

        # RLS alone keeps a channel's transaction to its rows, whatever the query says
        async with scoped_tx(h.engine, h.tenant, theirs) as conn:
            rows = (await conn.execute(text("SELECT id::text FROM channel_requests"))).scalars().all()
        assert rows == [r3.id]

        # a portal user of a channel ops does not know, or without a channel, is refused
        unknown = await h.fails("ListChannelRequests", pb.ListChannelRequestsRequest(), h.portal(str(uuid.uuid4())))
        assert (unknown.code, unknown.reason) == (grpc.StatusCode.PERMISSION_DENIED, "CHANNEL_UNKNOWN")


async def test_submission_input_names_fields(ops):
    async with ops(run_workers=False) as h:
        channel, inactive = await h.channel(), await h.channel(active=False)
        bank, other_bank = await h.bank(), await h.bank()
        foreign_branch = await h.branch(other_bank)
        partner = h.portal(channel)
        good = {"borrower_name": "Asha", "property": property_details(), "requested_service": "valuation_report"}
        cases = [
            ({"borrower_name": ""}, grpc.StatusCode.INVALID_ARGUMENT, "borrower_name"),
            ({"borrower_name": "x" * 201}, grpc.StatusCode.INVALID_ARGUMENT, "borrower_name"),
            ({"borrower_phone": "12345"}, grpc.StatusCode.INVALID_ARGUMENT, "borrower_phone"),
            ({"property": pb.PropertyDetails()}, grpc.StatusCode.INVALID_ARGUMENT, "property.property_type"),
            ({"property": property_details(pin_code="012345")}, grpc.StatusCode.INVALID_ARGUMENT, "property.pin_code"),
            ({"property": property_details(state="XX")}, grpc.StatusCode.INVALID_ARGUMENT, "property.state"),
            (
                {"property": property_details(address_line1="")},
                grpc.StatusCode.INVALID_ARGUMENT,
                "property.address_line1",
            ),
            (
                {"property": property_details(latitude="91", longitude="72")},
                grpc.StatusCode.INVALID_ARGUMENT,
                "property.latitude",
            ),
            ({"requested_service": ""}, grpc.StatusCode.INVALID_ARGUMENT, "requested_service"),
            ({"requested_service": "audit"}, grpc.StatusCode.INVALID_ARGUMENT, "requested_service"),
            ({"credits": -1}, grpc.StatusCode.INVALID_ARGUMENT, "credits"),
            ({"credits": 10**9}, grpc.StatusCode.INVALID_ARGUMENT, "credits"),
            ({"notes": "n" * 5001}, grpc.StatusCode.INVALID_ARGUMENT, "notes"),
            ({"bank_id": "SBI"}, grpc.StatusCode.INVALID_ARGUMENT, "bank_id"),
            ({"bank_id": MISSING}, grpc.StatusCode.NOT_FOUND, "bank_id"),
            ({"branch_id": MISSING}, grpc.StatusCode.NOT_FOUND, "branch_id"),
            ({"bank_id": bank, "branch_id": foreign_branch}, grpc.StatusCode.INVALID_ARGUMENT, "branch_id"),
        ]
        for fields, code, field in cases:
            err = await h.fails("SubmitChannelRequest", pb.SubmitChannelRequestRequest(**{**good, **fields}), partner)
            assert err.code == code, (fields, err)
            named = err.metadata.get("field") if code == grpc.StatusCode.NOT_FOUND else err.violations[0].field
            assert named == field, (fields, err)

        # staff name the channel, which must exist and be active
        staff = [
            ({}, grpc.StatusCode.INVALID_ARGUMENT, "channel_id"),
            ({"channel_id": MISSING}, grpc.StatusCode.NOT_FOUND, "CHANNEL_NOT_FOUND"),
            ({"channel_id": inactive}, grpc.StatusCode.FAILED_PRECONDITION, "CHANNEL_INACTIVE"),
        ]
        for fields, code, what in staff:
            err = await h.fails("SubmitChannelRequest", pb.SubmitChannelRequestRequest(**{**good, **fields}))
            assert err.code == code, (fields, err)
            assert what in (err.reason, *(v.field for v in err.violations)), err
        assert (await h.submit(h.manager, channel_id=channel)).channel_id == channel
        # a valuer reads requests but does not submit them
        _, valuer = h.user(VALUER_CAPS)
        err = await h.fails("SubmitChannelRequest", pb.SubmitChannelRequestRequest(channel_id=channel, **good), valuer)
        assert err.code == grpc.StatusCode.PERMISSION_DENIED
        bad_id = await h.fails("FetchChannelRequest", pb.FetchChannelRequestRequest(id="42"), partner)
        assert [v.field for v in bad_id.violations] == ["id"]


async def test_accept_creates_one_assignment_and_one_event(ops):
    async with ops(run_workers=False) as h:
        account = str(uuid.uuid4())
        channel = await h.channel(billing_account_id=account)
        bank = await h.bank()
        branch = await h.branch(bank)
        partner = h.portal(channel)
        r = await h.submit(
            partner,
            bank_id=bank,
            branch_id=branch,
            credits=2,
            notes="Keys with the watchman",
            property=property_details(latitude="19.0544", longitude="72.8406"),
        )

        # who may accept: reviewers only
        _, valuer = h.user(VALUER_CAPS)
        for token in (valuer, partner):
            err = await h.fails("AcceptChannelRequest", pb.AcceptChannelRequestRequest(id=r.id), token)
            assert (err.code, err.metadata["missing"]) == (grpc.StatusCode.PERMISSION_DENIED, "channel_requests.review")

        valuer_id = str(uuid.uuid4())
        due = in_days(5)
        resp = await h.call(
            "AcceptChannelRequest",
            pb.AcceptChannelRequestRequest(
                id=r.id, assignee_ids=[valuer_id], due_at=due, priority=pb.PRIORITY_HIGH, fee_paise=250_000
            ),
        )
        req, a = resp.channel_request, resp.assignment
        assert (req.status, req.assignment_id, req.reviewed_by) == (
            pb.CHANNEL_REQUEST_STATUS_ACCEPTED,
            a.id,
            h.manager_id,
        )
        assert req.HasField("reviewed_at")
        assert (a.source_type, a.channel_id, a.channel_request_id, a.bank_id, a.branch_id, a.borrower_name) == (
            pb.SOURCE_TYPE_CHANNEL,
            channel,
            r.id,
            bank,
            branch,
            "Asha Patel",
        )
        assert (list(a.assignee_ids), a.priority, a.fee_paise, a.notes, a.status) == (
            [valuer_id],
            pb.PRIORITY_HIGH,
            250_000,
            "Keys with the watchman",
            pb.ASSIGNMENT_STATUS_DRAFT,
        )
        assert a.due_at.ToMicroseconds() == due.ToMicroseconds()
        # the property it describes now exists, unverified
        [prop] = await h.sql(
            "SELECT address_line1, city, pin_code, latitude::text AS lat, longitude::text AS lon, "
            "verification, created_by FROM properties WHERE id = CAST(:id AS uuid)",
            {"id": a.property_id},
        )
        assert (prop.address_line1, prop.pin_code, prop.lat, prop.lon, prop.verification, prop.created_by) == (
            "Flat 4B, Sea View",
            "400050",
            "19.054400",
            "72.840600",
            "UNVERIFIED",
            h.manager_id,
        )
        [audit] = await h.sql(
            "SELECT action, actor FROM masterdata_audit WHERE resource_id = CAST(:id AS uuid)", {"id": a.property_id}
        )
        assert (audit.action, audit.actor) == ("created", h.manager_id)
        kinds = [x["kind"] for x in await h.activities(channel_request_id=r.id)]
        assert kinds == ["channel_request.submitted", "assignment.created", "channel_request.accepted"]

        [env] = await h.outbox("ops.channel_request.accepted")
        body = unpack_payload(env, events.ChannelRequestAccepted)
        assert (env.aggregate_type, env.aggregate_id, env.tenant_id, env.producer.name) == (
            "channel_request",
            r.id,
            h.tenant,
            "ops",
        )
        assert (
            body.channel_request_id,
            body.channel_id,
            body.assignment_id,
            body.billing_account_id,
            body.credits,
            body.report_requested,
            body.fee_paise,
            body.requested_service,
            body.reference_number,
        ) == (r.id, channel, a.id, account, 2, True, 250_000, "valuation_report", a.reference_number)

        # accepting again (other options, another key) answers the same and emits nothing
        again = await h.call("AcceptChannelRequest", pb.AcceptChannelRequestRequest(id=r.id, fee_paise=1))
        assert (again.channel_request, again.assignment) == (req, a)
        assert len(await h.outbox("ops.channel_request.accepted")) == 1
        # the partner sees it accepted, with its assignment
        seen = await h.call("FetchChannelRequest", pb.FetchChannelRequestRequest(id=r.id), partner)
        assert seen.channel_request.assignment_id == a.id
        # rejecting it now is refused
        err = await h.fails("RejectChannelRequest", pb.RejectChannelRequestRequest(id=r.id, reason="late"))
        assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CHANNEL_REQUEST_ACCEPTED")

        # a site inspection asks for no report
        r2 = await h.submit(partner, requested_service="site_inspection")
        await h.call("AcceptChannelRequest", pb.AcceptChannelRequestRequest(id=r2.id))
        second = unpack_payload((await h.outbox("ops.channel_request.accepted"))[-1], events.ChannelRequestAccepted)
        assert (second.report_requested, second.fee_paise, second.credits) == (False, 0, 1)

        for request, field in [
            (pb.AcceptChannelRequestRequest(id="x"), "id"),
            (pb.AcceptChannelRequestRequest(id=MISSING), None),
        ]:
            err = await h.fails("AcceptChannelRequest", request)
            if field:
                assert [v.field for v in err.violations] == [field]
            else:
                assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "CHANNEL_REQUEST_NOT_FOUND")
        r3 = await h.submit(partner)
        for request, field in [
            (pb.AcceptChannelRequestRequest(id=r3.id, due_at=in_days(-1)), "due_at"),
            (pb.AcceptChannelRequestRequest(id=r3.id, fee_paise=-1), "fee_paise"),
            (pb.AcceptChannelRequestRequest(id=r3.id, assignee_ids=["bob"]), "assignee_ids"),
        ]:
            err = await h.fails("AcceptChannelRequest", request)
            assert [v.field for v in err.violations] == [field]
        assert (
            await h.call("FetchChannelRequest", pb.FetchChannelRequestRequest(id=r3.id))
        ).channel_request.status == pb.CHANNEL_REQUEST_STATUS_SUBMITTED


async def test_concurrent_accepts_make_one_assignment(ops):
    async with ops(run_workers=False) as h:
        channel = await h.channel(billing_account_id=str(uuid.uuid4()))
        r = await h.submit(h.portal(channel))
        reviewers = [h.user(MANAGER_CAPS)[1] for _ in range(8)]
        results = await asyncio.gather(
            *(
                outcome(
                    h.call(
                        "AcceptChannelRequest", pb.AcceptChannelRequestRequest(id=r.id, idempotency_key=f"k{i}"), token
                    )
                )
                for i, token in enumerate(reviewers)
            )
        )
        assert [o for o, _ in results] == ["OK"] * 8
        assert len({resp.assignment.id for _, resp in results}) == 1
        assert len({resp.assignment.reference_number for _, resp in results}) == 1
        assert len(await h.sql("SELECT id FROM assignments")) == 1
        assert len(await h.outbox("ops.channel_request.accepted")) == 1


async def test_reject_records_the_reason_once(ops):
    async with ops(run_workers=False) as h:
        account = str(uuid.uuid4())
        channel = await h.channel(billing_account_id=account)
        partner = h.portal(channel)
        r = await h.submit(partner)
        for reason in ("", "   ", "r" * 1001):
            err = await h.fails("RejectChannelRequest", pb.RejectChannelRequestRequest(id=r.id, reason=reason))
            assert (err.code, [v.field for v in err.violations]) == (grpc.StatusCode.INVALID_ARGUMENT, ["reason"])
        _, valuer = h.user(VALUER_CAPS)
        err = await h.fails("RejectChannelRequest", pb.RejectChannelRequestRequest(id=r.id, reason="no"), valuer)
        assert err.code == grpc.StatusCode.PERMISSION_DENIED

        rejected = (
            await h.call(
                "RejectChannelRequest",
                pb.RejectChannelRequestRequest(id=r.id, reason="Property outside our service area"),
            )
        ).channel_request
        assert (rejected.status, rejected.rejection_reason, rejected.reviewed_by, rejected.assignment_id) == (
            pb.CHANNEL_REQUEST_STATUS_REJECTED,
            "Property outside our service area",
            h.manager_id,
            "",
        )
        [env] = await h.outbox("ops.channel_request.rejected")
        body = unpack_payload(env, events.ChannelRequestRejected)
        assert (body.channel_request_id, body.channel_id, body.billing_account_id, body.reason) == (
            r.id,
            channel,
            account,
            "Property outside our service area",
        )
        assert (env.aggregate_type, env.aggregate_id) == ("channel_request", r.id)

        again = (
            await h.call("RejectChannelRequest", pb.RejectChannelRequestRequest(id=r.id, reason="another reason"))
        ).channel_request
        assert again == rejected
        assert len(await h.outbox("ops.channel_request.rejected")) == 1
        err = await h.fails("AcceptChannelRequest", pb.AcceptChannelRequestRequest(id=r.id))
        assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CHANNEL_REQUEST_REJECTED")
        assert await h.sql("SELECT id FROM assignments") == []
        kinds = [x["kind"] for x in await h.activities(channel_request_id=r.id)]
        assert kinds == ["channel_request.submitted", "channel_request.rejected"]
        seen = await h.call(
            "ListChannelRequests", pb.ListChannelRequestsRequest(status=pb.CHANNEL_REQUEST_STATUS_REJECTED), partner
        )
        assert [x.id for x in seen.channel_requests] == [r.id]


async def test_billing_ref_state_for_every_state(ops):
    async with ops(run_workers=False) as h:
        channel = await h.channel()
        partner = h.portal(channel)
        service = h.service_token()

        async def state(ref_type: str, ref_id: str, tenant: str | None = None, token: str | None = None) -> int:
            resp = await h.call(
                "GetBillingRefState",
                pb.GetBillingRefStateRequest(
                    ref_type=ref_type, ref_id=ref_id, tenant_id=h.tenant if tenant is None else tenant
                ),
                token or service,
            )
            return resp.state

        submitted = await h.submit(partner)
        rejected = await h.submit(partner)
        await h.call("RejectChannelRequest", pb.RejectChannelRequestRequest(id=rejected.id, reason="duplicate"))
        accepted = {}
        for name in ("open", "delivered", "cancelled"):
            r = await h.submit(partner)
            accepted[name] = await h.call("AcceptChannelRequest", pb.AcceptChannelRequestRequest(id=r.id))
        a_open = accepted["open"].assignment
        a_delivered = accepted["delivered"].assignment
        for to in ("COLLECTING", "SITE_VISIT", "UNDER_REVIEW", "DELIVERED"):
            await h.transition(a_delivered.id, pb.AssignmentStatus.Value(f"ASSIGNMENT_STATUS_{to}"))
        a_cancelled = accepted["cancelled"].assignment
        await h.transition(a_cancelled.id, pb.ASSIGNMENT_STATUS_CANCELLED, "bank withdrew")
        direct = await h.create_assignment()

        assert await state("channel_request", submitted.id) == pb.BILLING_REF_STATE_OPEN
        assert await state("channel_request", rejected.id) == pb.BILLING_REF_STATE_CANCELLED
        assert await state("channel_request", accepted["open"].channel_request.id) == pb.BILLING_REF_STATE_OPEN
        assert (
            await state("channel_request", accepted["delivered"].channel_request.id) == pb.BILLING_REF_STATE_DELIVERED
        )
        assert (
            await state("channel_request", accepted["cancelled"].channel_request.id) == pb.BILLING_REF_STATE_CANCELLED
        )
        assert await state("assignment", a_open.id) == pb.BILLING_REF_STATE_OPEN
        assert await state("assignment", direct.id) == pb.BILLING_REF_STATE_OPEN
        assert await state("assignment", a_delivered.id) == pb.BILLING_REF_STATE_DELIVERED
        assert await state("assignment", a_cancelled.id) == pb.BILLING_REF_STATE_CANCELLED
        assert await state("channel_request", MISSING) == pb.BILLING_REF_STATE_NOT_FOUND
        assert await state("assignment", "not-a-uuid") == pb.BILLING_REF_STATE_NOT_FOUND
        assert await state("channel_request", a_open.id) == pb.BILLING_REF_STATE_NOT_FOUND
        # another tenant's ref is not found
        assert await state("assignment", a_open.id, tenant=str(uuid.uuid4())) == pb.BILLING_REF_STATE_NOT_FOUND

        # a user needs billing.reconcile and asks about its own tenant
        _, reconciler = h.user(("billing.reconcile",), aud="studio")
        assert await state("assignment", a_delivered.id, token=reconciler) == pb.BILLING_REF_STATE_DELIVERED
        assert await state("assignment", a_delivered.id, tenant="", token=reconciler) == pb.BILLING_REF_STATE_DELIVERED
        for request, token, code in [
            (
                pb.GetBillingRefStateRequest(ref_type="work_order", ref_id=MISSING, tenant_id=h.tenant),
                service,
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            (
                pb.GetBillingRefStateRequest(ref_type="", ref_id=MISSING, tenant_id=h.tenant),
                service,
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            (
                pb.GetBillingRefStateRequest(ref_type="assignment", ref_id=MISSING),
                service,
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            (
                pb.GetBillingRefStateRequest(ref_type="assignment", ref_id=MISSING, tenant_id="x"),
                service,
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            (
                pb.GetBillingRefStateRequest(ref_type="assignment", ref_id=MISSING, tenant_id=h.tenant),
                h.manager,
                grpc.StatusCode.PERMISSION_DENIED,
            ),
            (
                pb.GetBillingRefStateRequest(ref_type="assignment", ref_id=MISSING, tenant_id=str(uuid.uuid4())),
                reconciler,
                grpc.StatusCode.PERMISSION_DENIED,
            ),
        ]:
            err = await h.fails("GetBillingRefState", request, token)
            assert err.code == code, (request, err)
        # the tenant may also come as metadata (as other service calls name it)
        resp = await h.call(
            "GetBillingRefState",
            pb.GetBillingRefStateRequest(ref_type="assignment", ref_id=a_cancelled.id),
            service,
            metadata=(("x-tenant-id", h.tenant),),
        )
        assert resp.state == pb.BILLING_REF_STATE_CANCELLED


async def test_portal_idempotency_keys_are_scoped_to_the_channel(ops):
    """Partners of two channels share the firm's tenant: the same key (and the same request)
    from each gives each its own request, never the other channel's stored answer."""
    async with ops(run_workers=False) as h:
        mine, theirs = await h.channel(), await h.channel()
        partner, other = h.portal(mine), h.portal(theirs)
        first = await h.submit(partner, idempotency_key="same-key")
        replay = await h.submit(partner, idempotency_key="same-key")
        second = await h.submit(other, idempotency_key="same-key")
        assert replay.id == first.id and first.channel_id == mine
        assert second.id != first.id and second.channel_id == theirs
        rows = await h.sql("SELECT key FROM idempotency_keys ORDER BY key")
        assert sorted(r.key for r in rows) == sorted(f"channel:{c}:same-key" for c in (mine, theirs))
