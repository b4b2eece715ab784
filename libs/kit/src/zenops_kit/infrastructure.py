"""Is an error an outage of a dependency, or a fault of the work at hand?

One answer for every caller: an RPC that meets it answers UNAVAILABLE (503 at the edge, retry
later) instead of INTERNAL, and a consumer that meets it pauses and retries the message
without counting the attempt toward `max_deliver`.
"""

from __future__ import annotations

import socket

import asyncpg
import grpc
import nats.errors
from sqlalchemy import exc as sa_exc

from .errors import Unavailable

_INFRA_TYPES: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, broken pipe
    TimeoutError,
    socket.gaierror,
    sa_exc.OperationalError,  # the DBAPI's "database unavailable" family (admin shutdown, cannot connect now, ...)
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # no pool connection within pool_timeout
    sa_exc.DisconnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
    nats.errors.Error,
    Unavailable,
)


# 22021 (e.g. NUL in text), 22P05 (e.g. \u0000 in jsonb).
_UNSTORABLE_TEXT = (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)


def _chain(exc: BaseException):
    """`exc` and every exception it was raised from or during (a DBAPI error's original too)."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack += [e.__cause__, e.__context__, getattr(e, "orig", None)]


def is_infrastructure_error(exc: BaseException) -> bool:
    """True when `exc` (or an exception it was raised from or during) says that a dependency
    is unreachable rather than that the work at hand is at fault."""
    for e in _chain(exc):
        if isinstance(e, _INFRA_TYPES):
            return True
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, grpc.aio.AioRpcError) and e.code() == grpc.StatusCode.UNAVAILABLE:
            return True
    return False


def is_unstorable_text(exc: BaseException) -> bool:
    """True when PostgreSQL refused a text value it cannot store (a NUL character): the
    request's fault, which field validation should have named."""
    return any(isinstance(e, _UNSTORABLE_TEXT) for e in _chain(exc))
