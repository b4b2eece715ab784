"""What repogen asks ops (zenops.ops.v1): the assignment a work order is made from
(GetAssignment: its bank code, channel, channel request and billing account) and the
documents evidence points at (GetDocument: its status, file name, content type, capture time).

One long-lived gRPC channel per process, repogen's own service token (service_tokens.py)
and the tenant named in metadata `x-tenant-id`, a deadline per call. Ops' NOT_FOUND is the
caller's mistake (NOT_FOUND naming the request field); anything else (ops or identity
unreachable, a deadline, a refused token) is UNAVAILABLE: repogen cannot tell, so nothing is
saved and the caller may retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc

from zenops.ops.v1 import ops_pb2, ops_pb2_grpc
from zenops_kit.auth import ServiceTokenProvider
from zenops_kit.caller import onward_metadata, onward_timeout
from zenops_kit.errors import DomainError, Unavailable
from zenops_kit.fields import not_found
from zenops_kit.tls import PeerStub

from .service_tokens import service_tokens_for

log = logging.getLogger("zenops.repogen.ops_client")

ASSIGNMENT_CLOSED = ("DELIVERED", "CANCELLED")


@dataclass(frozen=True)
class AssignmentInfo:
    id: str
    reference_number: str
    status: str  # DRAFT | COLLECTING | SITE_VISIT | UNDER_REVIEW | DELIVERED | CANCELLED
    bank_code: str
    channel_id: str | None
    channel_request_id: str | None
    billing_account_id: str | None


@dataclass(frozen=True)
class DocumentInfo:
    id: str
    uploaded: bool
    filename: str
    content_type: str
    captured_at: datetime | None


def _opt(value: str) -> str | None:
    return value.lower() if value else None


class OpsClient:
    def __init__(self, *, ops_addr: str, tokens: Callable[[], ServiceTokenProvider], timeout: float = 5.0) -> None:
        """`tokens`: the process's token provider, looked up per call (it may be replaced)."""
        self.ops_addr = ops_addr
        self.tokens = tokens
        self.timeout = timeout
        self._stub = PeerStub(ops_addr, ops_pb2_grpc.OpsServiceStub)

    async def _metadata(self, tenant_id: str) -> tuple:
        try:
            token = await self.tokens().token()
        except DomainError as err:
            log.warning("no service token to ask ops", extra={"reason": err.reason})
            raise Unavailable("cannot ask ops now (no service token); retry later", reason="OPS_UNAVAILABLE") from None
        return onward_metadata(token, tenant_id)

    async def _call(self, method: str, request, *, tenant_id: str, kind: str, id_: str, field: str):
        metadata = await self._metadata(tenant_id)
        try:
            # wait_for_ready: a peer that is restarting is waited for within the deadline, not failed at once.
            return await getattr(self._stub(), method)(
                request, metadata=metadata, timeout=onward_timeout(self.timeout), wait_for_ready=True
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise not_found(kind, id_, field=field) from None
            log.warning("ops did not answer", extra={"method": method, "code": exc.code().name})
            raise Unavailable(
                f"cannot ask ops now ({method}: {exc.code().name}); retry later", reason="OPS_UNAVAILABLE"
            ) from None

    async def assignment(self, *, tenant_id: str, assignment_id: str, field: str = "assignment_id") -> AssignmentInfo:
        resp = await self._call(
            "GetAssignment",
            ops_pb2.GetAssignmentRequest(id=assignment_id),
            tenant_id=tenant_id,
            kind="assignment",
            id_=assignment_id,
            field=field,
        )
        a = resp.assignment
        return AssignmentInfo(
            id=a.id.lower(),
            reference_number=a.reference_number,
            status=ops_pb2.AssignmentStatus.Name(a.status).removeprefix("ASSIGNMENT_STATUS_"),
            bank_code=a.bank_code,
            channel_id=_opt(a.channel_id),
            channel_request_id=_opt(a.channel_request_id),
            billing_account_id=_opt(a.billing_account_id),
        )

    async def document(self, *, tenant_id: str, document_id: str, field: str = "document_id") -> DocumentInfo:
        resp = await self._call(
            "GetDocument",
            ops_pb2.GetDocumentRequest(id=document_id),
            tenant_id=tenant_id,
            kind="document",
            id_=document_id,
            field=field,
        )
        d = resp.document
        return DocumentInfo(
            id=d.id.lower(),
            uploaded=d.status == ops_pb2.DOCUMENT_STATUS_UPLOADED,
            filename=d.filename,
            content_type=d.content_type,
            captured_at=d.captured_at.ToDatetime(tzinfo=UTC) if d.HasField("captured_at") else None,
        )

    async def close(self) -> None:
        await self._stub.close()


_ATTR = "_repogen_ops_client"


def ops_client_for(runtime) -> OpsClient:
    """The process's client (made on first use from the runtime's settings); the app closes
    it at shutdown (close_ops_client). The token provider is the process's, closed apart."""
    client = getattr(runtime, _ATTR, None)
    if client is None:
        s = runtime.settings
        client = OpsClient(ops_addr=s.ops_addr, tokens=lambda: service_tokens_for(runtime), timeout=s.ops_call_timeout)
        setattr(runtime, _ATTR, client)
    return client


async def close_ops_client(runtime) -> None:
    client = getattr(runtime, _ATTR, None)
    if client is not None:
        setattr(runtime, _ATTR, None)
        await client.close()
