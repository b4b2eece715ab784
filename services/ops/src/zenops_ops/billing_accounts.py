"""Is this a billing account of the tenant? Asked of billing (zenops.billing.v1 GetAccount)
before a channel names the account its accepted requests are charged to.

One long-lived gRPC channel per process and ops' own service token (identity grants ops
`billing.read`), the tenant named in metadata `x-tenant-id`, a deadline per call. Billing's
NOT_FOUND is the caller's mistake (INVALID_ARGUMENT BILLING_ACCOUNT_NOT_FOUND naming the
field); anything else (billing or identity unreachable, a deadline, a refused service
token) is UNAVAILABLE: ops cannot tell, so nothing is saved and the caller may retry.
"""

from __future__ import annotations

import logging

import grpc

from zenops.billing.v1 import billing_pb2, billing_pb2_grpc
from zenops_kit.auth import ServiceTokenProvider
from zenops_kit.caller import onward_metadata, onward_timeout
from zenops_kit.errors import DomainError, FieldViolation, InvalidArgument, Unavailable
from zenops_kit.tls import PeerStub

log = logging.getLogger("zenops.ops.billing_accounts")


class BillingAccounts:
    def __init__(self, *, billing_addr: str, tokens: ServiceTokenProvider, timeout: float = 5.0) -> None:
        self.billing_addr = billing_addr
        self.tokens = tokens
        self.timeout = timeout
        self._stub = PeerStub(billing_addr, billing_pb2_grpc.BillingServiceStub)

    async def check(self, *, tenant_id: str, account_id: str, field: str) -> None:
        """Returns when billing knows `account_id` in `tenant_id`; raises otherwise."""
        try:
            token = await self.tokens.token()
        except DomainError as err:
            log.warning("no service token to ask billing", extra={"reason": err.reason})
            raise Unavailable(
                "cannot check the billing account now (no service token); retry later", reason="BILLING_UNAVAILABLE"
            ) from None
        metadata = onward_metadata(token, tenant_id)
        try:
            # wait_for_ready: a peer that is restarting is waited for within the deadline, not failed at once.
            await self._stub().GetAccount(
                billing_pb2.GetAccountRequest(id=account_id),
                metadata=metadata,
                timeout=onward_timeout(self.timeout),
                wait_for_ready=True,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise InvalidArgument(
                    f"{field} is not a billing account of this firm",
                    reason="BILLING_ACCOUNT_NOT_FOUND",
                    violations=[FieldViolation(field, "no such billing account")],
                    metadata={"field": field, "id": account_id},
                ) from None
            log.warning("billing did not answer GetAccount", extra={"code": exc.code().name})
            raise Unavailable(
                "cannot check the billing account now (billing did not answer); retry later",
                reason="BILLING_UNAVAILABLE",
            ) from None

    async def close(self) -> None:
        await self._stub.close()
        await self.tokens.close()


_ATTR = "_ops_billing_accounts"


def billing_accounts_for(runtime) -> BillingAccounts:
    """The process's client (made on first use from the runtime's settings); the app closes
    it at shutdown (close_billing_accounts)."""
    client = getattr(runtime, _ATTR, None)
    if client is None:
        s = runtime.settings
        tokens = ServiceTokenProvider.from_identity(s.identity_addr, "ops", s.service_client_secret.get_secret_value())
        client = BillingAccounts(billing_addr=s.billing_addr, tokens=tokens, timeout=s.billing_call_timeout)
        setattr(runtime, _ATTR, client)
    return client


async def close_billing_accounts(runtime) -> None:
    client = getattr(runtime, _ATTR, None)
    if client is not None:
        setattr(runtime, _ATTR, None)
        await client.close()
