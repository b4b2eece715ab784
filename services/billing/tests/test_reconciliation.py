"""Reconciliation: stale ACTIVE reservations resolved with the services that own their refs.

The owners are asked over real gRPC (GetBillingRefState) with billing's own service token
from the real identity service. Small grpc.aio servers stand in for the owners where a test
needs a chosen answer or a failure (they verify billing's token against identity's JWKS); the
real ops service is asked too, with billing's real service token.
DELIVERED → consume, CANCELLED / NOT_FOUND → release, OPEN or no answer → leave (reported,
never released by guess). dry_run changes nothing (full table snapshots); a second run
changes nothing; a consume racing reconciliation ends in exactly one final state.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from billing_harness import STAFF_CAPS
from sqlalchemy import text

from zenops.billing.v1 import billing_pb2 as pb
from zenops.ops.v1 import ops_pb2, ops_pb2_grpc
from zenops.repogen.v1 import repogen_pb2, repogen_pb2_grpc
from zenops_devstack.process import free_port
from zenops_devstack.testing import poll
from zenops_kit.auth import JwksKeySource, JwtVerifier
from zenops_kit.db import tenant_tx
from zenops_kit.errors import Unauthenticated

ADMIN_PASSWORD = "Quiet-Harbour-Lantern-42"
OPEN, DELIVERED, CANCELLED, NOT_FOUND = (
    ops_pb2.BILLING_REF_STATE_OPEN,
    ops_pb2.BILLING_REF_STATE_DELIVERED,
    ops_pb2.BILLING_REF_STATE_CANCELLED,
    ops_pb2.BILLING_REF_STATE_NOT_FOUND,
)


class StandInOwners:
    """GetBillingRefState of ops and repogen on one port: answers from `states` (OPEN for a
    ref it was not told about), after checking the caller's token against identity."""

    def __init__(self, identity_addr: str) -> None:
        self.states: dict[tuple[str, str], int] = {}
        self.calls: list[tuple[str, str, str, str, str]] = []  # service, ref_type, ref_id, tenant_id, caller
        self.hold: asyncio.Event | None = None  # set: answers wait for it
        self.keys = JwksKeySource.from_identity(identity_addr)
        self.verifier = JwtVerifier(self.keys, issuer="zenops-identity")

    async def answer(self, service: str, request, context) -> int:
        auth = dict(context.invocation_metadata()).get("authorization", "")
        try:
            caller = await self.verifier.verify(auth.removeprefix("Bearer "))
        except Unauthenticated as err:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, err.reason)
        self.calls.append((service, request.ref_type, request.ref_id, request.tenant_id, caller.subject))
        if self.hold is not None:
            await self.hold.wait()
        return self.states.get((request.ref_type, request.ref_id), OPEN)


class OpsStandIn(ops_pb2_grpc.OpsServiceServicer):
    def __init__(self, owners: StandInOwners) -> None:
        self.owners = owners

    async def GetBillingRefState(self, request, context):
        return ops_pb2.GetBillingRefStateResponse(state=await self.owners.answer("ops", request, context))


class RepogenStandIn(repogen_pb2_grpc.RepogenServiceServicer):
    def __init__(self, owners: StandInOwners) -> None:
        self.owners = owners

    async def GetBillingRefState(self, request, context):
        return repogen_pb2.GetBillingRefStateResponse(state=await self.owners.answer("repogen", request, context))


@asynccontextmanager
async def identity_running(start_service):
    """The real identity service (it issues billing's service token); yields its address."""
    async with start_service("identity", bootstrap_admin_password=ADMIN_PASSWORD) as identity:
        yield f"127.0.0.1:{identity.port}"


@asynccontextmanager
async def stand_in_owners(identity_addr: str, *, repogen: bool = True):
    owners = StandInOwners(identity_addr)
    server = grpc.aio.server()
    ops_pb2_grpc.add_OpsServiceServicer_to_server(OpsStandIn(owners), server)
    if repogen:
        repogen_pb2_grpc.add_RepogenServiceServicer_to_server(RepogenStandIn(owners), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    owners.addr = f"127.0.0.1:{port}"
    try:
        yield owners
    finally:
        if owners.hold is not None:
            owners.hold.set()
        await server.stop(0)
        await owners.keys.close()


@pytest.fixture
def suite(start_service, billing):
    """`async with suite(**billing_settings) as (h, owners):` — identity (billing's service
    token), the stand-in owners, and billing pointed at both; every reservation counts as stale."""

    @asynccontextmanager
    async def start(**overrides):
        async with identity_running(start_service) as identity_addr, stand_in_owners(identity_addr) as owners:
            overrides.setdefault("reconcile_threshold_seconds", 0)
            async with billing(
                identity_addr=identity_addr, ops_addr=owners.addr, repogen_addr=owners.addr, **overrides
            ) as h:
                yield h, owners

    return start


async def reconcile(h, dry_run: bool = False, limit: int = 0, token: str | None = None) -> pb.ReconcileResponse:
    return await h.call("Reconcile", pb.ReconcileRequest(dry_run=dry_run, limit=limit), token)


def by_ref(resp: pb.ReconcileResponse) -> dict[str, tuple[str, str]]:
    return {a.ref_id: (a.action, a.reason) for a in resp.actions}


async def snapshot(h) -> dict[str, list[str]]:
    """Every row of every table the service's role can see for the tenant (RLS) or at all."""
    async with tenant_tx(h.engine, h.tenant) as conn:
        tables = (
            (
                await conn.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version' "
                        "ORDER BY tablename"
                    )
                )
            )
            .scalars()
            .all()
        )
        out = {}
        for table in tables:
            rows = await conn.execute(text(f"SELECT * FROM {table}"))
            out[table] = sorted(repr(tuple(r)) for r in rows)
    return out


async def statuses(h) -> dict[str, str]:
    return {r.ref_id: r.status for r in await h.sql("SELECT ref_id, status FROM reservations")}


async def test_reconcile_resolves_with_the_owners_dry_run_first_then_nothing_the_second_time(suite):
    async with suite() as (h, owners):
        account = await h.account(credits=100)
        refs = {
            "cr-delivered": ("channel_request", DELIVERED),
            "cr-rejected": ("channel_request", CANCELLED),
            "as-open": ("assignment", OPEN),
            "wo-released": ("work_order", DELIVERED),
            "wo-gone": ("work_order", NOT_FOUND),
            "wo-open": ("work_order", OPEN),
            "by-hand": ("manual", None),
        }
        for ref_id, (ref_type, state) in refs.items():
            await h.reserve(account.id, 5, ref_id, ref_type=ref_type)
            if state is not None:
                owners.states[(ref_type, ref_id)] = state

        before = await snapshot(h)
        plan = await reconcile(h, dry_run=True)
        assert plan.dry_run is True and list(plan.violations) == []
        assert await snapshot(h) == before  # not a row changed anywhere
        expected = {
            "cr-delivered": ("consume", "ref delivered"),
            "cr-rejected": ("release", "ref cancelled"),
            "as-open": ("leave", "ref still open"),
            "wo-released": ("consume", "ref delivered"),
            "wo-gone": ("release", "ref not found"),
            "wo-open": ("leave", "ref still open"),
            "by-hand": ("leave", "no owner to ask for this ref type"),
        }
        assert by_ref(plan) == expected
        # ops owns channel requests and assignments, repogen work orders; billing's service token, the tenant
        asked = {(service, ref_type, ref_id) for service, ref_type, ref_id, _, _ in owners.calls}
        assert asked == {
            ("ops", "channel_request", "cr-delivered"),
            ("ops", "channel_request", "cr-rejected"),
            ("ops", "assignment", "as-open"),
            ("repogen", "work_order", "wo-released"),
            ("repogen", "work_order", "wo-gone"),
            ("repogen", "work_order", "wo-open"),
        }
        assert {(tenant, caller) for *_, tenant, caller in owners.calls} == {(h.tenant, "service:billing")}

        done = await reconcile(h)
        assert done.dry_run is False and list(done.violations) == []
        assert by_ref(done) == expected
        assert await statuses(h) == {
            "cr-delivered": "CONSUMED",
            "cr-rejected": "RELEASED",
            "as-open": "ACTIVE",
            "wo-released": "CONSUMED",
            "wo-gone": "RELEASED",
            "wo-open": "ACTIVE",
            "by-hand": "ACTIVE",
        }
        wallet = await h.wallet(account.id)
        assert (wallet.consumed, wallet.reserved, wallet.available) == (10, 15, 75)

        # right after: the settled ones are gone from the scan, the rest is left again; nothing changes
        after = await snapshot(h)
        again = await reconcile(h)
        assert {a.action for a in again.actions} == {"leave"}
        assert set(by_ref(again)) == {"as-open", "wo-open", "by-hand"}
        assert await snapshot(h) == after
        assert list(again.violations) == []


async def test_oldest_first_limit_and_threshold(suite):
    async with suite() as (h, owners):
        account = await h.account(credits=100)
        for i in range(5):
            await h.reserve(account.id, 1, f"wo-{i}", ref_type="work_order")
        assert [a.ref_id for a in (await reconcile(h, dry_run=True, limit=2)).actions] == ["wo-0", "wo-1"]
        assert len((await reconcile(h, dry_run=True)).actions) == 5  # default limit 100
        for bad in (1001, -1):
            err = await h.fails("Reconcile", pb.ReconcileRequest(limit=bad))
            assert (err.code, [v.field for v in err.violations]) == (grpc.StatusCode.INVALID_ARGUMENT, ["limit"])
        err = await h.fails("Reconcile", pb.ReconcileRequest(dry_run=True), h.token(STAFF_CAPS))
        assert (err.code, err.metadata["missing"]) == (grpc.StatusCode.PERMISSION_DENIED, "billing.reconcile")
    # with the default threshold (a day), fresh reservations are not stale
    async with suite(reconcile_threshold_seconds=86400) as (h, owners):
        account = await h.account(credits=10)
        await h.reserve(account.id, 1, "wo-fresh", ref_type="work_order")
        owners.states[("work_order", "wo-fresh")] = CANCELLED
        assert list((await reconcile(h)).actions) == [] and owners.calls == []
        assert await statuses(h) == {"wo-fresh": "ACTIVE"}


@asynccontextmanager
async def unanswering_ops(start_service, case: str, identity_addr: str):
    """An ops address that gives no answer: `case` says how."""
    if case == "unimplemented":
        server = grpc.aio.server()  # a server without the method at all
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            yield f"127.0.0.1:{port}"
        finally:
            await server.stop(0)
    elif case == "unavailable":
        yield f"127.0.0.1:{free_port()}"  # nothing listens there
    else:
        async with stand_in_owners(identity_addr) as owners:
            owners.hold = asyncio.Event()  # answers only after billing's deadline
            yield owners.addr


# What each case answers.
CODES = {"unimplemented": ("UNIMPLEMENTED",), "unavailable": ("UNAVAILABLE",), "deadline": ("DEADLINE_EXCEEDED",)}


@pytest.mark.parametrize("case", sorted(CODES))
async def test_an_owner_that_does_not_answer_means_leave(start_service, billing, case):
    async with identity_running(start_service) as identity_addr:
        async with unanswering_ops(start_service, case, identity_addr) as ops_addr:
            async with billing(
                identity_addr=identity_addr, ops_addr=ops_addr, owner_call_timeout=0.5, reconcile_threshold_seconds=0
            ) as h:
                account = await h.account(credits=10)
                await h.reserve(account.id, 4, "cr-1", ref_type="channel_request")
                before = await snapshot(h)
                [action] = (await reconcile(h)).actions
                assert action.action == "leave"
                assert action.reason in {f"owner did not answer (ops: {code})" for code in CODES[case]}
                assert await snapshot(h) == before
                assert await statuses(h) == {"cr-1": "ACTIVE"}


async def test_the_real_ops_is_asked_with_billings_service_token(start_service, billing):
    # the REAL ops service verifies billing's token from identity and answers: a channel request
    # it has never heard of is NOT_FOUND, so its reservation is released
    async with identity_running(start_service) as identity_addr:
        async with start_service("ops", identity_addr=identity_addr) as ops:
            async with billing(
                identity_addr=identity_addr, ops_addr=f"127.0.0.1:{ops.port}", reconcile_threshold_seconds=0
            ) as h:
                account = await h.account(credits=10)
                unknown = str(uuid.uuid4())
                await h.reserve(account.id, 4, unknown, ref_type="channel_request")
                [action] = (await reconcile(h)).actions
                assert (action.ref_id, action.action) == (unknown, "release"), action
                assert await statuses(h) == {unknown: "RELEASED"}


async def test_without_a_service_token_the_owner_is_not_asked(billing):
    # identity is not running: no service token, so nobody is asked and nothing is guessed
    async with billing(identity_addr=f"127.0.0.1:{free_port()}", reconcile_threshold_seconds=0) as h:
        account = await h.account(credits=10)
        await h.reserve(account.id, 4, "wo-1", ref_type="work_order")
        [action] = (await reconcile(h)).actions
        assert action.action == "leave" and action.reason.startswith("owner did not answer (no service token")
        assert await statuses(h) == {"wo-1": "ACTIVE"}


async def test_a_consume_racing_reconciliation_ends_in_one_final_state(suite):
    async with suite() as (h, owners):
        account = await h.account(credits=10)
        reservation = (await h.reserve(account.id, 4, "cr-race", ref_type="channel_request")).reservation
        owners.states[("channel_request", "cr-race")] = CANCELLED
        owners.hold = asyncio.Event()
        # reconciliation has asked (and will decide "release") ...
        run = asyncio.create_task(reconcile(h))

        async def asked():
            return len(owners.calls) == 1

        await poll(asked, what="the owner to be asked")
        # ... while the release goes ahead: the deliverable is consumed first
        consumed = await h.call("ConsumeReservation", pb.ConsumeReservationRequest(reservation_id=reservation.id))
        assert consumed.reservation.status == pb.RESERVATION_STATUS_CONSUMED
        owners.hold.set()
        [action] = (await run).actions
        assert (action.action, action.reason) == ("leave", "settled meanwhile (RESERVATION_ALREADY_CONSUMED)")
        assert await statuses(h) == {"cr-race": "CONSUMED"}
        kinds = [
            r.kind
            for r in await h.sql(
                "SELECT kind FROM credit_ledger WHERE reservation_id = CAST(:r AS uuid) ORDER BY seq",
                {"r": reservation.id},
            )
        ]
        assert kinds == ["RESERVE", "CONSUME"]
        assert (await run).violations == []


async def test_consumes_and_releases_racing_reconciliation_never_settle_twice(suite):
    async with suite() as (h, owners):
        account = await h.account(credits=1000)
        rng = random.Random(5)
        ids = {}
        for i in range(40):
            ref = f"cr-{i}"
            ids[ref] = (await h.reserve(account.id, 3, ref, ref_type="channel_request")).reservation.id
            owners.states[("channel_request", ref)] = rng.choice([DELIVERED, CANCELLED])

        async def settle(ref: str):
            method = rng.choice(["ConsumeReservation", "ReleaseReservation"])
            req = (
                pb.ConsumeReservationRequest(reservation_id=ids[ref])
                if method == "ConsumeReservation"
                else pb.ReleaseReservationRequest(reservation_id=ids[ref], reason="operator")
            )
            try:
                await h.call(method, req)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION  # reconciliation was first
                return 0
            return 1

        results = await asyncio.gather(
            reconcile(h), reconcile(h), *(settle(ref) for ref in rng.sample(sorted(ids), 20))
        )
        runs, by_operator = results[:2], sum(results[2:])
        by_reconciliation = sum(1 for run in runs for a in run.actions if a.action in ("consume", "release"))
        # each reservation settled exactly once, by someone
        assert set((await statuses(h)).values()) <= {"CONSUMED", "RELEASED"}
        assert by_reconciliation + by_operator == 40 and by_reconciliation > 0 and by_operator > 0
        rows = await h.sql(
            "SELECT reservation_id::text AS r, count(*) FILTER (WHERE kind IN ('CONSUME', 'RELEASE')) "
            "AS settles FROM credit_ledger WHERE reservation_id IS NOT NULL GROUP BY 1"
        )
        assert all(r.settles == 1 for r in rows) and len(rows) == 40
        assert await h.invariants() == []
        assert all(list(run.violations) == [] for run in runs)


async def test_the_schedule_reconciles_without_a_call(suite):
    async with suite(reconcile_interval=0.3) as (h, owners):
        account = await h.account(credits=10)
        await h.reserve(account.id, 4, "wo-cancelled", ref_type="work_order")
        owners.states[("work_order", "wo-cancelled")] = CANCELLED

        async def released():
            return (await statuses(h)) == {"wo-cancelled": "RELEASED"}

        await poll(released, timeout=15, what="the scheduled reconciliation")
        [row] = await h.sql("SELECT settled_by FROM reservations")
        assert row.settled_by == "service:billing/reconciliation"


async def test_app_stops_cleanly_while_a_scheduled_run_waits_on_an_owner(suite):
    async with suite(reconcile_interval=0.2, owner_call_timeout=60.0) as (h, owners):
        account = await h.account(credits=10)
        await h.reserve(account.id, 4, "wo-slow", ref_type="work_order")
        owners.states[("work_order", "wo-slow")] = CANCELLED
        owners.hold = asyncio.Event()  # the owner takes its time

        async def asked():
            return len(owners.calls) >= 1

        await poll(asked, what="the scheduled run to ask the owner")
        async with asyncio.timeout(15):  # the job is cancelled mid-call: stop() does not wait for the owner
            await h.app.stop()
        assert all(w.task.done() for w in h.app.supervisor.statuses())
        assert await statuses(h) == {"wo-slow": "ACTIVE"}


async def test_the_expiry_sweep_runs_in_the_background(billing):
    async with billing(expiry_sweep_interval=0.2) as h:
        account = await h.account(credits=10)
        req = pb.ReserveCreditsRequest(account_id=account.id, amount=4, ref_type="manual", ref_id="soon")
        req.expires_at.FromDatetime(datetime.now(UTC) + timedelta(seconds=1))
        await h.call("ReserveCredits", req)

        async def expired():
            return await statuses(h) == {"soon": "EXPIRED"}

        await poll(expired, timeout=15, what="the background expiry sweep")
        assert (await h.wallet(account.id)).available == 10
