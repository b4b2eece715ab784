"""Group commit: the writes that queue behind one account's transaction share the next one.

A hot account's writes serialise on its lock in PostgreSQL. One at a time, each pays its own
commit (a WAL flush) and its own trip through every process on the path, and the next one
waits for a CPU to take its turn. Here a billing process keeps at most one transaction per
account (a *lane*) in flight:

- a write for an idle lane runs at once, on its own: no added latency when there is no queue;
- writes that arrive while the lane is busy wait in it, and when its transaction ends they all
  go as the next one: one statement (`batch`), one commit, each item with its own outcome (a
  refusal of one is an answer, not a failure of the others).

If a batch's statement fails, nothing of it committed (autocommit): its items run again one by
one, so a bad item fails alone and a deadlock PostgreSQL broke is retried by its own caller. A
lost connection fails them all as Unavailable (whether it committed is unknown: callers retry
with their idempotency keys). A caller that gave up before its batch started is left out of it.

A lane is only a grouping: PostgreSQL's locks still decide (another process, or a write that
names no lane, is serialised against a batch by the account's lock as before). Twins of one
idempotency key in different lanes or processes can deadlock with a batch (its claim of the key
waits for the twin, the twin for the account the batch holds): PostgreSQL breaks it after
deadlock_timeout and the batch's items run one by one.

A batched request's span records how many writes its transaction carried (`billing.batch_size`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncEngine

from zenops_kit.errors import Unavailable

from .sql import raw_autocommit

log = logging.getLogger("zenops.billing.group_commit")

Single = Callable[[asyncpg.Connection, str, dict], Awaitable[list]]
Batch = Callable[[asyncpg.Connection, list[tuple[str, dict]]], Awaitable[list[list]]]


@dataclass(slots=True)
class _Item:
    kind: str
    params: dict
    future: asyncio.Future = field(repr=False)
    batch_size: int = 1


class GroupCommit:
    """`await write(lane, kind, params)` → the rows of that write. `single(conn, kind, params)`
    runs one write; `batch(conn, items)` runs several in one statement and returns each one's
    rows, in order. Both run on a pooled asyncpg connection in autocommit."""

    def __init__(self, engine: AsyncEngine, single: Single, batch: Batch, *, max_batch: int = 64) -> None:
        self.engine = engine
        self._single = single
        self._batch = batch
        self._max_batch = max_batch
        self._lanes: dict[str, list[_Item]] = {}  # a lane with a transaction in flight → its queue
        self._tasks: set[asyncio.Task] = set()

    def queued(self, lane: str) -> int:
        """How many writes wait for `lane`'s transaction in flight to end."""
        return len(self._lanes.get(lane, ()))

    async def write(self, lane: str | None, kind: str, params: dict) -> list:
        if lane is None:
            return await self._run_single(kind, params)
        queue = self._lanes.get(lane)
        if queue is not None:
            item = _Item(kind, params, asyncio.get_running_loop().create_future())
            queue.append(item)
            rows = await item.future
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attribute("billing.batch_size", item.batch_size)
            return rows
        self._lanes[lane] = []
        try:
            return await self._run_single(kind, params)
        finally:
            self._next(lane)

    async def _run_single(self, kind: str, params: dict) -> list:
        async with raw_autocommit(self.engine) as conn:
            return await self._single(conn, kind, params)

    def _next(self, lane: str) -> None:
        """The lane's transaction ended: its queue goes as the next one, or the lane is idle."""
        queue = [item for item in self._lanes[lane] if not item.future.done()]
        if not queue:
            del self._lanes[lane]
            return
        items, self._lanes[lane] = queue[: self._max_batch], queue[self._max_batch :]
        # its own context: the batch belongs to none of its callers' traces
        task = asyncio.get_running_loop().create_task(self._run_batch(lane, items), context=contextvars.Context())
        self._tasks.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, lane: str, items: list[_Item]) -> None:
        try:
            if len(items) == 1:
                await self._settle(items[0])
                return
            try:
                async with raw_autocommit(self.engine) as conn:
                    results = await self._batch(conn, [(item.kind, item.params) for item in items])
            except Unavailable as exc:
                for item in items:
                    _fail(item, Unavailable(exc.message))
                return
            except asyncpg.PostgresError as exc:
                log.warning(
                    "a batch of writes failed; its items run one by one",
                    extra={"lane": lane, "items": len(items), "sqlstate": exc.sqlstate},
                )
                for item in items:
                    await self._settle(item)
                return
            for item, rows in zip(items, results, strict=True):
                item.batch_size = len(items)
                if not item.future.done():
                    item.future.set_result(rows)
        except BaseException as exc:  # never leave a caller waiting
            for item in items:
                _fail(item, Unavailable("the write was interrupted; retry with the same key"))
            if not isinstance(exc, Exception):
                raise
            log.exception("a batch of writes failed unexpectedly", extra={"lane": lane})
        finally:
            self._next(lane)

    async def _settle(self, item: _Item) -> None:
        """`item` on its own; its outcome (rows or error) goes to its caller."""
        if item.future.done():
            return
        try:
            rows = await self._run_single(item.kind, item.params)
        except Exception as exc:  # noqa: BLE001 - the caller's error, raised where it awaits
            _fail(item, exc)
        else:
            if not item.future.done():
                item.future.set_result(rows)


def _fail(item: _Item, exc: Any) -> None:
    if not item.future.done():
        item.future.set_exception(exc)
