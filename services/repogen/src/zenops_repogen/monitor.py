"""The repogen queue monitor: work orders with their readiness score, the status of the
latest render job, the billing gate as repogen knows it and the last error, newest first,
with the count of work orders per status.

The billing gate comes from what repogen holds (domain.factory.billing_gate): a release row
means released; otherwise whether the work order was accepted (billing reserves then) and
the credits it carries; billing alone knows more (the account's policy, an invoice's state).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from zenops_kit.caller import Caller
from zenops_kit.fields import invalid, is_uuid
from zenops_kit.paging import decode_cursor, encode_cursor, page_limit
from zenops_kit.rls import scoped_tx

from .domain import factory as domain
from .store import factory as store

_CURSOR = "monitor"


@dataclass(frozen=True)
class MonitorRow:
    work_order: Row
    readiness_score: int
    job_status: str | None
    billing_gate: str
    last_error: str


@dataclass(frozen=True)
class Monitor:
    rows: list[MonitorRow]
    next_cursor: str
    counts: dict[str, int]


def _cursor(cursor: str) -> tuple[datetime, str] | None:
    position = decode_cursor(cursor, _CURSOR, 2)
    if position is None:
        return None
    try:
        at = datetime.fromisoformat(position[0])
    except ValueError:
        at = None
    if at is None or at.tzinfo is None or not is_uuid(position[1]):
        raise invalid("page.cursor", "is not a cursor returned by this list")
    return at, position[1]


def _row(r: Row) -> MonitorRow:
    gate = domain.billing_gate(
        status=r.status,
        released=r.released,
        billing_account_id=r.billing_account_id,
        credits=r.credits,
        born_from_request=bool(r.channel_request_id),
    )
    # The work order's last error is the factory's (cleared when a render succeeds); a job that
    # failed and is waiting for its retry says why too.
    job_error = r.job_error if r.job_status in (domain.FAILED, domain.DEAD) else ""
    last_error = r.last_error or ("" if job_error.startswith(domain.SUPERSEDED) else job_error)
    return MonitorRow(
        work_order=r,
        readiness_score=r.readiness_score or 0,
        job_status=r.job_status,
        billing_gate=gate,
        last_error=last_error,
    )


async def list_monitor(engine: AsyncEngine, caller: Caller, *, statuses: list[str], limit: int, cursor: str) -> Monitor:
    limit = page_limit(limit)
    before = _cursor(cursor)
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        rows = await store.monitor_page(conn, statuses=statuses, before=before, limit=limit)
        counts = await store.status_counts(conn)
    next_cursor = ""
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(_CURSOR, [rows[-1].created_at.isoformat(), rows[-1].id])
    return Monitor(
        rows=[_row(r) for r in rows],
        next_cursor=next_cursor,
        counts={status.lower(): n for status, n in sorted(counts.items())},
    )
