"""The gRPC → HTTP mapping table and the problem+json shape (no network)."""

from __future__ import annotations

import json

import grpc
import pytest

from zenops_gateway.errors import (
    GRPC_TO_HTTP,
    PROBLEM_MEDIA_TYPE,
    UpstreamError,
    field_path,
    http_status_for,
    upstream_error_response,
)
from zenops_kit import errors as kit
from zenops_kit.logging import request_id_var


def rpc_error(
    err: kit.DomainError | None = None, *, code: grpc.StatusCode | None = None, message: str = ""
) -> grpc.aio.AioRpcError:
    """An AioRpcError as a client receives it from a service using the kit interceptor."""
    if err is not None:
        status = kit.to_grpc_status(err, "ops")
        return grpc.aio.AioRpcError(
            status.code, grpc.aio.Metadata(), grpc.aio.Metadata(*status.trailing_metadata), status.details
        )
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), message)


def respond(err: grpc.aio.AioRpcError):
    resp = upstream_error_response(UpstreamError.from_rpc_error("ops", err))
    return resp, json.loads(resp.body)


# Every row of shared/spec/gateway.md, driven through the kit's real error classes.
TABLE = [
    (kit.InvalidArgument("bad", violations=[kit.FieldViolation("amount", "must be > 0")]), 400, "VALIDATION_FAILED"),
    (kit.Unauthenticated("no token", reason="TOKEN_MISSING"), 401, "TOKEN_MISSING"),
    (kit.PermissionDenied("nope", reason="MISSING_CAPABILITY"), 403, "MISSING_CAPABILITY"),
    (kit.NotFound("no such task", reason="TASK_NOT_FOUND"), 404, "TASK_NOT_FOUND"),
    (kit.AlreadyExists("dup", reason="IDEMPOTENCY_KEY_REUSED"), 409, "IDEMPOTENCY_KEY_REUSED"),
    (kit.Aborted("stale version"), 409, "VERSION_CONFLICT"),
    (kit.FailedPrecondition("not enough credits", reason="INSUFFICIENT_CREDITS"), 409, "INSUFFICIENT_CREDITS"),
    (kit.ResourceExhausted("slow down"), 429, "RATE_LIMITED"),
    (kit.Unavailable("db down"), 503, "DEPENDENCY_UNAVAILABLE"),
]


@pytest.mark.parametrize(("err", "status", "code"), TABLE, ids=[type(e[0]).__name__ for e in TABLE])
def test_domain_errors_map_per_table(err, status, code):
    token = request_id_var.set("rid-123")
    try:
        resp, body = respond(rpc_error(err))
    finally:
        request_id_var.reset(token)
    assert resp.status_code == status
    assert resp.media_type == PROBLEM_MEDIA_TYPE
    assert body["status"] == status and body["code"] == code
    assert body["type"] == "urn:zenops:problem:" + code.lower().replace("_", "-")
    assert body["title"] and body["request_id"] == "rid-123"
    assert set(body) == {"type", "title", "status", "detail", "code", "errors", "trace_id", "request_id"}
    if status < 500:
        assert body["detail"] == err.message


def test_field_violations_become_errors():
    err = kit.FailedPrecondition(
        "not enough credits",
        reason="INSUFFICIENT_CREDITS",
        violations=[kit.FieldViolation("amount", "exceeds balance"), kit.FieldViolation("items[0].qty", "too many")],
    )
    _, body = respond(rpc_error(err))
    assert body["errors"] == [
        {"field": "amount", "message": "exceeds balance"},
        {"field": "items[0].qty", "message": "too many"},
    ]


def test_deadline_exceeded_is_504_and_unavailable_503_without_internals():
    resp, body = respond(rpc_error(code=grpc.StatusCode.DEADLINE_EXCEEDED, message="Deadline Exceeded"))
    assert resp.status_code == 504 and body["code"] == "DEADLINE_EXCEEDED"
    resp, body = respond(
        rpc_error(
            code=grpc.StatusCode.UNAVAILABLE,
            message="failed to connect to all addresses; last error: ipv4:10.1.2.3:50052: connection refused",
        )
    )
    assert resp.status_code == 503 and body["code"] == "UNAVAILABLE"
    assert "10.1.2.3" not in resp.body.decode()


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c != grpc.StatusCode.OK and c not in GRPC_TO_HTTP])
def test_every_other_code_is_500_without_internals(code):
    resp, body = respond(rpc_error(code=code, message="Exception calling application: KeyError 'secret_column'"))
    assert resp.status_code == 500
    assert body["code"] == "INTERNAL"
    assert "secret_column" not in resp.body.decode() and "KeyError" not in resp.body.decode()
    assert "trace_id" in body


def test_table_is_the_spec():
    assert {c.name: http_status_for(c) for c in grpc.StatusCode if c != grpc.StatusCode.OK} == {
        "INVALID_ARGUMENT": 400,
        "UNAUTHENTICATED": 401,
        "PERMISSION_DENIED": 403,
        "NOT_FOUND": 404,
        "ALREADY_EXISTS": 409,
        "ABORTED": 409,
        "FAILED_PRECONDITION": 409,
        "RESOURCE_EXHAUSTED": 429,
        "DEADLINE_EXCEEDED": 504,
        "UNAVAILABLE": 503,
        "CANCELLED": 503,  # a server shutting down as the call arrived: retry
        "UNKNOWN": 500,
        "OUT_OF_RANGE": 500,
        "UNIMPLEMENTED": 500,
        "INTERNAL": 500,
        "DATA_LOSS": 500,
    }


def test_429_has_retry_after_default_and_from_metadata():
    resp, _ = respond(rpc_error(kit.ResourceExhausted("slow down")))
    assert resp.headers["retry-after"] == "1"
    resp, _ = respond(rpc_error(kit.ResourceExhausted("slow down", retry_after=30)))
    assert resp.headers["retry-after"] == "30"


def test_401_has_www_authenticate():
    resp, _ = respond(rpc_error(kit.Unauthenticated("no token")))
    assert resp.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (("body", "amount"), "amount"),
        (("body", "items", 0, "name"), "items[0].name"),
        (("body",), "body"),
        (("body", 0, "name"), "[0].name"),
        (("query", "limit"), "query.limit"),
        (("path", "task_id"), "path.task_id"),
        (("header", "x-thing"), "header.x-thing"),
    ],
)
def test_field_path(loc, path):
    assert field_path(loc) == path


def test_service_field_paths_named_as_the_http_body():
    from zenops_gateway.errors import http_field_names

    err = kit.InvalidArgument(
        "bad",
        violations=[
            kit.FieldViolation("user.channel_id", "only portal users have a channel"),
            kit.FieldViolation("audience", "must be one of web, studio, portal"),
            kit.FieldViolation("roles[1]", "unknown role"),
        ],
    )
    with pytest.raises(UpstreamError) as raised, http_field_names(strip_prefix="user.", renames={"audience": "aud"}):
        raise UpstreamError.from_rpc_error("identity", rpc_error(err))
    _, body = respond_to(raised.value)
    assert [e["field"] for e in body["errors"]] == ["channel_id", "aud", "roles[1]"]


def respond_to(err: UpstreamError):
    resp = upstream_error_response(err)
    return resp, json.loads(resp.body)
