"""Billing accounts (create, get, list, update with audited policy/status changes, status by id
or external key), who may call what (capabilities, portal tokens, service tokens), tenant
isolation, and the read surfaces: reservations list, timeline, credit aggregate."""

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from billing_harness import OPERATOR_CAPS, pb
from google.protobuf import field_mask_pb2

from zenops.common.v1 import common_pb2
from zenops_billing.store import usage as usage_store

VALID_GSTIN = "27AAPFU0939F1ZV"


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


async def test_create_get_and_status_by_id_or_external_key(billing):
    async with billing() as h:
        created = (
            await h.call(
                "CreateAccount",
                pb.CreateAccountRequest(
                    display_name="  State   Bank  ",
                    external_key="sbi-mumbai",
                    policy=pb.BILLING_POLICY_POSTPAID,
                    gstin=VALID_GSTIN.lower(),
                    billing_address="Nariman Point, Mumbai",
                ),
            )
        ).account
        assert (created.display_name, created.external_key, created.policy, created.status) == (
            "State Bank",
            "sbi-mumbai",
            pb.BILLING_POLICY_POSTPAID,
            pb.ACCOUNT_STATUS_ACTIVE,
        )
        assert (created.gstin, created.currency, created.tenant_id) == (VALID_GSTIN, "INR", h.tenant)
        assert created.wallet == pb.Wallet()
        assert (await h.call("GetAccount", pb.GetAccountRequest(id=created.id))).account == created
        # policy defaults to CREDIT
        credit = (await h.call("CreateAccount", pb.CreateAccountRequest(display_name="Walk-in"))).account
        assert credit.policy == pb.BILLING_POLICY_CREDIT and credit.external_key == ""

        await h.grant(created.id, 10)
        await h.reserve(created.id, 2)
        await h.reserve(created.id, 3)
        for request in (
            pb.GetAccountStatusRequest(account_id=created.id),
            pb.GetAccountStatusRequest(external_key="sbi-mumbai"),
        ):
            status = await h.call("GetAccountStatus", request)
            assert status.account.id == created.id
            assert (status.open_reservations, status.unpaid_invoices) == (2, 0)
            assert (status.account.wallet.reserved, status.account.wallet.available) == (5, 5)
        err = await h.fails("GetAccountStatus", pb.GetAccountStatusRequest(external_key="nobody"))
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
        err = await h.fails("GetAccountStatus", pb.GetAccountStatusRequest())
        assert [v.field for v in err.violations] == ["account"]
        err = await h.fails("GetAccountStatus", pb.GetAccountStatusRequest(account_id="sbi"))
        assert [v.field for v in err.violations] == ["account_id"]

        err = await h.fails("CreateAccount", pb.CreateAccountRequest(display_name="Copy", external_key="sbi-mumbai"))
        assert (err.code, err.reason) == (grpc.StatusCode.ALREADY_EXISTS, "EXTERNAL_KEY_TAKEN")
        assert [v.field for v in err.violations] == ["external_key"]
        audit = await h.sql(
            "SELECT kind, actor FROM account_events WHERE account_id = CAST(:id AS uuid)", {"id": created.id}
        )
        assert [(a.kind, a.actor) for a in audit] == [("ACCOUNT_CREATED", h.operator_id)]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"display_name": "   "}, "display_name"),
        ({"display_name": "x" * 201}, "display_name"),
        ({"gstin": "27AAPFU0939F1Z"}, "gstin"),  # 14 characters
        ({"gstin": "27AAPFU0939F1ZX"}, "gstin"),  # wrong check character
        ({"gstin": "27AAPFU0939F1AV"}, "gstin"),  # 14th must be Z
        ({"gstin": "00AAPFU0939F1ZV"}, "gstin"),  # no such state
        ({"external_key": "has space"}, "external_key"),
        ({"billing_address": "x" * 1001}, "billing_address"),
        ({"policy": 7}, "policy"),
    ],
)
async def test_create_account_field_errors(billing, fields, field):
    async with billing() as h:
        err = await h.fails("CreateAccount", pb.CreateAccountRequest(**{"display_name": "Acme", **fields}))
        assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_FAILED")
        assert [v.field for v in err.violations] == [field]


async def test_update_with_mask_and_audited_policy_and_status_changes(billing):
    async with billing() as h:
        account = await h.account(display_name="Acme", external_key="acme")
        updated = (
            await h.call(
                "UpdateAccount",
                pb.UpdateAccountRequest(
                    id=account.id,
                    account=pb.Account(
                        display_name="Acme Finance",
                        gstin="29AAGCB7383J1Z4",
                        billing_address="MG Road",
                        policy=pb.BILLING_POLICY_POSTPAID,
                    ),
                    update_mask=mask("display_name", "gstin", "billing_address"),
                ),
            )
        ).account
        # only the masked fields change
        assert (updated.display_name, updated.gstin, updated.billing_address, updated.policy) == (
            "Acme Finance",
            "29AAGCB7383J1Z4",
            "MG Road",
            pb.BILLING_POLICY_CREDIT,
        )
        assert updated.updated_at.ToDatetime() >= account.updated_at.ToDatetime()

        policy_change = pb.UpdateAccountRequest(
            id=account.id, account=pb.Account(policy=pb.BILLING_POLICY_POSTPAID), update_mask=mask("policy")
        )
        err = await h.fails("UpdateAccount", policy_change)
        assert [v.field for v in err.violations] == ["reason"]
        policy_change.reason = "moving to monthly invoicing"
        assert (await h.call("UpdateAccount", policy_change)).account.policy == pb.BILLING_POLICY_POSTPAID
        # the same value again is no change (no reason needed, nothing recorded)
        policy_change.reason = ""
        await h.call("UpdateAccount", policy_change)
        suspend = pb.UpdateAccountRequest(
            id=account.id,
            account=pb.Account(status=pb.ACCOUNT_STATUS_SUSPENDED),
            update_mask=mask("status"),
            reason="fraud check",
        )
        assert (await h.call("UpdateAccount", suspend)).account.status == pb.ACCOUNT_STATUS_SUSPENDED
        # clearing optional fields
        cleared = (
            await h.call(
                "UpdateAccount",
                pb.UpdateAccountRequest(id=account.id, account=pb.Account(), update_mask=mask("gstin", "external_key")),
            )
        ).account
        assert (cleared.gstin, cleared.external_key) == ("", "")

        audit = await h.sql(
            "SELECT kind, actor, reason, detail->>'before' AS before, detail->>'after' AS after "
            "FROM account_events WHERE account_id = CAST(:id AS uuid) ORDER BY occurred_at, id",
            {"id": account.id},
        )
        assert [(a.kind, a.reason) for a in audit] == [
            ("ACCOUNT_CREATED", ""),
            ("ACCOUNT_UPDATED", ""),
            ("POLICY_CHANGED", "moving to monthly invoicing"),
            ("STATUS_CHANGED", "fraud check"),
            ("ACCOUNT_UPDATED", ""),
        ]
        assert (audit[2].before, audit[2].after) == ("CREDIT", "POSTPAID")
        assert (audit[3].before, audit[3].after) == ("ACTIVE", "SUSPENDED")
        assert {a.actor for a in audit} == {h.operator_id}

        for request, field in (
            (pb.UpdateAccountRequest(id=account.id, account=pb.Account()), "update_mask"),
            (pb.UpdateAccountRequest(id=account.id, update_mask=mask("currency")), "update_mask.paths[0]"),
            (pb.UpdateAccountRequest(id=account.id, update_mask=mask("display_name")), "account.display_name"),
            (pb.UpdateAccountRequest(id=account.id, update_mask=mask("policy"), reason="x"), "account.policy"),
            (
                pb.UpdateAccountRequest(
                    id=account.id, account=pb.Account(gstin="27AAPFU0939F1ZX"), update_mask=mask("gstin")
                ),
                "account.gstin",
            ),
            (pb.UpdateAccountRequest(id="acme", update_mask=mask("display_name")), "id"),
        ):
            err = await h.fails("UpdateAccount", request)
            assert [v.field for v in err.violations] == [field], request
        other = await h.account(external_key="other")
        await h.account(external_key="taken")
        err = await h.fails(
            "UpdateAccount",
            pb.UpdateAccountRequest(
                id=other.id, account=pb.Account(external_key="taken"), update_mask=mask("external_key")
            ),
        )
        assert (err.reason, [v.field for v in err.violations]) == ("EXTERNAL_KEY_TAKEN", ["account.external_key"])
        err = await h.fails(
            "UpdateAccount",
            pb.UpdateAccountRequest(
                id=str(uuid.uuid4()), account=pb.Account(display_name="x"), update_mask=mask("display_name")
            ),
        )
        assert err.reason == "ACCOUNT_NOT_FOUND"


async def test_list_accounts_pages_and_filters(billing):
    async with billing() as h:
        ids = []
        for i in range(7):
            policy = pb.BILLING_POLICY_POSTPAID if i % 3 == 0 else pb.BILLING_POLICY_CREDIT
            ids.append((await h.account(display_name=f"Bank {i}", policy=policy)).id)
        seen, cursor = [], ""
        while True:
            page = await h.call(
                "ListAccounts", pb.ListAccountsRequest(page=common_pb2.PageRequest(limit=3, cursor=cursor))
            )
            seen += [a.id for a in page.accounts]
            cursor = page.page.next_cursor
            if not cursor:
                break
        assert seen == ids
        postpaid = await h.call("ListAccounts", pb.ListAccountsRequest(policy=pb.BILLING_POLICY_POSTPAID))
        assert [a.id for a in postpaid.accounts] == [ids[0], ids[3], ids[6]]
        suspended = await h.call("ListAccounts", pb.ListAccountsRequest(status=pb.ACCOUNT_STATUS_SUSPENDED))
        assert list(suspended.accounts) == []
        err = await h.fails("ListAccounts", pb.ListAccountsRequest(page=common_pb2.PageRequest(cursor="nope")))
        assert [v.field for v in err.violations] == ["page.cursor"]
        err = await h.fails("ListAccounts", pb.ListAccountsRequest(page=common_pb2.PageRequest(limit=-1)))
        assert [v.field for v in err.violations] == ["page.limit"]


async def test_capabilities_portal_and_unprivileged_tokens(billing):
    async with billing() as h:
        account = await h.account(10)
        r = (await h.reserve(account.id, 1)).reservation
        every_rpc = [
            ("CreateAccount", pb.CreateAccountRequest(display_name="x"), "billing.write"),
            ("GetAccount", pb.GetAccountRequest(id=account.id), "billing.read"),
            ("ListAccounts", pb.ListAccountsRequest(), "billing.read"),
            ("UpdateAccount", pb.UpdateAccountRequest(id=account.id), "billing.write"),
            ("GetAccountStatus", pb.GetAccountStatusRequest(account_id=account.id), "billing.read"),
            (
                "GrantCredits",
                pb.GrantCreditsRequest(account_id=account.id, amount=1, reason="x"),
                "billing.credits.write",
            ),
            (
                "ReserveCredits",
                pb.ReserveCreditsRequest(account_id=account.id, amount=1, ref_type="manual", ref_id="p"),
                "billing.write",
            ),
            ("ConsumeReservation", pb.ConsumeReservationRequest(reservation_id=r.id), "billing.write"),
            ("ReleaseReservation", pb.ReleaseReservationRequest(reservation_id=r.id, reason="x"), "billing.write"),
            ("ListReservations", pb.ListReservationsRequest(), "billing.read"),
            ("GetTimeline", pb.GetTimelineRequest(account_id=account.id), "billing.read"),
            ("GetCreditAggregate", pb.GetCreditAggregateRequest(), "billing.read"),
        ]
        portal = h.token(
            caps=["channel_requests.read", "invoices.read"],
            aud="portal",
            roles=["portal_user"],
            channel_id=str(uuid.uuid4()),
        )
        valuer = h.token(caps=["assignments.read", "tasks.write"], roles=["valuer"])
        reader = h.token(caps=["billing.read"])
        for method, request, needed in every_rpc:
            for token in (portal, valuer):
                err = await h.fails(method, request, token)
                assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_CAPABILITY"), method
            if needed == "billing.read":
                await h.call(method, request, reader)
            else:
                err = await h.fails(method, request, reader)
                assert (err.code, err.metadata["missing"]) == (grpc.StatusCode.PERMISSION_DENIED, needed), method
        # billing.write alone cannot grant; credits.write alone cannot reserve
        err = await h.fails("GrantCredits", every_rpc[5][1], h.token(caps=["billing.write", "billing.read"]))
        assert err.metadata["missing"] == "billing.credits.write"
        err = await h.fails("ReserveCredits", every_rpc[6][1], h.token(caps=["billing.credits.write"]))
        assert err.metadata["missing"] == "billing.write"
        # no token at all
        try:
            await h.stub.GetAccount(pb.GetAccountRequest(id=account.id), timeout=5)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
        else:
            raise AssertionError("answered without a token")
        # nothing changed
        assert (await h.wallet(account.id)).reserved == 1 and await h.ledger_sums(account.id) == {
            "GRANT": 10,
            "RESERVE": 1,
        }


async def test_tenant_isolation(billing):
    async with billing() as h:
        account = await h.account(10, external_key="shared-key")
        r = (await h.reserve(account.id, 2)).reservation
        intruder = h.token(tenant=str(uuid.uuid4()))
        for method, request, reason in (
            ("GetAccount", pb.GetAccountRequest(id=account.id), "ACCOUNT_NOT_FOUND"),
            ("GetAccountStatus", pb.GetAccountStatusRequest(account_id=account.id), "ACCOUNT_NOT_FOUND"),
            ("GetAccountStatus", pb.GetAccountStatusRequest(external_key="shared-key"), "ACCOUNT_NOT_FOUND"),
            (
                "UpdateAccount",
                pb.UpdateAccountRequest(
                    id=account.id, account=pb.Account(display_name="mine"), update_mask=mask("display_name")
                ),
                "ACCOUNT_NOT_FOUND",
            ),
            ("GrantCredits", pb.GrantCreditsRequest(account_id=account.id, amount=5, reason="x"), "ACCOUNT_NOT_FOUND"),
            (
                "ReserveCredits",
                pb.ReserveCreditsRequest(account_id=account.id, amount=1, ref_type="manual", ref_id="i"),
                "ACCOUNT_NOT_FOUND",
            ),
            ("ConsumeReservation", pb.ConsumeReservationRequest(reservation_id=r.id), "RESERVATION_NOT_FOUND"),
            (
                "ReleaseReservation",
                pb.ReleaseReservationRequest(reservation_id=r.id, reason="x"),
                "RESERVATION_NOT_FOUND",
            ),
            ("GetTimeline", pb.GetTimelineRequest(account_id=account.id), "ACCOUNT_NOT_FOUND"),
        ):
            err = await h.fails(method, request, intruder)
            assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, reason), method
        assert list((await h.call("ListAccounts", pb.ListAccountsRequest(), intruder)).accounts) == []
        assert list((await h.call("ListReservations", pb.ListReservationsRequest(), intruder)).reservations) == []
        agg = await h.call("GetCreditAggregate", pb.GetCreditAggregateRequest(), intruder)
        assert (agg.accounts, agg.total.granted) == (0, 0)
        # the other tenant may use the same external key for its own account
        await h.account(external_key="shared-key", token=intruder)
        # and nothing of ours moved
        wallet = await h.wallet(account.id)
        assert (wallet.granted, wallet.reserved) == (10, 2)
        assert (await h.call("GetAccount", pb.GetAccountRequest(id=account.id))).account.display_name == "Acme Bank"


async def test_service_tokens_name_their_tenant(billing):
    async with billing() as h:
        account = await h.account(4)
        service = h.service_token(caps=OPERATOR_CAPS)
        err = await h.fails("GetAccount", pb.GetAccountRequest(id=account.id), service)
        assert (err.reason, [v.field for v in err.violations]) == ("TENANT_REQUIRED", ["x-tenant-id"])
        got = await h.call(
            "GetAccount", pb.GetAccountRequest(id=account.id), service, metadata=[("x-tenant-id", h.tenant)]
        )
        assert got.account.id == account.id
        reserved = await h.call(
            "ReserveCredits",
            pb.ReserveCreditsRequest(account_id=account.id, amount=1, ref_type="work_order", ref_id="wo-1"),
            service,
            metadata=[("x-tenant-id", h.tenant)],
        )
        rows = await h.sql(
            "SELECT actor FROM credit_ledger WHERE reservation_id = CAST(:id AS uuid)", {"id": reserved.reservation.id}
        )
        assert [r.actor for r in rows] == ["service:repogen"]


async def test_reservations_list_filters_and_pages(billing):
    async with billing() as h:
        a, b = await h.account(50), await h.account(50)
        made = []
        for i in range(5):
            made.append((await h.reserve(a.id, 1, f"cr-{i}", ref_type="channel_request")).reservation.id)
        wo = (await h.reserve(b.id, 2, "wo-1", ref_type="work_order")).reservation
        await h.call("ConsumeReservation", pb.ConsumeReservationRequest(reservation_id=made[0]))
        seen, cursor = [], ""
        while True:
            page = await h.call(
                "ListReservations",
                pb.ListReservationsRequest(account_id=a.id, page=common_pb2.PageRequest(limit=2, cursor=cursor)),
            )
            seen += [r.id for r in page.reservations]
            cursor = page.page.next_cursor
            if not cursor:
                break
        assert seen == list(reversed(made))  # newest first
        active = await h.call("ListReservations", pb.ListReservationsRequest(status=pb.RESERVATION_STATUS_ACTIVE))
        assert len(active.reservations) == 5
        by_ref = await h.call("ListReservations", pb.ListReservationsRequest(ref_type="work_order", ref_id="wo-1"))
        assert [r.id for r in by_ref.reservations] == [wo.id]
        consumed = await h.call("ListReservations", pb.ListReservationsRequest(status=pb.RESERVATION_STATUS_CONSUMED))
        assert [r.id for r in consumed.reservations] == [made[0]]
        for request, field in (
            (pb.ListReservationsRequest(account_id="a"), "account_id"),
            (pb.ListReservationsRequest(ref_type="x"), "ref_type"),
            (pb.ListReservationsRequest(status=9), "status"),
        ):
            err = await h.fails("ListReservations", request)
            assert [v.field for v in err.violations] == [field]


async def test_timeline_merges_ledger_reservations_and_usage_newest_first(billing):
    async with billing() as h:
        account = await h.account(20)
        r1 = (await h.reserve(account.id, 5, "cr-1")).reservation
        await h.call("ConsumeReservation", pb.ConsumeReservationRequest(reservation_id=r1.id, amount=3))
        async with h.tx() as conn:
            await usage_store.insert(
                conn,
                tenant_id=h.tenant,
                event_id="u-1",
                account_id=account.id,
                kind="report_released",
                quantity=1,
                ref_type="work_order",
                ref_id="wo-1",
                occurred_at=datetime.now(UTC) + timedelta(seconds=1),
                source="test",
            )
        await h.call(
            "ReserveCredits",
            pb.ReserveCreditsRequest(
                account_id=account.id, amount=30, ref_type="manual", ref_id="o", override_reason="ok"
            ),
        )
        full = await h.call(
            "GetTimeline", pb.GetTimelineRequest(account_id=account.id, page=common_pb2.PageRequest(limit=100))
        )
        kinds = [item.WhichOneof("item") for item in full.items]
        # 6 ledger entries (GRANT, RESERVE, CONSUME, RELEASE, ADJUSTMENT, RESERVE), 2 reservations, 1 usage
        assert Counter(kinds) == {"ledger_entry": 6, "reservation": 2, "usage": 1}
        times = [item.at.ToDatetime() for item in full.items]
        assert times == sorted(times, reverse=True)
        assert full.items[0].usage.event_id == "u-1"
        ledger = [i.ledger_entry for i in full.items if i.WhichOneof("item") == "ledger_entry"]
        assert [e.kind for e in ledger] == [
            pb.LEDGER_KIND_RESERVE,
            pb.LEDGER_KIND_ADJUSTMENT,
            pb.LEDGER_KIND_RELEASE,
            pb.LEDGER_KIND_CONSUME,
            pb.LEDGER_KIND_RESERVE,
            pb.LEDGER_KIND_GRANT,
        ]
        assert ledger[1].reason == "ok" and ledger[1].amount == 13  # the override's shortfall (30 - 17)
        # the same items, page by page
        paged, cursor = [], ""
        while True:
            page = await h.call(
                "GetTimeline",
                pb.GetTimelineRequest(account_id=account.id, page=common_pb2.PageRequest(limit=2, cursor=cursor)),
            )
            paged += list(page.items)
            cursor = page.page.next_cursor
            if not cursor:
                break
        assert paged == list(full.items)
        err = await h.fails(
            "GetTimeline", pb.GetTimelineRequest(account_id=account.id, page=common_pb2.PageRequest(cursor="eHl6"))
        )
        assert [v.field for v in err.violations] == ["page.cursor"]


async def test_credit_aggregate(billing):
    async with billing() as h:
        a, b = await h.account(10), await h.account(5)
        await h.account()
        await h.reserve(a.id, 4)
        r = (await h.reserve(b.id, 5)).reservation
        await h.call("ConsumeReservation", pb.ConsumeReservationRequest(reservation_id=r.id, amount=2))
        await h.call(
            "ReserveCredits",
            pb.ReserveCreditsRequest(
                account_id=b.id, amount=4, ref_type="manual", ref_id="od", override_reason="approved"
            ),
        )
        agg = await h.call("GetCreditAggregate", pb.GetCreditAggregateRequest())
        assert (agg.accounts, agg.active_reservations, agg.negative_accounts) == (3, 2, 1)
        assert (agg.total.granted, agg.total.consumed, agg.total.reserved, agg.total.available) == (15, 2, 8, 5)
