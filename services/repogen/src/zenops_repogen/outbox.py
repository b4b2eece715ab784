"""The events repogen publishes, written to the outbox in the caller's transaction (published
iff it commits). Subjects: zenops.repogen.<aggregate>.<event>; payloads in zenops.events.v1."""

from __future__ import annotations

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from zenops_kit.events import append_event, new_event

WORK_ORDER_ACCEPTED = "repogen.work_order.accepted"
WORK_ORDER_READY_FOR_RENDER = "repogen.work_order.ready_for_render"
WORK_ORDER_CANCELLED = "repogen.work_order.cancelled"
DELIVERABLE_RELEASED = "repogen.deliverable.released"
RENDER_JOB_QUEUED = "repogen.render_job.queued"

PRODUCER = "repogen"
_VERSION = {"version": "0.0.0"}


def set_producer_version(version: str) -> None:
    """The release recorded in every envelope (the app sets it at start-up)."""
    _VERSION["version"] = version


async def emit(
    conn: AsyncConnection,
    *,
    event_type: str,
    payload: Message,
    tenant_id: str,
    aggregate_type: str,
    aggregate_id: str,
    aggregate_version: int,
    event_id: str | None = None,
) -> str:
    """Append the event to the outbox; returns its id."""
    env = new_event(
        event_type=event_type,
        payload=payload,
        producer=PRODUCER,
        producer_version=_VERSION["version"],
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=aggregate_version,
        tenant_id=tenant_id,
        event_id=event_id,
    )
    await append_event(conn, env)
    return env.event_id
