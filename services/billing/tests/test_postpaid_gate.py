"""POSTPAID: acceptance puts a draft invoice line for the ref on the account's open DRAFT
invoice (created if none; once per ref: a redelivery or a second event for the ref adds none)
and still emits billing.invoice.line_due; the release gate refuses INVOICE_UNPAID until the
invoice holding the work order's line (or its channel request's) is PAID, then allows it.

Real envelopes through the real NATS JetStream to billing's durable consumers.
"""

from __future__ import annotations

import uuid

import nats
import pytest
from invoicing_harness import Invoicing
from nats.js.errors import NotFoundError

from zenops.billing.v1 import billing_pb2 as pb
from zenops.billing.v1 import invoicing_pb2 as ipb
from zenops.events.v1 import envelope_pb2, ops_pb2, repogen_pb2
from zenops_billing.invoicing.places import use_property_states
from zenops_billing.reactions.handlers import OPS_CONSUMER, REPOGEN_CONSUMER
from zenops_devstack.testing import poll
from zenops_kit.events import ensure_stream, new_event, stream_name, subject_for


@pytest.fixture
async def js(nats_server):
    """JetStream with empty ops/repogen streams and no billing consumers yet."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    for producer in ("ops", "repogen"):
        await ensure_stream(js, producer)
        for durable in (OPS_CONSUMER, REPOGEN_CONSUMER):
            try:
                await js.delete_consumer(stream_name(producer), durable)
            except NotFoundError:
                pass
        await js.purge_stream(stream_name(producer))
    yield js
    await nc.close()


def envelope(h, event_type: str, payload) -> envelope_pb2.EventEnvelope:
    producer, aggregate, _ = event_type.split(".")
    return new_event(
        event_type=event_type,
        payload=payload,
        producer=producer,
        producer_version="test",
        aggregate_type=aggregate,
        aggregate_id=str(uuid.uuid4()),
        aggregate_version=1,
        tenant_id=h.tenant,
    )


async def publish(js, env, msg_id: str | None = None) -> None:
    await js.publish(
        subject_for(env.event_type), env.SerializeToString(), headers={"Nats-Msg-Id": msg_id or env.event_id}
    )


async def processed(h, name: str, n: int, *, duplicates: int = 0) -> None:
    c = next(c for c in h.app.consumers if c.spec.name == name)

    async def done():
        return c.stats.handled >= n and c.stats.duplicates >= duplicates

    await poll(done, timeout=20, what=f"{name} to handle {n} events")


class PropertiesInKarnataka:
    async def property_state(self, *, tenant_id: str, assignment_id: str) -> str:
        return "KA"


def gate(account_id: str, work_order_id: str, **fields) -> pb.AuthorizeReleaseRequest:
    return pb.AuthorizeReleaseRequest(account_id=account_id, work_order_id=work_order_id, **fields)


async def test_acceptance_adds_one_draft_line_per_ref_and_the_gate_waits_for_payment(billing, js):
    async with billing() as h:
        use_property_states(h.app.runtime, PropertiesInKarnataka())
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()  # POSTPAID, recipient in MH
        channel = str(uuid.uuid4())
        cr1, cr2 = str(uuid.uuid4()), str(uuid.uuid4())
        first = envelope(
            h,
            "ops.channel_request.accepted",
            ops_pb2.ChannelRequestAccepted(
                channel_request_id=cr1,
                channel_id=channel,
                assignment_id=str(uuid.uuid4()),
                billing_account_id=account.id,
                fee_paise=500000,
                requested_service="valuation_report",
                reference_number="ZA-2025-000123",
            ),
        )
        await publish(js, first)
        await processed(h, OPS_CONSUMER, 1)
        [draft] = (await inv.call("ListInvoices", ipb.ListInvoicesRequest(account_id=account.id))).invoices
        assert (draft.status, draft.channel_id, len(draft.lines)) == (ipb.INVOICE_STATUS_DRAFT, channel, 1)
        [l1] = draft.lines
        assert (l1.ref_type, l1.ref_id, l1.unit_price_paise, l1.description) == (
            "channel_request",
            cr1,
            500000,
            "Professional fees: valuation report (ZA-2025-000123)",
        )
        assert (
            len(await h.sql("SELECT envelope FROM outbox WHERE event_type = 'billing.invoice.line_due'", tenant=None))
            == 1
        )

        # a redelivery (same event, another message id), and another event for the same ref: no new line
        await publish(js, first, msg_id=str(uuid.uuid4()))
        again = envelope(
            h,
            "ops.channel_request.accepted",
            ops_pb2.ChannelRequestAccepted(
                channel_request_id=cr1, channel_id=channel, billing_account_id=account.id, fee_paise=500000
            ),
        )
        await publish(js, again)
        # a second request of the same channel joins the same draft
        await publish(
            js,
            envelope(
                h,
                "ops.channel_request.accepted",
                ops_pb2.ChannelRequestAccepted(
                    channel_request_id=cr2, channel_id=channel, billing_account_id=account.id, fee_paise=250000
                ),
            ),
        )
        await processed(h, OPS_CONSUMER, 3, duplicates=1)
        lines = await h.sql("SELECT ref_type, ref_id FROM invoice_lines ORDER BY position")
        assert [(r.ref_type, r.ref_id) for r in lines] == [("channel_request", cr1), ("channel_request", cr2)]
        assert len(await h.sql("SELECT id FROM invoices")) == 1
        assert await h.sql("SELECT consumer FROM dead_letters", tenant=None) == []

        # the work order born from cr1 is refused until its invoice is paid
        wo = str(uuid.uuid4())
        err = await h.fails("AuthorizeRelease", gate(account.id, wo, channel_request_id=cr1))
        assert (err.reason, err.metadata["work_order_id"]) == ("INVOICE_UNPAID", wo)
        issued = await inv.issue(draft.id)
        # the first line's place of supply is its property's (Karnataka: IGST); the second has no
        # assignment: the recipient's (Maharashtra: CGST + SGST)
        assert [(x.place_of_supply, x.igst_paise, x.cgst_paise) for x in issued.lines] == [
            ("KA", 90000, 0),
            ("MH", 0, 22500),
        ]
        assert issued.total_paise == 885000  # 5,000 + 900 + 2,500 + 225 + 225 = 8,850.00
        err = await h.fails("AuthorizeRelease", gate(account.id, wo, channel_request_id=cr1))
        assert err.reason == "INVOICE_UNPAID"
        await inv.pay(issued.id, 400000)
        err = await h.fails("AuthorizeRelease", gate(account.id, wo, channel_request_id=cr1))
        assert err.reason == "INVOICE_UNPAID"
        await inv.pay(issued.id, 485000)
        resp = await h.call("AuthorizeRelease", gate(account.id, wo, channel_request_id=cr1))
        assert (resp.allowed, resp.basis, resp.HasField("reservation")) == (True, "INVOICE_PAID", False)
        [row] = await h.sql("SELECT basis FROM release_authorizations")
        assert row.basis == "INVOICE_PAID"
        assert (await h.wallet(account.id)).consumed == 0


async def test_work_order_acceptance_and_gate(billing, js):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()
        wo = str(uuid.uuid4())
        await publish(
            js,
            envelope(
                h,
                "repogen.work_order.accepted",
                repogen_pb2.WorkOrderAccepted(work_order_id=wo, billing_account_id=account.id),
            ),
        )
        # one born from a channel request was billed at the request's acceptance: no line
        await publish(
            js,
            envelope(
                h,
                "repogen.work_order.accepted",
                repogen_pb2.WorkOrderAccepted(
                    work_order_id=str(uuid.uuid4()), billing_account_id=account.id, channel_request_id=str(uuid.uuid4())
                ),
            ),
        )
        await processed(h, REPOGEN_CONSUMER, 2)
        [line] = await h.sql("SELECT ref_type, ref_id, invoice_id::text AS invoice_id FROM invoice_lines")
        assert (line.ref_type, line.ref_id) == ("work_order", wo)
        err = await h.fails("AuthorizeRelease", gate(account.id, wo))
        assert err.reason == "INVOICE_UNPAID"
        # the fee was not known at acceptance: staff add the professional fee before issuing
        await inv.call(
            "AddInvoiceLines",
            ipb.AddInvoiceLinesRequest(
                invoice_id=line.invoice_id,
                lines=[ipb.InvoiceLineInput(description="Valuation fee", unit_price_paise=300000)],
            ),
        )
        issued = await inv.issue(line.invoice_id)
        # a voided invoice does not count as paid, and frees the ref for a new invoice
        await inv.call("VoidInvoice", ipb.VoidInvoiceRequest(id=issued.id, reason="wrong fee"))
        err = await h.fails("AuthorizeRelease", gate(account.id, wo))
        assert err.reason == "INVOICE_UNPAID"
        replacement = await inv.issued(
            account.id,
            [
                ipb.InvoiceLineInput(
                    description="Valuation fee", unit_price_paise=350000, ref_type="work_order", ref_id=wo
                )
            ],
        )
        await inv.pay(replacement.id, replacement.total_paise)
        resp = await h.call("AuthorizeRelease", gate(account.id, wo))
        assert (resp.allowed, resp.basis) == (True, "INVOICE_PAID")
        # the override path is unchanged (still audited) for another, unpaid work order
        other = str(uuid.uuid4())
        resp = await h.call("AuthorizeRelease", gate(account.id, other, override_reason="paid by cheque"))
        assert resp.basis == "OVERRIDDEN"
