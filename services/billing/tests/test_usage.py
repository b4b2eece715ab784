"""RecordUsage: usage from external systems, recorded once per event id (created=false on a
repeat, which changes nothing and answers the event recorded first)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone

import grpc
from billing_harness import STAFF_CAPS

from zenops.billing.v1 import billing_pb2 as pb


def usage(account_id: str, event_id: str | None = None, **fields) -> pb.RecordUsageRequest:
    fields.setdefault("kind", "api_call")
    fields.setdefault("quantity", 1)
    return pb.RecordUsageRequest(
        usage=pb.UsageEvent(event_id=event_id or f"ext-{uuid.uuid4()}", account_id=account_id, **fields)
    )


async def test_usage_is_recorded_once_per_event_id(billing):
    async with billing() as h:
        account = await h.account()
        req = usage(account.id, kind="report_released", quantity=3, ref_type="work_order", ref_id="wo-9")
        ist = timezone(timedelta(hours=5, minutes=30))
        req.usage.occurred_at.FromDatetime(datetime(2025, 4, 1, 10, 0, tzinfo=ist))
        first = await h.call("RecordUsage", req, h.token(STAFF_CAPS))
        assert first.created is True
        assert (first.usage.event_id, first.usage.kind, first.usage.quantity, first.usage.ref_id) == (
            req.usage.event_id,
            "report_released",
            3,
            "wo-9",
        )
        assert first.usage.occurred_at.ToDatetime(tzinfo=UTC) == datetime(2025, 4, 1, 4, 30, tzinfo=UTC)

        # the same event id again, even with other values: nothing changes, the first is answered
        other = usage(account.id, req.usage.event_id, kind="api_call", quantity=99)
        second = await h.call("RecordUsage", other)
        assert (second.created, second.usage) == (False, first.usage)
        # concurrent repeats: one row
        answers = await asyncio.gather(*(h.call("RecordUsage", usage(account.id, "burst-1")) for _ in range(8)))
        assert sum(a.created for a in answers) == 1
        rows = await h.sql("SELECT event_id, source FROM usage_events ORDER BY recorded_at")
        assert [r.event_id for r in rows] == [req.usage.event_id, "burst-1"]
        assert rows[0].source.startswith("api:")
        # the same event id in another tenant is another event
        tenant_b = h.token(tenant=str(uuid.uuid4()))
        account_b = await h.account(token=tenant_b)
        assert (await h.call("RecordUsage", usage(account_b.id, "burst-1"), tenant_b)).created is True


async def test_usage_rejections_name_the_fields(billing):
    async with billing() as h:
        account = await h.account()
        err = await h.fails(
            "RecordUsage",
            pb.RecordUsageRequest(
                usage=pb.UsageEvent(account_id="nope", kind="Bad Kind", quantity=0, ref_type="work_order")
            ),
        )
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT
        assert {v.field for v in err.violations} == {
            "usage.event_id",
            "usage.account_id",
            "usage.kind",
            "usage.quantity",
            "usage.ref_id",
        }
        err = await h.fails("RecordUsage", usage(str(uuid.uuid4())))
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
        for token in (h.token(("billing.read",)), h.token(("channel_requests.read",), aud="portal")):
            err = await h.fails("RecordUsage", usage(account.id), token)
            assert err.code == grpc.StatusCode.PERMISSION_DENIED
        assert await h.sql("SELECT 1 FROM usage_events") == []
