"""Idempotency keys on credit operations: the same key and request answer the original
response (a failure included), however much later; another request under the key is
ALREADY_EXISTS IDEMPOTENCY_KEY_REUSED naming the fields; concurrent twins take effect once."""

import asyncio
import uuid
from collections import Counter

import grpc
import pytest
from billing_harness import outcome, pb

from zenops_billing.store.sql import raw_autocommit
from zenops_billing.wallet import operations
from zenops_kit.errors import Unavailable


def key() -> str:
    return uuid.uuid4().hex


async def test_replays_answer_the_original_response_and_change_nothing(billing):
    async with billing() as h:
        account = await h.account()
        k = key()
        grant = pb.GrantCreditsRequest(account_id=account.id, amount=20, reason="opening", idempotency_key=k)
        first = await h.call("GrantCredits", grant)
        assert first.entry.idempotency_key == k
        assert await h.call("GrantCredits", grant) == first

        k = key()
        reserve = pb.ReserveCreditsRequest(
            account_id=account.id, amount=6, ref_type="manual", ref_id="r1", idempotency_key=k
        )
        reserved = await h.call("ReserveCredits", reserve)
        again = await h.call("ReserveCredits", reserve)
        assert again.SerializeToString(deterministic=True) == reserved.SerializeToString(deterministic=True)
        rid = reserved.reservation.id

        k = key()
        consume = pb.ConsumeReservationRequest(reservation_id=rid, amount=4, idempotency_key=k)
        consumed = await h.call("ConsumeReservation", consume)
        assert await h.call("ConsumeReservation", consume) == consumed  # not RESERVATION_ALREADY_CONSUMED

        r2 = (await h.reserve(account.id, 3, "r2")).reservation
        k = key()
        release = pb.ReleaseReservationRequest(reservation_id=r2.id, reason="no longer needed", idempotency_key=k)
        released = await h.call("ReleaseReservation", release)
        assert await h.call("ReleaseReservation", release) == released

        assert await h.ledger_sums(account.id) == {"GRANT": 20, "RESERVE": 9, "CONSUME": 4, "RELEASE": 5}
        wallet = await h.wallet(account.id)
        assert (wallet.granted, wallet.consumed, wallet.reserved, wallet.available) == (20, 4, 0, 16)
        assert await h.invariants() == []


async def test_the_key_may_come_in_metadata_and_the_field_wins(billing):
    async with billing() as h:
        account = await h.account(10)
        k = key()
        request = pb.ReserveCreditsRequest(account_id=account.id, amount=2, ref_type="manual", ref_id="m1")
        first = await h.call("ReserveCredits", request, metadata=[("idempotency-key", k)])
        assert await h.call("ReserveCredits", request, metadata=[("idempotency-key", k)]) == first
        # the field names the key when both are given: this is a new request under key k2
        k2 = key()
        other = pb.ReserveCreditsRequest(
            account_id=account.id, amount=2, ref_type="manual", ref_id="m2", idempotency_key=k2
        )
        second = await h.call("ReserveCredits", other, metadata=[("idempotency-key", k)])
        assert second.reservation.id != first.reservation.id
        assert await h.call("ReserveCredits", other) == second
        err = await h.fails("ReserveCredits", request, metadata=[("idempotency-key", "bad key")])
        assert [v.field for v in err.violations] == ["idempotency-key"]


async def test_an_original_failure_is_replayed_even_when_it_would_now_succeed(billing):
    async with billing() as h:
        account = await h.account(5)
        k = key()
        reserve = pb.ReserveCreditsRequest(
            account_id=account.id, amount=8, ref_type="manual", ref_id="big", idempotency_key=k
        )
        err = await h.fails("ReserveCredits", reserve)
        assert (err.code, err.reason, err.metadata) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "INSUFFICIENT_CREDITS",
            {"requested": "8", "available": "5"},
        )
        await h.grant(account.id, 100)
        again = await h.fails("ReserveCredits", reserve)
        assert (again.code, again.reason, again.message, again.metadata) == (
            err.code,
            err.reason,
            err.message,
            err.metadata,
        )
        # a new key is a new request
        assert (
            await h.call(
                "ReserveCredits",
                pb.ReserveCreditsRequest(
                    account_id=account.id, amount=8, ref_type="manual", ref_id="big", idempotency_key=key()
                ),
            )
        ).reservation.id

        missing = pb.ConsumeReservationRequest(reservation_id=str(uuid.uuid4()), idempotency_key=key())
        first = await h.fails("ConsumeReservation", missing)
        assert (first.code, first.reason) == (grpc.StatusCode.NOT_FOUND, "RESERVATION_NOT_FOUND")
        assert (await h.fails("ConsumeReservation", missing)).reason == "RESERVATION_NOT_FOUND"
        stored = await h.sql("SELECT error->>'outcome' AS reason FROM idempotency_keys WHERE key = :k", {"k": k})
        assert [s.reason for s in stored] == ["INSUFFICIENT_CREDITS"]


async def test_key_reuse_with_another_request_names_the_mismatched_fields(billing):
    async with billing() as h:
        account = await h.account(10)
        k = key()
        base = {"account_id": account.id, "amount": 1, "ref_type": "manual", "ref_id": "a", "idempotency_key": k}
        await h.call("ReserveCredits", pb.ReserveCreditsRequest(**base))
        for changes, fields in (
            ({"amount": 2}, "amount"),
            ({"amount": 2, "ref_id": "b"}, "amount,ref_id"),
            ({"override_reason": "please"}, "override_reason"),
            ({"ref_type": "work_order"}, "ref_type"),
        ):
            err = await h.fails("ReserveCredits", pb.ReserveCreditsRequest(**{**base, **changes}))
            assert (err.code, err.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
            assert err.metadata["fields"] == fields
        # another operation under the key
        err = await h.fails(
            "GrantCredits", pb.GrantCreditsRequest(account_id=account.id, amount=1, reason="x", idempotency_key=k)
        )
        assert (err.reason, err.metadata["fields"]) == ("IDEMPOTENCY_KEY_REUSED", "operation")
        # also when the original failed
        k = key()
        failing = pb.ReserveCreditsRequest(
            account_id=account.id, amount=50, ref_type="manual", ref_id="c", idempotency_key=k
        )
        assert (await h.fails("ReserveCredits", failing)).reason == "INSUFFICIENT_CREDITS"
        failing.amount = 1
        err = await h.fails("ReserveCredits", failing)
        assert (err.reason, err.metadata["fields"]) == ("IDEMPOTENCY_KEY_REUSED", "amount")
        assert await h.ledger_sums(account.id) == {"GRANT": 10, "RESERVE": 1}


async def test_still_true_much_later(billing):
    async with billing() as h:
        account = await h.account(30)
        k = key()
        request = pb.ReserveCreditsRequest(
            account_id=account.id, amount=7, ref_type="work_order", ref_id="wo-7", override_reason="", idempotency_key=k
        )
        original = await h.call("ReserveCredits", request)
        rid = original.reservation.id
        # much happens afterwards: the reservation is consumed, more credits come and go
        ck = key()
        consumed = await h.call(
            "ConsumeReservation", pb.ConsumeReservationRequest(reservation_id=rid, idempotency_key=ck)
        )
        for i in range(5):
            r = (await h.reserve(account.id, 1, f"later-{i}")).reservation
            await h.call("ReleaseReservation", pb.ReleaseReservationRequest(reservation_id=r.id, reason="x"))
            await h.grant(account.id, 2)
        await operations.expire_due(h.engine, h.tenant)
        # ...and a long time passes: keys are never pruned
        await h.sql("UPDATE idempotency_keys SET created_at = created_at - interval '400 days'")

        replay = await h.call("ReserveCredits", request)
        assert replay.SerializeToString(deterministic=True) == original.SerializeToString(deterministic=True)
        assert replay.reservation.status == pb.RESERVATION_STATUS_ACTIVE  # as it was answered
        assert replay.wallet.available == 23
        assert (
            await h.call("ConsumeReservation", pb.ConsumeReservationRequest(reservation_id=rid, idempotency_key=ck))
            == consumed
        )
        request.amount = 8
        err = await h.fails("ReserveCredits", request)
        assert (err.reason, err.metadata["fields"]) == ("IDEMPOTENCY_KEY_REUSED", "amount")
        assert (await h.wallet(account.id)).available == 30 - 7 + 10


async def test_concurrent_twins_take_effect_once(billing):
    async with billing() as h:
        account = await h.account(10)
        k = key()
        request = pb.ReserveCreditsRequest(
            account_id=account.id, amount=3, ref_type="manual", ref_id="twin", idempotency_key=k
        )
        results = await asyncio.gather(*(outcome(h.call("ReserveCredits", request)) for _ in range(20)))
        assert {r for r, _ in results} == {"OK"}
        assert len({resp.SerializeToString(deterministic=True) for _, resp in results}) == 1
        assert await h.ledger_sums(account.id) == {"GRANT": 10, "RESERVE": 3}

        # twins of a failing request fail alike, and the failure is recorded once
        k = key()
        failing = pb.ReserveCreditsRequest(
            account_id=account.id, amount=100, ref_type="manual", ref_id="f", idempotency_key=k
        )
        results = await asyncio.gather(*(outcome(h.call("ReserveCredits", failing)) for _ in range(20)))
        assert {r for r, _ in results} == {"INSUFFICIENT_CREDITS"}
        assert (await h.sql("SELECT count(*) AS n FROM idempotency_keys WHERE key = :k", {"k": k}))[0].n == 1

        # one key, different requests at once: one of them wins, the others are told so
        k = key()
        variants = [
            pb.ReserveCreditsRequest(
                account_id=account.id, amount=1, ref_type="manual", ref_id=f"v{i}", idempotency_key=k
            )
            for i in range(10)
        ]
        results = await asyncio.gather(*(outcome(h.call("ReserveCredits", v)) for v in variants))
        assert Counter(r for r, _ in results) == {"OK": 1, "IDEMPOTENCY_KEY_REUSED": 9}
        assert {d.metadata["fields"] for r, d in results if r != "OK"} == {"ref_id"}
        assert await h.ledger_sums(account.id) == {"GRANT": 10, "RESERVE": 4}
        assert await h.invariants() == []


async def test_a_connection_lost_under_a_credit_call_is_unavailable_and_never_reused(billing):
    """The credit RPCs' pooled asyncpg connection (`raw_autocommit`): when PostgreSQL drops it,
    the call fails UNAVAILABLE (retry with the key) and the pool never hands it out again."""
    async with billing() as h:
        with pytest.raises(Unavailable, match="retry with the same key"):
            async with raw_autocommit(h.engine) as conn:
                pid = await conn.fetchval("SELECT pg_backend_pid()")
                # another pooled connection ends it (and waits until it is gone)
                await h.sql("SELECT pg_terminate_backend(:pid, 5000)", {"pid": pid}, tenant=None)
                await conn.fetchval("SELECT 1")
        for _ in range(h.settings.database_pool_size + 1):
            async with raw_autocommit(h.engine) as conn:
                assert await conn.fetchval("SELECT 1") == 1
        account = await h.account(10)
        assert (await h.reserve(account.id, 2)).wallet.reserved == 2


async def test_keys_are_per_tenant(billing):
    async with billing() as h:
        other = h.token(tenant=str(uuid.uuid4()))
        mine, theirs = await h.account(5), await h.account(5, token=other)
        k = key()
        a = await h.call(
            "ReserveCredits",
            pb.ReserveCreditsRequest(account_id=mine.id, amount=1, ref_type="manual", ref_id="x", idempotency_key=k),
        )
        b = await h.call(
            "ReserveCredits",
            pb.ReserveCreditsRequest(account_id=theirs.id, amount=2, ref_type="manual", ref_id="y", idempotency_key=k),
            other,
        )
        assert a.reservation.id != b.reservation.id and b.wallet.reserved == 2


async def test_create_account_takes_a_key_in_metadata(billing):
    async with billing() as h:
        k = key()
        request = pb.CreateAccountRequest(display_name="Acme Bank", external_key="acme-1")
        first = await h.call("CreateAccount", request, metadata=[("idempotency-key", k)])
        assert await h.call("CreateAccount", request, metadata=[("idempotency-key", k)]) == first
        request.display_name = "Acme Bank Ltd"
        err = await h.fails("CreateAccount", request, metadata=[("idempotency-key", k)])
        assert (err.reason, err.metadata["fields"]) == ("IDEMPOTENCY_KEY_REUSED", "display_name")
        listed = await h.call("ListAccounts", pb.ListAccountsRequest())
        assert [a.id for a in listed.accounts] == [first.account.id]


async def test_an_override_replays_without_a_second_adjustment(billing):
    async with billing() as h:
        account = await h.account(1)
        request = pb.ReserveCreditsRequest(
            account_id=account.id,
            amount=4,
            ref_type="manual",
            ref_id="o",
            override_reason="director's call",
            idempotency_key=key(),
        )
        first = await h.call("ReserveCredits", request)
        assert await h.call("ReserveCredits", request) == first
        assert first.reservation.override_reason == "director's call" and first.wallet.available == -3
        assert await h.ledger_sums(account.id) == {"GRANT": 1, "ADJUSTMENT": 3, "RESERVE": 4}
        events = await h.sql("SELECT count(*) AS n FROM account_events WHERE kind = 'CREDITS_OVERRIDE'")
        assert events[0].n == 1
