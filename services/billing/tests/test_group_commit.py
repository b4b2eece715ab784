"""Group commit (store.group_commit, migration 0009), on the real PostgreSQL: the writes that
queue behind an account's transaction in flight commit together in the next one, each with its
own outcome; a batch that fails runs its items one by one; a caller that gave up is left out.

Each test holds the account in an open transaction (a reserve in `h.tx()`), so the first write
of the lane waits on the account's advisory lock in PostgreSQL and the others queue in the lane,
deterministically; releasing the holder lets them through."""

import asyncio
import inspect
import time
import uuid
from collections import defaultdict
from contextlib import asynccontextmanager

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from sqlalchemy import text

from zenops_billing.store.wallet import Claim, CreditWrites
from zenops_billing.wallet import operations
from zenops_kit.errors import DomainError


async def _poll(check, what: str, timeout: float = 10.0) -> None:
    """Until `check()` (a bool, or an awaitable of one) holds, or fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (await result if inspect.isawaitable(result := check()) else result):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)  # polling, not synchronising


@asynccontextmanager
async def held(h, writes: CreditWrites, account: str):
    """The account held by another transaction; yields `lead`, a task whose reserve leads the
    lane (waiting on the account's advisory lock in PostgreSQL); lets the account go on exit."""

    async def lead_waits() -> bool:
        async with h.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT count(*) AS n FROM pg_locks WHERE NOT granted AND locktype = 'advisory' AND pid IN "
                    "(SELECT pid FROM pg_stat_activity WHERE datname = current_database())"
                )
            )
            return rows.one().n == 1

    async with h.holding(account):
        lead = asyncio.create_task(reserve(h, writes, account, "lead"))
        await _poll(lead_waits, "the lane's first write to wait on the account")
        yield lead


def reserve(
    h,
    writes,
    account: str,
    ref: str,
    amount: int = 1,
    *,
    claim: Claim | None = None,
    actor: str = "test",
    tenant: str | None = None,
):
    return operations.reserve(
        writes,
        tenant_id=tenant or h.tenant,
        account_id=account,
        amount=amount,
        ref_type="manual",
        ref_id=ref,
        expires_at=None,
        actor=actor,
        idempotency_key=claim.key if claim else "",
        claim=claim,
    )


async def transactions_of(h, account: str) -> dict[str, set[str]]:
    """Each reservation of the account → the transaction ids (xmin) that wrote its ledger entries."""
    rows = await h.sql(
        "SELECT reservation_id::text AS rid, xmin::text AS xid FROM credit_ledger "
        "WHERE account_id = CAST(:id AS uuid) AND reservation_id IS NOT NULL",
        {"id": account},
    )
    seen: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        seen[row.rid].add(row.xid)
    return seen


async def test_writes_queued_behind_an_accounts_transaction_commit_together_each_with_its_own_outcome(billing):
    tracer = TracerProvider(sampler=ALWAYS_ON).get_tracer("test")
    spans = []

    async def traced(write):
        with tracer.start_as_current_span("ReserveCredits") as span:  # as a request's span, recording
            spans.append(span)
            return await write

    async with billing() as h:
        account = (await h.account(20)).id
        writes = CreditWrites(h.engine)
        earlier = [(await reserve(h, writes, account, f"earlier-{i}", 2))[0].id for i in range(3)]
        async with held(h, writes, account) as lead:
            queued = [asyncio.create_task(reserve(h, writes, account, f"q-{i}")) for i in range(4)]
            queued.append(asyncio.create_task(traced(reserve(h, writes, account, "q-4"))))
            too_big = asyncio.create_task(reserve(h, writes, account, "too-big", 50))
            settles = [
                asyncio.create_task(
                    operations.consume(writes, tenant_id=h.tenant, reservation_id=rid, amount=None, actor="test")
                )
                for rid in earlier[:2]
            ]
            settles.append(
                asyncio.create_task(
                    operations.release(writes, tenant_id=h.tenant, reservation_id=earlier[2], reason="done", actor="t")
                )
            )
            # the settles found their reservations' account: they queue in its lane too
            await _poll(lambda: writes.group.queued(account) == 9, "nine writes to queue in the lane")
            assert not lead.done() and not any(t.done() for t in queued)
        led, _ = await asyncio.wait_for(lead, 10)
        reserved = [await asyncio.wait_for(t, 10) for t in queued]
        with pytest.raises(DomainError) as refused:
            await asyncio.wait_for(too_big, 10)
        assert refused.value.reason == "INSUFFICIENT_CREDITS"
        settled = [(await asyncio.wait_for(t, 10))[0] for t in settles]

        # each item answered for itself: its own balances after it, its own state
        assert spans[0].attributes["billing.batch_size"] == 9  # its request's span says it was batched
        assert len({wallet.reserved for _, wallet in reserved}) == 5
        assert [r.status for r in settled] == ["CONSUMED", "CONSUMED", "RELEASED"]
        # the nine queued writes were one transaction (the refused one wrote nothing), the lead another
        xids = await transactions_of(h, account)
        batch = set().union(*(xids[r.id] for r, _ in reserved))
        assert len(batch) == 1, xids
        # a settled reservation: its RESERVE earlier, its CONSUME / RELEASE in the batch
        assert all(len(xids[rid]) == 2 and batch <= xids[rid] for rid in earlier), xids
        assert xids[led.id].isdisjoint(batch)
        wallet = await h.wallet(account)
        # granted 20; consumed 4 (two reservations of 2, the third released); reserved: holder + lead + five
        assert (wallet.granted, wallet.consumed, wallet.reserved) == (20, 4, 7)
        assert await h.invariants(account_ids=[account]) == []


async def test_a_batch_that_fails_runs_its_items_one_by_one_so_a_bad_item_fails_alone(billing):
    async with billing() as h:
        account = (await h.account(20)).id
        writes = CreditWrites(h.engine)
        async with held(h, writes, account) as lead:
            good = [asyncio.create_task(reserve(h, writes, account, f"good-{i}")) for i in range(3)]
            # text PostgreSQL cannot store: the batch's statement fails, and this write on its own
            bad = asyncio.create_task(reserve(h, writes, account, "bad", actor="bad\x00actor"))
            await _poll(lambda: writes.group.queued(account) == 4, "four writes to queue in the lane")
        await asyncio.wait_for(lead, 10)
        reserved = [(await asyncio.wait_for(t, 10))[0] for t in good]
        with pytest.raises(asyncpg.PostgresError) as failed:
            await asyncio.wait_for(bad, 10)
        assert failed.value.sqlstate in ("22021", "22P05")
        xids = await transactions_of(h, account)
        # each good one committed on its own, nothing of the bad one did
        assert len(set().union(*(xids[r.id] for r in reserved))) == 3, xids
        found = await h.sql("SELECT count(*) AS n FROM reservations WHERE ref_id = 'bad'")
        assert found[0].n == 0
        wallet = await h.wallet(account)
        assert wallet.reserved == 5  # holder + lead + three
        assert await h.invariants(account_ids=[account]) == []


async def test_twins_of_one_key_in_a_batch_do_it_once(billing):
    async with billing() as h:
        account = (await h.account(20)).id
        writes = CreditWrites(h.engine)
        claim = Claim("twin-key", "ReserveCredits", b"\x01" * 32, '{"ref_id": "twin"}')
        async with held(h, writes, account):
            twins = [asyncio.create_task(reserve(h, writes, account, "twin", claim=claim)) for _ in range(2)]
            await _poll(lambda: writes.group.queued(account) == 2, "the twins to queue in the lane")
        outcomes = await asyncio.gather(*twins, return_exceptions=True)
        done = [o for o in outcomes if not isinstance(o, BaseException)]
        taken = [o for o in outcomes if isinstance(o, operations.KeyTaken)]
        # the first did it; the second found the key its twin claimed in the same transaction
        assert (len(done), len(taken)) == (1, 1), outcomes
        entries = await h.sql("SELECT kind FROM credit_ledger WHERE idempotency_key = 'twin-key'")
        assert [e.kind for e in entries] == ["RESERVE"]
        assert await h.invariants(account_ids=[account]) == []


async def test_a_caller_that_gave_up_before_its_batch_started_is_left_out_of_it(billing):
    async with billing() as h:
        account = (await h.account(20)).id
        writes = CreditWrites(h.engine)
        async with held(h, writes, account) as lead:
            kept = asyncio.create_task(reserve(h, writes, account, "kept"))
            gave_up = asyncio.create_task(reserve(h, writes, account, "gave-up"))
            await _poll(lambda: writes.group.queued(account) == 2, "two writes to queue in the lane")
            gave_up.cancel()
        await asyncio.wait_for(lead, 10)
        assert (await asyncio.wait_for(kept, 10))[0].ref_id == "kept"
        assert gave_up.cancelled()
        refs = await h.sql(
            "SELECT ref_id FROM reservations WHERE account_id = CAST(:id AS uuid) ORDER BY ref_id", {"id": account}
        )
        assert [r.ref_id for r in refs] == ["holder", "kept", "lead"]
        await _poll(lambda: writes.group.queued(account) == 0, "the lane to go idle")
        assert await h.invariants(account_ids=[account]) == []


async def test_each_item_of_a_batch_sees_only_its_own_tenant(billing):
    """A batch is one transaction of several callers: an item of another tenant naming this
    account is refused as unknown (RLS under its own tenant), and the others are not affected."""
    async with billing() as h:
        account = (await h.account(20)).id
        writes = CreditWrites(h.engine)
        intruder = str(uuid.uuid4())
        async with held(h, writes, account):
            ours = asyncio.create_task(reserve(h, writes, account, "ours"))
            theirs = asyncio.create_task(reserve(h, writes, account, "theirs", actor="intruder", tenant=intruder))
            await _poll(lambda: writes.group.queued(account) == 2, "both writes to queue in the lane")
        assert (await asyncio.wait_for(ours, 10))[0].ref_id == "ours"
        with pytest.raises(DomainError) as refused:
            await asyncio.wait_for(theirs, 10)
        assert refused.value.reason == "ACCOUNT_NOT_FOUND"
        refs = await h.sql("SELECT ref_id FROM reservations WHERE account_id = CAST(:id AS uuid)", {"id": account})
        assert sorted(r.ref_id for r in refs) == ["holder", "lead", "ours"]
        assert await h.invariants(account_ids=[account]) == []
