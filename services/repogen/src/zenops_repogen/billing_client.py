"""Billing's release gate (zenops.billing.v1 AuthorizeRelease), asked before a deliverable is
released.

One long-lived gRPC channel per process (made on first use, closed by the app at stop), a
deadline per call, and repogen's own service token (service_tokens.py; billing accepts
repogen's service token for this RPC) with the work order's tenant in the request. An
override is different: billing honours it only for a caller that itself holds
billing.override, which repogen's service client does not and must not (it would let any
release override); so a release with an override reason is asked with the releasing person's
own token, propagated, and billing records that person as the one who overrode.

The idempotency key is derived from the work order, the caller's release key and the override
reason: a retry of the same release (e.g. after a crash between billing's yes and repogen's
commit) gets billing's first answer back; a new release attempt (a new key, e.g. once the
invoice is paid) is decided afresh — and billing never charges a work order twice, whatever
the key (it answers a second key with the first allowed decision).

Billing's refusal (its FAILED_PRECONDITION, NOT_FOUND, INVALID_ARGUMENT, ALREADY_EXISTS) is
FAILED_PRECONDITION with billing's reason (INVOICE_UNPAID, INSUFFICIENT_CREDITS, ...) and
metadata; PERMISSION_DENIED stays PERMISSION_DENIED; anything
else (billing or identity unreachable, a deadline, a refused service token) is UNAVAILABLE
BILLING_UNAVAILABLE: repogen cannot tell, so nothing is saved and the caller may retry.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass

import grpc

from zenops.billing.v1 import billing_pb2, billing_pb2_grpc
from zenops_kit.caller import onward_metadata, onward_timeout
from zenops_kit.errors import DomainError, FailedPrecondition, PermissionDenied, Unavailable, parse_rpc_error
from zenops_kit.tls import PeerStub

from .service_tokens import service_tokens_for

log = logging.getLogger("zenops.repogen.billing")


@dataclass(frozen=True)
class Decision:
    basis: str  # CREDITS_CONSUMED | INVOICE_PAID | OVERRIDDEN
    reservation_id: str


# Billing's answers that are a decision about this release (not a failure to decide).
_REFUSALS = (
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
)


def release_key(work_order_id: str, override_reason: str, attempt_key: str) -> str:
    """Billing's idempotency key for one release attempt of `work_order_id` (`attempt_key`:
    the caller's idempotency key; empty: a fresh attempt)."""
    attempt = hashlib.sha256(attempt_key.encode()).hexdigest()[:16] if attempt_key else uuid.uuid4().hex[:16]
    key = f"repogen-release:{work_order_id}:{attempt}"
    if override_reason:
        key += ":override:" + hashlib.sha256(override_reason.encode()).hexdigest()[:16]
    return key


def _unavailable(why: str) -> Unavailable:
    return Unavailable(
        f"cannot ask billing to authorize the release now ({why}); retry later", reason="BILLING_UNAVAILABLE"
    )


class BillingClient:
    def __init__(self, *, billing_addr: str, tokens, timeout: float = 5.0) -> None:
        """`tokens`: a callable answering the service token provider (made on first use)."""
        self.billing_addr = billing_addr
        self.tokens = tokens
        self.timeout = timeout
        self._stub = PeerStub(billing_addr, billing_pb2_grpc.BillingServiceStub)

    async def authorize_release(
        self,
        *,
        tenant_id: str,
        work_order_id: str,
        account_id: str,
        channel_request_id: str,
        credits: int,
        override_reason: str,
        attempt_key: str = "",
        user_token: str | None = None,
    ) -> Decision:
        """Billing's decision to release; raises its refusal (see the module doc)."""
        if user_token is None:
            try:
                token = await self.tokens().token()
            except DomainError as err:
                log.warning("no service token to ask billing", extra={"reason": err.reason})
                raise _unavailable("no service token") from None
        else:
            token = user_token
        request = billing_pb2.AuthorizeReleaseRequest(
            work_order_id=work_order_id,
            account_id=account_id,
            channel_request_id=channel_request_id,
            amount=max(credits, 0),
            override_reason=override_reason,
            tenant_id=tenant_id,
            idempotency_key=release_key(work_order_id, override_reason, attempt_key),
        )
        metadata = onward_metadata(token, tenant_id)
        try:
            # wait_for_ready: a peer that is restarting is waited for within the deadline, not failed at once.
            response = await self._stub().AuthorizeRelease(
                request, metadata=metadata, timeout=onward_timeout(self.timeout), wait_for_ready=True
            )
        except grpc.aio.AioRpcError as exc:
            detail = parse_rpc_error(exc)
            if detail.code in _REFUSALS:
                raise FailedPrecondition(
                    f"billing refused the release: {detail.message}",
                    reason=detail.reason,
                    metadata={**detail.metadata, "billing_reason": detail.reason},
                ) from None
            if detail.code == grpc.StatusCode.PERMISSION_DENIED and user_token is not None:
                raise PermissionDenied(
                    f"billing refused the override: {detail.message}", reason=detail.reason, metadata=detail.metadata
                ) from None
            log.warning(
                "billing did not answer AuthorizeRelease", extra={"code": detail.code.name, "reason": detail.reason}
            )
            raise _unavailable(f"billing answered {detail.code.name}") from None
        if not response.allowed:  # billing refuses with an error; an explicit "no" means the same
            raise FailedPrecondition("billing did not allow the release", reason="RELEASE_NOT_AUTHORIZED")
        return Decision(basis=response.basis, reservation_id=response.reservation.id)

    async def close(self) -> None:
        await self._stub.close()


_ATTR = "_repogen_billing_client"


def billing_client_for(runtime) -> BillingClient:
    client = getattr(runtime, _ATTR, None)
    if client is None:
        s = runtime.settings
        client = BillingClient(
            billing_addr=s.billing_addr, tokens=lambda: service_tokens_for(runtime), timeout=s.billing_call_timeout
        )
        setattr(runtime, _ATTR, client)
    return client


def install_billing_client(runtime, *, billing_addr: str) -> BillingClient:
    """Ask the billing at `billing_addr` from now on (tests start billing after repogen)."""
    client = BillingClient(
        billing_addr=billing_addr,
        tokens=lambda: service_tokens_for(runtime),
        timeout=runtime.settings.billing_call_timeout,
    )
    setattr(runtime, _ATTR, client)
    return client


async def close_billing_client(runtime) -> None:
    client = getattr(runtime, _ATTR, None)
    if client is not None:
        setattr(runtime, _ATTR, None)
        await client.close()
