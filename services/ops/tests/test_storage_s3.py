"""Documents on the S3 driver against a real S3 wire-protocol server (moto's server mode, a
child process, zenops_devstack.s3): presigned PUT and GET over real HTTP (httpx), confirm reading
the object back from the store; nothing mocked in Python."""

from __future__ import annotations

import base64
import hashlib
import uuid
from urllib.parse import urlsplit

import grpc
import httpx
import pytest
from botocore.exceptions import ClientError
from documents_harness import PDF, running_docs, sha256

from zenops.ops.v1 import ops_pb2 as pb


@pytest.fixture
def docs(start_service, s3_server, s3_bucket, tmp_path):
    return lambda **settings: running_docs(
        start_service, storage_dir=tmp_path / "unused", **s3_server.settings(s3_bucket), **settings
    )


def photo(size: int = 300_000) -> bytes:
    return (hashlib.sha256(b"site photo").digest() * (size // 32 + 1))[:size]


async def stored_key(h, document_id: str) -> str:
    rows = await h.sql(
        "SELECT storage_key, storage_driver FROM documents WHERE id = CAST(:id AS uuid)", {"id": document_id}
    )
    assert rows[0].storage_driver == "s3"
    return rows[0].storage_key


def exists(s3_server, bucket: str, key: str) -> bool:
    try:
        s3_server.client().head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True


async def test_upload_confirm_download_round_trip_over_http(docs, s3_server, s3_bucket):
    data = photo()
    async with docs() as h, httpx.AsyncClient(timeout=30) as http:
        assignment = await h.assignment(await h.channel())
        signed = await h.presign(
            data,
            filename="front elevation.jpg",
            content_type="image/jpeg",
            classification=pb.DOCUMENT_CLASSIFICATION_SITE_PHOTO,
            source=pb.DOCUMENT_SOURCE_MOBILE_CAMERA,
            links=pb.DocumentLinks(assignment_id=assignment),
        )
        doc = signed.document
        key = await stored_key(h, doc.id)
        assert key.startswith(f"tenant/{h.tenant}/") and key.endswith(f"/{doc.id}/front_elevation.jpg")

        # The URL points at the store itself, signed for this object, type, length and digest.
        url = urlsplit(signed.upload_url)
        assert f"{url.scheme}://{url.netloc}" == s3_server.endpoint_url
        assert url.path == f"/{s3_bucket}/{key}"
        assert "X-Amz-Signature=" in url.query and signed.upload_method == "PUT"
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        assert dict(signed.upload_headers) == {
            "content-type": "image/jpeg",
            "content-length": str(len(data)),
            "x-amz-checksum-sha256": checksum,
        }
        put = await http.put(signed.upload_url, content=data, headers=dict(signed.upload_headers))
        assert put.status_code == 200, put.text

        confirmed = await h.confirm(doc.id)
        assert confirmed.status == pb.DOCUMENT_STATUS_UPLOADED and confirmed.HasField("uploaded_at")
        assert await h.confirm(doc.id) == confirmed

        download = await h.call("PresignDownload", pb.PresignDownloadRequest(id=doc.id))
        assert download.url.startswith(f"{s3_server.endpoint_url}/{s3_bucket}/") and download.HasField("expires_at")
        got = await http.get(download.url)
        assert got.status_code == 200 and got.content == data
        assert got.headers["content-type"] == "image/jpeg"
        assert got.headers["content-disposition"] == 'attachment; filename="front_elevation.jpg"'

        # The local driver's signed-URL RPCs are not served while files live in S3.
        refused = await h.put_local_fails("any-token", data)
        assert (refused.code, refused.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LOCAL_STORAGE_DISABLED")


async def test_a_wrong_object_is_refused_deleted_and_can_be_replaced(docs, s3_server, s3_bucket):
    data = photo()
    async with docs() as h, httpx.AsyncClient(timeout=30) as http:
        signed = await h.presign(data, filename="kyc.pdf")
        doc_id, key = signed.document.id, await stored_key(h, signed.document.id)

        missing = await h.fails("ConfirmUpload", pb.ConfirmUploadRequest(id=doc_id))
        assert (missing.code, missing.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "OBJECT_MISSING")

        # Our test store does not check the signed checksum; confirm reads what is stored.
        forged = bytes(reversed(data))
        headers = {**signed.upload_headers}
        assert (await http.put(signed.upload_url, content=forged, headers=headers)).status_code == 200
        wrong = await h.fails("ConfirmUpload", pb.ConfirmUploadRequest(id=doc_id))
        assert (wrong.code, wrong.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CHECKSUM_MISMATCH")
        assert [v.field for v in wrong.violations] == ["sha256"]
        assert wrong.metadata["uploaded"] == sha256(forged)
        assert not exists(s3_server, s3_bucket, key)
        got = (await h.call("GetDocument", pb.GetDocumentRequest(id=doc_id))).document
        assert got.status == pb.DOCUMENT_STATUS_PENDING

        # An object of another size (written around the presigned URL) is refused too.
        s3_server.client().put_object(Bucket=s3_bucket, Key=key, Body=data[:-1])
        short = await h.fails("ConfirmUpload", pb.ConfirmUploadRequest(id=doc_id))
        assert (short.reason, [v.field for v in short.violations]) == ("SIZE_MISMATCH", ["size_bytes"])
        assert not exists(s3_server, s3_bucket, key)

        assert (await http.put(signed.upload_url, content=data, headers=headers)).status_code == 200
        assert (await h.confirm(doc_id)).status == pb.DOCUMENT_STATUS_UPLOADED


async def test_the_stores_own_checksum_is_used_when_it_keeps_one(docs, s3_server, s3_bucket):
    """Objects the store keeps a full-object SHA-256 for (uploaded with a checksum algorithm):
    confirm compares that checksum."""
    data = photo(50_000)
    async with docs() as h:
        client = s3_server.client()
        for body, outcome in [(bytes(reversed(data)), "CHECKSUM_MISMATCH"), (data, "OK")]:
            signed = await h.presign(data, filename="plan.pdf", classification=pb.DOCUMENT_CLASSIFICATION_APPROVAL_PLAN)
            key = await stored_key(h, signed.document.id)
            client.put_object(Bucket=s3_bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256")
            head = client.head_object(Bucket=s3_bucket, Key=key, ChecksumMode="ENABLED")
            assert base64.b64decode(head["ChecksumSHA256"]).hex() == sha256(body)
            if outcome == "OK":
                assert (await h.confirm(signed.document.id)).status == pb.DOCUMENT_STATUS_UPLOADED
            else:
                refused = await h.fails("ConfirmUpload", pb.ConfirmUploadRequest(id=signed.document.id))
                assert refused.reason == outcome


async def test_portal_isolation_and_sensitivity_hold_on_s3(docs, s3_bucket):
    async with docs() as h, httpx.AsyncClient(timeout=30) as http:
        ours, theirs = await h.channel(), await h.channel()
        request = await h.channel_request(ours)
        partner, other = h.portal(ours), h.portal(theirs)
        signed = await h.presign(
            PDF, partner, links=pb.DocumentLinks(channel_request_id=request), sensitivity=pb.SENSITIVITY_PUBLIC
        )
        await http.put(signed.upload_url, content=PDF, headers=dict(signed.upload_headers))
        doc = await h.confirm(signed.document.id, partner)
        assert doc.source == pb.DOCUMENT_SOURCE_DESKTOP_UPLOAD and doc.channel_id == ours

        url = (await h.call("PresignDownload", pb.PresignDownloadRequest(id=doc.id), partner)).url
        assert (await http.get(url)).content == PDF
        refused = await h.fails("PresignDownload", pb.PresignDownloadRequest(id=doc.id), other)
        assert (refused.code, refused.reason) == (grpc.StatusCode.NOT_FOUND, "DOCUMENT_NOT_FOUND")
        assert await h.listed(other) == []

        kyc = await h.presign(
            PDF, links=pb.DocumentLinks(employee_id=str(uuid.uuid4())), sensitivity=pb.SENSITIVITY_PII
        )
        await http.put(kyc.upload_url, content=PDF, headers=dict(kyc.upload_headers))
        await h.confirm(kyc.document.id)
        refused = await h.fails(
            "PresignDownload", pb.PresignDownloadRequest(id=kyc.document.id), h.token(caps=("documents.read",))
        )
        assert (refused.code, refused.reason) == (grpc.StatusCode.PERMISSION_DENIED, "SENSITIVE_DOCUMENT")
