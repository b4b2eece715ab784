"""Domain events: envelope, transactional outbox + relay, idempotent consumers (inbox)."""

from .bus import EventBus
from .consumer import ConsumerConfigMismatch, ConsumerSpec, EventConsumer
from .envelope import new_event, subject_for, unpack_payload
from .outbox import Producer, append_event
from .relay import OutboxRelay
from .schema import EVENT_TABLES_DOWN, EVENT_TABLES_UP
from .streams import ensure_stream, stream_name

__all__ = [
    "Producer",
    "EVENT_TABLES_DOWN",
    "EVENT_TABLES_UP",
    "ConsumerConfigMismatch",
    "ConsumerSpec",
    "EventBus",
    "EventConsumer",
    "OutboxRelay",
    "append_event",
    "ensure_stream",
    "new_event",
    "stream_name",
    "subject_for",
    "unpack_payload",
]
