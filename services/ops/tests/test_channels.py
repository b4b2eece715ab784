"""Channels over real gRPC against the real ops service (its own PostgreSQL database).

Part 1 (a key of the test's own stands in for identity's JWKS): create / get / list /
update, the channel_directory row written with the channel (its owner resolves to the
firm's tenant), defaults and normalisation, validation naming the field, names unique per
tenant ignoring case, update masks, 403 without the capabilities, tenant isolation,
idempotent replay, and billing unreachable → UNAVAILABLE with nothing saved.

Part 2 against the REAL identity and billing services: ops checks a channel's billing
account with billing's GetAccount using its own service token from identity; an existing
account is accepted, an unknown one refused naming the field (create and update).
"""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from ops_harness import running_ops

from zenops.billing.v1 import billing_pb2, billing_pb2_grpc
from zenops.common.v1 import common_pb2
from zenops.identity.v1 import identity_pb2, identity_pb2_grpc
from zenops.ops.v1 import ops_pb2 as pb
from zenops.ops.v1 import ops_pb2_grpc
from zenops_devstack.process import free_port
from zenops_kit.errors import parse_rpc_error
from zenops_ops.billing_accounts import close_billing_accounts
from zenops_ops.store import channels as channel_store

READ, WRITER = ("masterdata.read",), ("masterdata.read", "masterdata.write")
AGENT, ADVOCATE, BUILDER = pb.CHANNEL_TYPE_AGENT, pb.CHANNEL_TYPE_ADVOCATE, pb.CHANNEL_TYPE_BUILDER
PERCENT, FLAT = pb.COMMISSION_MODE_PERCENT, pb.COMMISSION_MODE_FLAT


@asynccontextmanager
async def ops_running(start_service, **settings):
    """ops (no workers) and its client; the billing client it made lazily is closed at the end
    (the app's stop hook does this in the service)."""
    async with running_ops(start_service, run_workers=False, **settings) as h:
        try:
            yield h
        finally:
            await close_billing_accounts(h.app.runtime)


@pytest.fixture
def ops(start_service):
    return lambda **settings: ops_running(start_service, **settings)


def new(name: str = "Sharma Associates", **fields) -> pb.CreateChannelRequest:
    values = {"name": name, "channel_type": AGENT, "commission_mode": PERCENT, "commission_value": 250}
    values.update(fields)
    return pb.CreateChannelRequest(**values)


def update(channel_id: str, paths: list[str], **values) -> pb.UpdateChannelRequest:
    return pb.UpdateChannelRequest(id=channel_id, channel=pb.Channel(**values), update_mask=FieldMask(paths=paths))


def field_of(detail) -> str:
    return detail.violations[0].field if detail.violations else detail.metadata.get("field", "")


async def version(h, channel_id: str) -> int:
    return (await h.sql("SELECT version FROM channels WHERE id = CAST(:id AS uuid)", {"id": channel_id}))[0].version


# == part 1 =======================================================================================


async def test_create_get_list_update_and_the_directory_row(ops):
    async with ops() as h:
        u1, u2 = str(uuid.uuid4()), str(uuid.uuid4())
        made = (
            await h.call(
                "CreateChannel", new("  Sharma Associates ", default_credits=0, portal_user_ids=[u1, u1.upper(), u2])
            )
        ).channel
        assert (made.name, made.channel_type, made.commission_mode, made.commission_value) == (
            "Sharma Associates",
            AGENT,
            PERCENT,
            250,
        )
        assert made.is_active and made.default_credits == 1 and not made.billing_account_id
        assert list(made.portal_user_ids) == [u1, u2]
        assert made.created_by == h.manager_id and made.created_at == made.updated_at

        # the directory row: a portal token of this channel acts in the firm's tenant
        rows = await h.sql(
            "SELECT tenant_id::text AS tenant FROM channel_directory WHERE channel_id = CAST(:id AS uuid)",
            {"id": made.id},
            tenant=None,
        )
        assert [r.tenant for r in rows] == [h.tenant]
        assert await channel_store.owner_tenant(h.engine, made.id) == h.tenant

        reader = h.token(READ)
        assert (await h.call("GetChannel", pb.GetChannelRequest(id=made.id.upper()), reader)).channel == made

        lawyer = (
            await h.call(
                "CreateChannel",
                new(
                    "Desai & Co Advocates",
                    channel_type=ADVOCATE,
                    commission_mode=FLAT,
                    commission_value=150_000,
                    default_credits=3,
                ),
            )
        ).channel
        builder = (await h.call("CreateChannel", new("Skyline Builders", channel_type=BUILDER))).channel

        async def listed(**fields) -> list[str]:
            resp = await h.call("ListChannels", pb.ListChannelsRequest(**fields), reader)
            return [c.id for c in resp.channels]

        assert await listed() == [builder.id, lawyer.id, made.id]
        assert await listed(channel_type=ADVOCATE) == [lawyer.id]
        assert await listed(query="SHARMA") == [made.id]
        assert await listed(query="_") == []
        assert await listed(activity="inactive") == []

        # update: only the masked fields; version and updated_at move
        changed = (
            await h.call(
                "UpdateChannel",
                update(
                    made.id,
                    ["name", "commission_value", "is_active", "default_credits"],
                    name="Sharma & Sons",
                    commission_value=300,
                    is_active=False,
                    default_credits=0,
                    channel_type=BUILDER,
                ),
            )
        ).channel
        assert (changed.name, changed.commission_value, changed.is_active, changed.default_credits) == (
            "Sharma & Sons",
            300,
            False,
            1,
        )
        assert changed.channel_type == AGENT  # not in the mask
        assert changed.updated_at.ToDatetime() > made.updated_at.ToDatetime()
        assert await version(h, made.id) == 2
        assert await listed(activity="inactive") == [made.id]
        assert await listed(activity="active") == [builder.id, lawyer.id]

        # a mask that changes nothing writes nothing
        same = (await h.call("UpdateChannel", update(made.id, ["name"], name="Sharma & Sons"))).channel
        assert same == changed and await version(h, made.id) == 2

        # the commission is checked as it will stand: FLAT keeps the value, back to PERCENT needs ≤ 10000
        flat = (
            await h.call(
                "UpdateChannel",
                update(made.id, ["commission_mode", "commission_value"], commission_mode=FLAT, commission_value=50_000),
            )
        ).channel
        assert (flat.commission_mode, flat.commission_value) == (FLAT, 50_000)
        detail = await h.fails("UpdateChannel", update(made.id, ["commission_mode"], commission_mode=PERCENT))
        assert (detail.code, field_of(detail)) == (grpc.StatusCode.INVALID_ARGUMENT, "channel.commission_value")

        users = (await h.call("UpdateChannel", update(made.id, ["portal_user_ids"], portal_user_ids=[u2, u2]))).channel
        assert list(users.portal_user_ids) == [u2]

        audit = await h.sql(
            "SELECT action, actor, detail->'fields' AS fields FROM masterdata_audit "
            "WHERE resource_id = CAST(:id AS uuid) ORDER BY created_at",
            {"id": made.id},
        )
        assert [(a.action, a.actor) for a in audit] == [("created", h.manager_id)] + [("updated", h.manager_id)] * 3
        assert audit[1].fields == ["commission_value", "is_active", "name"]  # default_credits stayed 1

        # pages, newest first
        page1 = await h.call("ListChannels", pb.ListChannelsRequest(page=common_pb2.PageRequest(limit=2)))
        page2 = await h.call(
            "ListChannels", pb.ListChannelsRequest(page=common_pb2.PageRequest(limit=2, cursor=page1.page.next_cursor))
        )
        assert [c.id for c in page1.channels] + [c.id for c in page2.channels] == [builder.id, lawyer.id, made.id]
        assert not page2.page.next_cursor


async def test_bad_channels_are_invalid_argument_naming_the_field(ops):
    async with ops() as h:
        made = (await h.call("CreateChannel", new())).channel
        creates = [
            (new(""), "name"),
            (new("n" * 201), "name"),
            (new(channel_type=0), "channel_type"),
            (new(channel_type=42), "channel_type"),
            (new(commission_mode=0), "commission_mode"),
            (new(commission_value=10_001), "commission_value"),
            (new(commission_value=-1), "commission_value"),
            (new(commission_mode=FLAT, commission_value=10**12), "commission_value"),
            (new(default_credits=-2), "default_credits"),
            (new(portal_user_ids=[str(uuid.uuid4()), "someone"]), "portal_user_ids[1]"),
            (new(billing_account_id="acct-1"), "billing_account_id"),
        ]
        for request, field in creates:
            detail = await h.fails("CreateChannel", request)
            assert (detail.code, field_of(detail)) == (grpc.StatusCode.INVALID_ARGUMENT, field), (request, detail)
        updates = [
            (update(made.id, []), "update_mask"),
            (update(made.id, ["colour"]), "update_mask"),
            (update(made.id, ["created_by"]), "update_mask"),
            (update("nope", ["name"], name="X"), "id"),
            (update(made.id, ["name"], name=""), "channel.name"),
            (update(made.id, ["channel_type"]), "channel.channel_type"),
            (update(made.id, ["commission_value"], commission_value=-5), "channel.commission_value"),
            (update(made.id, ["default_credits"], default_credits=-1), "channel.default_credits"),
            (update(made.id, ["billing_account_id"], billing_account_id="x"), "channel.billing_account_id"),
            (update(made.id, ["portal_user_ids"], portal_user_ids=["x"]), "channel.portal_user_ids[0]"),
        ]
        for request, field in updates:
            detail = await h.fails("UpdateChannel", request)
            assert (detail.code, field_of(detail)) == (grpc.StatusCode.INVALID_ARGUMENT, field), (request, detail)
        detail = await h.fails("UpdateChannel", update(str(uuid.uuid4()), ["name"], name="X"))
        assert (detail.code, detail.reason) == (grpc.StatusCode.NOT_FOUND, "CHANNEL_NOT_FOUND")
        for request, field in [
            (pb.ListChannelsRequest(activity="sleeping"), "activity"),
            (pb.ListChannelsRequest(channel_type=9), "channel_type"),
            (pb.ListChannelsRequest(query="q" * 101), "query"),
        ]:
            detail = await h.fails("ListChannels", request)
            assert (detail.code, field_of(detail)) == (grpc.StatusCode.INVALID_ARGUMENT, field)
        for request in (pb.GetChannelRequest(id="x"), pb.GetChannelRequest()):
            assert field_of(await h.fails("GetChannel", request)) == "id"
        assert (
            await h.fails("GetChannel", pb.GetChannelRequest(id=str(uuid.uuid4())))
        ).code == grpc.StatusCode.NOT_FOUND
        assert await version(h, made.id) == 1
        assert len((await h.call("ListChannels", pb.ListChannelsRequest())).channels) == 1


async def test_names_are_unique_per_tenant_ignoring_case(ops):
    async with ops() as h:
        first = (await h.call("CreateChannel", new("Sharma Associates"))).channel
        second = (await h.call("CreateChannel", new("Mehta Realty"))).channel
        detail = await h.fails("CreateChannel", new("SHARMA associates"))
        assert (detail.code, detail.reason, field_of(detail)) == (
            grpc.StatusCode.ALREADY_EXISTS,
            "CHANNEL_NAME_TAKEN",
            "name",
        )
        detail = await h.fails("UpdateChannel", update(second.id, ["name"], name="sharma associates"))
        assert (detail.code, detail.reason, field_of(detail)) == (
            grpc.StatusCode.ALREADY_EXISTS,
            "CHANNEL_NAME_TAKEN",
            "channel.name",
        )
        # renaming a channel to its own name in another case is fine
        renamed = (await h.call("UpdateChannel", update(first.id, ["name"], name="SHARMA ASSOCIATES"))).channel
        assert renamed.name == "SHARMA ASSOCIATES"
        # another firm may have its own Sharma Associates
        other = h.token(tenant=str(uuid.uuid4()))
        assert (await h.call("CreateChannel", new("Sharma Associates"), other)).channel.id


async def test_capabilities_and_tenant_isolation(ops):
    async with ops() as h:
        made = (await h.call("CreateChannel", new())).channel
        nothing, reader = h.token(()), h.token(READ)
        portal = h.portal(made.id)
        for token in (nothing, reader, portal):
            for method, request in (
                ("CreateChannel", new("Other")),
                ("UpdateChannel", update(made.id, ["name"], name="Other")),
            ):
                assert (await h.fails(method, request, token)).code == grpc.StatusCode.PERMISSION_DENIED
        for token in (nothing, portal):
            for method, request in (
                ("GetChannel", pb.GetChannelRequest(id=made.id)),
                ("ListChannels", pb.ListChannelsRequest()),
            ):
                assert (await h.fails(method, request, token)).code == grpc.StatusCode.PERMISSION_DENIED
        # a writer without approve manages channels all the same
        assert (
            await h.call("UpdateChannel", update(made.id, ["is_active"], is_active=False), h.token(WRITER))
        ).channel.is_active is False

        other = h.token(tenant=str(uuid.uuid4()))
        assert not (await h.call("ListChannels", pb.ListChannelsRequest(), other)).channels
        assert (await h.fails("GetChannel", pb.GetChannelRequest(id=made.id), other)).code == grpc.StatusCode.NOT_FOUND
        detail = await h.fails("UpdateChannel", update(made.id, ["name"], name="Stolen"), other)
        assert detail.code == grpc.StatusCode.NOT_FOUND
        assert (await h.call("GetChannel", pb.GetChannelRequest(id=made.id))).channel.name == made.name


async def test_create_replays_by_idempotency_key(ops):
    async with ops() as h:
        request = new(idempotency_key=str(uuid.uuid4()))
        first = await h.call("CreateChannel", request)
        assert await h.call("CreateChannel", request) == first
        reused = new(commission_value=300, idempotency_key=request.idempotency_key)
        detail = await h.fails("CreateChannel", reused)
        assert (detail.reason, [v.field for v in detail.violations]) == ("IDEMPOTENCY_KEY_REUSED", ["commission_value"])
        rows = await h.sql("SELECT count(*) AS n FROM channel_directory", tenant=None)
        assert rows[0].n == 1


async def test_billing_unreachable_is_unavailable_and_saves_nothing(ops):
    # neither identity (ops' service token) nor billing answers at these addresses
    dead = f"127.0.0.1:{free_port()}"
    async with ops(identity_addr=dead, billing_addr=dead, billing_call_timeout=1.0) as h:
        account = str(uuid.uuid4())
        detail = await h.fails("CreateChannel", new(billing_account_id=account, idempotency_key="k-1"))
        assert (detail.code, detail.reason) == (grpc.StatusCode.UNAVAILABLE, "BILLING_UNAVAILABLE")
        assert not (await h.call("ListChannels", pb.ListChannelsRequest())).channels
        assert not await h.sql("SELECT 1 FROM channel_directory", tenant=None)
        assert not await h.sql("SELECT 1 FROM idempotency_keys")  # not recorded: a retry asks again

        made = (await h.call("CreateChannel", new())).channel  # no account: billing is not asked
        detail = await h.fails(
            "UpdateChannel", update(made.id, ["billing_account_id", "name"], billing_account_id=account, name="Renamed")
        )
        assert detail.code == grpc.StatusCode.UNAVAILABLE
        assert (await h.call("GetChannel", pb.GetChannelRequest(id=made.id))).channel == made
        # clearing the account needs no check
        cleared = await h.call("UpdateChannel", update(made.id, ["billing_account_id", "name"], name="Renamed"))
        assert cleared.channel.name == "Renamed" and not cleared.channel.billing_account_id


# == part 2: the real identity and billing services ================================================

ADMIN_EMAIL = "admin@zenops.local"
ADMIN_PASSWORD = "amber-ledger-compass-61"


async def login(identity_addr: str) -> str:
    async with grpc.aio.insecure_channel(identity_addr) as channel:
        resp = await identity_pb2_grpc.IdentityServiceStub(channel).Login(
            identity_pb2.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD, audience="web"), timeout=30
        )
    return resp.tokens.access_token


async def billing_account(billing_addr: str, token: str, name: str) -> billing_pb2.Account:
    async with grpc.aio.insecure_channel(billing_addr) as channel:
        resp = await billing_pb2_grpc.BillingServiceStub(channel).CreateAccount(
            billing_pb2.CreateAccountRequest(display_name=name, policy=billing_pb2.BILLING_POLICY_CREDIT),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=30,
        )
    return resp.account


async def test_billing_accounts_are_checked_with_the_real_billing_service(start_service):
    async with start_service("identity", bootstrap_admin_password=ADMIN_PASSWORD) as identity:
        identity_addr = f"127.0.0.1:{identity.port}"
        admin = await login(identity_addr)
        async with start_service("billing", identity_addr=identity_addr) as billing:
            billing_addr = f"127.0.0.1:{billing.port}"
            account = await billing_account(billing_addr, admin, "Sharma Associates")
            second = await billing_account(billing_addr, admin, "Sharma Associates (new GSTIN)")
            # ops verifies identity's tokens (JWKS) and asks billing with its own service token
            async with start_service(
                "ops", identity_addr=identity_addr, billing_addr=billing_addr, run_workers=False
            ) as app:
                try:
                    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                        stub = ops_pb2_grpc.OpsServiceStub(channel)
                        md = (("authorization", f"Bearer {admin}"),)

                        async def fails(method, request):
                            with pytest.raises(grpc.aio.AioRpcError) as info:
                                await getattr(stub, method)(request, metadata=md, timeout=30)
                            return parse_rpc_error(info.value)

                        made = (
                            await stub.CreateChannel(new(billing_account_id=account.id), metadata=md, timeout=30)
                        ).channel
                        assert made.billing_account_id == account.id

                        unknown = str(uuid.uuid4())
                        request = new("Mehta Realty", billing_account_id=unknown, idempotency_key="mehta-1")
                        detail = await fails("CreateChannel", request)
                        assert (detail.code, detail.reason, field_of(detail)) == (
                            grpc.StatusCode.INVALID_ARGUMENT,
                            "BILLING_ACCOUNT_NOT_FOUND",
                            "billing_account_id",
                        )
                        assert (await fails("CreateChannel", request)).reason == "BILLING_ACCOUNT_NOT_FOUND"
                        listed = await stub.ListChannels(pb.ListChannelsRequest(), metadata=md, timeout=30)
                        assert [c.id for c in listed.channels] == [made.id]

                        detail = await fails(
                            "UpdateChannel", update(made.id, ["billing_account_id"], billing_account_id=unknown)
                        )
                        assert (detail.code, detail.reason, field_of(detail)) == (
                            grpc.StatusCode.INVALID_ARGUMENT,
                            "BILLING_ACCOUNT_NOT_FOUND",
                            "channel.billing_account_id",
                        )
                        moved = (
                            await stub.UpdateChannel(
                                update(made.id, ["billing_account_id"], billing_account_id=second.id),
                                metadata=md,
                                timeout=30,
                            )
                        ).channel
                        assert moved.billing_account_id == second.id
                finally:
                    await close_billing_accounts(app.runtime)
