"""The trigger: repogen.work_order.ready_for_render → the pack and the render job of (work
order, snapshot version), queued on the render queue (repogen.render_job.queued).

Runs in the kit consumer's transaction (its inbox row commits with the pack, the job and the
queued event), scoped to the envelope's tenant. The job id is `<work_order_id>:<snapshot>`
and both inserts are ON CONFLICT DO NOTHING: a redelivered or duplicated trigger (another
event id, the same work order and snapshot) creates nothing and queues nothing.
"""

from __future__ import annotations

import logging

from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncConnection

from zenops.events.v1 import envelope_pb2
from zenops.events.v1 import repogen_pb2 as events
from zenops_kit.events import unpack_payload
from zenops_kit.fields import is_uuid

from .. import outbox, rules
from ..domain import factory as domain
from ..store import factory as store
from ..store import work_orders as work_order_store

log = logging.getLogger("zenops.repogen.factory")

ACTOR = "service:repogen/factory"


def span_trace_id() -> str:
    """The trace of the event being handled (the kit's consumer span), for audit rows."""
    span = trace.get_current_span().get_span_context()
    return format(span.trace_id, "032x") if span.is_valid else ""


async def on_ready_for_render(conn: AsyncConnection, env: envelope_pb2.EventEnvelope) -> None:
    p = unpack_payload(env, events.WorkOrderReadyForRender)
    if not is_uuid(p.work_order_id) or p.snapshot_version < 0:
        log.warning("ready_for_render with a malformed work order ref", extra={"event_id": env.event_id})
        return
    work_order_id = p.work_order_id.lower()
    work_order = await work_order_store.get(conn, work_order_id)
    if work_order is None:
        log.warning(
            "ready_for_render of an unknown work order",
            extra={"event_id": env.event_id, "work_order_id": work_order_id},
        )
        return
    template = rules.template(work_order.template_id)
    job_id = domain.job_id(work_order_id, p.snapshot_version)
    created = await store.create_job(
        conn,
        tenant_id=work_order.tenant_id,
        work_order_id=work_order_id,
        snapshot_version=p.snapshot_version,
        job_id=job_id,
        template_id=work_order.template_id,
        template_version=template.version if template else 0,
    )
    if not created:
        log.info("render job already exists", extra={"event_id": env.event_id, "job_id": job_id})
        return
    await work_order_store.record(
        conn,
        tenant_id=work_order.tenant_id,
        work_order_id=work_order_id,
        kind="render_job.queued",
        actor=ACTOR,
        trace_id=span_trace_id(),
        detail={
            "job_id": job_id,
            "snapshot_version": p.snapshot_version,
            "template_id": work_order.template_id,
            "event_id": env.event_id,
        },
    )
    await outbox.emit(
        conn,
        event_type=outbox.RENDER_JOB_QUEUED,
        payload=events.RenderJobQueued(job_id=job_id, work_order_id=work_order_id, snapshot_version=p.snapshot_version),
        tenant_id=work_order.tenant_id,
        aggregate_type="render_job",
        aggregate_id=job_id,
        aggregate_version=1,
    )
    log.info("render job queued", extra={"job_id": job_id})
