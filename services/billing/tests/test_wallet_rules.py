"""The wallet's state rules and reason codes over gRPC: reserve, consume (full and partial),
release, expiry (the sweep, and an ACTIVE reservation past its expiry), one ACTIVE
reservation per ref, suspended and unknown accounts, overrides, field errors; and what the
database itself refuses (the append-only ledger, final reservations, negative balances)."""

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from billing_harness import STAFF_CAPS, pb
from google.protobuf import field_mask_pb2, timestamp_pb2
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from zenops_billing.wallet import operations

FAILED = grpc.StatusCode.FAILED_PRECONDITION


def wallet_tuple(w) -> tuple[int, int, int, int]:
    return (w.granted, w.consumed, w.reserved, w.available)


async def entries(h, reservation_id: str) -> list[tuple[str, int]]:
    rows = await h.sql(
        "SELECT kind, amount FROM credit_ledger WHERE reservation_id = CAST(:id AS uuid) ORDER BY seq",
        {"id": reservation_id},
    )
    return [(r.kind, r.amount) for r in rows]


async def test_reserve_consume_release_move_credits_and_write_the_ledger(billing):
    async with billing() as h:
        account = await h.account(10)
        reserved = await h.reserve(account.id, 4, "cr-1", ref_type="channel_request")
        r = reserved.reservation
        assert (r.amount, r.ref_type, r.ref_id, r.status) == (
            4,
            "channel_request",
            "cr-1",
            pb.RESERVATION_STATUS_ACTIVE,
        )
        assert wallet_tuple(reserved.wallet) == (10, 0, 4, 6)
        # the default expiry is the service's reservation TTL
        ttl = r.expires_at.ToDatetime(tzinfo=UTC) - r.created_at.ToDatetime(tzinfo=UTC)
        assert abs(ttl.total_seconds() - h.settings.reservation_ttl_seconds) < 5

        consumed = await h.call("ConsumeReservation", pb.ConsumeReservationRequest(reservation_id=r.id))
        assert consumed.reservation.status == pb.RESERVATION_STATUS_CONSUMED
        assert consumed.reservation.consumed_amount == 4 and consumed.reservation.HasField("settled_at")
        assert wallet_tuple(consumed.wallet) == (10, 4, 0, 6)
        assert await entries(h, r.id) == [("RESERVE", 4), ("CONSUME", 4)]

        second = (await h.reserve(account.id, 5, "cr-2")).reservation
        released = await h.call(
            "ReleaseReservation", pb.ReleaseReservationRequest(reservation_id=second.id, reason="request rejected")
        )
        assert released.reservation.status == pb.RESERVATION_STATUS_RELEASED
        assert released.reservation.consumed_amount == 0
        assert wallet_tuple(released.wallet) == (10, 4, 0, 6)
        rows = await h.sql(
            "SELECT kind, amount, reason, actor, business_ref, granted_after, consumed_after, "
            "reserved_after FROM credit_ledger WHERE account_id = CAST(:id AS uuid) ORDER BY seq",
            {"id": account.id},
        )
        assert [(x.kind, x.amount, x.granted_after, x.consumed_after, x.reserved_after) for x in rows] == [
            ("GRANT", 10, 10, 0, 0),
            ("RESERVE", 4, 10, 0, 4),
            ("CONSUME", 4, 10, 4, 0),
            ("RESERVE", 5, 10, 4, 5),
            ("RELEASE", 5, 10, 4, 0),
        ]
        assert rows[-1].reason == "request rejected" and rows[-1].business_ref == "manual:cr-2"
        assert {x.actor for x in rows} == {h.operator_id}
        assert await h.invariants() == []


async def test_partial_consume_releases_the_remainder_in_the_same_transaction(billing):
    async with billing() as h:
        account = await h.account(10)
        r = (await h.reserve(account.id, 6)).reservation
        consumed = await h.call("ConsumeReservation", pb.ConsumeReservationRequest(reservation_id=r.id, amount=2))
        assert consumed.reservation.status == pb.RESERVATION_STATUS_CONSUMED
        assert (consumed.reservation.amount, consumed.reservation.consumed_amount) == (6, 2)
        assert wallet_tuple(consumed.wallet) == (10, 2, 0, 8)
        rows = await h.sql(
            "SELECT kind, amount, reason, consumed_after, reserved_after, created_at FROM credit_ledger "
            "WHERE reservation_id = CAST(:id AS uuid) ORDER BY seq",
            {"id": r.id},
        )
        assert [(x.kind, x.amount, x.consumed_after, x.reserved_after) for x in rows] == [
            ("RESERVE", 6, 0, 6),
            ("CONSUME", 2, 2, 4),
            ("RELEASE", 4, 2, 0),
        ]
        assert rows[2].reason == "remainder of a partial consume"
        assert rows[1].created_at == rows[2].created_at  # one transaction
        # consuming exactly the amount is a full consume: no RELEASE
        r = (await h.reserve(account.id, 3)).reservation
        await h.call("ConsumeReservation", pb.ConsumeReservationRequest(reservation_id=r.id, amount=3))
        assert await entries(h, r.id) == [("RESERVE", 3), ("CONSUME", 3)]
        assert await h.invariants() == []


async def test_state_rules_and_reason_codes(billing):
    async with billing() as h:
        account = await h.account(100)
        consume = "ConsumeReservation"
        release = "ReleaseReservation"

        r = (await h.reserve(account.id, 5)).reservation
        err = await h.fails(consume, pb.ConsumeReservationRequest(reservation_id=r.id, amount=6))
        assert (err.code, err.reason) == (FAILED, "EXCEEDS_RESERVED_AMOUNT")
        assert err.metadata["requested"] == "6" and err.metadata["reserved"] == "5"
        await h.call(consume, pb.ConsumeReservationRequest(reservation_id=r.id))
        err = await h.fails(consume, pb.ConsumeReservationRequest(reservation_id=r.id))
        assert (err.code, err.reason) == (FAILED, "RESERVATION_ALREADY_CONSUMED")
        err = await h.fails(release, pb.ReleaseReservationRequest(reservation_id=r.id, reason="x"))
        assert (err.code, err.reason) == (FAILED, "RESERVATION_ALREADY_CONSUMED")

        r = (await h.reserve(account.id, 5)).reservation
        await h.call(release, pb.ReleaseReservationRequest(reservation_id=r.id, reason="cancelled"))
        err = await h.fails(consume, pb.ConsumeReservationRequest(reservation_id=r.id))
        assert (err.code, err.reason) == (FAILED, "RESERVATION_ALREADY_RELEASED")
        err = await h.fails(release, pb.ReleaseReservationRequest(reservation_id=r.id, reason="again"))
        assert (err.code, err.reason) == (FAILED, "RESERVATION_ALREADY_RELEASED")

        missing = str(uuid.uuid4())
        for method, request in (
            (consume, pb.ConsumeReservationRequest(reservation_id=missing)),
            (release, pb.ReleaseReservationRequest(reservation_id=missing, reason="x")),
        ):
            err = await h.fails(method, request)
            assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "RESERVATION_NOT_FOUND"), method
        for method, request in (
            ("ReserveCredits", pb.ReserveCreditsRequest(account_id=missing, amount=1, ref_type="manual", ref_id="x")),
            ("GrantCredits", pb.GrantCreditsRequest(account_id=missing, amount=1, reason="x")),
            ("GetAccount", pb.GetAccountRequest(id=missing)),
        ):
            err = await h.fails(method, request)
            assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND"), method

        # not enough: INSUFFICIENT_CREDITS with the figures; nothing written
        before = await h.ledger_sums(account.id)
        err = await h.fails(
            "ReserveCredits",
            pb.ReserveCreditsRequest(account_id=account.id, amount=96, ref_type="manual", ref_id="big"),
        )
        assert (err.code, err.reason) == (FAILED, "INSUFFICIENT_CREDITS")
        assert err.metadata == {"requested": "96", "available": "95"}
        assert await h.ledger_sums(account.id) == before
        assert await h.invariants() == []


async def test_one_active_reservation_per_ref(billing):
    async with billing() as h:
        account = await h.account(10)
        first = (await h.reserve(account.id, 2, "wo-1", ref_type="work_order")).reservation
        err = await h.fails(
            "ReserveCredits",
            pb.ReserveCreditsRequest(account_id=account.id, amount=3, ref_type="work_order", ref_id="wo-1"),
        )
        assert (err.code, err.reason) == (grpc.StatusCode.ALREADY_EXISTS, "RESERVATION_EXISTS")
        assert err.metadata["reservation_id"] == first.id
        # the ref wins over a shortfall (a retried acceptance is not a missing credit)
        err = await h.fails(
            "ReserveCredits",
            pb.ReserveCreditsRequest(account_id=account.id, amount=1000, ref_type="work_order", ref_id="wo-1"),
        )
        assert err.reason == "RESERVATION_EXISTS"
        # the same ref id under another ref type, or on another account, is another ref
        await h.reserve(account.id, 1, "wo-1", ref_type="channel_request")
        other = await h.account(5)
        await h.reserve(other.id, 1, "wo-1", ref_type="work_order")
        # once settled, the ref may be reserved again
        await h.call("ReleaseReservation", pb.ReleaseReservationRequest(reservation_id=first.id, reason="redo"))
        again = (await h.reserve(account.id, 3, "wo-1", ref_type="work_order")).reservation
        assert again.id != first.id
        # the database itself holds the rule
        with pytest.raises(DBAPIError, match="reservations_one_active"):
            await h.sql(
                "INSERT INTO reservations (id, tenant_id, account_id, amount, ref_type, ref_id, expires_at) "
                "VALUES (gen_random_uuid(), CAST(:t AS uuid), CAST(:a AS uuid), 1, 'work_order', 'wo-1', "
                "now() + interval '1 day')",
                {"t": h.tenant, "a": account.id},
            )


async def test_suspended_account_cannot_reserve_but_settles_what_it_holds(billing):
    async with billing() as h:
        account = await h.account(10)
        held = (await h.reserve(account.id, 3)).reservation
        suspend = pb.UpdateAccountRequest(
            id=account.id,
            account=pb.Account(status=pb.ACCOUNT_STATUS_SUSPENDED),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]),
            reason="unpaid",
        )
        await h.call("UpdateAccount", suspend)
        err = await h.fails(
            "ReserveCredits", pb.ReserveCreditsRequest(account_id=account.id, amount=1, ref_type="manual", ref_id="new")
        )
        assert (err.code, err.reason) == (FAILED, "ACCOUNT_SUSPENDED")
        # work already reserved is still consumed or released; top-ups still land
        await h.call("ConsumeReservation", pb.ConsumeReservationRequest(reservation_id=held.id))
        await h.grant(account.id, 5)
        assert wallet_tuple(await h.wallet(account.id)) == (15, 3, 0, 12)


async def test_expired_reservations_refuse_everything_and_the_sweep_expires_them_in_order(billing):
    async with billing() as h:
        account = await h.account(20)
        now = datetime.now(UTC)
        async with h.tx() as conn:
            # past their expiry, not yet swept (made directly: the RPC refuses a past expires_at)
            late = [
                await operations.reserve(
                    conn,
                    tenant_id=h.tenant,
                    account_id=account.id,
                    amount=n + 1,
                    ref_type="manual",
                    ref_id=f"late-{n}",
                    actor="test",
                    expires_at=now - timedelta(minutes=10 - n),
                )
                for n in (3, 1, 2)
            ]
        fresh = (await h.reserve(account.id, 1, "fresh")).reservation
        stale = late[0][0]
        # ACTIVE but past expires_at: expired to everyone but the sweep
        for method, request in (
            ("ConsumeReservation", pb.ConsumeReservationRequest(reservation_id=stale.id)),
            ("ReleaseReservation", pb.ReleaseReservationRequest(reservation_id=stale.id, reason="x")),
        ):
            err = await h.fails(method, request)
            assert (err.code, err.reason) == (FAILED, "RESERVATION_EXPIRED"), method
            assert err.metadata["expires_at"] == stale.expires_at.isoformat()

        assert await operations.expire_due(h.engine, h.tenant) == 3
        assert await operations.expire_due(h.engine, h.tenant) == 0  # twice changes nothing
        rows = await h.sql(
            "SELECT r.ref_id, r.status, l.amount, l.reason, l.actor FROM credit_ledger l "
            "JOIN reservations r ON r.id = l.reservation_id WHERE l.kind = 'EXPIRE' ORDER BY l.seq"
        )
        # earliest expiry first
        assert [x.ref_id for x in rows] == ["late-1", "late-2", "late-3"]
        assert {(x.status, x.reason, x.actor) for x in rows} == {("EXPIRED", "expired", "system:expiry")}
        assert [x.amount for x in rows] == [2, 3, 4]
        err = await h.fails("ConsumeReservation", pb.ConsumeReservationRequest(reservation_id=stale.id))
        assert err.reason == "RESERVATION_EXPIRED"
        listed = await h.call(
            "ListReservations", pb.ListReservationsRequest(account_id=account.id, status=pb.RESERVATION_STATUS_EXPIRED)
        )
        assert {r.ref_id for r in listed.reservations} == {"late-1", "late-2", "late-3"}
        assert all(r.HasField("settled_at") for r in listed.reservations)
        # the unexpired one is untouched; a sweep "later" takes it too
        assert (await h.wallet(account.id)).reserved == 1
        assert await operations.expire_due(h.engine, h.tenant, now=now + timedelta(days=30)) == 1
        assert (await h.call("ListReservations", pb.ListReservationsRequest(ref_id="fresh"))).reservations[
            0
        ].status == pb.RESERVATION_STATUS_EXPIRED
        assert wallet_tuple(await h.wallet(fresh.account_id)) == (20, 0, 0, 20)
        assert await h.invariants() == []


async def test_sweep_across_tenants(billing):
    async with billing() as h:
        other = str(uuid.uuid4())
        past = datetime.now(UTC) - timedelta(seconds=1)
        for tenant in (h.tenant, other):
            account = await h.account(5, token=h.token(tenant=tenant))
            async with h.tx(tenant) as conn:
                await operations.reserve(
                    conn,
                    tenant_id=tenant,
                    account_id=account.id,
                    amount=5,
                    ref_type="manual",
                    ref_id="x",
                    expires_at=past,
                    actor="test",
                )
        assert await operations.expire_due(h.engine) == 2
        for tenant in (h.tenant, other):
            assert await h.invariants(tenant) == []
            agg = await h.call("GetCreditAggregate", pb.GetCreditAggregateRequest(), h.token(tenant=tenant))
            assert (agg.total.reserved, agg.total.available, agg.active_reservations) == (0, 5, 0)


async def test_override_needs_the_capability_and_a_reason_and_is_recorded(billing):
    async with billing() as h:
        account = await h.account(3)
        request = pb.ReserveCreditsRequest(
            account_id=account.id,
            amount=5,
            ref_type="channel_request",
            ref_id="cr-9",
            override_reason="urgent bank report, approved by ops head",
        )
        staff = h.token(STAFF_CAPS)
        err = await h.fails("ReserveCredits", request, staff)
        assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_CAPABILITY")
        assert err.metadata == {"missing": "billing.override"}
        # a blank reason is no override
        blank = pb.ReserveCreditsRequest(
            account_id=account.id, amount=5, ref_type="channel_request", ref_id="cr-9", override_reason="   "
        )
        err = await h.fails("ReserveCredits", blank)
        assert err.reason == "INSUFFICIENT_CREDITS"

        resp = await h.call("ReserveCredits", request)
        r = resp.reservation
        assert r.override_reason == "urgent bank report, approved by ops head"
        assert wallet_tuple(resp.wallet) == (3, 0, 5, -2)
        rows = await h.sql(
            "SELECT kind, amount, reason, overdraft_after, reserved_after FROM credit_ledger "
            "WHERE reservation_id = CAST(:id AS uuid) ORDER BY seq",
            {"id": r.id},
        )
        assert [(x.kind, x.amount, x.reason, x.overdraft_after, x.reserved_after) for x in rows] == [
            ("ADJUSTMENT", 2, "urgent bank report, approved by ops head", 2, 0),
            ("RESERVE", 5, "", 2, 5),
        ]
        audit = await h.sql(
            "SELECT kind, actor, reason, detail->>'shortfall' AS shortfall FROM account_events "
            "WHERE account_id = CAST(:id AS uuid) AND kind = 'CREDITS_OVERRIDE'",
            {"id": account.id},
        )
        assert [(a.actor, a.reason, a.shortfall) for a in audit] == [
            (h.operator_id, "urgent bank report, approved by ops head", "2")
        ]
        agg = await h.call("GetCreditAggregate", pb.GetCreditAggregateRequest())
        assert agg.negative_accounts == 1 and agg.total.available == -2
        # a consume keeps the debt; a top-up pays it back
        await h.call("ConsumeReservation", pb.ConsumeReservationRequest(reservation_id=r.id))
        await h.grant(account.id, 4, kind=pb.LEDGER_KIND_TOPUP, reason="bank transfer")
        assert wallet_tuple(await h.wallet(account.id)) == (7, 5, 0, 2)
        # with enough credit the override reason is not used: no ADJUSTMENT, no override recorded
        ok = await h.call(
            "ReserveCredits",
            pb.ReserveCreditsRequest(
                account_id=account.id, amount=1, ref_type="manual", ref_id="cheap", override_reason="just in case"
            ),
        )
        assert ok.reservation.override_reason == "" and await entries(h, ok.reservation.id) == [("RESERVE", 1)]
        assert await h.invariants() == []


async def test_grant_kinds_and_reasons(billing):
    async with billing() as h:
        account = await h.account()
        for kind, amount in (
            (pb.LEDGER_KIND_GRANT, 5),
            (pb.LEDGER_KIND_TOPUP, 7),
            (pb.LEDGER_KIND_ADJUSTMENT, 1),
            (pb.LEDGER_KIND_UNSPECIFIED, 2),
        ):
            resp = await h.grant(account.id, amount, kind=kind, reason="why not")
            assert resp.entry.amount == amount and resp.entry.reason == "why not"
            assert resp.entry.kind == (kind or pb.LEDGER_KIND_GRANT)
        assert wallet_tuple(resp.wallet) == (15, 0, 0, 15)
        assert resp.entry.balance_after == resp.wallet
        assert await h.ledger_sums(account.id) == {"GRANT": 7, "TOPUP": 7, "ADJUSTMENT": 1}


def _ts(dt: datetime) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(dt)
    return t


@pytest.mark.parametrize(
    ("method", "fields", "reason", "field"),
    [
        ("ReserveCredits", {"amount": 0}, "VALIDATION_FAILED", "amount"),
        ("ReserveCredits", {"amount": -3}, "VALIDATION_FAILED", "amount"),
        ("ReserveCredits", {"account_id": "acme"}, "VALIDATION_FAILED", "account_id"),
        ("ReserveCredits", {"account_id": ""}, "VALIDATION_FAILED", "account_id"),
        ("ReserveCredits", {"ref_type": "invoice"}, "VALIDATION_FAILED", "ref_type"),
        ("ReserveCredits", {"ref_id": ""}, "VALIDATION_FAILED", "ref_id"),
        ("ReserveCredits", {"ref_id": "has space"}, "VALIDATION_FAILED", "ref_id"),
        ("ReserveCredits", {"expires_at": "past"}, "VALIDATION_FAILED", "expires_at"),
        ("ReserveCredits", {"idempotency_key": "has space"}, "VALIDATION_FAILED", "idempotency_key"),
        ("GrantCredits", {"amount": 0}, "VALIDATION_FAILED", "amount"),
        ("GrantCredits", {"reason": " "}, "VALIDATION_FAILED", "reason"),
        ("GrantCredits", {"kind": pb.LEDGER_KIND_REFILL}, "VALIDATION_FAILED", "kind"),
        ("GrantCredits", {"kind": pb.LEDGER_KIND_CONSUME}, "VALIDATION_FAILED", "kind"),
        ("GrantCredits", {"account_id": "1"}, "VALIDATION_FAILED", "account_id"),
        ("ConsumeReservation", {"amount": -1}, "VALIDATION_FAILED", "amount"),
        ("ConsumeReservation", {"reservation_id": "r-1"}, "VALIDATION_FAILED", "reservation_id"),
        ("ReleaseReservation", {"reason": ""}, "VALIDATION_FAILED", "reason"),
        ("ReleaseReservation", {"reservation_id": ""}, "VALIDATION_FAILED", "reservation_id"),
    ],
)
async def test_field_errors_name_the_field(billing, method, fields, reason, field):
    async with billing() as h:
        account_id = str(uuid.uuid4())
        base = {
            "ReserveCredits": {"account_id": account_id, "amount": 1, "ref_type": "manual", "ref_id": "x"},
            "GrantCredits": {"account_id": account_id, "amount": 1, "reason": "r"},
            "ConsumeReservation": {"reservation_id": str(uuid.uuid4())},
            "ReleaseReservation": {"reservation_id": str(uuid.uuid4()), "reason": "r"},
        }[method]
        fields = dict(fields)
        if fields.get("expires_at") == "past":
            fields["expires_at"] = _ts(datetime.now(UTC) - timedelta(minutes=1))
        request = getattr(pb, method + "Request")(**{**base, **fields})
        err = await h.fails(method, request)
        assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
        assert [v.field for v in err.violations] == [field]


async def test_the_database_refuses_ledger_edits_final_transitions_and_negative_balances(billing):
    async with billing() as h:
        account = await h.account(10)
        r = (await h.reserve(account.id, 4)).reservation
        await h.call("ConsumeReservation", pb.ConsumeReservationRequest(reservation_id=r.id))
        # as the service's own (runtime) role, which may not even TRUNCATE
        for statement in (
            "UPDATE credit_ledger SET amount = amount + 1",
            "DELETE FROM credit_ledger",
            "TRUNCATE credit_ledger CASCADE",
            "UPDATE account_events SET reason = 'x'",
            "DELETE FROM account_events",
        ):
            with pytest.raises(DBAPIError, match="append-only|permission denied"):
                await h.sql(statement)
        with pytest.raises(DBAPIError, match="final"):
            await h.sql(
                "UPDATE reservations SET status = 'ACTIVE', consumed_amount = 0, settled_at = NULL "
                "WHERE id = CAST(:id AS uuid)",
                {"id": r.id},
            )
        with pytest.raises(DBAPIError, match="never deleted"):
            await h.sql("DELETE FROM reservations")
        with pytest.raises(DBAPIError, match="wallets_available_floor"):
            await h.sql(
                "UPDATE wallets SET reserved = reserved + 7 WHERE account_id = CAST(:id AS uuid)", {"id": account.id}
            )
        with pytest.raises(DBAPIError, match="credit_ledger_amount_check"):
            async with h.tx() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO credit_ledger (id, tenant_id, account_id, seq, kind, amount, actor, granted_after, "
                        "consumed_after, reserved_after, overdraft_after) VALUES (gen_random_uuid(), CAST(:t AS uuid), "
                        "CAST(:a AS uuid), 99, 'GRANT', 0, 'x', 0, 0, 0, 0)"
                    ),
                    {"t": h.tenant, "a": account.id},
                )
        # nothing changed
        assert await h.ledger_sums(account.id) == {"GRANT": 10, "RESERVE": 4, "CONSUME": 4}
        assert await h.invariants() == []
