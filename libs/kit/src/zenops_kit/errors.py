"""Domain errors and their one mapping to gRPC status (with google.rpc details).

Domain code raises these; the server interceptor turns them into a gRPC status carrying
`google.rpc.ErrorInfo` (machine reason) and `google.rpc.BadRequest` (field violations);
clients turn a failed call back into an `ErrorDetail` with `parse_rpc_error`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "zenops"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class DomainError(Exception):
    """Base of every expected failure; `reason` is the machine-readable code (UPPER_SNAKE)."""

    status = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        violations: list[FieldViolation] | None = None,
        metadata: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.violations = list(violations or [])
        self.metadata = dict(metadata or {})
        # Seconds the caller should wait before retrying (google.rpc.RetryInfo).
        self.retry_after = retry_after


class InvalidArgument(DomainError):
    status = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "VALIDATION_FAILED"


class NotFound(DomainError):
    status = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    status = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    status = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class PermissionDenied(DomainError):
    status = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    status = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class Aborted(DomainError):
    status = grpc.StatusCode.ABORTED
    default_reason = "VERSION_CONFLICT"


class ResourceExhausted(DomainError):
    status = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RATE_LIMITED"


class Unavailable(DomainError):
    status = grpc.StatusCode.UNAVAILABLE
    default_reason = "DEPENDENCY_UNAVAILABLE"


def to_grpc_status(err: DomainError, service: str) -> grpc.Status:
    """The gRPC status (code, message, trailing `grpc-status-details-bin`) for `err`."""
    details = []
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain=f"{service}.{ERROR_DOMAIN}", metadata=err.metadata)
    packed = any_pb2.Any()
    packed.Pack(info)
    details.append(packed)
    if err.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in err.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad)
        details.append(packed)
    if err.retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(err.retry_after * 1e9))
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        details.append(packed)
    status = status_pb2.Status(code=err.status.value[0], message=err.message, details=details)
    return rpc_status.to_status(status)


@dataclass
class ErrorDetail:
    """A failed RPC as a caller sees it."""

    code: grpc.StatusCode
    message: str
    reason: str
    violations: list[FieldViolation] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None

    @property
    def retry_after_seconds(self) -> int | None:
        """Whole seconds, rounded up (what an HTTP Retry-After header carries)."""
        return None if self.retry_after is None else max(0, math.ceil(self.retry_after))


_CODES = {c.value[0]: c for c in grpc.StatusCode}


def parse_rpc_error(err: grpc.aio.AioRpcError) -> ErrorDetail:
    code = err.code()
    detail = ErrorDetail(code=code, message=err.details() or "", reason=code.name)
    for key, value in err.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for any_msg in status.details:
            if any_msg.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                any_msg.Unpack(info)
                detail.reason = info.reason
                detail.metadata = dict(info.metadata)
            elif any_msg.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                any_msg.Unpack(bad)
                detail.violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
            elif any_msg.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                any_msg.Unpack(retry)
                detail.retry_after = retry.retry_delay.ToNanoseconds() / 1e9
    return detail
