"""A client for ops' documents RPCs under test, with the rows they link to.

Channels, channel requests and assignments are inserted with SQL through the service's own
engine (RLS applies: the harness tenant), so these tests do not depend on other areas' RPCs.

    async with running_docs(start_service, storage_dir=tmp_path) as h:
        doc = await h.upload(b"%PDF-1.7 ...", links=pb.DocumentLinks(assignment_id=await h.assignment()))
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from contextlib import asynccontextmanager

import grpc
from sqlalchemy import text

from zenops.ops.v1 import ops_pb2 as pb
from zenops.ops.v1 import ops_pb2_grpc
from zenops_devstack.testing import TokenSigner
from zenops_kit.db import tenant_tx
from zenops_kit.errors import ErrorDetail, parse_rpc_error
from zenops_kit.storage import CHUNK_BYTES

# Staff who handle KYC and title deeds (ops managers, valuers, HR).
STAFF_CAPS = ("documents.read", "documents.write", "documents.read_sensitive")
# Staff without documents.read_sensitive (e.g. accounts reading payment proofs).
PLAIN_CAPS = ("documents.read", "documents.write")
# A channel partner's portal user (identity's portal_user role).
PORTAL_CAPS = ("channel_requests.read", "channel_requests.write", "documents.read", "documents.write")

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
FILES_PREFIX = "/v1/files/"

_REFERENCES = itertools.count(1)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def url_token(url: str) -> str:
    assert url.startswith(FILES_PREFIX), url
    return url.removeprefix(FILES_PREFIX)


class Docs:
    def __init__(self, app, channel: grpc.aio.Channel, signer: TokenSigner) -> None:
        self.app = app
        self.stub = ops_pb2_grpc.OpsServiceStub(channel)
        self.engine = app.runtime.engine
        self.settings = app.settings
        self.signer = signer
        self.tenant = str(uuid.uuid4())
        self.external_tenant = str(uuid.uuid4())
        self.staff_id = str(uuid.uuid4())
        self.staff = self.token()

    # -- tokens ---------------------------------------------------------------------------------

    def token(self, caps=STAFF_CAPS, *, sub: str | None = None) -> str:
        return self.signer.token(aud="web", caps=list(caps), tid=self.tenant, sub=sub or self.staff_id)

    def portal(self, channel_id: str, caps=PORTAL_CAPS, *, sub: str | None = None) -> str:
        return self.signer.token(
            aud="portal",
            caps=list(caps),
            tid=self.external_tenant,
            channel_id=channel_id,
            roles=["portal_user"],
            sub=sub or str(uuid.uuid4()),
        )

    # -- calls ----------------------------------------------------------------------------------

    async def call(self, method: str, request, token: str | None = None):
        metadata = (("authorization", f"Bearer {token or self.staff}"),)
        return await getattr(self.stub, method)(request, metadata=metadata, timeout=30)

    async def fails(self, method: str, request, token: str | None = None) -> ErrorDetail:
        try:
            await self.call(method, request, token)
        except grpc.aio.AioRpcError as exc:
            return parse_rpc_error(exc)
        raise AssertionError(f"{method} succeeded")

    # -- rows other areas own (SQL, under the harness tenant) -----------------------------------

    async def sql(self, statement: str, params: dict | None = None) -> list:
        async with tenant_tx(self.engine, self.tenant) as conn:
            result = await conn.execute(text(statement), params or {})
            return list(result) if result.returns_rows else []

    async def channel(self) -> str:
        channel_id = str(uuid.uuid4())
        await self.sql(
            "INSERT INTO channels (id, tenant_id, name, channel_type, commission_mode, created_by) "
            "VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), :name, 'AGENT', 'FLAT', 'test')",
            {"id": channel_id, "tid": self.tenant, "name": f"Partner {channel_id[:8]}"},
        )
        await self.sql(
            "INSERT INTO channel_directory (channel_id, tenant_id) VALUES (CAST(:id AS uuid), CAST(:tid AS uuid))",
            {"id": channel_id, "tid": self.tenant},
        )
        return channel_id

    async def channel_request(self, channel_id: str) -> str:
        request_id = str(uuid.uuid4())
        await self.sql(
            "INSERT INTO channel_requests (id, tenant_id, channel_id, borrower_name, property, requested_service, "
            "credits, submitted_by) VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), CAST(:ch AS uuid), "
            "'Asha Rao', '{\"city\": \"Pune\"}', 'valuation_report', 1, 'portal-user')",
            {"id": request_id, "tid": self.tenant, "ch": channel_id},
        )
        return request_id

    async def assignment(self, channel_id: str | None = None) -> str:
        assignment_id = str(uuid.uuid4())
        await self.sql(
            "INSERT INTO assignments (id, tenant_id, reference_number, source_type, channel_id, created_by) "
            "VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), :ref, :source, CAST(:ch AS uuid), 'test')",
            {
                "id": assignment_id,
                "tid": self.tenant,
                "ref": f"ZA-2026-{next(_REFERENCES):06d}",
                "source": "CHANNEL" if channel_id else "BANK",
                "ch": channel_id,
            },
        )
        return assignment_id

    # -- documents --------------------------------------------------------------------------------

    def presign_request(self, data: bytes = PDF, **fields) -> pb.PresignUploadRequest:
        fields.setdefault("filename", "sale-deed.pdf")
        fields.setdefault("content_type", "application/pdf")
        fields.setdefault("size_bytes", len(data))
        fields.setdefault("sha256", sha256(data))
        fields.setdefault("source", pb.DOCUMENT_SOURCE_DESKTOP_UPLOAD)
        fields.setdefault("classification", pb.DOCUMENT_CLASSIFICATION_LEGAL)
        if "links" not in fields:
            fields["links"] = pb.DocumentLinks(work_order_id=str(uuid.uuid4()))
        return pb.PresignUploadRequest(**fields)

    async def presign(self, data: bytes = PDF, token: str | None = None, **fields) -> pb.PresignUploadResponse:
        return await self.call("PresignUpload", self.presign_request(data, **fields), token)

    async def put_local(self, token: str, data: bytes, *, chunk: int = CHUNK_BYTES) -> int:
        async def messages():
            yield pb.PutLocalObjectRequest(token=token, data=data[:chunk])
            for start in range(chunk, len(data), chunk):
                yield pb.PutLocalObjectRequest(data=data[start : start + chunk])

        return (await self.stub.PutLocalObject(messages(), timeout=30)).size_bytes

    async def put_local_fails(self, token: str, data: bytes, **kwargs) -> ErrorDetail:
        try:
            await self.put_local(token, data, **kwargs)
        except grpc.aio.AioRpcError as exc:
            return parse_rpc_error(exc)
        raise AssertionError("PutLocalObject succeeded")

    async def get_local(self, token: str) -> tuple[pb.GetLocalObjectResponse, list[bytes]]:
        messages = [m async for m in self.stub.GetLocalObject(pb.GetLocalObjectRequest(token=token), timeout=30)]
        return messages[0], [m.data for m in messages[1:]]

    async def get_local_fails(self, token: str) -> ErrorDetail:
        try:
            await self.get_local(token)
        except grpc.aio.AioRpcError as exc:
            return parse_rpc_error(exc)
        raise AssertionError("GetLocalObject succeeded")

    async def confirm(self, document_id: str, token: str | None = None) -> pb.Document:
        return (await self.call("ConfirmUpload", pb.ConfirmUploadRequest(id=document_id), token)).document

    async def upload(self, data: bytes = PDF, token: str | None = None, **fields) -> pb.Document:
        """presign → PutLocalObject → confirm, as one caller."""
        signed = await self.presign(data, token, **fields)
        await self.put_local(url_token(signed.upload_url), data)
        return await self.confirm(signed.document.id, token)

    async def listed(self, token: str | None = None, **fields) -> list[str]:
        response = await self.call("ListDocuments", pb.ListDocumentsRequest(**fields), token)
        return [d.id for d in response.documents]


@asynccontextmanager
async def running_docs(start_service, **settings):
    """ops running with `settings` (e.g. storage_dir), and a Docs client for it."""
    signer = TokenSigner()
    settings = {k: str(v) if k == "storage_dir" else v for k, v in settings.items()}
    async with start_service("ops", verifier=signer.verifier(), **settings) as app:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield Docs(app, channel, signer)
