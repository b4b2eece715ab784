"""RPCs of the factory's outputs and the queue monitor: proto ↔ use cases (artifacts.py,
monitor.py). ListArtifacts, PresignArtifactDownload and ListMonitor need repogen.read;
GetLocalObject is public (its signed token is the authorisation: app.PUBLIC_METHODS)."""

from __future__ import annotations

from sqlalchemy.engine import Row

from zenops.common.v1 import common_pb2
from zenops.repogen.v1 import repogen_pb2 as pb
from zenops_kit.fields import choice

from .. import artifacts, monitor
from ..domain import factory as domain
from .caller import caller
from .translate import STATUS_OF, ts, work_order_pb

READ = "repogen.read"
JOB_STATUS_PB = {status: pb.JobStatus.Value(f"JOB_STATUS_{status}") for status in domain.JOB_STATUSES}


def artifact_pb(row: Row) -> pb.Artifact:
    a = pb.Artifact(
        id=row.id,
        work_order_id=row.work_order_id,
        snapshot_version=row.snapshot_version,
        kind=row.kind,
        content_type=row.content_type,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        template_id=row.template_id,
        template_version=row.template_version,
        bundle_sha256=row.bundle_sha256,
        filename=row.filename,
    )
    ts(a.created_at, row.created_at)
    return a


def job_pb(row: Row) -> pb.RenderJob:
    j = pb.RenderJob(
        id=row.id,
        work_order_id=row.work_order_id,
        snapshot_version=row.snapshot_version,
        status=JOB_STATUS_PB[row.status],
        attempts=row.attempts,
        last_error=row.last_error,
        pdf_note=row.pdf_note,
    )
    ts(j.created_at, row.created_at)
    ts(j.finished_at, row.finished_at)
    return j


class FactoryRpcs:
    """Mixed into RepogenServicer (self.engine, self.runtime, self.settings)."""

    async def ListArtifacts(self, request, context):
        c = await caller(self.engine, context, READ)
        listing = await artifacts.list_artifacts(self.engine, c, domain.work_order_id(request.work_order_id))
        return pb.ListArtifactsResponse(
            artifacts=[artifact_pb(r) for r in listing.artifacts], jobs=[job_pb(r) for r in listing.jobs]
        )

    async def PresignArtifactDownload(self, request, context):
        c = await caller(self.engine, context, READ)
        signed = await artifacts.presign_download(
            self.engine,
            artifacts.files(self.runtime),
            c,
            domain.artifact_id(request.artifact_id),
            ttl_seconds=self.settings.signed_url_ttl_seconds,
        )
        response = pb.PresignArtifactDownloadResponse(url=signed.url)
        ts(response.expires_at, signed.expires_at)
        return response

    async def GetLocalObject(self, request, context):
        async for message in artifacts.get_local_object(artifacts.files(self.runtime), request.token):
            yield message

    async def ListMonitor(self, request, context):
        c = await caller(self.engine, context, READ)
        result = await monitor.list_monitor(
            self.engine,
            c,
            statuses=sorted({choice(s, "statuses", STATUS_OF) for s in request.statuses}),
            limit=request.page.limit,
            cursor=request.page.cursor,
        )
        rows = []
        for r in result.rows:
            row = pb.MonitorRow(
                work_order=work_order_pb(r.work_order),
                readiness_score=r.readiness_score,
                billing_gate=r.billing_gate,
                last_error=r.last_error,
            )
            if r.job_status is not None:
                row.job_status = JOB_STATUS_PB[r.job_status]
            rows.append(row)
        return pb.ListMonitorResponse(
            rows=rows, page=common_pb2.PageInfo(next_cursor=result.next_cursor), counts=result.counts
        )
