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


def is_infrastructure_error(exc: BaseException) -> bool:
    """True when `exc` (or an exception it was raised from or during) says that a dependency
    is unreachable rather than that the work at hand is at fault."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, _INFRA_TYPES):
            return True
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, grpc.aio.AioRpcError) and e.code() == grpc.StatusCode.UNAVAILABLE:
            return True
        stack += [e.__cause__, e.__context__, getattr(e, "orig", None)]
    return False
