"""The factory: report packs, render jobs and the rendering of the bank's report.

    repogen.work_order.ready_for_render ──(consumer repogen-factory: jobs.py)──▶ pack + job QUEUED
        └─▶ repogen.render_job.queued ──(consumer repogen-render: worker.py, the work queue)──▶
            RUNNING → SUCCEEDED (artifacts stored, work order RENDERED) | FAILED (retried) | DEAD

- `jobs.py`: the trigger (idempotent: one pack and one job per work order and snapshot);
- `worker.py`: one attempt of a job (bundle → context → DOCX → PDF → storage → rows);
- `context.py`: the export bundle as the templates' context (pure);
- `render.py`: docxtpl and LibreOffice (the PDF, when the machine has it);
- `settings.py`: FactorySettings (storage, templates, retries, PDF converter).

The app wires it (app.py):

    subscriptions=[..., *factory.subscriptions(settings, runtime=lambda: app.runtime)]

and at stop closes the artifact storage with `close_factory(runtime)`.
"""

from __future__ import annotations

from collections.abc import Callable

from zenops_kit.events import ConsumerSpec, subject_for
from zenops_kit.server import Runtime, Subscription
from zenops_kit.storage import close_storage

from .. import outbox
from .jobs import on_ready_for_render
from .worker import RenderWorker

TRIGGER_CONSUMER = "repogen-factory"
RENDER_CONSUMER = "repogen-render"


def subscriptions(settings, *, runtime: Callable[[], Runtime]) -> list[Subscription]:
    """The two consumers of the factory (on repogen's own stream); `runtime` answers the app's
    Runtime once started."""
    worker = RenderWorker(runtime)
    render_spec = ConsumerSpec(
        name=RENDER_CONSUMER,
        producer="repogen",
        subjects=(subject_for(outbox.RENDER_JOB_QUEUED),),
        max_deliver=settings.render_max_attempts,
        backoff=tuple(settings.render_backoff_seconds),
        ack_wait=settings.render_ack_wait_seconds,
        batch=1,
        max_ack_pending=16,
    )
    return [
        Subscription(
            ConsumerSpec(
                name=TRIGGER_CONSUMER, producer="repogen", subjects=(subject_for(outbox.WORK_ORDER_READY_FOR_RENDER),)
            ),
            on_ready_for_render,
        ),
        Subscription(render_spec, worker.handle),
    ]


async def close_factory(runtime) -> None:
    """Release the artifact storage (its boto3 client) at stop."""
    await close_storage(runtime)


__all__ = ["RENDER_CONSUMER", "TRIGGER_CONSUMER", "RenderWorker", "close_factory", "subscriptions"]
