"""The events repogen publishes, written to the outbox in the caller's transaction (published
iff it commits). Subjects: zenops.repogen.<aggregate>.<event>; payloads in zenops.events.v1."""

from __future__ import annotations

from zenops_kit.events import Producer

WORK_ORDER_ACCEPTED = "repogen.work_order.accepted"
WORK_ORDER_READY_FOR_RENDER = "repogen.work_order.ready_for_render"
WORK_ORDER_CANCELLED = "repogen.work_order.cancelled"
DELIVERABLE_RELEASED = "repogen.deliverable.released"
RENDER_JOB_QUEUED = "repogen.render_job.queued"

PRODUCER = Producer("repogen")  # the app sets PRODUCER.version
emit = PRODUCER.emit
