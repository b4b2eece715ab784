"""The events ops publishes, written to the outbox in the caller's transaction (published
iff it commits). Subjects: zenops.ops.<aggregate>.<event>."""

from __future__ import annotations

from zenops_kit.events import Producer

CHANNEL_REQUEST_ACCEPTED = "ops.channel_request.accepted"
CHANNEL_REQUEST_REJECTED = "ops.channel_request.rejected"
ASSIGNMENT_STATUS_CHANGED = "ops.assignment.status_changed"

PRODUCER = Producer("ops")  # the app sets PRODUCER.version
emit = PRODUCER.emit
