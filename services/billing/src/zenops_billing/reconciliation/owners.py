"""Asking the owner of a ref where it stands (GetBillingRefState on ops or repogen).

`RefOwners` is the small interface reconciliation depends on; `GrpcRefOwners` is the real
one: one channel per owner, billing's own service token, a deadline per call. Anything
but a clear answer (UNIMPLEMENTED while the owner does not support it yet, UNAVAILABLE,
a deadline, no service token, an unexpected error or state) is "the owner did not
answer": reconciliation leaves the reservation alone and reports it.
"""

from __future__ import annotations

import logging
from typing import Protocol

import grpc

from zenops.ops.v1 import ops_pb2, ops_pb2_grpc
from zenops.repogen.v1 import repogen_pb2, repogen_pb2_grpc
from zenops_kit.auth import ServiceTokenProvider
from zenops_kit.caller import onward_metadata, onward_timeout
from zenops_kit.errors import DomainError
from zenops_kit.tls import PeerStub

from ..domain.reconciliation import OwnerAnswer, RefState, owner_of

log = logging.getLogger("zenops.billing.owners")

# Both owners share the enum's numbering (zenops.ops.v1 / zenops.repogen.v1 BillingRefState).
_STATES = {
    ops_pb2.BILLING_REF_STATE_OPEN: RefState.OPEN,
    ops_pb2.BILLING_REF_STATE_DELIVERED: RefState.DELIVERED,
    ops_pb2.BILLING_REF_STATE_CANCELLED: RefState.CANCELLED,
    ops_pb2.BILLING_REF_STATE_NOT_FOUND: RefState.NOT_FOUND,
}
assert all(repogen_pb2.BillingRefState.Name(k).endswith(v.name) for k, v in _STATES.items())


class RefOwners(Protocol):
    async def state(self, *, tenant_id: str, ref_type: str, ref_id: str) -> OwnerAnswer | None:
        """The owner's answer; None when the ref type has no owner to ask."""
        ...

    async def close(self) -> None: ...


class GrpcRefOwners:
    def __init__(self, *, ops_addr: str, repogen_addr: str, tokens: ServiceTokenProvider, timeout: float = 5.0) -> None:
        self.tokens = tokens
        self.timeout = timeout
        # Shared with invoicing's property lookup (invoicing/places.py).
        self.ops = PeerStub(ops_addr, ops_pb2_grpc.OpsServiceStub)
        self.repogen = PeerStub(repogen_addr, repogen_pb2_grpc.RepogenServiceStub)

    async def state(self, *, tenant_id: str, ref_type: str, ref_id: str) -> OwnerAnswer | None:
        owner = owner_of(ref_type)
        if owner is None:
            return None
        try:
            token = await self.tokens.token()
        except DomainError as err:
            return OwnerAnswer(RefState.UNKNOWN, f"no service token: {err.reason}")
        metadata = onward_metadata(token)
        try:
            # No wait_for_ready (unlike the request paths): a sweep over many refs takes an owner
            # that does not answer as "leave" at once rather than waiting out each deadline.
            if owner == "ops":
                resp = await self.ops().GetBillingRefState(
                    ops_pb2.GetBillingRefStateRequest(ref_type=ref_type, ref_id=ref_id, tenant_id=tenant_id),
                    metadata=metadata,
                    timeout=onward_timeout(self.timeout),
                )
            else:
                resp = await self.repogen().GetBillingRefState(
                    repogen_pb2.GetBillingRefStateRequest(ref_type=ref_type, ref_id=ref_id, tenant_id=tenant_id),
                    metadata=metadata,
                    timeout=onward_timeout(self.timeout),
                )
        except grpc.aio.AioRpcError as exc:
            log.info(
                "ref owner did not answer",
                extra={"owner": owner, "ref_type": ref_type, "ref_id": ref_id, "code": exc.code().name},
            )
            return OwnerAnswer(RefState.UNKNOWN, f"{owner}: {exc.code().name}")
        state = _STATES.get(resp.state)
        if state is None:
            return OwnerAnswer(RefState.UNKNOWN, f"{owner}: unexpected state {resp.state}")
        return OwnerAnswer(state)

    async def close(self) -> None:
        await self.ops.close()
        await self.repogen.close()
        await self.tokens.close()


_ATTR = "_billing_ref_owners"


def owners_for(runtime) -> GrpcRefOwners:
    """The process's RefOwners (one set of channels and one service token for the Reconcile
    RPC and the schedule), made on first use from the runtime's settings; the app closes
    it at shutdown (close_owners)."""
    owners = getattr(runtime, _ATTR, None)
    if owners is None:
        s = runtime.settings
        tokens = ServiceTokenProvider.from_identity(
            s.identity_addr, "billing", s.service_client_secret.get_secret_value()
        )
        owners = GrpcRefOwners(
            ops_addr=s.ops_addr, repogen_addr=s.repogen_addr, tokens=tokens, timeout=s.owner_call_timeout
        )
        setattr(runtime, _ATTR, owners)
    return owners


async def close_owners(runtime) -> None:
    owners = getattr(runtime, _ATTR, None)
    if owners is not None:
        setattr(runtime, _ATTR, None)
        await owners.close()
