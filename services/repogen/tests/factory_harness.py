"""What the factory and release tests share: a repogen suite whose workers run (relay, the
factory's consumers), waiting for a work order's render job, reading a DOCX back, fetching an
artifact through the local driver's signed URL, and the REAL billing service beside them.

    async with factory_suite(start_service, tmp_path) as h:
        wo = await ready_work_order(h)
        job = await finished_job(h, wo.id)
"""

from __future__ import annotations

import io
import uuid
from contextlib import asynccontextmanager

import grpc
from docx import Document
from repogen_harness import running_suite

from zenops.billing.v1 import billing_pb2 as bpb
from zenops.billing.v1 import billing_pb2_grpc
from zenops.repogen.v1 import repogen_pb2 as pb
from zenops_devstack.testing import poll
from zenops_repogen.billing_client import install_billing_client
from zenops_repogen.domain import factory as domain

TERMINAL = (pb.JOB_STATUS_SUCCEEDED, pb.JOB_STATUS_DEAD)
BILLING_CAPS = ("billing.read", "billing.write", "billing.credits.write")


@asynccontextmanager
async def factory_suite(start_service, tmp_path, **overrides):
    """ops + repogen with its workers, artifacts on local disk under tmp_path (unless the
    overrides say otherwise)."""
    overrides.setdefault("storage_dir", str(tmp_path / "artifacts"))
    overrides.setdefault("run_workers", True)
    async with running_suite(start_service, tmp_path, **overrides) as h:
        yield h


async def ready_work_order(h, **create) -> pb.WorkOrder:
    """A work order of an SBI assignment, accepted, filled (harness FULL_CONTRACT), with its
    evidence, READY_FOR_RENDER."""
    wo = (await h.work_order("SBI", **create)).work_order
    return await h.make_ready(wo.id)


async def listing(h, work_order_id: str) -> pb.ListArtifactsResponse:
    return await h.call("ListArtifacts", pb.ListArtifactsRequest(work_order_id=work_order_id))


async def finished_job(
    h, work_order_id: str, *, snapshot_version: int | None = None, statuses=TERMINAL, timeout: float = 90
) -> pb.RenderJob:
    """The work order's job (of `snapshot_version`, default its current snapshot) once it is in
    one of `statuses`."""
    version = snapshot_version if snapshot_version is not None else (await h.get(work_order_id)).snapshot_version
    job_id = domain.job_id(work_order_id, version)

    last: list[pb.RenderJob | None] = [None]

    async def done():
        jobs = (await listing(h, work_order_id)).jobs
        last[0] = job = next((j for j in jobs if j.id == job_id), None)
        return job if job is not None and job.status in statuses else None

    try:
        return await poll(done, timeout=timeout, what=f"render job {job_id} to finish")
    except AssertionError as exc:
        job = last[0]
        state = "no job" if job is None else f"{pb.JobStatus.Name(job.status)} after {job.attempts}: {job.last_error}"
        raise AssertionError(f"{exc} ({state})") from None


def docx_text(data: bytes) -> str:
    """Every paragraph, table cell, header and footer of a DOCX, one per line."""
    doc = Document(io.BytesIO(data))
    lines = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        for row in table.rows:
            lines.extend(cell.text for cell in row.cells)
    for section in doc.sections:
        lines.extend(p.text for p in section.footer.paragraphs)
        lines.extend(p.text for p in section.header.paragraphs)
    return "\n".join(lines)


async def local_download(h, url: str) -> tuple[pb.GetLocalObjectResponse, bytes]:
    """GET of a local signed artifact URL, as the gateway makes it: GetLocalObject with the
    token and no bearer token. (first message, bytes)."""
    assert url.startswith("/v1/artifact-files/"), url
    token = url.removeprefix("/v1/artifact-files/")
    first, data = None, b""
    async for message in h.stub.GetLocalObject(pb.GetLocalObjectRequest(token=token), timeout=30):
        if first is None:
            first = message
        data += message.data
    return first, data


async def local_download_fails(h, token: str):
    from zenops_kit.errors import parse_rpc_error

    try:
        async for _ in h.stub.GetLocalObject(pb.GetLocalObjectRequest(token=token), timeout=30):
            pass
    except grpc.aio.AioRpcError as exc:
        return parse_rpc_error(exc)
    raise AssertionError("GetLocalObject succeeded")


class Billing:
    """The real billing service (same token signer as repogen and ops), with the calls the
    release tests make as an accounts user of the harness tenant."""

    def __init__(self, h, app, channel: grpc.aio.Channel) -> None:
        self.h = h
        self.app = app
        self.stub = billing_pb2_grpc.BillingServiceStub(channel)
        self.token = h.token(BILLING_CAPS)

    async def call(self, method: str, request):
        return await getattr(self.stub, method)(
            request, metadata=(("authorization", f"Bearer {self.token}"),), timeout=30
        )

    async def account(self, policy=bpb.BILLING_POLICY_CREDIT, credits: int = 0) -> bpb.Account:
        account = (
            await self.call(
                "CreateAccount", bpb.CreateAccountRequest(display_name=f"Partner {uuid.uuid4().hex[:6]}", policy=policy)
            )
        ).account
        if credits:
            await self.call(
                "GrantCredits", bpb.GrantCreditsRequest(account_id=account.id, amount=credits, reason="opening balance")
            )
        return account

    async def reserve(self, account_id: str, amount: int, work_order_id: str) -> bpb.Reservation:
        return (
            await self.call(
                "ReserveCredits",
                bpb.ReserveCreditsRequest(
                    account_id=account_id, amount=amount, ref_type="work_order", ref_id=work_order_id
                ),
            )
        ).reservation

    async def reservation(self, account_id: str, reservation_id: str) -> bpb.Reservation:
        listed = await self.call("ListReservations", bpb.ListReservationsRequest(account_id=account_id))
        return next(r for r in listed.reservations if r.id == reservation_id)

    async def wallet(self, account_id: str) -> bpb.Wallet:
        return (await self.call("GetAccount", bpb.GetAccountRequest(id=account_id))).account.wallet


@asynccontextmanager
async def running_billing(start_service, h):
    """Billing trusting the harness's signer (no workers: its reactions to repogen's events are
    not what these tests look at), and repogen asking it from now on."""
    async with start_service("billing", verifier=h.signer.verifier(), run_workers=False) as app:
        install_billing_client(h.app.runtime, billing_addr=f"127.0.0.1:{app.port}")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield Billing(h, app, channel)
