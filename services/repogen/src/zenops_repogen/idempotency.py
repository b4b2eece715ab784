"""Repogen's idempotent mutations (zenops_kit.idempotency) in the caller's scope: the tenant,
and for portal users their channel too (keys and transactions alike).

    return await idempotent(engine, caller, key, "PatchContract", request,
                            run=lambda conn: ..., decode=pb.PatchContractResponse.FromString)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops_kit import idempotency
from zenops_kit.caller import Caller
from zenops_kit.rls import scoped_tx

T = TypeVar("T", bound=Message)


async def idempotent(
    engine: AsyncEngine, caller: Caller, key: str, operation: str, request: Message,
    *, run: Callable[[AsyncConnection], Awaitable[T]], decode: Callable[[bytes], T],
) -> T:
    return await idempotency.idempotent(
        lambda: scoped_tx(engine, caller.tenant_id, caller.channel_id), tenant_id=caller.tenant_id, key=key,
        operation=operation, request=request, run=run, decode=decode,
        scope=f"channel:{caller.channel_id}" if caller.channel_id else "")
