"""The ONE place where failures become HTTP: gRPC status → problem+json (RFC 9457).

Route handlers never build error responses themselves. They let exceptions propagate:

- `UpstreamError` (raised by `clients.base.UpstreamClient.call` for every failed RPC)
  is mapped with `GRPC_TO_HTTP` (the table in shared/spec/gateway.md);
- a kit `DomainError` raised in the gateway itself (the token verifier's
  `Unauthenticated(reason=TOKEN_*)`, `Unavailable` when identity's keys cannot be fetched)
  goes through the same table via its gRPC status;
- FastAPI's `RequestValidationError` becomes 400 with one `errors[]` entry per field;
- Starlette's `HTTPException` (unknown route 404, 405, 413 from the body limit, ...)
  becomes problem+json with the same shape;
- anything else becomes 500 with the trace id and no internals (logged in full).

Body: {"type","title","status","detail","code","errors":[{"field","message"}],
"trace_id","request_id"}, media type application/problem+json.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from zenops_kit.errors import DomainError, ErrorDetail, FieldViolation, parse_rpc_error
from zenops_kit.logging import request_id_var

log = logging.getLogger("zenops.gateway.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:zenops:problem:"

# shared/spec/gateway.md "Error mapping" (plus CANCELLED, below). Every code not listed → 500.
GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNAVAILABLE: 503,
    # The gateway never cancels a call it still awaits: CANCELLED comes from a server shutting
    # down as the call arrived (it ran nothing), so the caller should retry, as for UNAVAILABLE.
    grpc.StatusCode.CANCELLED: 503,
}
DEFAULT_RETRY_AFTER_SECONDS = 1
# ErrorInfo metadata keys a service may set on RESOURCE_EXHAUSTED to say when to retry.

# Codes (machine reasons) of errors the gateway itself produces.
HTTP_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


# -- the response body (also the OpenAPI schema of every error response) -----------------------


class FieldError(BaseModel):
    field: str = Field(description="Path of the offending field, e.g. `amount` or `items[0].name`.")
    message: str


class Problem(BaseModel):
    """An error (RFC 9457 problem details), media type application/problem+json."""

    type: str = Field(description="URI identifying the problem kind (`urn:zenops:problem:<code>`).")
    title: str = Field(description="HTTP status phrase.")
    status: int
    detail: str | None = Field(None, description="Human-readable explanation, safe to show.")
    code: str = Field(description="Machine-readable reason, e.g. `INSUFFICIENT_CREDITS`.")
    errors: list[FieldError] = Field(default_factory=list, description="Field-level violations.")
    trace_id: str | None = Field(None, description="Trace id to quote to support.")
    request_id: str | None = None
    metadata: dict[str, str] | None = Field(
        None,
        description="The service's machine-readable detail of a 4xx, when it gave any (e.g. `requested` and "
        "`available` of `INSUFFICIENT_CREDITS`, `fields` of `IDEMPOTENCY_KEY_REUSED`); absent otherwise.",
    )


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def problem_type(code: str) -> str:
    return PROBLEM_TYPE_PREFIX + code.lower().replace("_", "-")


def problem(
    status: int,
    code: str,
    detail: str | None,
    *,
    errors: Iterable[FieldError] = (),
    headers: dict[str, str] | None = None,
    model: type[Problem] = Problem,
    **extra: Any,
) -> ProblemResponse:
    """A problem+json response carrying the current trace and request ids."""
    body = model(
        type=problem_type(code),
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        code=code,
        errors=list(errors),
        trace_id=current_trace_id(),
        request_id=request_id_var.get(),
        **extra,
    )
    content = jsonable_encoder(body)
    if content.get("metadata") is None:
        content.pop("metadata", None)  # an extension member (RFC 9457 §3.2): only when there is some
    return ProblemResponse(content, status_code=status, headers=headers)


# -- gRPC errors ---------------------------------------------------------------------------------


class UpstreamError(Exception):
    """A failed RPC to `service`; raised by the typed clients, mapped by `upstream_error_response`."""

    def __init__(self, service: str, detail: ErrorDetail) -> None:
        super().__init__(f"{service}: {detail.code.name} {detail.reason}: {detail.message}")
        self.service = service
        self.detail = detail

    @classmethod
    def from_rpc_error(cls, service: str, err: grpc.aio.AioRpcError) -> UpstreamError:
        return cls(service, parse_rpc_error(err))

    @classmethod
    def from_domain_error(cls, service: str, err: DomainError) -> UpstreamError:
        """A kit error raised on this side of the wire, as if `service` had answered it."""
        return cls(
            service,
            ErrorDetail(
                code=err.status,
                message=err.message,
                reason=err.reason,
                violations=list(err.violations),
                metadata=dict(err.metadata),
                retry_after=err.retry_after,
            ),
        )


IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"


def expand_violations(detail: ErrorDetail) -> list[FieldViolation]:
    """The field violations of an error. `IDEMPOTENCY_KEY_REUSED` names the request fields that
    differ from the key's first request in its metadata (`fields`, comma-separated, as the
    request message names them): each becomes a field entry, so the 409 names the fields the
    same way a 400 does. Done once, in place (renames by `http_field_names` then apply)."""
    if detail.reason == IDEMPOTENCY_KEY_REUSED and not detail.violations:
        names = [f.strip() for f in detail.metadata.get("fields", "").split(",") if f.strip()]
        detail.violations = [
            FieldViolation(name, "differs from the request first sent with this Idempotency-Key") for name in names
        ]
    return detail.violations


@contextmanager
def http_field_names(*, strip_prefix: str = "", renames: dict[str, str] | None = None) -> Iterator[None]:
    """Name a service's field violations as the HTTP body names them, where the two differ:
    `user.channel_id` (UpdateUserRequest.user) is the patch body's `channel_id`; `audience`
    is the login body's `aud`. The error still propagates to the central handler."""
    try:
        yield
    except UpstreamError as err:
        renames = renames or {}
        for i, v in enumerate(expand_violations(err.detail)):
            field = v.field.removeprefix(strip_prefix) if strip_prefix else v.field
            head, sep, rest = field.partition(".")
            field = renames.get(head, head) + sep + rest
            err.detail.violations[i] = FieldViolation(field, v.description)
        raise


def http_status_for(code: grpc.StatusCode) -> int:
    return GRPC_TO_HTTP.get(code, 500)


def _retry_after(detail: ErrorDetail) -> str:
    seconds = detail.retry_after_seconds
    return str(DEFAULT_RETRY_AFTER_SECONDS if seconds is None else seconds)


def www_authenticate(reason: str) -> str:
    """RFC 6750 §3: a request without credentials gets the bare challenge; a token that was
    presented and refused gets `error="invalid_token"` (the TOKEN_* reason is in the body)."""
    if reason.startswith("TOKEN_") and reason != "TOKEN_MISSING":
        return 'Bearer realm="zenops", error="invalid_token"'
    return 'Bearer realm="zenops"'


def upstream_error_response(err: UpstreamError) -> ProblemResponse:
    d = err.detail
    status = http_status_for(d.code)
    headers: dict[str, str] = {}
    if status >= 500:
        # Never pass an upstream's message through on 5xx: grpc-core messages name
        # addresses, and INTERNAL/UNKNOWN may carry exception text. The logs keep it.
        log.warning(
            "upstream call failed",
            extra={"upstream": err.service, "grpc_code": d.code.name, "reason": d.reason, "error": d.message},
        )
        if status == 503:
            retry = {"Retry-After": _retry_after(d)} if d.retry_after is not None else None
            return problem(
                503, d.reason or "UNAVAILABLE", f"The {err.service} service is unavailable; retry later.", headers=retry
            )
        if status == 504:
            return problem(504, "DEADLINE_EXCEEDED", f"The {err.service} service did not answer in time.")
        return problem(500, "INTERNAL", "Internal error; quote the trace id to support.")
    if status == 429:
        headers["Retry-After"] = _retry_after(d)
    elif status == 401:
        headers["WWW-Authenticate"] = www_authenticate(d.reason)
    return problem(
        status,
        d.reason or HTTP_CODES.get(status, d.code.name),
        d.message or HTTPStatus(status).description,
        errors=[FieldError(field=v.field, message=v.description) for v in expand_violations(d)],
        headers=headers or None,
        metadata=dict(d.metadata) or None,
    )


# -- request validation -------------------------------------------------------------------------

_LOCATIONS = {"body", "query", "path", "header", "cookie"}


def field_path(loc: Sequence[int | str]) -> str:
    """`("body", "items", 0, "name")` → `items[0].name`; `("query", "limit")` → `query.limit`.

    Body fields are named like the services' field violations (no prefix); parameters
    carry their location so `limit` in the query and in a body cannot be confused.
    """
    parts = list(loc)
    prefix = ""
    if parts and parts[0] in _LOCATIONS:
        where = parts.pop(0)
        if where != "body":
            prefix = str(where)
        elif not parts:
            return "body"
    out = prefix
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def validation_errors(exc: RequestValidationError) -> list[FieldError]:
    out = []
    for e in exc.errors():
        if e.get("type") == "json_invalid":  # loc is ("body", <character offset>)
            reason = (e.get("ctx") or {}).get("error")
            out.append(FieldError(field="body", message=f"Invalid JSON: {reason}" if reason else "Invalid JSON"))
        else:
            out.append(FieldError(field=field_path(e.get("loc", ())), message=str(e.get("msg", "invalid"))))
    return out


# -- handlers ------------------------------------------------------------------------------------


class ProblemHTTPException(StarletteHTTPException):
    """An HTTP error raised by the gateway itself, with its machine code."""

    def __init__(self, status_code: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status_code, detail=detail, headers=headers)
        self.code = code


async def _on_upstream_error(request: Request, exc: UpstreamError) -> ProblemResponse:
    return upstream_error_response(exc)


async def _on_rpc_error(request: Request, exc: grpc.aio.AioRpcError) -> ProblemResponse:
    # A call that bypassed UpstreamClient.call; still mapped the same way.
    return upstream_error_response(UpstreamError.from_rpc_error("upstream", exc))


async def _on_domain_error(request: Request, exc: DomainError) -> ProblemResponse:
    # Raised by kit code running in the gateway: token verification, fetching identity's
    # keys or the gateway's service token. The identity service is the other end of each.
    return upstream_error_response(UpstreamError.from_domain_error("identity", exc))


async def _on_validation_error(request: Request, exc: RequestValidationError) -> ProblemResponse:
    return problem(400, "VALIDATION_FAILED", "The request is invalid.", errors=validation_errors(exc))


async def _on_http_exception(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
    status = exc.status_code
    code = getattr(exc, "code", None) or HTTP_CODES.get(status) or HTTPStatus(status).name
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).description
    if status == 404 and detail == "Not Found":
        detail = "No such resource."
    elif status == 405 and detail == "Method Not Allowed":
        detail = f"{request.method} is not allowed here."
    return problem(status, code, detail, headers=exc.headers)


def internal_error_response(exc: BaseException) -> ProblemResponse:
    log.error("unhandled error", exc_info=exc)
    return problem(500, "INTERNAL", "Internal error; quote the trace id to support.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(UpstreamError, _on_upstream_error)
    app.add_exception_handler(grpc.aio.AioRpcError, _on_rpc_error)
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    # Exception itself is handled by middleware.CatchAllMiddleware so that the 500 still
    # passes through the request-id / security-header middleware (Starlette would answer
    # it from ServerErrorMiddleware, outside every user middleware).


# -- OpenAPI -------------------------------------------------------------------------------------


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting problem+json answers (see app.custom_openapi)."""
    return {s: {"model": Problem, "description": HTTPStatus(s).phrase} for s in statuses}
