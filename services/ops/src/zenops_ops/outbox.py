"""The events ops publishes, written to the outbox in the caller's transaction (published
iff it commits). Subjects: zenops.ops.<aggregate>.<event>."""

from __future__ import annotations

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from zenops_kit.events import append_event, new_event

CHANNEL_REQUEST_ACCEPTED = "ops.channel_request.accepted"
CHANNEL_REQUEST_REJECTED = "ops.channel_request.rejected"
ASSIGNMENT_STATUS_CHANGED = "ops.assignment.status_changed"

PRODUCER = "ops"
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
