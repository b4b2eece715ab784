"""A client for the billing service under test, with the calls tests repeat."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager

import grpc
from sqlalchemy import text

from zenops.billing.v1 import billing_pb2 as pb
from zenops.billing.v1 import billing_pb2_grpc
from zenops_billing.wallet import operations
from zenops_kit.db import system_tx, tenant_tx
from zenops_kit.errors import ErrorDetail, parse_rpc_error

# An operator of the firm: every billing capability.
OPERATOR_CAPS = (
    "billing.read",
    "billing.write",
    "billing.credits.write",
    "billing.override",
    "billing.reconcile",
    "control.write",
)
# What the accounts role has without override.
STAFF_CAPS = ("billing.read", "billing.write", "billing.credits.write")


class Harness:
    def __init__(self, app, channel: grpc.aio.Channel, signer) -> None:
        self.app = app
        self.channel = channel
        self.signer = signer
        self.stub = billing_pb2_grpc.BillingServiceStub(channel)
        self.engine = app.runtime.engine
        self.settings = app.settings
        self.tenant = str(uuid.uuid4())
        # The user behind the operator token (the actor the ledger records).
        self.operator_id = str(uuid.uuid4())
        self.operator = self.token()

    def token(self, caps=OPERATOR_CAPS, *, tenant: str | None = None, aud: str = "web", **extra) -> str:
        extra.setdefault("sub", self.operator_id)
        return self.signer.token(aud=aud, caps=list(caps), tid=tenant or self.tenant, **extra)

    def service_token(self, caps=("billing.read", "billing.write"), name: str = "repogen") -> str:
        return self.signer.token(aud="service", caps=list(caps), sub=f"service:{name}")

    async def call(self, method: str, request, token: str | None = None, metadata=()):
        md = tuple(metadata) + (("authorization", f"Bearer {token or self.operator}"),)
        return await getattr(self.stub, method)(request, metadata=md, timeout=30)

    async def fails(self, method: str, request, token: str | None = None, metadata=()) -> ErrorDetail:
        try:
            await self.call(method, request, token, metadata)
        except grpc.aio.AioRpcError as exc:
            return parse_rpc_error(exc)
        raise AssertionError(f"{method} succeeded")

    # -- shortcuts ---------------------------------------------------------------------------

    async def account(
        self, credits: int = 0, *, policy=pb.BILLING_POLICY_CREDIT, token: str | None = None, **fields
    ) -> pb.Account:
        fields.setdefault("display_name", "Acme Bank")
        account = (await self.call("CreateAccount", pb.CreateAccountRequest(policy=policy, **fields), token)).account
        if credits:
            await self.grant(account.id, credits, token=token)
        return account

    async def grant(
        self,
        account_id: str,
        amount: int,
        *,
        token: str | None = None,
        key: str = "",
        kind=pb.LEDGER_KIND_GRANT,
        reason: str = "opening balance",
    ) -> pb.GrantCreditsResponse:
        return await self.call(
            "GrantCredits",
            pb.GrantCreditsRequest(account_id=account_id, amount=amount, kind=kind, reason=reason, idempotency_key=key),
            token,
        )

    async def reserve(
        self,
        account_id: str,
        amount: int,
        ref_id: str | None = None,
        *,
        ref_type: str = "manual",
        token: str | None = None,
        **fields,
    ) -> pb.ReserveCreditsResponse:
        return await self.call(
            "ReserveCredits",
            pb.ReserveCreditsRequest(
                account_id=account_id, amount=amount, ref_type=ref_type, ref_id=ref_id or uuid.uuid4().hex, **fields
            ),
            token,
        )

    async def wallet(self, account_id: str) -> pb.Wallet:
        return (await self.call("GetAccount", pb.GetAccountRequest(id=account_id))).account.wallet

    async def sql(self, statement: str, params: dict | None = None, *, tenant: str | None = "") -> list:
        """Run SQL as the service's own role (RLS applies: `tenant` '' = the harness tenant,
        None = no tenant)."""
        tenant = self.tenant if tenant == "" else tenant
        tx = tenant_tx(self.engine, tenant) if tenant else system_tx(self.engine)
        async with tx as conn:
            result = await conn.execute(text(statement), params or {})
            return list(result) if result.returns_rows else []

    def tx(self, tenant: str | None = None):
        """A transaction of the harness tenant (or `tenant`) on the service's own engine."""
        return tenant_tx(self.engine, tenant or self.tenant)

    @asynccontextmanager
    async def holding(self, account_id: str):
        """The account held by another transaction until the block ends: a reserve of 1 credit
        (ref manual:holder) in a transaction left open, so the account's writers wait for it."""
        async with self.tx() as conn:
            await operations.reserve(
                conn,
                tenant_id=self.tenant,
                account_id=account_id,
                amount=1,
                ref_type="manual",
                ref_id="holder",
                expires_at=None,
                actor="test",
            )
            yield conn

    async def invariants(self, tenant: str | None = None, account_ids: list[str] | None = None) -> list[str]:
        async with tenant_tx(self.engine, tenant or self.tenant) as conn:
            return await operations.check_invariants(conn, account_ids)

    async def ledger_sums(self, account_id: str) -> dict[str, int]:
        rows = await self.sql(
            "SELECT kind, sum(amount) AS total FROM credit_ledger WHERE account_id = CAST(:id AS uuid) GROUP BY kind",
            {"id": account_id},
        )
        return {r.kind: int(r.total) for r in rows}


async def outcome(coro) -> tuple[str, object]:
    """('OK', response) or (reason, ErrorDetail) of an awaited call."""
    try:
        return "OK", await coro
    except grpc.aio.AioRpcError as exc:
        detail = parse_rpc_error(exc)
        return detail.reason, detail
