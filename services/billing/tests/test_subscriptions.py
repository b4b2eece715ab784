"""Plans, subscriptions and the refill scheduler: monthly periods in UTC (month ends
clamped), state rules, and each due period's REFILL granted exactly once — whether the
scheduler runs twice, concurrently, or is killed mid-run (SIGKILL of a real process)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from billing_harness import STAFF_CAPS

from zenops.billing.v1 import billing_pb2 as pb
from zenops_billing.domain import subscriptions as rules
from zenops_billing.subscriptions import scheduler, service
from zenops_devstack.testing import poll
from zenops_kit.db import create_engine

# -- period arithmetic (pure) ------------------------------------------------------------------


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_month_end_anchor_clamps_to_shorter_months_without_drifting():
    anchor = at(2024, 1, 31, 9, 30)
    starts = [rules.period_start(anchor, n) for n in range(14)]
    assert [s.date().isoformat() for s in starts[:5]] == [
        "2024-01-31",
        "2024-02-29",
        "2024-03-31",
        "2024-04-30",
        "2024-05-31",
    ]
    assert starts[13] == at(2025, 2, 28, 9, 30)  # not a leap year
    assert all(s.time() == anchor.time() and s.tzinfo == UTC for s in starts)
    assert rules.add_months(at(2024, 2, 29), 12) == at(2025, 2, 28)
    assert rules.add_months(at(2023, 12, 15), 1) == at(2024, 1, 15)  # across a year end
    assert rules.add_months(at(2024, 3, 31), -1) == at(2024, 2, 29)


def test_period_index_contains_the_instant():
    rng = random.Random(7)
    for _ in range(5000):
        anchor = at(2020, 1, 1) + timedelta(seconds=rng.randrange(0, 10**8))
        when = anchor + timedelta(seconds=rng.randrange(-(10**6), 10**9))
        n = rules.period_index_at(anchor, when)
        if when < anchor:
            assert n == -1
        else:
            assert rules.period_start(anchor, n) <= when < rules.period_start(anchor, n + 1)


def test_due_periods_and_first_period_from():
    anchor = at(2024, 1, 31)
    assert list(rules.due_periods(anchor, 0, anchor)) == [0]  # due at its start
    assert list(rules.due_periods(anchor, 0, anchor - timedelta(seconds=1))) == []
    assert list(rules.due_periods(anchor, 1, at(2024, 4, 30))) == [1, 2, 3]
    assert list(rules.due_periods(anchor, 4, at(2024, 4, 30))) == []
    assert rules.first_period_from(anchor, at(2024, 2, 29)) == 1
    assert rules.first_period_from(anchor, at(2024, 2, 29, 0, 0, 1)) == 2
    assert rules.first_period_from(anchor, at(2023, 1, 1)) == 0
    assert rules.current_period(anchor, 0) == (anchor, at(2024, 2, 29))
    assert rules.current_period(anchor, 3) == (at(2024, 3, 31), at(2024, 4, 30))


def test_state_rules():
    assert rules.transition(rules.ACTIVE, rules.PAUSE) == rules.PAUSED
    assert rules.transition(rules.PAUSED, rules.RESUME) == rules.ACTIVE
    assert rules.transition(rules.PAUSED, rules.CANCEL) == rules.CANCELLED
    assert rules.transition(rules.ACTIVE, rules.CANCEL) == rules.CANCELLED
    # a repeated request is answered with the subscription as it is
    assert rules.transition(rules.PAUSED, rules.PAUSE) is None
    assert rules.transition(rules.CANCELLED, rules.CANCEL) is None
    for action in (rules.PAUSE, rules.RESUME):
        with pytest.raises(Exception) as err:
            rules.transition(rules.CANCELLED, action)
        assert err.value.reason == "SUBSCRIPTION_CANCELLED"


# -- helpers -----------------------------------------------------------------------------------


async def plan(h, credits: int = 100, code: str | None = None, token: str | None = None) -> pb.Plan:
    return (
        await h.call(
            "CreatePlan",
            pb.CreatePlanRequest(
                code=code or f"plan-{uuid.uuid4().hex[:8]}",
                name="Starter",
                credits_per_period=credits,
                period="monthly",
                price_paise=499900,
            ),
            token,
        )
    ).plan


async def subscribe(h, account_id: str, plan_id: str, *, key: str = "", start_at: datetime | None = None):
    req = pb.SubscribeRequest(account_id=account_id, plan_id=plan_id, idempotency_key=key)
    if start_at is not None:
        req.start_at.FromDatetime(start_at)
    return (await h.call("Subscribe", req)).subscription


async def refills(h, subscription_id: str | None = None) -> list:
    rows = await h.sql(
        "SELECT subscription_id::text, period_index, period_start, amount, ledger_entry_id::text "
        "FROM refills ORDER BY subscription_id, period_index"
    )
    return [r for r in rows if subscription_id is None or r.subscription_id == subscription_id]


async def refill_entries(h) -> dict[str, int]:
    """business_ref → how many REFILL ledger entries carry it (each must be exactly 1)."""
    rows = await h.sql(
        "SELECT business_ref, count(*) AS n FROM credit_ledger WHERE kind = 'REFILL' GROUP BY business_ref"
    )
    return {r.business_ref: r.n for r in rows}


async def anchor_of(h, subscription_id: str) -> datetime:
    [row] = await h.sql("SELECT anchor_at FROM subscriptions WHERE id = CAST(:id AS uuid)", {"id": subscription_id})
    return row.anchor_at


# -- plans -------------------------------------------------------------------------------------


async def test_plans_are_validated_unique_and_listed(billing):
    async with billing() as h:
        bad = await h.fails(
            "CreatePlan",
            pb.CreatePlanRequest(code="no spaces", name=" ", credits_per_period=0, period="weekly", price_paise=-1),
        )
        assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
        assert {v.field for v in bad.violations} == {"code", "name", "credits_per_period", "period", "price_paise"}
        # a NUL in the name (schemathesis' find: PostgreSQL cannot store one) is named, not a 500
        bad = await h.fails("CreatePlan", pb.CreatePlanRequest(code="nul", name="Gold\x00", credits_per_period=1))
        assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
        assert [(v.field, v.description) for v in bad.violations] == [("name", "must not contain control characters")]

        first = await plan(h, credits=50, code="starter-50")
        assert (first.period, first.active, first.credits_per_period, first.price_paise) == (
            "monthly",
            True,
            50,
            499900,
        )
        # the period defaults to monthly
        other = (
            await h.call(
                "CreatePlan", pb.CreatePlanRequest(code="gold", name="Gold", credits_per_period=500, price_paise=0)
            )
        ).plan
        assert other.period == "monthly" and other.price_paise == 0
        dup = await h.fails(
            "CreatePlan", pb.CreatePlanRequest(code="starter-50", name="Again", credits_per_period=5, price_paise=0)
        )
        assert (dup.code, dup.reason, [v.field for v in dup.violations]) == (
            grpc.StatusCode.ALREADY_EXISTS,
            "PLAN_CODE_EXISTS",
            ["code"],
        )
        listed = (await h.call("ListPlans", pb.ListPlansRequest())).plans
        assert [p.code for p in listed] == ["gold", "starter-50"]

        # another tenant sees none of them, and may use the same code
        other_tenant = h.token(tenant=str(uuid.uuid4()))
        assert list((await h.call("ListPlans", pb.ListPlansRequest(), other_tenant)).plans) == []
        await plan(h, code="starter-50", token=other_tenant)


async def test_who_may_create_plans(billing):
    async with billing() as h:
        # A plan mints credits (its refills): only who may grant credits creates one.
        await plan(h, token=h.token(("billing.credits.write",)))
        for token in (
            h.token(("billing.read",)),
            h.token(("channel_requests.read",), aud="portal"),
            h.service_token(caps=()),
            h.token(("billing.write",)),
            h.token(("control.write",)),
        ):
            denied = await h.fails(
                "CreatePlan", pb.CreatePlanRequest(code="x", name="x", credits_per_period=1, price_paise=0), token
            )
            assert denied.code == grpc.StatusCode.PERMISSION_DENIED, denied
        denied = await h.fails("ListPlans", pb.ListPlansRequest(), h.token(("channel_requests.read",), aud="portal"))
        assert denied.code == grpc.StatusCode.PERMISSION_DENIED


# -- subscribe ---------------------------------------------------------------------------------


async def test_subscribe_grants_the_first_refill_once_and_is_idempotent(billing):
    async with billing() as h:
        account = await h.account()
        p = await plan(h, credits=100)
        key = f"sub-{uuid.uuid4()}"
        before = datetime.now(UTC)
        sub = await subscribe(h, account.id, p.id, key=key)
        assert sub.status == pb.SUBSCRIPTION_STATUS_ACTIVE and sub.account_id == account.id
        start = sub.current_period_start.ToDatetime(tzinfo=UTC)
        assert before - timedelta(seconds=1) <= start <= datetime.now(UTC)
        assert sub.current_period_end.ToDatetime(tzinfo=UTC) == rules.add_months(start, 1)
        assert sub.next_refill_at == sub.current_period_end
        assert (await h.wallet(account.id)).granted == 100

        # the same key answers the same subscription, and grants nothing more
        assert await subscribe(h, account.id, p.id, key=key) == sub
        assert (await h.wallet(account.id)).granted == 100
        # the key with another plan: the mismatched field is named
        other = await plan(h)
        reused = await h.fails(
            "Subscribe", pb.SubscribeRequest(account_id=account.id, plan_id=other.id, idempotency_key=key)
        )
        assert (reused.code, reused.reason, reused.metadata["fields"]) == (
            grpc.StatusCode.ALREADY_EXISTS,
            "IDEMPOTENCY_KEY_REUSED",
            "plan_id",
        )
        # without a key, a second live subscription to the plan is refused
        again = await h.fails("Subscribe", pb.SubscribeRequest(account_id=account.id, plan_id=p.id))
        assert (again.reason, again.metadata["subscription_id"]) == ("SUBSCRIPTION_EXISTS", sub.id)
        [row] = await refills(h, sub.id)
        assert (row.period_index, row.amount) == (0, 100) and row.ledger_entry_id
        assert await h.invariants() == []


async def test_subscribe_rejections(billing):
    async with billing() as h:
        account = await h.account()
        p = await plan(h)
        past = pb.SubscribeRequest(account_id=account.id, plan_id=p.id)
        past.start_at.FromDatetime(datetime.now(UTC) - timedelta(days=3))
        err = await h.fails("Subscribe", past)
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT and [v.field for v in err.violations] == ["start_at"]
        err = await h.fails("Subscribe", pb.SubscribeRequest(account_id="nope", plan_id="nope"))
        assert {v.field for v in err.violations} == {"account_id", "plan_id"}
        err = await h.fails("Subscribe", pb.SubscribeRequest(account_id=str(uuid.uuid4()), plan_id=p.id))
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
        err = await h.fails("Subscribe", pb.SubscribeRequest(account_id=account.id, plan_id=str(uuid.uuid4())))
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "PLAN_NOT_FOUND")
        err = await h.fails(
            "Subscribe", pb.SubscribeRequest(account_id=account.id, plan_id=p.id), h.token(("billing.read",))
        )
        assert err.code == grpc.StatusCode.PERMISSION_DENIED
        # a plan of another tenant is not found
        foreign = await plan(h, token=h.token(tenant=str(uuid.uuid4())))
        err = await h.fails("Subscribe", pb.SubscribeRequest(account_id=account.id, plan_id=foreign.id))
        assert err.reason == "PLAN_NOT_FOUND"


async def test_future_start_grants_at_the_start(billing):
    async with billing() as h:
        account = await h.account()
        p = await plan(h, credits=30)
        start = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=0)
        sub = await subscribe(h, account.id, p.id, start_at=start)
        assert sub.next_refill_at.ToDatetime(tzinfo=UTC) == start
        assert (await h.wallet(account.id)).granted == 0
        assert (await scheduler.run_refills(h.engine, now=start - timedelta(seconds=1))).granted == 0
        assert (await scheduler.run_refills(h.engine, now=start)).granted == 1
        assert (await h.wallet(account.id)).granted == 30


# -- the scheduler -----------------------------------------------------------------------------


async def test_scheduler_catches_up_missed_periods_once(billing):
    async with billing() as h:
        account = await h.account()
        p = await plan(h, credits=10)
        sub = await subscribe(h, account.id, p.id)
        anchor = await anchor_of(h, sub.id)
        later = rules.add_months(anchor, 3) + timedelta(hours=1)
        run = await scheduler.run_refills(h.engine, now=later)
        assert run.granted == 3 and run.failed == []
        assert [r.period_index for r in await refills(h, sub.id)] == [0, 1, 2, 3]
        assert [r.period_start for r in await refills(h, sub.id)] == [rules.add_months(anchor, n) for n in range(4)]
        assert (await h.wallet(account.id)).granted == 40
        # rerun at the same instant, and a little later: nothing more
        assert (await scheduler.run_refills(h.engine, now=later)).granted == 0
        assert (await scheduler.run_refills(h.engine, now=later + timedelta(days=1))).granted == 0
        assert set((await refill_entries(h)).values()) == {1} and len(await refill_entries(h)) == 4
        # the subscription shows the last granted period and the next refill
        [row] = await h.sql("SELECT next_period, next_refill_at FROM subscriptions")
        assert (row.next_period, row.next_refill_at) == (4, rules.add_months(anchor, 4))
        assert await h.invariants() == []


async def test_month_end_anchor_refills_on_clamped_days(billing):
    async with billing() as h:
        account = await h.account()
        p = await plan(h, credits=1)
        # the next 31st within the year, as the subscription's start
        day = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) + timedelta(days=1)
        while day.day != 31 or day.month in (7, 12):  # a 31st followed by a 30-day (or February) month
            day += timedelta(days=1)
        sub = await subscribe(h, account.id, p.id, start_at=day)
        await scheduler.run_refills(h.engine, now=rules.add_months(day, 2))
        starts = [r.period_start for r in await refills(h, sub.id)]
        assert [s.day for s in starts[:2]] == [31, rules.add_months(day, 1).day]
        assert starts[1].day in (28, 29, 30) and starts[2].day == 31
        assert all(s.hour == 12 for s in starts)


async def test_paused_subscriptions_do_not_refill_and_resume_skips_the_paused_periods(billing):
    async with billing() as h:
        account = await h.account()
        p = await plan(h, credits=10)
        sub = await subscribe(h, account.id, p.id)
        anchor = await anchor_of(h, sub.id)
        tenant = h.tenant
        # paused 45 days in: period 1 (day ~30) was due before the pause but the scheduler had not run
        paused = await service.change(
            h.engine,
            tenant_id=tenant,
            subscription_id=sub.id,
            action=rules.PAUSE,
            actor="test",
            now=anchor + timedelta(days=45),
        )
        assert paused.status == rules.PAUSED and paused.next_refill_at is None
        assert (await scheduler.run_refills(h.engine, now=rules.add_months(anchor, 3) + timedelta(days=1))).granted == 0
        # resumed 3 months and 10 days in: period 1 is granted now, periods 2 and 3 (started while
        # paused) never are, and refills go on from period 4
        resumed = await service.change(
            h.engine,
            tenant_id=tenant,
            subscription_id=sub.id,
            action=rules.RESUME,
            actor="test",
            now=rules.add_months(anchor, 3) + timedelta(days=10),
        )
        assert resumed.status == rules.ACTIVE
        assert resumed.next_refill_at == rules.add_months(anchor, 4)
        assert [r.period_index for r in await refills(h, sub.id)] == [0, 1]
        assert (await scheduler.run_refills(h.engine, now=rules.add_months(anchor, 4))).granted == 1
        assert [r.period_index for r in await refills(h, sub.id)] == [0, 1, 4]
        assert (await h.wallet(account.id)).granted == 30
        assert await h.invariants() == []


async def test_pause_resume_cancel_over_grpc(billing):
    async with billing() as h:
        account = await h.account()
        p = await plan(h)
        sub = await subscribe(h, account.id, p.id)

        paused = (await h.call("PauseSubscription", pb.PauseSubscriptionRequest(id=sub.id))).subscription
        assert paused.status == pb.SUBSCRIPTION_STATUS_PAUSED and not paused.HasField("next_refill_at")
        # a repeated pause answers the subscription as it is
        assert (await h.call("PauseSubscription", pb.PauseSubscriptionRequest(id=sub.id))).subscription == paused
        resumed = (await h.call("ResumeSubscription", pb.ResumeSubscriptionRequest(id=sub.id))).subscription
        assert resumed.status == pb.SUBSCRIPTION_STATUS_ACTIVE and resumed.next_refill_at == sub.next_refill_at
        assert (await h.call("ResumeSubscription", pb.ResumeSubscriptionRequest(id=sub.id))).subscription == resumed
        cancelled = (await h.call("CancelSubscription", pb.CancelSubscriptionRequest(id=sub.id))).subscription
        assert cancelled.status == pb.SUBSCRIPTION_STATUS_CANCELLED and not cancelled.HasField("next_refill_at")
        assert (await h.call("CancelSubscription", pb.CancelSubscriptionRequest(id=sub.id))).subscription == cancelled

        # cancelled is final
        for method, req in (
            ("PauseSubscription", pb.PauseSubscriptionRequest(id=sub.id)),
            ("ResumeSubscription", pb.ResumeSubscriptionRequest(id=sub.id)),
        ):
            err = await h.fails(method, req)
            assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SUBSCRIPTION_CANCELLED")
        # nothing more is ever granted, and the account may subscribe to the plan again
        anchor = await anchor_of(h, sub.id)
        assert (await scheduler.run_refills(h.engine, now=rules.add_months(anchor, 5))).granted == 0
        fresh = await subscribe(h, account.id, p.id)
        assert fresh.id != sub.id
        assert (await h.wallet(account.id)).granted == 2 * p.credits_per_period

        # an active subscription cannot be resumed, a paused one not paused... answered as is;
        # but unknown ids and bad ids are errors naming them
        err = await h.fails("PauseSubscription", pb.PauseSubscriptionRequest(id=str(uuid.uuid4())))
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "SUBSCRIPTION_NOT_FOUND")
        err = await h.fails("PauseSubscription", pb.PauseSubscriptionRequest(id="x"))
        assert [v.field for v in err.violations] == ["id"]
        err = await h.fails("CancelSubscription", pb.CancelSubscriptionRequest(id=fresh.id), h.token(STAFF_CAPS[:1]))
        assert err.code == grpc.StatusCode.PERMISSION_DENIED


async def test_cancel_grants_what_was_already_due(billing):
    async with billing() as h:
        account = await h.account()
        p = await plan(h, credits=7)
        sub = await subscribe(h, account.id, p.id)
        anchor = await anchor_of(h, sub.id)
        await service.change(
            h.engine,
            tenant_id=h.tenant,
            subscription_id=sub.id,
            action=rules.CANCEL,
            actor="t",
            now=rules.add_months(anchor, 1) + timedelta(days=2),
        )
        assert [r.period_index for r in await refills(h, sub.id)] == [0, 1]
        assert (await scheduler.run_refills(h.engine, now=rules.add_months(anchor, 6))).granted == 0


async def many_subscriptions(h, n: int, credits: int = 1) -> tuple[list[str], list[str], datetime]:
    """`n` accounts, each subscribed to one plan now; (account ids, subscription ids, earliest anchor)."""
    p = await plan(h, credits=credits)
    accounts, subs = [], []
    for _ in range(n):
        account = await h.account()
        accounts.append(account.id)
        subs.append((await subscribe(h, account.id, p.id)).id)
    [row] = await h.sql("SELECT min(anchor_at) AS a FROM subscriptions")
    return accounts, subs, row.a


async def assert_each_period_once(h, subs: list[str], periods: int, accounts: list[str], credits: int = 1):
    rows = await refills(h)
    assert len(rows) == len(subs) * periods
    for sub_id in subs:
        assert [r.period_index for r in rows if r.subscription_id == sub_id] == list(range(periods))
    entries = await refill_entries(h)
    assert len(entries) == len(subs) * periods and set(entries.values()) == {1}
    for account_id in accounts:
        assert (await h.wallet(account_id)).granted == periods * credits
    assert await h.invariants() == []


async def test_two_schedulers_at_once_grant_each_period_once(billing):
    async with billing() as h:
        accounts, subs, anchor = await many_subscriptions(h, 12)
        later = rules.add_months(anchor, 5) + timedelta(hours=1)  # periods 1..5 due for each
        url = h.settings.database_url.get_secret_value()
        engines = [create_engine(url, pool_size=4) for _ in range(2)]
        try:
            runs = await asyncio.gather(*(scheduler.run_refills(e, now=later) for e in engines))
        finally:
            for e in engines:
                await e.dispose()
        assert sum(r.granted for r in runs) == 12 * 5
        await assert_each_period_once(h, subs, 6, accounts)
        # and once more, with the app's engine: nothing left
        assert (await scheduler.run_refills(h.engine, now=later)).granted == 0


async def test_scheduler_cancelled_at_random_points_never_double_grants_or_skips(billing):
    async with billing() as h:
        accounts, subs, anchor = await many_subscriptions(h, 6)
        later = rules.add_months(anchor, 8) + timedelta(hours=1)
        rng = random.Random(11)
        interrupted = 0
        for _ in range(6):
            task = asyncio.create_task(scheduler.run_refills(h.engine, now=later))
            await asyncio.sleep(rng.uniform(0.005, 0.05))  # the kill point: wherever the run has got to
            task.cancel()
            [result] = await asyncio.gather(task, return_exceptions=True)
            interrupted += isinstance(result, asyncio.CancelledError)
            assert await h.invariants() == []
        assert interrupted >= 3
        [row] = await h.sql("SELECT count(*) AS n FROM refills")
        assert row.n < 6 * 9
        await scheduler.run_refills(h.engine, now=later)
        await assert_each_period_once(h, subs, 9, accounts)


KILLABLE_RUN = """
import asyncio, sys
from datetime import datetime
from zenops_billing.subscriptions.scheduler import run_refills
from zenops_kit.db import create_engine

async def main():
    engine = create_engine(sys.argv[1])
    await run_refills(engine, now=datetime.fromisoformat(sys.argv[2]))

asyncio.run(main())
"""


async def test_scheduler_killed_mid_run_grants_each_period_once_after_a_rerun(billing):
    async with billing(refill_interval=3600.0) as h:
        accounts, subs, anchor = await many_subscriptions(h, 30)
        later = rules.add_months(anchor, 11) + timedelta(hours=1)  # 11 missed periods each: 330 grants
        total = 30 * 12
        proc = subprocess.Popen(
            [sys.executable, "-c", KILLABLE_RUN, h.settings.database_url.get_secret_value(), later.isoformat()],
            env={**os.environ},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:

            async def some_granted():
                [row] = await h.sql("SELECT count(*) AS n FROM refills")
                return row.n >= 60

            await poll(some_granted, timeout=60, interval=0.01, what="the scheduler process to grant some refills")
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        [row] = await h.sql("SELECT count(*) AS n FROM refills")
        assert 60 <= row.n < total, "killed mid-run"
        # what the dead process committed is whole: every refill row has its one ledger entry
        assert len(await refill_entries(h)) == row.n
        assert await h.invariants() == []

        rerun = await scheduler.run_refills(h.engine, now=later)
        assert rerun.granted == total - row.n
        await assert_each_period_once(h, subs, 12, accounts)


async def test_run_refills_rpc_and_the_background_scheduler(billing):
    async with billing(refill_interval=0.2) as h:
        account = await h.account()
        p = await plan(h, credits=5)
        assert (await h.call("RunRefills", pb.RunRefillsRequest())).granted == 0
        err = await h.fails("RunRefills", pb.RunRefillsRequest(), h.token(STAFF_CAPS))
        assert (err.code, err.metadata["missing"]) == (grpc.StatusCode.PERMISSION_DENIED, "control.write")
        # starting shortly: the app's scheduler grants it when it comes, with no call
        start = datetime.now(UTC) + timedelta(seconds=1)
        await subscribe(h, account.id, p.id, start_at=start)
        assert (await h.wallet(account.id)).granted == 0

        async def refilled():
            return (await h.wallet(account.id)).granted == 5

        await poll(refilled, timeout=15, what="the background scheduler's refill")
        assert (await h.call("RunRefills", pb.RunRefillsRequest())).granted == 0
        assert (await h.wallet(account.id)).granted == 5
