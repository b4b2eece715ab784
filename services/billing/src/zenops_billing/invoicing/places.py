"""The property's state of an assignment (the GST place of supply), asked of ops:
GetAssignment(id).property_state with billing's own service token and `x-tenant-id`.

`PropertyStates` is what the invoicing use cases depend on; `OpsPropertyStates` is the real
one, on the process's channel to ops and its service token (both reconciliation's: one
connection and one token per process, closed by the app at stop).
"""

from __future__ import annotations

import logging
from typing import Protocol

import grpc

from zenops.ops.v1 import ops_pb2, ops_pb2_grpc
from zenops_kit.caller import onward_metadata, onward_timeout
from zenops_kit.errors import DomainError, Unavailable

log = logging.getLogger("zenops.billing.places")


class PropertyStates(Protocol):
    async def property_state(self, *, tenant_id: str, assignment_id: str) -> str:
        """The state code of the assignment's property; '' when it has none or ops does not
        know the assignment. Raises Unavailable when ops cannot be asked."""
        ...


class OpsPropertyStates:
    def __init__(self, *, stub: ops_pb2_grpc.OpsServiceStub, tokens, timeout: float = 5.0) -> None:
        self.stub = stub
        self.tokens = tokens  # zenops_kit.auth.ServiceTokenProvider (anything with `async token()`)
        self.timeout = timeout

    async def property_state(self, *, tenant_id: str, assignment_id: str) -> str:
        try:
            token = await self.tokens.token()
        except DomainError as err:
            raise Unavailable(f"billing has no service token to ask ops ({err.reason})") from None
        metadata = onward_metadata(token, tenant_id)
        try:
            resp = await self.stub.GetAssignment(
                ops_pb2.GetAssignmentRequest(id=assignment_id), metadata=metadata, timeout=onward_timeout(self.timeout)
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                log.info("assignment unknown to ops", extra={"assignment_id": assignment_id})
                return ""
            raise Unavailable(
                f"ops did not answer about assignment {assignment_id} ({exc.code().name})", retry_after=1.0
            ) from None
        return resp.assignment.property_state.upper()


_ATTR = "_billing_property_states"


def property_states_for(runtime) -> PropertyStates:
    """The process's lookup (made on first use: ops' address from the settings, the service
    token of reconciliation's owners). Tests may set their own with `use_property_states`."""
    found = getattr(runtime, _ATTR, None)
    if found is None:
        from ..reconciliation.owners import owners_for

        owners = owners_for(runtime)
        found = OpsPropertyStates(stub=owners.ops(), tokens=owners.tokens, timeout=runtime.settings.owner_call_timeout)
        setattr(runtime, _ATTR, found)
    return found


def use_property_states(runtime, states: PropertyStates) -> None:
    setattr(runtime, _ATTR, states)
