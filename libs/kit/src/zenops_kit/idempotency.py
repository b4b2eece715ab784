"""Idempotent mutations of any service: the same key with the same request answers the
original result (a failure included), however much later; with a different request it fails
ALREADY_EXISTS IDEMPOTENCY_KEY_REUSED naming the request fields that differ.

    return await idempotent(lambda: tenant_tx(engine, tenant), tenant_id=tenant, key=key,
                            operation="CreateTask", request=request,
                            run=lambda conn: ..., decode=pb.CreateTaskResponse.FromString)

`transaction` opens the service's transaction (scoped to the tenant by RLS, and to whatever
else the service scopes by); the service's database has the `idempotency_keys` table
(IDEMPOTENCY_TABLE_UP, under the tenant's RLS). Keys are per tenant; `scope` narrows them
further (e.g. a portal user's channel: partners of two channels share the firm's tenant, and
one must never be answered another's stored response).

The fingerprint is the request message itself (deterministic serialization, the key field
cleared), so no field can be forgotten. One transaction claims the key (INSERT ... ON
CONFLICT DO NOTHING: a concurrent twin waits on the unique index), runs the operation,
stores the serialized response and commits: the effect and its record commit together or
not at all. A DomainError rolls the effects back and is then recorded in a fresh
transaction, so a retry fails the same way. Deadlocks and serialization failures rerun the
whole transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from . import errors
from .errors import AlreadyExists, DomainError, FieldViolation

log = logging.getLogger("zenops.idempotency")

# The table (create it in the service's migrations, then put it under tenant RLS).
IDEMPOTENCY_TABLE_UP = """
    CREATE TABLE idempotency_keys (
        tenant_id uuid NOT NULL,
        key text NOT NULL CHECK (length(key) BETWEEN 1 AND 300),       -- scope:key (scope may be empty)
        operation text NOT NULL,
        request_hash bytea NOT NULL CHECK (length(request_hash) = 32),  -- sha256 of operation + request
        request bytea NOT NULL,                                        -- the request message, as sent
        response bytea,                                                -- the serialized original response,
        error jsonb,                                                   -- or the original failure
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, key),
        CHECK (num_nonnulls(response, error) <= 1)
    )
"""
IDEMPOTENCY_TABLE_DOWN = "DROP TABLE IF EXISTS idempotency_keys"

T = TypeVar("T", bound=Message)

# Failures that say nothing final about the request: never recorded, a retry runs again.
_NOT_RECORDED = (
    errors.Unavailable,
    errors.ResourceExhausted,
    errors.Aborted,
    errors.Unauthenticated,
    errors.PermissionDenied,
)
_ERROR_TYPES = {
    cls.__name__: cls
    for cls in (
        errors.InvalidArgument,
        errors.NotFound,
        errors.AlreadyExists,
        errors.FailedPrecondition,
        errors.DomainError,
    )
}
_RETRYABLE = {"40P01", "40001"}
ATTEMPTS = 5

_CLAIM = text(
    "INSERT INTO idempotency_keys (tenant_id, key, operation, request_hash, request) "
    "VALUES (CAST(:tid AS uuid), :key, :op, :hash, :request) ON CONFLICT DO NOTHING RETURNING true"
)
_SAVE = text("UPDATE idempotency_keys SET response = :response WHERE key = :key")
_FAIL = text(
    "INSERT INTO idempotency_keys (tenant_id, key, operation, request_hash, request, error) "
    "VALUES (CAST(:tid AS uuid), :key, :op, :hash, :request, CAST(:error AS jsonb)) "
    "ON CONFLICT DO NOTHING RETURNING true"
)
_GET = text(
    "SELECT operation, request_hash, request, response, error::text AS error FROM idempotency_keys "
    "WHERE key = :key FOR UPDATE"
)


class _Failed(Exception):
    def __init__(self, error: DomainError) -> None:
        self.error = error


def _canonical(request: Message) -> bytes:
    copy = type(request)()
    copy.CopyFrom(request)
    if "idempotency_key" in copy.DESCRIPTOR.fields_by_name:
        copy.ClearField("idempotency_key")
    return copy.SerializeToString(deterministic=True)


def _fingerprint(operation: str, body: bytes) -> bytes:
    return hashlib.sha256(operation.encode() + b"\0" + body).digest()


def _differing(request: Message, stored_op: str, operation: str, stored: bytes, body: bytes) -> list[str]:
    if stored_op != operation:
        return ["operation"]
    before, after = type(request).FromString(stored), type(request).FromString(body)
    return [f.name for f in request.DESCRIPTOR.fields if getattr(before, f.name) != getattr(after, f.name)] or [
        "request"
    ]


def _encode_error(err: DomainError) -> str:
    return json.dumps(
        {
            "type": type(err).__name__,
            "reason": err.reason,
            "message": err.message,
            "metadata": err.metadata,
            "violations": [[v.field, v.description] for v in err.violations],
        }
    )


def _decode_error(data: dict) -> DomainError:
    cls = _ERROR_TYPES.get(data.get("type", ""), errors.FailedPrecondition)
    return cls(
        data.get("message", ""),
        reason=data.get("reason"),
        metadata=data.get("metadata") or {},
        violations=[FieldViolation(f, d) for f, d in data.get("violations") or []],
    )


def _answer(row, key: str, operation: str, request: Message, body: bytes, digest: bytes, decode):
    if bytes(row.request_hash) != digest:
        fields = _differing(request, row.operation, operation, bytes(row.request), body)
        raise AlreadyExists(
            f"idempotency key {key!r} was used for another request",
            reason="IDEMPOTENCY_KEY_REUSED",
            violations=[FieldViolation(f, "differs from the original request") for f in fields],
            metadata={"operation": row.operation, "fields": ",".join(fields)},
        )
    if row.error is not None:
        raise _decode_error(json.loads(row.error))
    return decode(bytes(row.response))


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    return getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)


async def idempotent(
    transaction: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
    *,
    tenant_id: str,
    key: str,
    operation: str,
    request: Message,
    run: Callable[[AsyncConnection], Awaitable[T]],
    decode: Callable[[bytes], T],
    scope: str = "",
) -> T:
    """`run(conn)` once per (tenant, scope, key) in a `transaction()`; its response is what
    every retry gets. Empty key: just run it in a transaction."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await _attempt(transaction, tenant_id, scope, key, operation, request, run, decode)
        except DBAPIError as exc:
            if _sqlstate(exc) not in _RETRYABLE or attempt == ATTEMPTS:
                raise
            log.warning("transaction conflict; retrying", extra={"operation": operation, "attempt": attempt})
            await asyncio.sleep(random.uniform(0, 0.01 * attempt))  # de-synchronise the retries
    raise AssertionError("unreachable")  # pragma: no cover


async def _attempt(transaction, tenant_id, scope, key, operation, request, run, decode):
    if not key:
        async with transaction() as conn:
            return await run(conn)
    body = _canonical(request)
    digest = _fingerprint(operation, body)
    stored = f"{scope}:{key}" if scope else key
    params = {"tid": tenant_id, "key": stored, "op": operation, "hash": digest, "request": body}
    try:
        async with transaction() as conn:
            if (await conn.execute(_CLAIM, params)).first() is None:
                row = (await conn.execute(_GET, {"key": stored})).one()
                return _answer(row, key, operation, request, body, digest, decode)
            try:
                result = await run(conn)
            except DomainError as err:
                if isinstance(err, _NOT_RECORDED):
                    raise
                raise _Failed(err) from err  # leaves the transaction: the effects and the claim roll back
            await conn.execute(_SAVE, {"key": stored, "response": result.SerializeToString(deterministic=True)})
            return result
    except _Failed as failed:
        error = failed.error
    # The failure's record must commit before it is raised (raised inside the block, it
    # would roll its own record back).
    async with transaction() as conn:
        recorded = (await conn.execute(_FAIL, {**params, "error": _encode_error(error)})).first() is not None
        row = None if recorded else (await conn.execute(_GET, {"key": stored})).one()
    if row is None:
        raise error
    return _answer(row, key, operation, request, body, digest, decode)


async def idempotent_as(
    engine,
    caller,
    key: str,
    operation: str,
    request: Message,
    *,
    run: Callable[[AsyncConnection], Awaitable[T]],
    decode: Callable[[bytes], T],
) -> T:
    """`idempotent` in a verified caller's scope (zenops_kit.caller.Caller): its tenant, and
    for a portal user its channel too — the transaction (zenops_kit.rls.scoped_tx) and the key."""
    from .rls import scoped_tx

    return await idempotent(
        lambda: scoped_tx(engine, caller.tenant_id, caller.channel_id),
        tenant_id=caller.tenant_id,
        key=key,
        operation=operation,
        request=request,
        run=run,
        decode=decode,
        scope=f"channel:{caller.channel_id}" if caller.channel_id else "",
    )
