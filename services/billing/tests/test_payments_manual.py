"""Manual payments, payment proofs and receivables.

A payment is idempotent by (method, reference); partial → PARTIALLY_PAID; reaching the total
(minus adjustments and credits) → PAID with billing.invoice.paid (the lines' refs) in the
outbox of the same transaction; more than the balance → OVERPAYMENT naming amount_paise; a
paid invoice cannot be voided. Partners submit proofs for their channel's invoices; accounts
staff confirm them into payments or reject them. Receivables: unpaid and overdue per account,
ageing by days past the invoice date.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
from invoicing_harness import KA_GSTIN, Invoicing, line

from zenops.billing.v1 import billing_pb2 as pb
from zenops.billing.v1 import invoicing_pb2 as ipb
from zenops.events.v1 import billing_pb2 as billing_events
from zenops.events.v1 import envelope_pb2
from zenops_billing.domain import invoices as rules
from zenops_billing.invoicing.payments import record_payment
from zenops_kit.db import tenant_tx
from zenops_kit.events import unpack_payload

ISSUED, PARTIAL, PAID = ipb.INVOICE_STATUS_ISSUED, ipb.INVOICE_STATUS_PARTIALLY_PAID, ipb.INVOICE_STATUS_PAID


async def paid_events(h) -> list[billing_events.InvoicePaid]:
    rows = await h.sql(
        "SELECT envelope FROM outbox WHERE event_type = 'billing.invoice.paid' ORDER BY created_at", tenant=None
    )
    return [
        unpack_payload(envelope_pb2.EventEnvelope.FromString(bytes(r.envelope)), billing_events.InvoicePaid)
        for r in rows
    ]


async def test_partial_then_full_payment_emits_invoice_paid_once(billing):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()
        wo = str(uuid.uuid4())
        invoice = await inv.issued(
            account.id,
            [line(unit_price=1_000_000, ref_type="work_order", ref_id=wo), line("Travel", unit_price=50_000)],
        )  # 12,390.00
        assert invoice.total_paise == 1239000
        first = await inv.pay(invoice.id, 500_000, "UTR-0001", received_at={"seconds": 1_700_000_000})
        assert (first.invoice.status, first.invoice.paid_paise, first.invoice.balance_paise) == (
            PARTIAL,
            500000,
            739000,
        )
        assert (first.payment.method, first.payment.reference, first.payment.received_at.seconds) == (
            "bank_transfer",
            "UTR-0001",
            1_700_000_000,
        )
        # the same reference again: recorded once, the same payment answered
        again = await inv.pay(invoice.id, 500_000, "UTR-0001")
        assert again.payment.id == first.payment.id and again.invoice.paid_paise == 500000
        # the same reference for another amount is another payment: refused
        err = await inv.fails(
            "RecordPayment",
            ipb.RecordPaymentRequest(
                invoice_id=invoice.id, amount_paise=1, method="bank_transfer", reference="UTR-0001"
            ),
        )
        assert (err.code, err.reason) == (grpc.StatusCode.ALREADY_EXISTS, "PAYMENT_REFERENCE_USED")
        # more than the balance
        err = await inv.fails(
            "RecordPayment",
            ipb.RecordPaymentRequest(invoice_id=invoice.id, amount_paise=739001, method="upi", reference="UPI-1"),
        )
        assert (err.code, err.reason, err.metadata["amount_paise"], err.violations[0].field) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "OVERPAYMENT",
            "739001",
            "amount_paise",
        )
        assert await paid_events(h) == []

        full = await inv.pay(invoice.id, 739000, "UPI-2", method="upi")
        assert (full.invoice.status, full.invoice.balance_paise, len(full.invoice.payments)) == (PAID, 0, 2)
        [event] = await paid_events(h)
        assert (
            event.invoice_id,
            event.billing_account_id,
            event.number,
            event.total_paise,
            event.paid_paise,
            list(event.refs),
        ) == (invoice.id, account.id, invoice.number, 1239000, 1239000, [f"work_order:{wo}"])
        # a retry of the paying reference answers it; a new payment is an overpayment; no second event
        assert (await inv.pay(invoice.id, 739000, "UPI-2", method="upi")).payment.id == full.payment.id
        err = await inv.fails(
            "RecordPayment",
            ipb.RecordPaymentRequest(invoice_id=invoice.id, amount_paise=1, method="cash", reference="R-9"),
        )
        assert err.reason == "OVERPAYMENT"
        assert len(await paid_events(h)) == 1
        # paid: no void (a credit note is the way)
        err = await inv.fails("VoidInvoice", ipb.VoidInvoiceRequest(id=invoice.id, reason="oops"))
        assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVOICE_HAS_PAYMENTS")
        kinds = [
            r.kind
            for r in await h.sql(
                "SELECT kind FROM invoice_events WHERE invoice_id = CAST(:i AS uuid) ORDER BY occurred_at",
                {"i": invoice.id},
            )
        ]
        assert kinds == ["invoice.created", "invoice.issued", "payment.recorded", "payment.recorded", "invoice.paid"]


async def test_payment_rules(billing):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()
        draft = await inv.create(account.id)
        err = await inv.fails(
            "RecordPayment",
            ipb.RecordPaymentRequest(invoice_id=draft.id, amount_paise=100, method="cash", reference="C-1"),
        )
        assert err.reason == "INVOICE_NOT_ISSUED"
        invoice = await inv.issue(draft.id)
        for request, field in (
            (
                ipb.RecordPaymentRequest(invoice_id=invoice.id, amount_paise=0, method="cash", reference="x"),
                "amount_paise",
            ),
            (ipb.RecordPaymentRequest(invoice_id=invoice.id, amount_paise=1, method="cheque", reference="x"), "method"),
            (
                ipb.RecordPaymentRequest(invoice_id=invoice.id, amount_paise=1, method="provider", reference="x"),
                "method",
            ),
            (
                ipb.RecordPaymentRequest(invoice_id=invoice.id, amount_paise=1, method="cash", reference=" "),
                "reference",
            ),
            (
                ipb.RecordPaymentRequest(
                    invoice_id=invoice.id,
                    amount_paise=1,
                    method="cash",
                    reference="x",
                    received_at={"seconds": int(datetime.now(UTC).timestamp()) + 3600},
                ),
                "received_at",
            ),
        ):
            err = await inv.fails("RecordPayment", request)
            assert (err.code, err.violations[0].field) == (grpc.StatusCode.INVALID_ARGUMENT, field), field
        # concurrent retries of one reference: one payment
        results = await asyncio.gather(*(inv.pay(invoice.id, 1000, "NEFT-77") for _ in range(8)))
        assert len({r.payment.id for r in results}) == 1
        assert len(await h.sql("SELECT id FROM payments")) == 1


async def test_provider_settlement_uses_the_same_use_case(billing):
    """What helper BB's settlement calls: record_payment(method="provider")."""
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()
        invoice = await inv.issued(account.id, [line(unit_price=100000)])
        async with tenant_tx(h.engine, h.tenant) as conn:
            row, payment, created = await record_payment(
                conn,
                tenant_id=h.tenant,
                invoice_id=invoice.id,
                amount_paise=118000,
                method="provider",
                reference="pay_ABC123",
                provider="razorpay",
                received_at=datetime.now(UTC),
                actor="service:billing",
                trace_id="",
            )
        assert (row.status, row.paid_paise, payment.provider, created) == (rules.PAID, 118000, "razorpay", True)
        async with tenant_tx(h.engine, h.tenant) as conn:
            row, again, created = await record_payment(
                conn,
                tenant_id=h.tenant,
                invoice_id=invoice.id,
                amount_paise=118000,
                method="provider",
                reference="pay_ABC123",
                provider="razorpay",
                received_at=datetime.now(UTC),
                actor="service:billing",
                trace_id="",
            )
        assert (again.id, created) == (payment.id, False)
        assert len(await paid_events(h)) == 1


async def test_partner_proof_confirmed_into_a_payment(billing):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()
        channel = str(uuid.uuid4())
        invoice = await inv.issued(account.id, [line(unit_price=100000)], channel_id=channel)  # 1,180.00
        partner = inv.portal(channel)
        proof = (
            await inv.call(
                "SubmitPaymentProof",
                ipb.SubmitPaymentProofRequest(
                    invoice_id=invoice.id,
                    document_id=str(uuid.uuid4()),
                    note="paid by NEFT",
                    amount_paise=118000,
                    reference="NEFT-2025-1",
                ),
                partner,
            )
        ).proof
        assert (proof.status, proof.amount_paise, proof.reference) == (
            ipb.PROOF_STATUS_SUBMITTED,
            118000,
            "NEFT-2025-1",
        )
        # another channel's partner cannot see the invoice nor submit for it
        stranger = inv.portal(str(uuid.uuid4()))
        err = await inv.fails(
            "SubmitPaymentProof",
            ipb.SubmitPaymentProofRequest(invoice_id=invoice.id, document_id=str(uuid.uuid4()), amount_paise=1),
            stranger,
        )
        assert err.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)
        other_channel = str(uuid.uuid4())
        await inv.issued(account.id, channel_id=other_channel)
        err = await inv.fails(
            "SubmitPaymentProof",
            ipb.SubmitPaymentProofRequest(invoice_id=invoice.id, document_id=str(uuid.uuid4()), amount_paise=1),
            inv.portal(other_channel),
        )
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "INVOICE_NOT_FOUND")
        listed = (await inv.call("ListPaymentProofs", ipb.ListPaymentProofsRequest(), partner)).proofs
        assert [p.id for p in listed] == [proof.id]
        assert (
            list(
                (await inv.call("ListPaymentProofs", ipb.ListPaymentProofsRequest(), inv.portal(other_channel))).proofs
            )
            == []
        )
        # partners cannot review
        err = await inv.fails("ReviewPaymentProof", ipb.ReviewPaymentProofRequest(id=proof.id, confirm=True), partner)
        assert err.code == grpc.StatusCode.PERMISSION_DENIED

        reviewed = await inv.call(
            "ReviewPaymentProof", ipb.ReviewPaymentProofRequest(id=proof.id, confirm=True, method="bank_transfer")
        )
        assert (reviewed.proof.status, reviewed.invoice.status, reviewed.invoice.paid_paise) == (
            ipb.PROOF_STATUS_CONFIRMED,
            PAID,
            118000,
        )
        [payment] = reviewed.invoice.payments
        assert (reviewed.proof.payment_id, payment.reference, payment.method, payment.recorded_by) == (
            payment.id,
            "NEFT-2025-1",
            "bank_transfer",
            inv.accounts_id,
        )
        err = await inv.fails(
            "ReviewPaymentProof", ipb.ReviewPaymentProofRequest(id=proof.id, confirm=False, reason="dup")
        )
        assert err.reason == "PROOF_ALREADY_REVIEWED"
        assert (await inv.get(invoice.id, partner)).status == PAID


async def test_a_proof_can_be_rejected_with_a_reason(billing):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()
        channel = str(uuid.uuid4())
        invoice = await inv.issued(account.id, channel_id=channel)
        proof = (
            await inv.call(
                "SubmitPaymentProof",
                ipb.SubmitPaymentProofRequest(invoice_id=invoice.id, document_id=str(uuid.uuid4()), amount_paise=5000),
                inv.portal(channel),
            )
        ).proof
        err = await inv.fails("ReviewPaymentProof", ipb.ReviewPaymentProofRequest(id=proof.id, confirm=False))
        assert (err.code, err.violations[0].field) == (grpc.StatusCode.INVALID_ARGUMENT, "reason")
        resp = await inv.call(
            "ReviewPaymentProof",
            ipb.ReviewPaymentProofRequest(id=proof.id, confirm=False, reason="the receipt is unreadable"),
        )
        assert (resp.proof.status, resp.proof.review_reason, resp.invoice.paid_paise) == (
            ipb.PROOF_STATUS_REJECTED,
            "the receipt is unreadable",
            0,
        )


async def test_receivables_ageing_buckets(billing):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        bank = await inv.account(name="Bank of Baroda, Nashik")
        other = await inv.account(name="Canara Bank, Hubballi", gstin=KA_GSTIN)
        today = rules.today_ist()
        issued = {}
        for days in (100, 75, 45, 30, 10):  # oldest first: a series' dates never go back
            draft = await inv.create(bank.id, [line(unit_price=100000)])  # 1,180.00 each
            issued[days] = await inv.issue(draft.id, (today - timedelta(days=days)).isoformat())
        await inv.pay(issued[10].id, 18000)  # 1,000.00 left
        settled = await inv.issued(bank.id, [line(unit_price=100000)])
        await inv.pay(settled.id, settled.total_paise)  # paid: not receivable
        await inv.create(bank.id)  # a draft: not receivable
        ka = await inv.issued(other.id, [line(unit_price=200000)])  # IGST: 2,360.00, today
        # a written-off balance is no longer owed
        written = await inv.issued(other.id, [line(unit_price=100000)])
        await inv.call(
            "AddAdjustment",
            ipb.AddAdjustmentRequest(
                invoice_id=written.id, kind="write_off", amount_paise=written.total_paise, reason="waived"
            ),
        )

        resp = await inv.call("GetReceivables", ipb.GetReceivablesRequest(as_of=today.isoformat()))
        by_name = {a.display_name: a for a in resp.accounts}
        b = by_name["Bank of Baroda, Nashik"]
        assert (b.account_id, b.unpaid_invoices, b.overdue_invoices, b.outstanding_paise) == (bank.id, 5, 3, 572000)
        assert (
            b.ageing.days_0_30_paise,
            b.ageing.days_31_60_paise,
            b.ageing.days_61_90_paise,
            b.ageing.days_90_plus_paise,
        ) == (218000, 118000, 118000, 118000)
        k = by_name["Canara Bank, Hubballi"]
        assert (k.unpaid_invoices, k.overdue_invoices, k.outstanding_paise, k.ageing.days_0_30_paise) == (
            1,
            0,
            ka.total_paise,
            236000,
        )
        assert (resp.total.days_0_30_paise, resp.total.days_90_plus_paise, resp.outstanding_paise) == (
            454000,
            118000,
            808000,
        )
        only = await inv.call("GetReceivables", ipb.GetReceivablesRequest(account_id=other.id))
        assert [a.account_id for a in only.accounts] == [other.id]
        # 60 days later every one of the bank's invoices has aged by two months
        later = await inv.call(
            "GetReceivables",
            ipb.GetReceivablesRequest(account_id=bank.id, as_of=(today + timedelta(days=60)).isoformat()),
        )
        assert (later.total.days_0_30_paise, later.total.days_61_90_paise, later.total.days_90_plus_paise) == (
            0,
            218000,
            354000,
        )

        # GetAccountStatus counts the unpaid invoices
        status = await h.call("GetAccountStatus", pb.GetAccountStatusRequest(account_id=bank.id))
        assert status.unpaid_invoices == 5
