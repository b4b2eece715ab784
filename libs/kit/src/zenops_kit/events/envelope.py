"""Building and reading `zenops.events.v1.EventEnvelope`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from google.protobuf import any_pb2
from google.protobuf.message import Message

from zenops.events.v1 import envelope_pb2


def subject_for(event_type: str) -> str:
    """`ops.channel_request.accepted` → `zenops.ops.channel_request.accepted`."""
    parts = event_type.split(".")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"event_type must be <producer>.<aggregate>.<event>, got {event_type!r}")
    return "zenops." + event_type


def new_event(
    *,
    event_type: str,
    payload: Message,
    producer: str,
    producer_version: str,
    aggregate_type: str,
    aggregate_id: str,
    aggregate_version: int,
    tenant_id: str | None = None,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> envelope_pb2.EventEnvelope:
    subject_for(event_type)  # validates the shape
    if not event_type.startswith(producer + "."):
        raise ValueError(f"{producer} cannot produce {event_type}")
    env = envelope_pb2.EventEnvelope(
        event_id=event_id or str(uuid.uuid4()),
        event_type=event_type,
        tenant_id=tenant_id or "",
        producer=envelope_pb2.Producer(name=producer, version=producer_version),
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=aggregate_version,
    )
    env.occurred_at.FromDatetime(occurred_at or datetime.now(UTC))
    packed = any_pb2.Any()
    packed.Pack(payload, type_url_prefix="type.zenops.dev/")
    env.payload.CopyFrom(packed)
    return env


def unpack_payload(env: envelope_pb2.EventEnvelope, message_type: type[Message]) -> Message:
    msg = message_type()
    if not env.payload.Unpack(msg):
        raise ValueError(f"{env.event_type} payload is {env.payload.type_url}, not {message_type.DESCRIPTOR.full_name}")
    return msg
