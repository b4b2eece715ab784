"""The render worker: the consumer of repogen.render_job.queued (the render queue).

One attempt of a job:
1. start (its own short transaction, committed at once so the monitor sees it): the job is
   locked; a SUCCEEDED or DEAD job, or one already ended as superseded, is left alone (a
   redelivery); a job whose snapshot is no longer the work order's current one, or whose
   work order is no longer READY_FOR_RENDER, ends FAILED with the reason (SUPERSEDED) and is
   not retried; otherwise it is RUNNING, attempts + 1.
2. render (no transaction held but the consumer's): the export bundle is read in one
   REPEATABLE READ snapshot (export.bundle), the report context built from it, the DOCX
   rendered by docxtpl in a worker thread, the PDF converted when a converter is on PATH, and
   the bundle, DOCX and PDF written to the artifact storage under deterministic keys (a
   retry overwrites its own earlier objects, never another job's).
3. finish, in the consumer's transaction (its inbox row commits with it): the artifact rows
   (hash, size, template id and version, bundle hash, storage driver and key), the pack's
   bundle hash, the job SUCCEEDED with its PDF note, and the work order RENDERED
   (work_orders.mark_rendered, which clears its last error) — unless the work order moved on
   while rendering, in which case the job ends superseded and its objects are deleted.
A failed attempt records FAILED (or DEAD on the last one) with the error on the job and on
the work order (last_error, audited) in its own transaction; FAILED is raised back to the
kit consumer, which retries after its backoff; DEAD is acknowledged: the monitor shows it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops.events.v1 import envelope_pb2
from zenops.events.v1 import repogen_pb2 as events
from zenops_kit.db import set_tenant, tenant_tx
from zenops_kit.errors import DomainError
from zenops_kit.events import unpack_payload
from zenops_kit.fields import is_uuid
from zenops_kit.server import Runtime
from zenops_kit.storage import Storage

from .. import artifacts, export, rules, work_orders
from ..domain import factory as domain
from ..domain import lifecycle
from ..store import factory as store
from ..store import work_orders as work_order_store
from . import render
from .context import from_bundle
from .jobs import ACTOR, span_trace_id

log = logging.getLogger("zenops.repogen.factory.worker")


class Superseded(Exception):
    """The job no longer applies (its snapshot or its work order's state moved on)."""


@dataclass(frozen=True)
class Produced:
    kind: str
    key: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class Rendered:
    bundle_sha256: str
    artifacts: list[Produced]
    pdf_note: str


def describe(exc: BaseException) -> str:
    if isinstance(exc, render.TemplateError):
        return str(exc)
    if isinstance(exc, DomainError):
        return f"{exc.reason}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


class RenderWorker:
    """`runtime`: answers the app's Runtime (the consumers start after it exists): its engine,
    its settings and the process's artifact storage (artifacts.files, closed by the app)."""

    def __init__(self, runtime: Callable[[], Runtime]) -> None:
        self._runtime = runtime

    @property
    def engine(self) -> AsyncEngine:
        return self._runtime().engine

    @property
    def settings(self):
        return self._runtime().settings

    @property
    def storage(self) -> Storage:
        return artifacts.files(self._runtime())

    async def handle(self, conn: AsyncConnection, env: envelope_pb2.EventEnvelope) -> None:
        p = unpack_payload(env, events.RenderJobQueued)
        parsed = domain.parse_job_id(p.job_id)
        if parsed is None or not is_uuid(env.tenant_id):
            log.warning("render job event with a malformed job id or no tenant", extra={"event_id": env.event_id})
            return
        tenant_id = env.tenant_id.lower()
        job = await self._start(tenant_id, p.job_id)
        if job is None:
            return
        try:
            result = await self._render(tenant_id, job)
            async with conn.begin_nested():  # a failure leaves nothing of the finish behind
                await self._finish(conn, tenant_id, job, result)
        except Superseded as why:
            await self._end_superseded(tenant_id, job, str(why))
        except Exception as exc:  # noqa: BLE001 - every failure of an attempt is recorded, then retried
            if not await self._failed(tenant_id, job, exc):
                raise
            # DEAD: acknowledged (the monitor and the work order's last_error show it)

    # -- 1. start ----------------------------------------------------------------------------

    async def _start(self, tenant_id: str, job_id: str):
        """The job, RUNNING with this attempt counted; None when there is nothing to do."""
        async with tenant_tx(self.engine, tenant_id) as conn:
            job = await store.job(conn, job_id, lock=True)
            if job is None:
                log.warning("render job not found", extra={"job_id": job_id})
                return None
            if job.status in domain.FINAL or (
                job.status == domain.FAILED and job.last_error.startswith(domain.SUPERSEDED)
            ):
                log.info("render job already ended", extra={"job_id": job_id, "status": job.status})
                return None
            work_order = await work_order_store.get(conn, job.work_order_id)
            why = domain.supersession(
                job_snapshot=job.snapshot_version,
                current_snapshot=work_order.snapshot_version if work_order else -1,
                status=work_order.status if work_order else "missing",
                ready_status=lifecycle.READY_FOR_RENDER,
            )
            if why is not None:
                await self._supersede(conn, tenant_id, job.id, job.work_order_id, why)
                return None
            started = await store.start_attempt(conn, job_id)
        log.info("render attempt started", extra={"job_id": job_id, "attempt": started.attempts})
        return _Job(
            id=job.id,
            work_order_id=job.work_order_id,
            snapshot_version=job.snapshot_version,
            pack_id=job.pack_id,
            template_id=job.template_id,
            template_version=job.template_version,
            pack_created_at=job.pack_created_at,
            attempt=started.attempts,
        )

    # -- 2. render ---------------------------------------------------------------------------

    @asynccontextmanager
    async def _snapshot(self, tenant_id: str) -> AsyncIterator[AsyncConnection]:
        """A REPEATABLE READ transaction of the tenant: the bundle is read from one state."""
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                await set_tenant(conn, tenant_id)
                yield conn

    async def _render(self, tenant_id: str, job: _Job) -> Rendered:
        async with self._snapshot(tenant_id) as conn:
            data, sha = await export.bundle(conn, job.work_order_id)
        bundle = json.loads(data, parse_float=Decimal)
        if int(bundle["snapshot"]["version"]) != job.snapshot_version:
            raise Superseded(
                f"{domain.SUPERSEDED}: the work order moved on to snapshot "
                f"{bundle['snapshot']['version']} before this job rendered snapshot "
                f"{job.snapshot_version}"
            )
        template = rules.template(job.template_id)
        if template is None or template.version != job.template_version:
            raise render.TemplateError(
                f"report template {job.template_id} version {job.template_version} is not in the template registry"
            )
        context = from_bundle(bundle, sha, template)
        docx = await render.render_docx(
            template.id, template.version, context, templates_dir=self.settings.report_templates_dir
        )
        pdf = await render.to_pdf(
            docx, converter=self.settings.pdf_converter, limit_seconds=self.settings.pdf_timeout_seconds
        )
        contents = [(domain.EXPORT_BUNDLE, data), (domain.DOCX, docx)]
        if pdf.pdf is not None:
            contents.append((domain.PDF, pdf.pdf))
        produced = []
        for kind, content in contents:
            key = domain.artifact_key(tenant_id, job.work_order_id, job.snapshot_version, kind, job.pack_created_at)
            stat = await self.storage.put(key, content, content_type=domain.CONTENT_TYPES[kind])
            produced.append(Produced(kind=kind, key=key, size_bytes=stat.size_bytes, sha256=stat.sha256))
        return Rendered(bundle_sha256=sha, artifacts=produced, pdf_note=pdf.note)

    # -- 3. finish ---------------------------------------------------------------------------

    async def _finish(self, conn: AsyncConnection, tenant_id: str, job: _Job, result: Rendered) -> None:
        current = await store.job(conn, job.id, lock=True)
        if current is None or current.status != domain.RUNNING:
            log.info("render job ended elsewhere meanwhile", extra={"job_id": job.id})
            return
        work_order = await work_order_store.get(conn, job.work_order_id, lock=True)
        why = domain.supersession(
            job_snapshot=job.snapshot_version,
            current_snapshot=work_order.snapshot_version if work_order else -1,
            status=work_order.status if work_order else "missing",
            ready_status=lifecycle.READY_FOR_RENDER,
        )
        if why is not None:
            await self._supersede(conn, tenant_id, job.id, job.work_order_id, why)
            await self._discard(result)
            return
        for item in result.artifacts:
            await store.insert_artifact(
                conn,
                tenant_id=tenant_id,
                work_order_id=job.work_order_id,
                pack_id=job.pack_id,
                snapshot_version=job.snapshot_version,
                kind=item.kind,
                content_type=domain.CONTENT_TYPES[item.kind],
                filename=domain.artifact_filename(job.work_order_id, job.snapshot_version, item.kind),
                size_bytes=item.size_bytes,
                sha256=item.sha256,
                template_id=job.template_id,
                template_version=job.template_version,
                bundle_sha256=result.bundle_sha256,
                driver=self.storage.driver,
                key=item.key,
            )
        await store.set_pack_bundle(conn, job.pack_id, result.bundle_sha256)
        await store.finish(conn, job.id, status=domain.SUCCEEDED, pdf_note=result.pdf_note)
        await work_orders.mark_rendered(
            conn,
            work_order_id=job.work_order_id,
            snapshot_version=job.snapshot_version,
            actor=ACTOR,
            trace_id=span_trace_id(),
            detail={
                "job_id": job.id,
                "bundle_sha256": result.bundle_sha256,
                "artifacts": {a.kind: a.sha256 for a in result.artifacts},
                "pdf_note": result.pdf_note,
            },
        )
        log.info(
            "render job succeeded",
            extra={"job_id": job.id, "attempt": job.attempt, "artifacts": [a.kind for a in result.artifacts]},
        )

    async def _end_superseded(self, tenant_id: str, job: _Job, why: str) -> None:
        async with tenant_tx(self.engine, tenant_id) as conn:
            await self._supersede(conn, tenant_id, job.id, job.work_order_id, why)

    @staticmethod
    async def _supersede(conn: AsyncConnection, tenant_id: str, job_id: str, work_order_id: str, why: str) -> None:
        """The job ends FAILED without rendering (not retried), audited on its work order."""
        await store.finish(conn, job_id, status=domain.FAILED, error=why)
        if await work_order_store.get(conn, work_order_id) is not None:
            await work_order_store.record(
                conn,
                tenant_id=tenant_id,
                work_order_id=work_order_id,
                kind="render_job.superseded",
                actor=ACTOR,
                trace_id=span_trace_id(),
                reason=why[:1000],
                detail={"job_id": job_id},
            )
        log.info("render job superseded", extra={"job_id": job_id, "reason": why})

    async def _discard(self, result: Rendered) -> None:
        for item in result.artifacts:
            try:
                await self.storage.delete(item.key)
            except DomainError as err:  # an orphan object names no row; nothing refers to it
                log.warning("could not delete a superseded artifact", extra={"key": item.key, "reason": err.reason})

    async def _failed(self, tenant_id: str, job: _Job, exc: BaseException) -> bool:
        """Records the failed attempt; True when the job is now DEAD."""
        outcome = domain.failed_attempt(job.attempt, self.settings.render_max_attempts, describe(exc))
        log.warning(
            "render attempt failed",
            extra={"job_id": job.id, "attempt": job.attempt, "status": outcome.status, "error": outcome.error},
        )
        async with tenant_tx(self.engine, tenant_id) as conn:
            await store.finish(conn, job.id, status=outcome.status, error=outcome.error)
            await work_orders.record_factory_error(
                conn,
                work_order_id=job.work_order_id,
                actor=ACTOR,
                trace_id=span_trace_id(),
                error=f"render job {job.id} {outcome.status.lower()}: {outcome.error}",
                detail={"job_id": job.id, "attempt": job.attempt, "status": outcome.status},
            )
        return outcome.dead


@dataclass(frozen=True)
class _Job:
    id: str
    work_order_id: str
    snapshot_version: int
    pack_id: str
    template_id: str
    template_version: int
    pack_created_at: object
    attempt: int
