"""AuthorizeRelease: the release gate repogen asks before releasing a deliverable.

CREDIT consumes the work order's (or its channel request's) reservation, or reserves and
consumes in one transaction; a shortfall is INSUFFICIENT_CREDITS unless overridden (reason
+ billing.override). POSTPAID is INVOICE_UNPAID unless overridden (audited). The same key
answers the same decision (failures included); a work order is charged once whatever the
keys; the caller is billing.write or repogen's service token.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from billing_harness import STAFF_CAPS

from zenops.billing.v1 import billing_pb2 as pb
from zenops_billing.domain.release import GateRequest, validate
from zenops_billing.wallet import operations
from zenops_kit.db import tenant_tx
from zenops_kit.errors import InvalidArgument

CONSUMED = pb.RESERVATION_STATUS_CONSUMED


def gate(account_id: str, work_order_id: str | None = None, **fields) -> pb.AuthorizeReleaseRequest:
    return pb.AuthorizeReleaseRequest(account_id=account_id, work_order_id=work_order_id or str(uuid.uuid4()), **fields)


async def ledger(h, account_id: str) -> list[tuple[str, int]]:
    rows = await h.sql(
        "SELECT kind, amount FROM credit_ledger WHERE account_id = CAST(:a AS uuid) ORDER BY seq", {"a": account_id}
    )
    return [(r.kind, r.amount) for r in rows]


def test_request_rules_name_the_fields():
    with pytest.raises(InvalidArgument) as err:
        validate(
            GateRequest(work_order_id=" ", account_id="x", channel_request_id="c" * 101, amount=-1, override_reason=" ")
        )
    assert {v.field for v in err.value.violations} == {
        "work_order_id",
        "account_id",
        "channel_request_id",
        "amount",
        "override_reason",
    }
    ok = validate(
        GateRequest(
            work_order_id=" wo-1 ", account_id=str(uuid.uuid4()), channel_request_id="", amount=0, override_reason=""
        )
    )
    assert (ok.work_order_id, ok.amount) == ("wo-1", 1)


async def test_credit_consumes_the_work_orders_reservation(billing):
    async with billing() as h:
        account = await h.account(credits=10)
        wo = str(uuid.uuid4())
        reserved = (await h.reserve(account.id, 4, wo, ref_type="work_order")).reservation
        resp = await h.call("AuthorizeRelease", gate(account.id, wo))
        assert (resp.allowed, resp.basis) == (True, "CREDITS_CONSUMED")
        assert (resp.reservation.id, resp.reservation.status, resp.reservation.consumed_amount) == (
            reserved.id,
            CONSUMED,
            4,
        )
        wallet = await h.wallet(account.id)
        assert (wallet.consumed, wallet.reserved, wallet.available) == (4, 0, 6)


async def test_credit_consumes_the_channel_requests_reservation(billing):
    async with billing() as h:
        account = await h.account(credits=10)
        cr = str(uuid.uuid4())
        reserved = (await h.reserve(account.id, 5, cr, ref_type="channel_request")).reservation
        resp = await h.call("AuthorizeRelease", gate(account.id, channel_request_id=cr, amount=1))
        assert (resp.basis, resp.reservation.id, resp.reservation.status) == ("CREDITS_CONSUMED", reserved.id, CONSUMED)
        assert (await h.wallet(account.id)).consumed == 5  # the reservation, not `amount`


async def test_credit_without_reservation_reserves_and_consumes_in_one_step(billing):
    async with billing() as h:
        account = await h.account(credits=10)
        wo = str(uuid.uuid4())
        resp = await h.call("AuthorizeRelease", gate(account.id, wo, amount=3))
        assert (resp.basis, resp.reservation.ref_type, resp.reservation.ref_id, resp.reservation.status) == (
            "CREDITS_CONSUMED",
            "work_order",
            wo,
            CONSUMED,
        )
        assert await ledger(h, account.id) == [("GRANT", 10), ("RESERVE", 3), ("CONSUME", 3)]
        # default amount: 1
        await h.call("AuthorizeRelease", gate(account.id))
        assert (await h.wallet(account.id)).consumed == 4
        assert await h.invariants() == []


async def test_shortfall_fails_unless_overridden_by_an_operator_with_a_reason(billing):
    async with billing() as h:
        account = await h.account(credits=1)
        wo = str(uuid.uuid4())
        err = await h.fails("AuthorizeRelease", gate(account.id, wo, amount=3))
        assert (err.code, err.reason, err.metadata["requested"], err.metadata["available"]) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "INSUFFICIENT_CREDITS",
            "3",
            "1",
        )
        # a reason without billing.override does not override (and says why)
        staff = h.token(STAFF_CAPS)
        err = await h.fails("AuthorizeRelease", gate(account.id, wo, amount=3, override_reason="urgent"), staff)
        assert err.reason == "INSUFFICIENT_CREDITS" and "billing.override" in err.metadata["override"]
        assert await ledger(h, account.id) == [("GRANT", 1)]  # nothing moved

        resp = await h.call("AuthorizeRelease", gate(account.id, wo, amount=3, override_reason="bank deadline"))
        assert (resp.allowed, resp.basis, resp.reservation.override_reason) == (True, "OVERRIDDEN", "bank deadline")
        kinds = [k for k, _ in await ledger(h, account.id)]
        assert kinds[0] == "GRANT" and "ADJUSTMENT" in kinds and kinds[-1] == "CONSUME"
        [row] = await h.sql("SELECT basis, override_reason, actor FROM release_authorizations")
        assert (row.basis, row.override_reason) == ("OVERRIDDEN", "bank deadline")
        assert await h.invariants() == []


async def test_postpaid_needs_a_paid_invoice_or_an_audited_override(billing):
    async with billing() as h:
        account = await h.account(policy=pb.BILLING_POLICY_POSTPAID)
        wo = str(uuid.uuid4())
        err = await h.fails("AuthorizeRelease", gate(account.id, wo))
        assert (err.code, err.reason, err.metadata["work_order_id"]) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "INVOICE_UNPAID",
            wo,
        )
        err = await h.fails(
            "AuthorizeRelease", gate(account.id, wo, override_reason="paid by cheque"), h.token(STAFF_CAPS)
        )
        assert err.reason == "INVOICE_UNPAID" and "override" in err.metadata

        resp = await h.call("AuthorizeRelease", gate(account.id, wo, override_reason="paid by cheque"))
        assert (resp.allowed, resp.basis, resp.HasField("reservation")) == (True, "OVERRIDDEN", False)
        [audit] = await h.sql(
            "SELECT kind, actor, reason, detail::text AS detail FROM account_events WHERE kind = 'RELEASE_OVERRIDE'"
        )
        assert audit.reason == "paid by cheque" and wo in audit.detail and audit.actor
        assert (await h.wallet(account.id)).consumed == 0


async def test_same_key_same_decision_failures_included(billing):
    async with billing() as h:
        account = await h.account(credits=1)
        key = f"gate-{uuid.uuid4()}"
        req = gate(account.id, amount=2, idempotency_key=key)
        first = await h.fails("AuthorizeRelease", req)
        assert first.reason == "INSUFFICIENT_CREDITS"
        await h.grant(account.id, 10)
        # the wallet could pay now, but the key's answer is the original failure
        again = await h.fails("AuthorizeRelease", req)
        assert (again.code, again.reason, again.metadata) == (first.code, first.reason, first.metadata)

        key = f"gate-{uuid.uuid4()}"
        req = gate(account.id, amount=2, idempotency_key=key)
        ok = await h.call("AuthorizeRelease", req)
        assert await h.call("AuthorizeRelease", req) == ok
        # the key via metadata works the same
        assert (
            await h.call(
                "AuthorizeRelease", gate(account.id, req.work_order_id, amount=2), metadata=(("idempotency-key", key),)
            )
            == ok
        )
        reused = await h.fails("AuthorizeRelease", gate(account.id, req.work_order_id, amount=5, idempotency_key=key))
        assert (reused.reason, reused.metadata["fields"]) == ("IDEMPOTENCY_KEY_REUSED", "amount")
        assert (await h.wallet(account.id)).consumed == 2


async def test_a_work_order_is_charged_once_whatever_the_keys(billing):
    async with billing() as h:
        account = await h.account(credits=100)
        wo = str(uuid.uuid4())
        first = await h.call("AuthorizeRelease", gate(account.id, wo, amount=5, idempotency_key="k1"))
        second = await h.call("AuthorizeRelease", gate(account.id, wo, amount=5, idempotency_key="k2"))
        assert (second.basis, second.reservation.id) == (first.basis, first.reservation.id)
        # concurrently, with different keys (and none): one charge
        wo2 = str(uuid.uuid4())
        answers = await asyncio.gather(
            *(
                h.call("AuthorizeRelease", gate(account.id, wo2, amount=7, idempotency_key=f"c{i}" if i % 2 else ""))
                for i in range(12)
            )
        )
        assert len({a.reservation.id for a in answers}) == 1 and all(a.allowed for a in answers)
        assert (await h.wallet(account.id)).consumed == 12
        assert await h.invariants() == []


async def test_an_expired_unswept_reservation_is_expired_and_charged_afresh(billing):
    async with billing() as h:
        account = await h.account(credits=10)
        wo = str(uuid.uuid4())
        async with tenant_tx(h.engine, h.tenant) as conn:
            stale, _ = await operations.reserve(
                conn,
                tenant_id=h.tenant,
                account_id=account.id,
                amount=4,
                ref_type="work_order",
                ref_id=wo,
                actor="test",
                expires_at=datetime.now(UTC) - timedelta(minutes=1),
            )
        resp = await h.call("AuthorizeRelease", gate(account.id, wo, amount=2))
        assert resp.reservation.id != stale.id and resp.reservation.consumed_amount == 2
        statuses = {r.id: r.status for r in await h.sql("SELECT id::text, status FROM reservations")}
        assert statuses == {stale.id: "EXPIRED", resp.reservation.id: "CONSUMED"}
        wallet = await h.wallet(account.id)
        assert (wallet.consumed, wallet.reserved, wallet.available) == (2, 0, 8)
        assert await h.invariants() == []


async def test_who_may_ask_the_gate(billing):
    async with billing() as h:
        account = await h.account(credits=10)
        # repogen's service token: no billing capability, no tenant in the token: it names the tenant
        repogen = h.service_token(caps=("assignments.read",), name="repogen")
        resp = await h.call("AuthorizeRelease", gate(account.id, tenant_id=h.tenant), repogen)
        assert resp.allowed
        [row] = await h.sql("SELECT actor FROM release_authorizations")
        assert row.actor == "service:repogen"
        err = await h.fails("AuthorizeRelease", gate(account.id), repogen)
        assert (err.code, [v.field for v in err.violations]) == (grpc.StatusCode.INVALID_ARGUMENT, ["tenant_id"])
        # the tenant via metadata, as for the other RPCs
        await h.call("AuthorizeRelease", gate(account.id), repogen, metadata=(("x-tenant-id", h.tenant),))
        # another tenant's work order does not see this tenant's account
        err = await h.fails("AuthorizeRelease", gate(account.id, tenant_id=str(uuid.uuid4())), repogen)
        assert err.reason == "ACCOUNT_NOT_FOUND"

        denied = [
            h.service_token(caps=("billing.read",), name="ops"),  # another service
            h.token(("repogen.release", "billing.read")),  # a user without billing.write
            h.token(("channel_requests.read",), aud="portal"),  # a portal user
        ]
        for token in denied:
            err = await h.fails("AuthorizeRelease", gate(account.id, tenant_id=h.tenant), token)
            assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_CAPABILITY"), err
        # a user acts in its own tenant only
        err = await h.fails("AuthorizeRelease", gate(account.id, tenant_id=str(uuid.uuid4())))
        assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "TENANT_MISMATCH")
        # field errors name the field
        err = await h.fails("AuthorizeRelease", pb.AuthorizeReleaseRequest(account_id="x", amount=-2))
        assert {v.field for v in err.violations} == {"work_order_id", "account_id", "amount"}
        err = await h.fails("AuthorizeRelease", gate(str(uuid.uuid4())))
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
