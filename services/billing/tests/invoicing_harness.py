"""Calls of billing's InvoicingService that the invoicing tests repeat (on a billing_harness
Harness: same server, same signer, same tenant)."""

from __future__ import annotations

import uuid

import grpc

from zenops.billing.v1 import billing_pb2 as pb
from zenops.billing.v1 import invoicing_pb2 as ipb
from zenops.billing.v1 import invoicing_pb2_grpc
from zenops_kit.errors import ErrorDetail, parse_rpc_error

# The accounts role: invoices and payments.
ACCOUNTS_CAPS = ("invoices.read", "invoices.write", "billing.read", "billing.write", "billing.credits.write")
# A firm whose GSTIN is registered in Maharashtra (27), check character valid.
SUPPLIER_GSTIN = "27AAPFU0939F1ZV"
# Recipients: a bank branch registered in Maharashtra and one in Karnataka (29).
MH_GSTIN = "27AAACS8577K1ZP"
KA_GSTIN = "29AAACS8577K1ZL"


class Invoicing:
    def __init__(self, h) -> None:
        self.h = h
        self.stub = invoicing_pb2_grpc.InvoicingServiceStub(h.channel)
        self.accounts_id = str(uuid.uuid4())
        self.token = h.token(ACCOUNTS_CAPS, sub=self.accounts_id)

    def portal(self, channel_id: str, caps=("invoices.read",), *, user_id: str | None = None) -> str:
        """A partner's token: an external tenant, its channel in the claim."""
        return self.h.signer.token(
            aud="portal",
            caps=list(caps),
            tid=str(uuid.uuid4()),
            sub=user_id or str(uuid.uuid4()),
            channel_id=channel_id,
        )

    async def call(self, method: str, request, token: str | None = None, metadata=()):
        md = tuple(metadata) + (("authorization", f"Bearer {token or self.token}"),)
        return await getattr(self.stub, method)(request, metadata=md, timeout=60)

    async def fails(self, method: str, request, token: str | None = None, metadata=()) -> ErrorDetail:
        try:
            await self.call(method, request, token, metadata)
        except grpc.aio.AioRpcError as exc:
            return parse_rpc_error(exc)
        raise AssertionError(f"{method} succeeded")

    # -- shortcuts ---------------------------------------------------------------------------

    async def settings(
        self, *, prefix: str = "ZO", gstin: str = SUPPLIER_GSTIN, state: str = "MH", terms: int = 30
    ) -> ipb.BillingSettings:
        return (
            await self.call(
                "PutBillingSettings",
                ipb.PutBillingSettingsRequest(
                    settings=ipb.BillingSettings(
                        legal_name="Zen Valuers LLP",
                        gstin=gstin,
                        state=state,
                        address="12 Marine Drive, Mumbai 400002",
                        invoice_prefix=prefix,
                        payment_terms_days=terms,
                    )
                ),
            )
        ).settings

    async def account(
        self, *, gstin: str = MH_GSTIN, policy=pb.BILLING_POLICY_POSTPAID, name: str = "State Bank of India, Pune"
    ) -> pb.Account:
        return (
            await self.h.call(
                "CreateAccount",
                pb.CreateAccountRequest(display_name=name, policy=policy, gstin=gstin, billing_address="Pune 411001"),
            )
        ).account

    async def create(self, account_id: str, lines=None, **fields) -> ipb.Invoice:
        if lines is None:
            lines = [line()]
        return (
            await self.call("CreateInvoice", ipb.CreateInvoiceRequest(account_id=account_id, lines=lines, **fields))
        ).invoice

    async def issue(
        self, invoice_id: str, invoice_date: str = "", key: str = "", token: str | None = None
    ) -> ipb.Invoice:
        return (
            await self.call(
                "IssueInvoice",
                ipb.IssueInvoiceRequest(id=invoice_id, invoice_date=invoice_date, idempotency_key=key),
                token,
            )
        ).invoice

    async def issued(self, account_id: str, lines=None, **fields) -> ipb.Invoice:
        return await self.issue((await self.create(account_id, lines, **fields)).id)

    async def pay(
        self, invoice_id: str, amount: int, reference: str | None = None, method: str = "bank_transfer", **fields
    ) -> ipb.RecordPaymentResponse:
        return await self.call(
            "RecordPayment",
            ipb.RecordPaymentRequest(
                invoice_id=invoice_id,
                amount_paise=amount,
                method=method,
                reference=reference or uuid.uuid4().hex,
                **fields,
            ),
        )

    async def get(self, invoice_id: str, token: str | None = None) -> ipb.Invoice:
        return (await self.call("GetInvoice", ipb.GetInvoiceRequest(id=invoice_id), token)).invoice


def line(
    description: str = "Valuation of Flat 4B, Sea View, Bandra",
    unit_price: int = 1_000_000,
    quantity: str = "1",
    **fields,
) -> ipb.InvoiceLineInput:
    return ipb.InvoiceLineInput(description=description, unit_price_paise=unit_price, quantity=quantity, **fields)
