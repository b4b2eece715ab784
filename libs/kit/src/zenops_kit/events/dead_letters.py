"""What operators see of a service's event tables, and the dead-letter replay.

Every query reads the event tables of `schema.py` (no tenant scope: they are not tenant
tables) through their indexes: the unpublished outbox rows (`outbox_unpublished`), the open
dead letters (`dead_letters_open`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from google.protobuf.message import DecodeError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from zenops.events.v1 import envelope_pb2

from ..errors import FailedPrecondition, NotFound, Unavailable
from ..infrastructure import is_infrastructure_error

if TYPE_CHECKING:
    from .consumer import EventConsumer

_OUTBOX = text(
    "SELECT count(*) AS backlog, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS oldest "
    "FROM outbox WHERE published_at IS NULL"
)
_COUNTS = text(
    "SELECT consumer, count(*) FILTER (WHERE replayed_at IS NULL) AS open, count(*) AS total "
    "FROM dead_letters GROUP BY consumer"
)
_COLUMNS = "id, consumer, event_id::text AS event_id, event_type, subject, error, deliveries, created_at, replayed_at"
_OPEN = text(
    f"SELECT {_COLUMNS} FROM dead_letters WHERE replayed_at IS NULL ORDER BY created_at DESC, id DESC LIMIT :limit"
)
_LOCK = text(f"SELECT {_COLUMNS}, envelope FROM dead_letters WHERE id = :id FOR UPDATE")
_MARK = text(f"UPDATE dead_letters SET replayed_at = now() WHERE id = :id RETURNING {_COLUMNS}")


@dataclass(frozen=True)
class DeadLetterRow:
    id: int
    consumer: str
    event_id: str | None
    event_type: str | None
    subject: str
    error: str
    deliveries: int
    created_at: datetime
    replayed_at: datetime | None

    @classmethod
    def of(cls, row) -> DeadLetterRow:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


async def outbox_backlog(engine: AsyncEngine) -> tuple[int, float]:
    """(unpublished rows, age in seconds of the oldest)."""
    async with engine.connect() as conn:
        row = (await conn.execute(_OUTBOX)).one()
    return int(row.backlog), float(row.oldest)


async def dead_letter_counts(engine: AsyncEngine) -> dict[str, tuple[int, int]]:
    """consumer → (open, total)."""
    async with engine.connect() as conn:
        return {r.consumer: (int(r.open), int(r.total)) for r in await conn.execute(_COUNTS)}


async def open_dead_letters(engine: AsyncEngine, limit: int) -> list[DeadLetterRow]:
    async with engine.connect() as conn:
        return [DeadLetterRow.of(r) for r in await conn.execute(_OPEN, {"limit": limit})]


async def replay(
    engine: AsyncEngine, consumers: dict[str, EventConsumer], dead_letter_id: int
) -> tuple[DeadLetterRow, bool]:
    """Run the consumer's handler on a dead letter once: its inbox row, the handler's effect
    and `replayed_at` commit together, and the row lock makes a concurrent replay wait and
    then find it replayed. Returns (the dead letter, whether the handler ran: False when the
    inbox already had the event). A handler that fails again leaves it open."""
    async with engine.begin() as conn:
        row = (await conn.execute(_LOCK, {"id": dead_letter_id})).first()
        if row is None:
            raise NotFound(f"no dead letter {dead_letter_id}", reason="DEAD_LETTER_NOT_FOUND")
        if row.replayed_at is not None:
            raise FailedPrecondition(
                f"dead letter {dead_letter_id} was replayed at {row.replayed_at.isoformat()}",
                reason="DEAD_LETTER_ALREADY_REPLAYED",
            )
        consumer = consumers.get(row.consumer)
        if consumer is None:
            raise FailedPrecondition(
                f"this service declares no consumer {row.consumer!r}", reason="DEAD_LETTER_CONSUMER_UNKNOWN"
            )
        try:
            env = envelope_pb2.EventEnvelope.FromString(bytes(row.envelope))
            if not env.event_id:
                raise DecodeError("envelope has no event_id")
        except DecodeError:
            raise FailedPrecondition(
                f"dead letter {dead_letter_id} holds no readable event", reason="DEAD_LETTER_UNREADABLE"
            ) from None
        try:
            applied = await consumer.apply_in(conn, env)
        except Exception as exc:
            if is_infrastructure_error(exc):
                raise Unavailable(
                    f"replay of dead letter {dead_letter_id} could not run: {exc!r}"[:300],
                    reason="DEAD_LETTER_REPLAY_UNAVAILABLE",
                ) from exc
            raise FailedPrecondition(
                f"the handler failed again: {exc!r}"[:500], reason="DEAD_LETTER_REPLAY_FAILED"
            ) from exc
        marked = (await conn.execute(_MARK, {"id": dead_letter_id})).one()
    return DeadLetterRow.of(marked), applied
