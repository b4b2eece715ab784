"""Invoices through billing's InvoicingService: drafts and lines, issue with the rendered PDF,
adjustments and credit notes within the balance, the audit trail, idempotent mutations,
portal visibility (a partner sees its channel's invoices only; another's → NOT_FOUND), the
property's state asked of the real ops service, and the capabilities each RPC needs.
"""

from __future__ import annotations

import hashlib
import subprocess
import uuid

import grpc
from invoicing_harness import ACCOUNTS_CAPS, Invoicing, line
from sqlalchemy import text

from zenops.billing.v1 import invoicing_pb2 as ipb
from zenops.ops.v1 import ops_pb2
from zenops_billing.invoicing.places import OpsPropertyStates, use_property_states
from zenops_kit.db import tenant_tx

DRAFT, ISSUED, PAID = ipb.INVOICE_STATUS_DRAFT, ipb.INVOICE_STATUS_ISSUED, ipb.INVOICE_STATUS_PAID


async def test_draft_lines_and_validation(billing):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()
        draft = await inv.create(account.id, [line(unit_price=100000)])
        assert (draft.status, draft.number, draft.invoice_date, draft.total_paise, draft.has_document) == (
            DRAFT,
            "",
            "",
            118000,
            False,
        )
        more = (
            await inv.call(
                "AddInvoiceLines",
                ipb.AddInvoiceLinesRequest(
                    invoice_id=draft.id,
                    lines=[
                        line(
                            "Site visit",
                            unit_price=50000,
                            ref_type="assignment",
                            ref_id=str(uuid.uuid4()),
                            place_of_supply="MH",
                        )
                    ],
                ),
            )
        ).invoice
        assert [x.description for x in more.lines] == ["Valuation of Flat 4B, Sea View, Bandra", "Site visit"]
        assert (more.taxable_paise, more.total_paise) == (150000, 177000)

        bad = [
            (ipb.CreateInvoiceRequest(account_id="nope", lines=[line()]), "account_id"),
            (ipb.CreateInvoiceRequest(account_id=account.id, place_of_supply="XX"), "place_of_supply"),
            (ipb.CreateInvoiceRequest(account_id=account.id, due_date="2025-13-01"), "due_date"),
            (ipb.CreateInvoiceRequest(account_id=account.id, lines=[line(description=" ")]), "lines[0].description"),
            (ipb.CreateInvoiceRequest(account_id=account.id, lines=[line(), line(quantity="-1")]), "lines[1].quantity"),
            (
                ipb.CreateInvoiceRequest(account_id=account.id, lines=[line(unit_price=100, discount_paise=101)]),
                "lines[0].discount_paise",
            ),
            (ipb.CreateInvoiceRequest(account_id=account.id, lines=[line(ref_type="work_order")]), "lines[0].ref_id"),
            (
                ipb.CreateInvoiceRequest(account_id=account.id, lines=[line(ref_type="nope", ref_id="x")]),
                "lines[0].ref_type",
            ),
            (ipb.CreateInvoiceRequest(account_id=account.id, lines=[line(sac="12")]), "lines[0].sac"),
        ]
        for request, field in bad:
            err = await inv.fails("CreateInvoice", request)
            assert (err.code, err.violations[0].field) == (grpc.StatusCode.INVALID_ARGUMENT, field), field
        err = await inv.fails("CreateInvoice", ipb.CreateInvoiceRequest(account_id=str(uuid.uuid4())))
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
        # a ref is billed on one live invoice line
        ref = str(uuid.uuid4())
        await inv.create(account.id, [line(ref_type="work_order", ref_id=ref)])
        err = await inv.fails(
            "CreateInvoice",
            ipb.CreateInvoiceRequest(account_id=account.id, lines=[line(ref_type="work_order", ref_id=ref)]),
        )
        assert (err.code, err.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REF_ALREADY_INVOICED")
        # an empty draft cannot be issued; an issued one takes no more lines
        empty = await inv.create(account.id, [])
        err = await inv.fails("IssueInvoice", ipb.IssueInvoiceRequest(id=empty.id))
        assert err.reason == "INVOICE_EMPTY"
        issued = await inv.issue(draft.id)
        err = await inv.fails("AddInvoiceLines", ipb.AddInvoiceLinesRequest(invoice_id=issued.id, lines=[line()]))
        assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVOICE_NOT_DRAFT")


async def test_issue_renders_a_pdf_with_the_number_and_total(billing):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()
        issued = await inv.issued(account.id, [line(unit_price=1234567)])
        assert issued.has_document and issued.total_paise == 1456800  # 14,56,789 → ₹14,568 (+11 p)
        doc = await inv.call("GetInvoiceDocument", ipb.GetInvoiceDocumentRequest(id=issued.id))
        assert doc.content_type == "application/pdf" and doc.content.startswith(b"%PDF")
        assert doc.sha256 == hashlib.sha256(doc.content).hexdigest()
        assert doc.filename == "invoice-" + issued.number.replace("/", "-") + ".pdf"
        [row] = await h.sql("SELECT sha256, length(content) AS size FROM invoice_documents")
        assert (row.sha256, row.size) == (doc.sha256, len(doc.content))
        pdf_text = subprocess.run(
            ["pdftotext", "-", "-"], input=doc.content, capture_output=True, check=True
        ).stdout.decode()
        for expected in (
            issued.number,
            "14,568.00",
            "Rupees Fourteen Thousand Five Hundred Sixty-Eight Only",
            "27AAPFU0939F1ZV",
            account.gstin,
            "997224",
            "1,111.11",
            "Maharashtra",
            "Round-off",
            "0.11",
        ):
            assert expected in pdf_text, expected
        # a draft has none yet
        draft = await inv.create(account.id)
        err = await inv.fails("GetInvoiceDocument", ipb.GetInvoiceDocumentRequest(id=draft.id))
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "DOCUMENT_NOT_FOUND")


async def test_adjustments_and_credit_notes_within_the_balance(billing):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()
        invoice = await inv.issued(account.id, [line(unit_price=1_000_000)])  # 11,800.00
        draft = await inv.create(account.id)
        err = await inv.fails(
            "AddAdjustment",
            ipb.AddAdjustmentRequest(invoice_id=draft.id, kind="discount", amount_paise=100, reason="x"),
        )
        assert err.reason == "INVOICE_NOT_ISSUED"
        err = await inv.fails(
            "AddAdjustment",
            ipb.AddAdjustmentRequest(invoice_id=invoice.id, kind="rebate", amount_paise=100, reason="x"),
        )
        assert err.violations[0].field == "kind"
        adjusted = (
            await inv.call(
                "AddAdjustment",
                ipb.AddAdjustmentRequest(invoice_id=invoice.id, kind="discount", amount_paise=18000, reason="loyalty"),
            )
        ).invoice
        assert (adjusted.adjusted_paise, adjusted.balance_paise, adjusted.status) == (18000, 1162000, ISSUED)
        err = await inv.fails(
            "AddAdjustment",
            ipb.AddAdjustmentRequest(invoice_id=invoice.id, kind="write_off", amount_paise=1162001, reason="too much"),
        )
        assert (err.code, err.reason, err.metadata["balance_paise"]) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "EXCEEDS_BALANCE",
            "1162000",
        )

        # a credit note: ₹1,000 taxable + CGST/SGST 9% each (intra-state, as the invoice)
        resp = await inv.call(
            "IssueCreditNote",
            ipb.IssueCreditNoteRequest(invoice_id=invoice.id, taxable_paise=100000, reason="fee revised"),
        )
        note = resp.credit_note
        assert (note.taxable_paise, note.cgst_paise, note.sgst_paise, note.igst_paise, note.total_paise) == (
            100000,
            9000,
            9000,
            0,
            118000,
        )
        assert (resp.invoice.credited_paise, resp.invoice.balance_paise) == (118000, 1044000)
        err = await inv.fails(
            "IssueCreditNote",
            ipb.IssueCreditNoteRequest(invoice_id=invoice.id, taxable_paise=900001, reason="more than invoiced"),
        )
        assert err.reason == "EXCEEDS_BALANCE" and err.violations[0].field == "taxable_paise"
        # writing off the rest settles it
        settled = (
            await inv.call(
                "AddAdjustment",
                ipb.AddAdjustmentRequest(
                    invoice_id=invoice.id, kind="write_off", amount_paise=1044000, reason="bad debt"
                ),
            )
        ).invoice
        assert (settled.status, settled.balance_paise) == (PAID, 0)
        kinds = [
            r.kind
            for r in await h.sql(
                "SELECT kind FROM invoice_events WHERE invoice_id = CAST(:i AS uuid) ORDER BY occurred_at",
                {"i": invoice.id},
            )
        ]
        assert kinds == [
            "invoice.created",
            "invoice.issued",
            "invoice.adjusted",
            "invoice.credited",
            "invoice.adjusted",
            "invoice.paid",
        ]
        [actor] = {
            r.actor
            for r in await h.sql(
                "SELECT actor FROM invoice_events WHERE invoice_id = CAST(:i AS uuid)", {"i": invoice.id}
            )
        }
        assert actor == inv.accounts_id


async def test_mutations_are_idempotent_by_key(billing):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()
        request = ipb.CreateInvoiceRequest(account_id=account.id, lines=[line()], idempotency_key="inv-1")
        first = (await inv.call("CreateInvoice", request)).invoice
        again = (await inv.call("CreateInvoice", request)).invoice
        assert first == again
        assert len(await h.sql("SELECT id FROM invoices")) == 1
        other = ipb.CreateInvoiceRequest(account_id=account.id, lines=[line(unit_price=5)], idempotency_key="inv-1")
        err = await inv.fails("CreateInvoice", other)
        assert (err.code, err.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
        issued = await inv.issue(first.id, key="issue-1")
        assert await inv.issue(first.id, key="issue-1") == issued


async def test_portal_users_see_only_their_channels_invoices(billing):
    async with billing() as h:
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()
        mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
        a = await inv.issued(account.id, channel_id=mine)
        b = await inv.issued(account.id, channel_id=theirs)
        await inv.issued(account.id)  # no channel: staff only
        partner = inv.portal(mine)
        listed = (await inv.call("ListInvoices", ipb.ListInvoicesRequest(), partner)).invoices
        assert [i.id for i in listed] == [a.id]
        assert (await inv.get(a.id, partner)).number == a.number
        err = await inv.fails("GetInvoice", ipb.GetInvoiceRequest(id=b.id), partner)
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "INVOICE_NOT_FOUND")
        err = await inv.fails("GetInvoiceDocument", ipb.GetInvoiceDocumentRequest(id=b.id), partner)
        assert err.code == grpc.StatusCode.NOT_FOUND
        doc = await inv.call("GetInvoiceDocument", ipb.GetInvoiceDocumentRequest(id=a.id), partner)
        assert doc.content.startswith(b"%PDF")
        # asking for another channel's list is ignored: a partner sees its own
        listed = (await inv.call("ListInvoices", ipb.ListInvoicesRequest(channel_id=theirs), partner)).invoices
        assert [i.id for i in listed] == [a.id]
        # a channel with no invoices: nothing to see
        stranger = inv.portal(str(uuid.uuid4()))
        assert list((await inv.call("ListInvoices", ipb.ListInvoicesRequest(), stranger)).invoices) == []
        err = await inv.fails("GetInvoice", ipb.GetInvoiceRequest(id=a.id), stranger)
        assert err.code == grpc.StatusCode.NOT_FOUND
        # partners never act as staff
        for method, request in (
            ("CreateInvoice", ipb.CreateInvoiceRequest(account_id=account.id)),
            ("GetReceivables", ipb.GetReceivablesRequest()),
            ("GetBillingSettings", ipb.GetBillingSettingsRequest()),
        ):
            err = await inv.fails(method, request, inv.portal(mine, caps=("invoices.read", "invoices.write")))
            assert err.code == grpc.StatusCode.PERMISSION_DENIED, method
        # staff see everything, filtered as asked, newest first, paged
        staff = (await inv.call("ListInvoices", ipb.ListInvoicesRequest(channel_id=theirs))).invoices
        assert [i.id for i in staff] == [b.id]
        page1 = await inv.call("ListInvoices", ipb.ListInvoicesRequest(page={"limit": 2}))
        page2 = await inv.call(
            "ListInvoices", ipb.ListInvoicesRequest(page={"limit": 2, "cursor": page1.page.next_cursor})
        )
        assert len(page1.invoices) == 2 and len(page2.invoices) == 1 and not page2.page.next_cursor
        assert page2.invoices[0].id == a.id


async def test_capabilities(billing):
    async with billing() as h:
        inv = Invoicing(h)
        reader = h.token(("invoices.read",))
        err = await inv.fails("CreateInvoice", ipb.CreateInvoiceRequest(account_id=str(uuid.uuid4())), reader)
        assert (err.code, err.metadata["missing"]) == (grpc.StatusCode.PERMISSION_DENIED, "invoices.write")
        err = await inv.fails(
            "RecordPayment",
            ipb.RecordPaymentRequest(invoice_id=str(uuid.uuid4())),
            h.token(("invoices.read", "invoices.write")),
        )
        assert err.metadata["missing"] == "billing.write"
        err = await inv.fails("PutBillingSettings", ipb.PutBillingSettingsRequest(), reader)
        assert err.code == grpc.StatusCode.PERMISSION_DENIED
        assert (await inv.call("ListInvoices", ipb.ListInvoicesRequest(), reader)).invoices == []
        assert (await inv.call("GetBillingSettings", ipb.GetBillingSettingsRequest(), reader)).settings.gstin == ""
        # another tenant's invoice is NOT_FOUND
        await inv.settings()
        account = await inv.account()
        invoice = await inv.create(account.id)
        other = h.token(ACCOUNTS_CAPS, tenant=str(uuid.uuid4()))
        err = await inv.fails("GetInvoice", ipb.GetInvoiceRequest(id=invoice.id), other)
        assert err.code == grpc.StatusCode.NOT_FOUND


class StaticToken:
    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token


async def test_the_property_state_comes_from_ops(billing, start_service):
    """A line billing an assignment is taxed where the assignment's property is (ops:
    GetAssignment.property_state, asked with billing's service token and x-tenant-id)."""
    async with (
        billing() as h,
        start_service("ops", verifier=h.signer.verifier()) as ops,
        grpc.aio.insecure_channel(f"127.0.0.1:{ops.port}") as ops_channel,
    ):
        property_id = str(uuid.uuid4())
        manager = str(uuid.uuid4())
        async with tenant_tx(ops.runtime.engine, h.tenant) as conn:
            await conn.execute(
                text(
                    "INSERT INTO properties (id, tenant_id, address_line1, locality, city, state, pin_code, property_type, "
                    "created_by) VALUES (:id, :t, 'Plot 7, Vidyanagar', 'Vidyanagar', 'Hubballi', 'KA', '580021', "
                    "'plot', :by)"
                ),
                {"id": property_id, "t": h.tenant, "by": manager},
            )
        caps = ["assignments.read", "assignments.write", "masterdata.read"]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ops.port}") as channel:
            from zenops.ops.v1 import ops_pb2_grpc

            assignment = (
                await ops_pb2_grpc.OpsServiceStub(channel).CreateAssignment(
                    ops_pb2.CreateAssignmentRequest(
                        source_type=ops_pb2.SOURCE_TYPE_DIRECT, borrower_name="Asha Patil", property_id=property_id
                    ),
                    metadata=(("authorization", f"Bearer {h.signer.token(aud='web', caps=caps, tid=h.tenant)}"),),
                    timeout=30,
                )
            ).assignment
        assert assignment.property_state == "KA"
        service = h.signer.token(aud="service", sub="service:billing", caps=["assignments.read"])
        use_property_states(
            h.app.runtime, OpsPropertyStates(stub=ops_pb2_grpc.OpsServiceStub(ops_channel), tokens=StaticToken(service))
        )
        inv = Invoicing(h)
        await inv.settings()
        account = await inv.account()  # recipient in MH, the supplier in MH
        draft = await inv.create(
            account.id,
            [line(unit_price=100000, ref_type="assignment", ref_id=assignment.id), line("Printing", unit_price=10000)],
        )
        assert [x.place_of_supply for x in draft.lines] == ["KA", "MH"]
        issued = await inv.issue(draft.id)
        a, b = issued.lines
        assert (a.place_of_supply, a.igst_paise, a.cgst_paise) == ("KA", 18000, 0)
        assert (b.place_of_supply, b.igst_paise, b.cgst_paise, b.sgst_paise) == ("MH", 0, 900, 900)
        assert issued.place_of_supply == "MH"
