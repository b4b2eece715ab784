"""Typed client of billing's second service, zenops.billing.v1.InvoicingService (GST invoices,
payments, payment proofs, receivables, checkout, provider webhooks).

It runs in the billing process, so it talks over the billing client's channel (one
connection, one address: `billing_addr`); `close()` leaves that channel to the billing
client. One method per RPC: the request proto in, the response proto out, the caller's
token explicit. Mutations carry their idempotency key in the request's `idempotency_key`
field; nothing here retries on its own. `handle_provider_webhook` takes no token: the
provider's signature (checked by billing) is the authorisation.
"""

from __future__ import annotations

from zenops.billing.v1 import invoicing_pb2 as pb
from zenops.billing.v1 import invoicing_pb2_grpc

from .base import SharedChannelClient


class InvoicingClient(SharedChannelClient):
    stub_class = invoicing_pb2_grpc.InvoicingServiceStub
    stub: invoicing_pb2_grpc.InvoicingServiceStub

    # -- supplier settings -------------------------------------------------------------------------

    async def get_settings(self, *, token: str) -> pb.GetBillingSettingsResponse:
        return await self.call(self.stub.GetBillingSettings, pb.GetBillingSettingsRequest(), token=token)

    async def put_settings(self, request: pb.PutBillingSettingsRequest, *, token: str) -> pb.PutBillingSettingsResponse:
        return await self.call(self.stub.PutBillingSettings, request, token=token)

    # -- invoices ----------------------------------------------------------------------------------

    async def create_invoice(self, request: pb.CreateInvoiceRequest, *, token: str) -> pb.CreateInvoiceResponse:
        return await self.call(self.stub.CreateInvoice, request, token=token)

    async def get_invoice(self, request: pb.GetInvoiceRequest, *, token: str) -> pb.GetInvoiceResponse:
        return await self.call(self.stub.GetInvoice, request, token=token)

    async def list_invoices(self, request: pb.ListInvoicesRequest, *, token: str) -> pb.ListInvoicesResponse:
        return await self.call(self.stub.ListInvoices, request, token=token)

    async def add_invoice_lines(self, request: pb.AddInvoiceLinesRequest, *, token: str) -> pb.AddInvoiceLinesResponse:
        return await self.call(self.stub.AddInvoiceLines, request, token=token)

    async def issue_invoice(self, request: pb.IssueInvoiceRequest, *, token: str) -> pb.IssueInvoiceResponse:
        return await self.call(self.stub.IssueInvoice, request, token=token)

    async def void_invoice(self, request: pb.VoidInvoiceRequest, *, token: str) -> pb.VoidInvoiceResponse:
        return await self.call(self.stub.VoidInvoice, request, token=token)

    async def add_adjustment(self, request: pb.AddAdjustmentRequest, *, token: str) -> pb.AddAdjustmentResponse:
        return await self.call(self.stub.AddAdjustment, request, token=token)

    async def issue_credit_note(self, request: pb.IssueCreditNoteRequest, *, token: str) -> pb.IssueCreditNoteResponse:
        return await self.call(self.stub.IssueCreditNote, request, token=token)

    async def get_invoice_document(
        self, request: pb.GetInvoiceDocumentRequest, *, token: str
    ) -> pb.GetInvoiceDocumentResponse:
        return await self.call(self.stub.GetInvoiceDocument, request, token=token)

    # -- payments ----------------------------------------------------------------------------------

    async def record_payment(self, request: pb.RecordPaymentRequest, *, token: str) -> pb.RecordPaymentResponse:
        return await self.call(self.stub.RecordPayment, request, token=token)

    async def submit_payment_proof(
        self, request: pb.SubmitPaymentProofRequest, *, token: str
    ) -> pb.SubmitPaymentProofResponse:
        return await self.call(self.stub.SubmitPaymentProof, request, token=token)

    async def review_payment_proof(
        self, request: pb.ReviewPaymentProofRequest, *, token: str
    ) -> pb.ReviewPaymentProofResponse:
        return await self.call(self.stub.ReviewPaymentProof, request, token=token)

    async def list_payment_proofs(
        self, request: pb.ListPaymentProofsRequest, *, token: str
    ) -> pb.ListPaymentProofsResponse:
        return await self.call(self.stub.ListPaymentProofs, request, token=token)

    async def get_receivables(self, request: pb.GetReceivablesRequest, *, token: str) -> pb.GetReceivablesResponse:
        return await self.call(self.stub.GetReceivables, request, token=token)

    # -- checkout and providers --------------------------------------------------------------------

    async def create_checkout(self, request: pb.CreateCheckoutRequest, *, token: str) -> pb.CreateCheckoutResponse:
        return await self.call(self.stub.CreateCheckout, request, token=token)

    async def handle_provider_webhook(
        self, request: pb.HandleProviderWebhookRequest
    ) -> pb.HandleProviderWebhookResponse:
        # Public: no caller token (the signature in the forwarded headers is checked by billing).
        return await self.call(self.stub.HandleProviderWebhook, request)
