"""Idempotent operations: the same key with the same request returns the original result
(a failure included), however much later; with a different request it fails ALREADY_EXISTS
IDEMPOTENCY_KEY_REUSED naming the fields that differ.

    response = await idempotent(engine, tenant_id=t, key=k, operation="ReserveCredits",
                                request={"account_id": ..., "amount": ...},
                                run=lambda conn: ..., decode=pb.ReserveCreditsResponse.FromString)

`idempotent()` (any operation): one transaction claims the key (INSERT ... ON CONFLICT DO
NOTHING: a concurrent request with the same key waits on it), runs the operation, stores its
serialized response, commits: the effect and the record of it commit together or not at all.
A key that exists is locked (SELECT ... FOR UPDATE) and replayed.

`idempotent_credit()` (grant, reserve, consume, release: the hot path): the wallet operation
is one database function call in autocommit (through `store.wallet.CreditWrites`: a hot
account's concurrent calls share one statement and commit) that claims the key first (a twin
waits on it), does the work and records the key's answer: its last ledger entry (the response
is rebuilt from the ledger and the reservation, both immutable, on replay) or its refusal. One
round trip in all. If the key exists (a retry, or a twin that committed first) the function
does nothing and the recorded answer is replayed.

Both: a DomainError from the operation rolls its effects back and is then recorded in a
fresh transaction, so a retry fails the same way; if a concurrent attempt recorded the key
first, that record is the answer. Deadlocks and serialization failures retry the whole
transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops_kit import errors
from zenops_kit.db import tenant_tx
from zenops_kit.errors import DomainError, FieldViolation

from .domain.idempotency import canonical, fingerprint, key_reused, mismatched_fields
from .store import idempotency as store
from .store import sqlstate
from .store.wallet import Claim, CreditWrites
from .wallet.operations import KeyTaken, refusal

log = logging.getLogger("zenops.billing.idempotency")

T = TypeVar("T")

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
        errors.PermissionDenied,
        errors.Unauthenticated,
        errors.Aborted,
        errors.ResourceExhausted,
        errors.Unavailable,
        errors.DomainError,
    )
}
# Deadlock detected, serialization failure: the transaction did nothing; run it again.
_RETRYABLE = {"40P01", "40001"}
ATTEMPTS = 5


class _Failed(Exception):
    def __init__(self, error: DomainError) -> None:
        self.error = error


def encode_error(err: DomainError) -> dict:
    return {
        "type": type(err).__name__,
        "reason": err.reason,
        "message": err.message,
        "metadata": err.metadata,
        "violations": [[v.field, v.description] for v in err.violations],
    }


def decode_error(data: dict) -> DomainError:
    if "outcome" in data:  # a refusal a wallet function recorded: rebuilt from its figures
        return refusal(data["outcome"], data.get("detail") or {})
    cls = _ERROR_TYPES.get(data.get("type", ""), errors.FailedPrecondition)
    return cls(
        data.get("message", ""),
        reason=data.get("reason"),
        metadata=data.get("metadata") or {},
        violations=[FieldViolation(f, d) for f, d in data.get("violations") or []],
    )


def _encode(result: Any) -> bytes:
    if isinstance(result, bytes):
        return result
    return result.SerializeToString(deterministic=True)


def _check(stored: store.StoredKey, key: str, operation: str, request: dict, digest: bytes) -> None:
    """Raises unless `stored` is this very request and succeeded: IDEMPOTENCY_KEY_REUSED with
    the mismatched fields, or the recorded failure."""
    if stored.request_hash != digest:
        fields = mismatched_fields(stored.operation, stored.request, operation, request) or ["request"]
        raise key_reused(key, stored.operation, fields)
    if stored.error is not None:
        raise decode_error(stored.error)


def _replay(
    stored: store.StoredKey, key: str, operation: str, request: dict, digest: bytes, decode: Callable[[bytes], T]
) -> T:
    _check(stored, key, operation, request, digest)
    if stored.response is None:  # pragma: no cover - a claim commits with its response
        raise errors.Aborted(
            "the original request with this key is still running", reason="IDEMPOTENCY_KEY_BUSY", retry_after=1
        )
    return decode(stored.response)


async def _retrying(operation: str, attempt_once: Callable[[], Awaitable[T]]) -> T:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await attempt_once()
        except (DBAPIError, asyncpg.PostgresError) as exc:
            if sqlstate(exc) not in _RETRYABLE or attempt == ATTEMPTS:
                raise
            log.warning(
                "transaction conflict; retrying",
                extra={"operation": operation, "attempt": attempt, "sqlstate": sqlstate(exc)},
            )
            await asyncio.sleep(random.uniform(0, 0.01 * attempt))  # de-synchronise the retries
    raise AssertionError("unreachable")  # pragma: no cover


async def idempotent(
    engine: AsyncEngine,
    *,
    tenant_id: str,
    key: str,
    operation: str,
    request: dict,
    run: Callable[[AsyncConnection], Awaitable[T]],
    decode: Callable[[bytes], T],
) -> T:
    """`run(conn)` once per (tenant, key), inside a transaction of `tenant_id`; its result (a
    protobuf message, or bytes) is what every retry gets back. Empty `key`: just run it."""
    return await _retrying(
        operation,
        lambda: _attempt(
            engine, tenant_id=tenant_id, key=key, operation=operation, request=request, run=run, decode=decode
        ),
    )


async def idempotent_credit(
    writes: CreditWrites,
    *,
    tenant_id: str,
    key: str,
    operation: str,
    request: dict,
    run: Callable[[AsyncConnection, Claim | None], Awaitable[T]],
    replay: Callable[[AsyncConnection, str], Awaitable[T]],
) -> T:
    """`run(writes, claim)` performs a wallet operation on `writes` (in place of a connection)
    passing `claim` on (it records the key with its answer, or raises KeyTaken).
    `replay(conn, ledger_entry_id)` rebuilds the response from that entry. Empty `key`: just
    run it (claim None)."""
    return await _retrying(
        operation,
        lambda: _attempt_credit(
            writes, tenant_id=tenant_id, key=key, operation=operation, request=request, run=run, replay=replay
        ),
    )


async def _attempt_credit(writes: CreditWrites, *, tenant_id, key, operation, request, run, replay):
    if not key:
        return await run(writes, None)
    digest = fingerprint(operation, request)
    claim = Claim(key, operation, digest, json.dumps(canonical(request), sort_keys=True))
    error: DomainError | None = None
    engine = writes.engine
    try:
        return await run(writes, claim)
    except KeyTaken:
        pass  # nothing was done: replay what was recorded
    except DomainError as err:
        if isinstance(err, _NOT_RECORDED) or getattr(err, "recorded", False):
            raise
        error = err  # refused before the database saw it (e.g. validation): record it now
    async with tenant_tx(engine, tenant_id) as conn:
        if error is not None and await store.save_failure(
            conn,
            tenant_id=tenant_id,
            key=key,
            operation=operation,
            request_hash=digest,
            request=request,
            error=encode_error(error),
        ):
            recorded = True
        else:
            recorded = False
            stored = await store.get(conn, key)
            _check(stored, key, operation, request, digest)
            if stored.ledger_entry_id is None:
                # The key belongs to an operation that records its response itself (same hash:
                # cannot happen for another operation, but never answer wrongly).
                raise key_reused(key, stored.operation, ["operation"])
            return await replay(conn, stored.ledger_entry_id)
    if recorded:
        raise error


async def _attempt(engine, *, tenant_id, key, operation, request, run, decode):
    if not key:
        async with tenant_tx(engine, tenant_id) as conn:
            return await run(conn)
    digest = fingerprint(operation, request)
    try:
        async with tenant_tx(engine, tenant_id) as conn:
            if not await store.claim(
                conn, tenant_id=tenant_id, key=key, operation=operation, request_hash=digest, request=request
            ):
                stored = await store.get(conn, key, for_update=True)
                return _replay(stored, key, operation, request, digest, decode)
            try:
                result = await run(conn)
            except DomainError as err:
                if isinstance(err, _NOT_RECORDED):
                    raise
                raise _Failed(err) from err  # leaves the transaction: run()'s effects and the claim roll back
            await store.save_response(conn, key=key, response=_encode(result))
            return result
    except _Failed as failed:
        error = failed.error
    async with tenant_tx(engine, tenant_id) as conn:
        recorded = await store.save_failure(
            conn,
            tenant_id=tenant_id,
            key=key,
            operation=operation,
            request_hash=digest,
            request=request,
            error=encode_error(error),
        )
        stored = None if recorded else await store.get(conn, key, for_update=True)
    if recorded:
        raise error
    return _replay(stored, key, operation, request, digest, decode)
