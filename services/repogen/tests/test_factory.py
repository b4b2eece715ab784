"""The factory against the real repogen (its relay and consumers on the real NATS JetStream),
the real ops beside it and real storage (local disk; moto's S3 server for the S3 driver):

- READY_FOR_RENDER → one pack and one job `<work_order>:<snapshot>`, even when the trigger
  comes twice (redelivered, and re-emitted under another event id);
- the job renders: the export bundle, the DOCX (its text carries the FMV in figures and in
  words, worked by hand below) and the PDF when LibreOffice is on the machine (else the job
  says so); each artifact's hash and size match the stored bytes; the work order is RENDERED;
- a render that keeps failing (its template is missing) is retried and ends DEAD, on the job,
  the work order's last error and the monitor;
- a job for a snapshot that is no longer current ends without rendering, saying why;
- downloads through signed URLs (local: GetLocalObject with the token; S3: the store itself).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import httpx
import pytest
from factory_harness import (
    docx_text,
    factory_suite,
    finished_job,
    listing,
    local_download,
    local_download_fails,
    ready_work_order,
)

from zenops.events.v1 import repogen_pb2 as events
from zenops.ops.v1 import ops_pb2 as opb
from zenops.repogen.v1 import repogen_pb2 as pb
from zenops_devstack.testing import poll
from zenops_kit.db import tenant_tx
from zenops_kit.events import subject_for
from zenops_repogen import outbox
from zenops_repogen.factory import RENDER_CONSUMER, TRIGGER_CONSUMER
from zenops_repogen.factory.render import converter_path

# The harness's FULL_CONTRACT, worked by hand: one line of 1,000 sq ft carpet = 92.90304 sq m →
# 92.90 sq m (half-up) × ₹1,50,000 per sq m = ₹1,39,35,000, plus car parking ₹2,00,000.
FMV = 14_135_000
FMV_FIGURES = "₹1,41,35,000"
FMV_WORDS = "Rupees One Crore Forty-One Lakh Thirty-Five Thousand Only"
REALISABLE_FIGURES = "₹1,34,28,250"  # 95 %
DISTRESS_FIGURES = "₹1,13,08,000"  # 80 %


EXTENSIONS = {"export_bundle": "json", "docx": "docx", "pdf": "pdf"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def consumer(h, name: str):
    return next(c for c in h.app.consumers if c.spec.name == name)


async def emit_ready(h, wo: pb.WorkOrder, snapshot_version: int) -> str:
    """Another repogen.work_order.ready_for_render of the work order (a new event id)."""
    async with tenant_tx(h.engine, h.tenant) as conn:
        return await outbox.emit(
            conn,
            event_type=outbox.WORK_ORDER_READY_FOR_RENDER,
            tenant_id=h.tenant,
            aggregate_type="work_order",
            aggregate_id=wo.id,
            aggregate_version=wo.version,
            payload=events.WorkOrderReadyForRender(work_order_id=wo.id, snapshot_version=snapshot_version),
        )


async def handled(h, consumer_name: str, event_id: str) -> None:
    async def seen():
        return await h.sql(
            "SELECT 1 FROM inbox WHERE consumer = :c AND event_id = CAST(:e AS uuid)",
            {"c": consumer_name, "e": event_id},
            tenant=None,
        )

    await poll(seen, timeout=30, what=f"{consumer_name} to handle {event_id}")


def stored(tmp_path: Path, key: str) -> bytes:
    return (tmp_path / "artifacts" / key).read_bytes()


@pytest.fixture
def suite(start_service, tmp_path):
    return lambda **kw: factory_suite(start_service, tmp_path, **kw)


async def test_ready_for_render_makes_one_job_that_renders_the_report(suite, tmp_path):
    async with suite() as h:
        wo = await ready_work_order(h)
        job = await finished_job(h, wo.id)
        assert job.status == pb.JOB_STATUS_SUCCEEDED, job.last_error
        assert (job.id, job.snapshot_version, job.attempts, job.last_error) == (
            f"{wo.id}:{wo.snapshot_version}",
            wo.snapshot_version,
            1,
            "",
        )
        rendered = await h.get(wo.id)
        assert (rendered.status, rendered.last_error) == (pb.WORK_ORDER_STATUS_RENDERED, "")
        audit = await h.audit(wo.id)
        assert audit[-1]["kind"] == "work_order.status_changed" and audit[-1]["to"] == "RENDERED"
        assert audit[-1]["detail"]["job_id"] == job.id

        # One pack, one job, one queued event.
        assert len(await h.sql("SELECT 1 FROM packs WHERE work_order_id = CAST(:id AS uuid)", {"id": wo.id})) == 1
        assert len(await h.outbox(outbox.RENDER_JOB_QUEUED)) == 1

        # The artifacts: bundle, DOCX and (LibreOffice on the machine) PDF, each as stored.
        listed = await listing(h, wo.id)
        assert [j.id for j in listed.jobs] == [job.id]
        kinds = {a.kind: a for a in listed.artifacts}
        has_converter = converter_path("soffice") is not None
        assert set(kinds) == ({"export_bundle", "docx", "pdf"} if has_converter else {"export_bundle", "docx"})
        if has_converter:
            assert job.pdf_note == ""
        else:
            assert "no PDF converter" in job.pdf_note
        bundle = await h.call("GetExportBundle", pb.GetExportBundleRequest(work_order_id=wo.id))
        rows = {
            r.kind: r
            for r in await h.sql(
                "SELECT kind, storage_driver, storage_key FROM artifacts WHERE work_order_id = CAST(:id AS uuid)",
                {"id": wo.id},
            )
        }
        for kind, artifact in kinds.items():
            row = rows[kind]
            data = stored(tmp_path, row.storage_key)
            assert (sha256(data), len(data)) == (artifact.sha256, artifact.size_bytes), kind
            assert row.storage_driver == "local"
            assert re.fullmatch(
                rf"tenant/{h.tenant}/[0-9]{{4}}/[0-9]{{2}}/{wo.id}/{wo.snapshot_version}-{kind}\."
                rf"{EXTENSIONS[kind]}",
                row.storage_key,
            ), row.storage_key
            assert (artifact.template_id, artifact.template_version) == ("SBI_UNDER_5CR_V1", 1)
            assert artifact.bundle_sha256 == bundle.sha256
            assert artifact.snapshot_version == wo.snapshot_version
        # The bundle the report came from is the export bundle, byte for byte.
        assert stored(tmp_path, rows["export_bundle"].storage_key) == bundle.bundle
        assert kinds["export_bundle"].sha256 == bundle.sha256
        pack = (
            await h.sql(
                "SELECT bundle_sha256, template_id FROM packs WHERE work_order_id = CAST(:id AS uuid)", {"id": wo.id}
            )
        )[0]
        assert (pack.bundle_sha256, pack.template_id) == (bundle.sha256, "SBI_UNDER_5CR_V1")

        # The report: the FMV in figures (Indian grouping) and in words, and the rest of the values.
        text = docx_text(stored(tmp_path, rows["docx"].storage_key))
        outputs = json.loads(bundle.bundle)["snapshot"]["outputs"]
        assert outputs["fair_market_value"] == FMV and outputs["fair_market_value_in_words"] == FMV_WORDS
        for expected in (
            FMV_FIGURES,
            FMV_WORDS,
            REALISABLE_FIGURES,
            DISTRESS_FIGURES,
            "Asha Patel",
            "SBIN0001234",
            "92.90",
            "1,000.00 sq ft",
            "BDR-1234-2019",
            "R. Kulkarni",
            "SBI_UNDER_5CR_V1",
            bundle.sha256,
            "Rates from recent registered sale deeds in the same society.",
        ):
            assert expected in text, expected
        assert "{{" not in text and "{%" not in text
        if has_converter:
            assert stored(tmp_path, rows["pdf"].storage_key).startswith(b"%PDF")


async def test_a_repeated_trigger_creates_no_second_job(suite):
    async with suite() as h:
        wo = await ready_work_order(h)
        job = await finished_job(h, wo.id)
        assert job.status == pb.JOB_STATUS_SUCCEEDED, job.last_error
        factory = consumer(h, TRIGGER_CONSUMER)
        before = (factory.stats.handled, factory.stats.duplicates)

        # The same envelope delivered again (as JetStream redelivers: another Nats-Msg-Id).
        original = (await h.outbox(outbox.WORK_ORDER_READY_FOR_RENDER))[-1]
        js = await h.app.runtime.bus.ready()
        await js.publish(
            subject_for(original.event_type),
            original.SerializeToString(),
            headers={"Nats-Msg-Id": f"redelivery-{uuid.uuid4()}"},
        )
        await poll(lambda: factory.stats.duplicates > before[1], timeout=30, what="the redelivery to be seen")
        # And the same trigger under a new event id.
        again = await emit_ready(h, await h.get(wo.id), wo.snapshot_version)
        await handled(h, TRIGGER_CONSUMER, again)

        jobs = await h.sql("SELECT id, status FROM render_jobs WHERE work_order_id = CAST(:id AS uuid)", {"id": wo.id})
        assert [(j.id, j.status) for j in jobs] == [(job.id, "SUCCEEDED")]
        assert len(await h.sql("SELECT 1 FROM packs WHERE work_order_id = CAST(:id AS uuid)", {"id": wo.id})) == 1
        assert len(await h.outbox(outbox.RENDER_JOB_QUEUED)) == 1
        assert (await listing(h, wo.id)).jobs[0].attempts == 1
        assert await h.sql("SELECT consumer, error FROM dead_letters", tenant=None) == []


async def test_a_job_for_an_outdated_snapshot_ends_without_rendering(suite):
    async with suite() as h:
        wo = await ready_work_order(h)
        await finished_job(h, wo.id)
        # A trigger for the snapshot before the current one: its job no longer applies.
        old = wo.snapshot_version - 1
        event_id = await emit_ready(h, await h.get(wo.id), old)
        await handled(h, TRIGGER_CONSUMER, event_id)
        job = await finished_job(h, wo.id, snapshot_version=old, statuses=(pb.JOB_STATUS_FAILED,))
        assert job.attempts == 0 and job.last_error.startswith("SUPERSEDED")
        assert f"at snapshot {wo.snapshot_version}" in job.last_error
        assert [a.snapshot_version for a in (await listing(h, wo.id)).artifacts] == [wo.snapshot_version] * len(
            (await listing(h, wo.id)).artifacts
        )
        got = await h.get(wo.id)
        assert (got.status, got.last_error) == (pb.WORK_ORDER_STATUS_RENDERED, "")
        trail = [(e["kind"], e["detail"].get("job_id")) for e in await h.audit(wo.id) if e["kind"].startswith("render")]
        assert trail == [
            ("render_job.queued", f"{wo.id}:{wo.snapshot_version}"),
            ("render_job.queued", job.id),
            ("render_job.superseded", job.id),
        ]


async def test_a_render_that_keeps_failing_is_retried_then_dead_and_visible(suite, tmp_path):
    empty = tmp_path / "no-templates"
    empty.mkdir()
    async with suite(report_templates_dir=str(empty), render_max_attempts=3, render_backoff_seconds=(0.2,)) as h:
        wo = await ready_work_order(h)
        job = await finished_job(h, wo.id)
        assert (job.status, job.attempts) == (pb.JOB_STATUS_DEAD, 3)
        assert job.last_error.startswith("attempt 3 of 3: report template SBI_UNDER_5CR_V1 is missing")
        assert (await listing(h, wo.id)).artifacts == []

        got = await h.get(wo.id)
        assert got.status == pb.WORK_ORDER_STATUS_READY_FOR_RENDER
        assert got.last_error.startswith(f"render job {job.id} dead: attempt 3 of 3")
        failures = [e for e in await h.audit(wo.id) if e["kind"] == "factory.failed"]
        assert [e["detail"]["status"] for e in failures] == ["FAILED", "FAILED", "DEAD"]
        assert [e["detail"]["attempt"] for e in failures] == [1, 2, 3]
        render = consumer(h, RENDER_CONSUMER)
        assert render.stats.failures == 2  # the DEAD attempt is acknowledged, not retried

        monitor = await h.call("ListMonitor", pb.ListMonitorRequest())
        row = next(r for r in monitor.rows if r.work_order.id == wo.id)
        assert (row.job_status, row.billing_gate) == (pb.JOB_STATUS_DEAD, "unknown")
        assert row.last_error == got.last_error and row.readiness_score == 100
        assert monitor.counts["ready_for_render"] == 1
        only_dead = await h.call("ListMonitor", pb.ListMonitorRequest(statuses=[pb.WORK_ORDER_STATUS_RENDERED]))
        assert only_dead.rows == []


async def test_artifact_downloads_through_local_signed_urls(suite, tmp_path):
    async with suite() as h:
        wo = await ready_work_order(h)
        await finished_job(h, wo.id)
        docx = next(a for a in (await listing(h, wo.id)).artifacts if a.kind == "docx")
        signed = await h.call(
            "PresignArtifactDownload",
            pb.PresignArtifactDownloadRequest(artifact_id=docx.id),
            h.token(("repogen.read",)),
        )
        assert signed.url.startswith("/v1/artifact-files/") and signed.HasField("expires_at")
        first, data = await local_download(h, signed.url)
        assert (first.content_type, first.filename, first.size_bytes) == (
            docx.content_type,
            docx.filename,
            docx.size_bytes,
        )
        assert docx.filename == f"valuation-report-{wo.id[:8]}-v{wo.snapshot_version}.docx"
        assert sha256(data) == docx.sha256
        audit = [e for e in await h.audit(wo.id) if e["kind"] == "artifact.download_signed"]
        assert audit[-1]["detail"]["artifact_id"] == docx.id

        token = signed.url.removeprefix("/v1/artifact-files/")
        payload, _, signature = token.partition(".")
        for bad in ("", "garbage", f"{payload}.{signature[:-2]}AA"):
            refused = await local_download_fails(h, bad)
            assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SIGNED_URL_INVALID")

        # An ops document URL signed with the same (default) key opens nothing here.
        ops_doc = await h.document()
        ops_url = (await h.ops_call("PresignDownload", opb.PresignDownloadRequest(id=ops_doc.id))).url
        refused = await local_download_fails(h, ops_url.rsplit("/", 1)[1])
        assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SIGNED_URL_INVALID")

        # Unknown or malformed ids, and callers without repogen.read.
        missing = await h.fails(
            "PresignArtifactDownload", pb.PresignArtifactDownloadRequest(artifact_id=str(uuid.uuid4()))
        )
        assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "ARTIFACT_NOT_FOUND")
        malformed = await h.fails("PresignArtifactDownload", pb.PresignArtifactDownloadRequest(artifact_id="x"))
        assert [v.field for v in malformed.violations] == ["artifact_id"]
        denied = await h.fails(
            "ListArtifacts", pb.ListArtifactsRequest(work_order_id=wo.id), h.token(("documents.read",))
        )
        assert denied.code == grpc.StatusCode.PERMISSION_DENIED
        other_tenant = await h.fails(
            "ListArtifacts", pb.ListArtifactsRequest(work_order_id=wo.id), h.token(tenant=str(uuid.uuid4()))
        )
        assert (other_tenant.code, other_tenant.reason) == (grpc.StatusCode.NOT_FOUND, "WORK_ORDER_NOT_FOUND")
        assert (
            await h.fails(
                "PresignArtifactDownload",
                pb.PresignArtifactDownloadRequest(artifact_id=docx.id),
                h.token(tenant=str(uuid.uuid4())),
            )
        ).reason == "ARTIFACT_NOT_FOUND"


async def test_artifacts_on_s3(start_service, tmp_path, s3_server, s3_bucket):
    async with (
        factory_suite(start_service, tmp_path, **s3_server.settings(s3_bucket)) as h,
        httpx.AsyncClient(timeout=30) as http,
    ):
        wo = await ready_work_order(h)
        job = await finished_job(h, wo.id)
        assert job.status == pb.JOB_STATUS_SUCCEEDED, job.last_error
        artifacts = (await listing(h, wo.id)).artifacts
        rows = {
            r.kind: r
            for r in await h.sql(
                "SELECT kind, storage_driver, storage_key FROM artifacts WHERE work_order_id = CAST(:id AS uuid)",
                {"id": wo.id},
            )
        }
        client = s3_server.client()
        for artifact in artifacts:
            row = rows[artifact.kind]
            assert row.storage_driver == "s3"
            body = client.get_object(Bucket=s3_bucket, Key=row.storage_key)["Body"].read()
            assert (sha256(body), len(body)) == (artifact.sha256, artifact.size_bytes)
        docx = next(a for a in artifacts if a.kind == "docx")
        assert "Rupees One Crore Forty-One Lakh Thirty-Five Thousand Only" in docx_text(
            client.get_object(Bucket=s3_bucket, Key=rows["docx"].storage_key)["Body"].read()
        )

        url = (await h.call("PresignArtifactDownload", pb.PresignArtifactDownloadRequest(artifact_id=docx.id))).url
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == s3_server.endpoint_url
        assert parts.path == f"/{s3_bucket}/{rows['docx'].storage_key}"
        got = await http.get(url)
        assert got.status_code == 200 and sha256(got.content) == docx.sha256
        assert got.headers["content-disposition"] == f'attachment; filename="{docx.filename}"'
        # The local driver's RPC is not served while artifacts live in S3.
        refused = await local_download_fails(h, "any-token")
        assert (refused.code, refused.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LOCAL_STORAGE_DISABLED")
