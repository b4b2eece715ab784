"""Documents on the local-disk driver: presign → PutLocalObject → confirm → presign download →
GetLocalObject through the real service (PostgreSQL, gRPC), with its signed-URL, validation,
isolation and sensitivity rules."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from pathlib import Path

import grpc
import pytest
from documents_harness import (
    PDF,
    PLAIN_CAPS,
    STAFF_CAPS,
    running_docs,
    sha256,
    url_token,
)
from sqlalchemy import text

from zenops.ops.v1 import ops_pb2 as pb
from zenops_devstack.testing import poll
from zenops_kit.context import RequestContext
from zenops_kit.rls import scoped_tx
from zenops_kit.storage import CHUNK_BYTES
from zenops_kit.storage.local import GET, PUT, Grant, GrantSigner
from zenops_ops import documents
from zenops_ops.api.caller import Caller
from zenops_ops.documents import FILES_URL_PREFIX
from zenops_ops.domain.documents import safe_filename

MAX_UPLOAD = 4 * CHUNK_BYTES


@pytest.fixture
def docs(start_service, tmp_path):
    return lambda **settings: running_docs(
        start_service, storage_dir=tmp_path / "files", max_upload_bytes=MAX_UPLOAD, **settings
    )


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def big_file(size: int = 2 * CHUNK_BYTES + 12345) -> bytes:
    return hashlib.sha256(b"seed").digest() * (size // 32) + b"x" * (size % 32)


async def test_upload_confirm_download_round_trip(docs, tmp_path):
    async with docs() as h:
        channel = await h.channel()
        assignment = await h.assignment(channel)
        data = big_file()
        signed = await h.presign(
            data,
            filename="C:\\scans\\Sale Deed (final).PDF",
            links=pb.DocumentLinks(assignment_id=assignment),
            metadata={"pages": "12", "camera": "Pixel 8"},
            idempotency_key="presign-1",
        )
        doc = signed.document
        assert doc.status == pb.DOCUMENT_STATUS_PENDING
        assert doc.filename == "Sale_Deed_final_.pdf"
        assert (doc.size_bytes, doc.sha256, doc.channel_id) == (len(data), sha256(data), channel)
        assert doc.sensitivity == pb.SENSITIVITY_INTERNAL  # the default
        assert dict(doc.metadata) == {"pages": "12", "camera": "Pixel 8"}
        assert signed.upload_method == "PUT" and signed.upload_url.startswith("/v1/files/")
        assert dict(signed.upload_headers) == {"content-type": "application/pdf"}
        assert 0 < signed.expires_at.seconds - time.time() <= h.settings.signed_url_ttl_seconds + 1

        # The gateway streams the PUT body in chunks of at most 1 MiB.
        assert await h.put_local(url_token(signed.upload_url), data) == len(data)
        now = time.gmtime()
        stored = tmp_path / "files" / "tenant" / h.tenant / f"{now.tm_year:04d}" / f"{now.tm_mon:02d}" / doc.id
        assert files_under(tmp_path / "files") == [stored / "Sale_Deed_final_.pdf"]  # no temporary file left

        confirmed = await h.confirm(doc.id)
        assert confirmed.status == pb.DOCUMENT_STATUS_UPLOADED and confirmed.HasField("uploaded_at")
        assert await h.confirm(doc.id) == confirmed  # confirming twice answers the same

        download = await h.call("PresignDownload", pb.PresignDownloadRequest(id=doc.id))
        assert download.url.startswith("/v1/files/") and download.HasField("expires_at")
        first, chunks = await h.get_local(url_token(download.url))
        assert (first.content_type, first.filename, first.size_bytes, first.data) == (
            "application/pdf",
            "Sale_Deed_final_.pdf",
            len(data),
            b"",
        )
        assert all(len(c) <= CHUNK_BYTES for c in chunks) and b"".join(chunks) == data

        got = (await h.call("GetDocument", pb.GetDocumentRequest(id=doc.id))).document
        assert got == confirmed
        trail = await h.sql(
            "SELECT action, actor FROM document_audit WHERE document_id = CAST(:id AS uuid) ORDER BY created_at",
            {"id": doc.id},
        )
        assert [r.action for r in trail] == ["document.created", "document.confirmed", "document.download_signed"]
        assert {r.actor for r in trail} == {h.staff_id}
        activity = await h.sql(
            "SELECT kind, summary FROM activities WHERE assignment_id = CAST(:id AS uuid)", {"id": assignment}
        )
        assert [(a.kind, a.summary) for a in activity] == [
            ("document.uploaded", "Document Sale_Deed_final_.pdf uploaded")
        ]


async def test_a_wrong_upload_is_refused_at_confirm_and_a_correct_one_can_follow(docs, tmp_path):
    async with docs() as h:
        signed = await h.presign(PDF)
        token, doc_id = url_token(signed.upload_url), signed.document.id

        missing = await h.fails("ConfirmUpload", pb.ConfirmUploadRequest(id=doc_id))
        assert (missing.code, missing.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "OBJECT_MISSING")

        forged = bytes(reversed(PDF))  # same size, other bytes
        await h.put_local(token, forged)
        wrong = await h.fails("ConfirmUpload", pb.ConfirmUploadRequest(id=doc_id))
        assert (wrong.code, wrong.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CHECKSUM_MISMATCH")
        assert [v.field for v in wrong.violations] == ["sha256"]
        assert wrong.metadata["uploaded"] == sha256(forged)
        assert files_under(tmp_path / "files") == []  # the bad object is gone

        # An upload that ends early (or a call cancelled midway) keeps nothing.
        short = await h.put_local_fails(token, PDF[:-10])
        assert (short.code, short.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "UPLOAD_INCOMPLETE")
        assert files_under(tmp_path / "files") == []
        # A stored file of another size (put there by other means) is refused and removed.
        key = (await h.sql("SELECT storage_key FROM documents WHERE id = CAST(:id AS uuid)", {"id": doc_id}))[0][0]
        (tmp_path / "files" / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "files" / key).write_bytes(PDF[:-10])
        short = await h.fails("ConfirmUpload", pb.ConfirmUploadRequest(id=doc_id))
        assert (short.reason, [v.field for v in short.violations]) == ("SIZE_MISMATCH", ["size_bytes"])
        assert files_under(tmp_path / "files") == []

        got = (await h.call("GetDocument", pb.GetDocumentRequest(id=doc_id))).document
        assert got.status == pb.DOCUMENT_STATUS_PENDING
        not_yet = await h.fails("PresignDownload", pb.PresignDownloadRequest(id=doc_id))
        assert (not_yet.code, not_yet.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DOCUMENT_NOT_UPLOADED")

        await h.put_local(token, PDF)  # the same signed URL, the right file
        assert (await h.confirm(doc_id)).status == pb.DOCUMENT_STATUS_UPLOADED
        rejected = await h.sql(
            "SELECT detail->>'reason' AS reason FROM document_audit WHERE action = "
            "'document.upload_rejected' ORDER BY created_at"
        )
        assert [r.reason for r in rejected] == ["CHECKSUM_MISMATCH", "SIZE_MISMATCH"]

        # A confirmed file is never replaced through its upload URL.
        again = await h.put_local_fails(token, forged)
        assert (again.code, again.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DOCUMENT_ALREADY_UPLOADED")
        download = await h.call("PresignDownload", pb.PresignDownloadRequest(id=doc_id))
        assert b"".join((await h.get_local(url_token(download.url)))[1]) == PDF


async def test_oversized_and_disallowed_files_are_refused(docs, tmp_path):
    async with docs() as h:
        too_big = await h.fails("PresignUpload", h.presign_request(size_bytes=MAX_UPLOAD + 1))
        assert (too_big.code, too_big.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FILE_TOO_LARGE")
        assert [v.field for v in too_big.violations] == ["size_bytes"]
        empty = await h.fails("PresignUpload", h.presign_request(size_bytes=0))
        assert [v.field for v in empty.violations] == ["size_bytes"]

        for content_type in ("application/x-msdownload", "text/html", "application/zip", ""):
            refused = await h.fails("PresignUpload", h.presign_request(filename="setup.exe", content_type=content_type))
            assert refused.code == grpc.StatusCode.INVALID_ARGUMENT
            assert [v.field for v in refused.violations] == ["content_type"]
        assert (
            await h.fails("PresignUpload", h.presign_request(content_type="text/html"))
        ).reason == "CONTENT_TYPE_NOT_ALLOWED"
        mismatch = await h.fails("PresignUpload", h.presign_request(filename="photo.png"))
        assert [v.field for v in mismatch.violations] == ["filename"]
        bad_sha = await h.fails("PresignUpload", h.presign_request(sha256="abc"))
        assert [v.field for v in bad_sha.violations] == ["sha256"]

        # More bytes than declared: refused while streaming, nothing kept.
        signed = await h.presign(PDF)
        over = await h.put_local_fails(url_token(signed.upload_url), PDF + b"tail")
        assert (over.code, over.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "UPLOAD_TOO_LARGE")
        assert files_under(tmp_path / "files") == []
        large = big_file()
        signed = await h.presign(large)
        huge_chunk = await h.put_local_fails(url_token(signed.upload_url), large, chunk=CHUNK_BYTES + 1)
        assert (huge_chunk.code, [v.field for v in huge_chunk.violations]) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            ["data"],
        )
        assert files_under(tmp_path / "files") == []

        # Content type parameters and upper case are normalised; allowed office and image types pass.
        plain = await h.presign(b"notes", filename="notes", content_type="Text/Plain; charset=utf-8")
        assert (plain.document.content_type, plain.document.filename) == ("text/plain", "notes.txt")
        sheet = await h.presign(
            b"PK",
            filename="rates.xlsx",
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
        assert sheet.document.filename == "rates.xlsx"


async def test_bad_expired_tampered_and_misused_tokens_are_refused(docs, tmp_path):
    async with docs() as h:
        signed = await h.presign(PDF)
        put_token = url_token(signed.upload_url)
        payload, _, signature = put_token.partition(".")
        key = h.settings.storage_signing_key.get_secret_value().encode()
        grant = GrantSigner(key, FILES_URL_PREFIX).verify(put_token, PUT)
        flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]

        cases = {
            "garbage": "not-a-token",
            "empty": "",
            "tampered payload": f"{flipped}.{signature}",
            "tampered signature": f"{payload}.{signature[:-2]}AA",
            "other key": GrantSigner(b"someone else's key", FILES_URL_PREFIX).sign(grant),
        }
        for name, token in cases.items():
            refused = await h.put_local_fails(token, PDF)
            assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SIGNED_URL_INVALID"), name
            refused = await h.get_local_fails(token)
            assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SIGNED_URL_INVALID"), name

        signer = GrantSigner(key, FILES_URL_PREFIX)
        expired = signer.sign(Grant(**{**vars(grant), "expires_at": int(time.time()) - 1}))
        refused = await h.put_local_fails(expired, PDF)
        assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SIGNED_URL_EXPIRED")

        # An upload grant cannot download, a download grant cannot upload.
        wrong_purpose = await h.get_local_fails(put_token)
        assert (wrong_purpose.code, wrong_purpose.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SIGNED_URL_INVALID")
        await h.put_local(put_token, PDF)
        await h.confirm(signed.document.id)
        get_token = url_token((await h.call("PresignDownload", pb.PresignDownloadRequest(id=signed.document.id))).url)
        assert signer.verify(get_token, GET).key == grant.key
        refused = await h.put_local_fails(get_token, b"overwrite")
        assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SIGNED_URL_INVALID")
        expired_get = signer.sign(Grant(**{**vars(grant), "purpose": GET, "expires_at": int(time.time()) - 1}))
        assert (await h.get_local_fails(expired_get)).reason == "SIGNED_URL_EXPIRED"
        assert b"".join((await h.get_local(get_token))[1]) == PDF  # untouched by every refused attempt


@pytest.mark.parametrize(
    ("raw", "content_type", "safe"),
    [
        ("../../etc/passwd", "text/plain", "passwd.txt"),
        ("C:\\Users\\asha\\Desktop\\PAN card.JPG", "image/jpeg", "PAN_card.jpg"),
        ("...hidden.pdf", "application/pdf", "hidden.pdf"),
        ("résumé\x00\x1f.pdf", "application/pdf", "r_sum_.pdf"),
        ("plan", "image/tiff", "plan.tif"),
        ("archive.tar.gz", "application/pdf", "archive.tar.gz.pdf"),
        ("a  b\t(c).pdf", "application/pdf", "a_b_c_.pdf"),
        ("x" * 300 + ".pdf", "application/pdf", "x" * 196 + ".pdf"),
    ],
)
def test_filenames_are_sanitised(raw, content_type, safe):
    assert safe_filename(raw, content_type) == safe


async def test_filename_and_input_errors_name_their_fields(docs):
    async with docs() as h:
        cases = {
            "filename": h.presign_request(filename="../.."),
            "source": h.presign_request(source=pb.DOCUMENT_SOURCE_UNSPECIFIED),
            "classification": h.presign_request(classification=pb.DOCUMENT_CLASSIFICATION_UNSPECIFIED),
            "links": h.presign_request(links=pb.DocumentLinks()),
            "links.work_order_id": h.presign_request(links=pb.DocumentLinks(work_order_id="WO-1")),
            "captured_by_employee_id": h.presign_request(captured_by_employee_id="emp-7"),
            "metadata": h.presign_request(metadata={f"k{i}": "v" for i in range(51)}),
            "metadata.note": h.presign_request(metadata={"note": "n" * 1001}),
            "captured_at": h.presign_request(captured_at={"seconds": int(time.time()) + 7 * 86400}),
        }
        for field, request in cases.items():
            refused = await h.fails("PresignUpload", request)
            assert refused.code == grpc.StatusCode.INVALID_ARGUMENT, field
            assert [v.field for v in refused.violations] == [field], field

        unknown = str(uuid.uuid4())
        for link in ("assignment_id", "channel_request_id"):
            refused = await h.fails("PresignUpload", h.presign_request(links=pb.DocumentLinks(**{link: unknown})))
            assert refused.code == grpc.StatusCode.NOT_FOUND
            assert refused.metadata["field"] == f"links.{link}"
        not_a_doc = await h.fails("GetDocument", pb.GetDocumentRequest(id=str(uuid.uuid4())))
        assert (not_a_doc.code, not_a_doc.reason) == (grpc.StatusCode.NOT_FOUND, "DOCUMENT_NOT_FOUND")
        bad_id = await h.fails("ConfirmUpload", pb.ConfirmUploadRequest(id="nope"))
        assert [v.field for v in bad_id.violations] == ["id"]

        other_channels = await h.assignment(await h.channel()), await h.channel_request(await h.channel())
        mixed = await h.fails(
            "PresignUpload",
            h.presign_request(
                links=pb.DocumentLinks(assignment_id=other_channels[0], channel_request_id=other_channels[1])
            ),
        )
        assert [v.field for v in mixed.violations] == ["links.assignment_id"]

        no_write = await h.fails("PresignUpload", h.presign_request(), h.token(caps=("documents.read",)))
        assert (no_write.code, no_write.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_CAPABILITY")


async def test_portal_users_see_and_link_only_their_own_channel(docs):
    async with docs() as h:
        ours, theirs = await h.channel(), await h.channel()
        our_request, their_request = await h.channel_request(ours), await h.channel_request(theirs)
        our_assignment, their_assignment = await h.assignment(ours), await h.assignment(theirs)
        partner, other_partner = h.portal(ours), h.portal(theirs)

        signed = await h.presign(
            PDF,
            partner,
            source=pb.DOCUMENT_SOURCE_UNSPECIFIED,
            classification=pb.DOCUMENT_CLASSIFICATION_BANK_KYC,
            links=pb.DocumentLinks(channel_request_id=our_request),
        )
        assert signed.document.source == pb.DOCUMENT_SOURCE_PORTAL_UPLOAD
        assert signed.document.channel_id == ours
        await h.put_local(url_token(signed.upload_url), PDF)
        doc = await h.confirm(signed.document.id, partner)
        staff_doc = await h.upload(PDF, links=pb.DocumentLinks(assignment_id=our_assignment))
        unlinked = await h.upload(PDF)  # a work order's: no channel

        # The partner sees its channel's documents, uploads and staff's alike; nothing else.
        assert set(await h.listed(partner)) == {doc.id, staff_doc.id}
        assert (await h.call("GetDocument", pb.GetDocumentRequest(id=doc.id), partner)).document.id == doc.id
        await h.call("PresignDownload", pb.PresignDownloadRequest(id=staff_doc.id), partner)
        assert (
            await h.fails("GetDocument", pb.GetDocumentRequest(id=unlinked.id), partner)
        ).code == grpc.StatusCode.NOT_FOUND

        # Another channel's partner: the documents do not exist for it.
        assert await h.listed(other_partner) == []
        assert await h.listed(other_partner, links=pb.DocumentLinks(channel_request_id=our_request)) == []
        for method, request in [
            ("GetDocument", pb.GetDocumentRequest(id=doc.id)),
            ("PresignDownload", pb.PresignDownloadRequest(id=doc.id)),
            ("ConfirmUpload", pb.ConfirmUploadRequest(id=doc.id)),
            ("SetDocumentTags", pb.SetDocumentTagsRequest(id=doc.id, tags={"k": "v"})),
        ]:
            refused = await h.fails(method, request, other_partner)
            assert (refused.code, refused.reason) == (grpc.StatusCode.NOT_FOUND, "DOCUMENT_NOT_FOUND"), method
        for link, target in [("channel_request_id", our_request), ("assignment_id", our_assignment)]:
            refused = await h.fails(
                "PresignUpload", h.presign_request(links=pb.DocumentLinks(**{link: target})), other_partner
            )
            assert refused.code == grpc.StatusCode.NOT_FOUND and refused.metadata["field"] == f"links.{link}"
        # ... and may link its own assignment, not work orders or employees.
        own = await h.presign(PDF, other_partner, links=pb.DocumentLinks(assignment_id=their_assignment))
        assert own.document.channel_id == theirs
        assert own.document.id not in await h.listed(partner)
        for link in ("work_order_id", "employee_id"):
            refused = await h.fails(
                "PresignUpload",
                h.presign_request(links=pb.DocumentLinks(assignment_id=their_assignment, **{link: str(uuid.uuid4())})),
                other_partner,
            )
            assert [v.field for v in refused.violations] == [f"links.{link}"]
        refused = await h.fails(
            "PresignUpload", h.presign_request(links=pb.DocumentLinks(invoice_id=str(uuid.uuid4()))), other_partner
        )
        assert [v.field for v in refused.violations] == ["links"]

        # Staff see every channel's documents.
        assert {doc.id, staff_doc.id, unlinked.id, own.document.id} <= set(await h.listed())
        their_doc = await h.presign(PDF, other_partner, links=pb.DocumentLinks(channel_request_id=their_request))
        assert await h.listed(partner, links=pb.DocumentLinks(channel_request_id=their_request)) == []
        assert their_doc.document.id in await h.listed(other_partner)


async def test_pii_and_confidential_documents_need_read_sensitive(docs):
    async with docs() as h:
        assignment = await h.assignment()
        links = pb.DocumentLinks(assignment_id=assignment)
        kyc = await h.upload(
            PDF,
            sensitivity=pb.SENSITIVITY_PII,
            classification=pb.DOCUMENT_CLASSIFICATION_BANK_KYC,
            filename="Aadhaar Asha Rao.pdf",
            links=links,
        )
        deed = await h.upload(PDF, sensitivity=pb.SENSITIVITY_CONFIDENTIAL, links=links)
        photo = await h.upload(PDF, sensitivity=pb.SENSITIVITY_PUBLIC, links=links)
        accounts = h.token(caps=PLAIN_CAPS, sub=str(uuid.uuid4()))

        for doc in (kyc, deed):
            for method, request in [
                ("GetDocument", pb.GetDocumentRequest(id=doc.id)),
                ("PresignDownload", pb.PresignDownloadRequest(id=doc.id)),
                ("SetDocumentTags", pb.SetDocumentTagsRequest(id=doc.id, tags={"k": "v"})),
            ]:
                refused = await h.fails(method, request, accounts)
                assert (refused.code, refused.reason) == (grpc.StatusCode.PERMISSION_DENIED, "SENSITIVE_DOCUMENT")
        assert await h.listed(accounts) == [photo.id]
        assert await h.listed(accounts, sensitivity=pb.SENSITIVITY_PII) == []
        assert await h.listed() == [photo.id, deed.id, kyc.id]
        assert await h.listed(sensitivity=pb.SENSITIVITY_PII) == [kyc.id]

        # Whoever may not read it may still upload one (and confirm their own upload).
        own = await h.upload(PDF, accounts, sensitivity=pb.SENSITIVITY_PII)
        assert own.status == pb.DOCUMENT_STATUS_UPLOADED
        # The assignment's trail does not spell out a sensitive document's name.
        summaries = await h.sql(
            "SELECT summary FROM activities WHERE assignment_id = CAST(:id AS uuid) ORDER BY created_at",
            {"id": assignment},
        )
        assert [s.summary for s in summaries] == [
            "A pii document was uploaded",
            "A confidential document was uploaded",
            "Document sale-deed.pdf uploaded",
        ]

        # GetAssignment's documents: what the caller may read, uploaded ones only.
        pending = await h.presign(PDF, links=links)
        ctx = RequestContext(user_id=h.staff_id, audience="web", tenant_id=h.tenant, capabilities=frozenset(PLAIN_CAPS))
        async with scoped_tx(h.engine, h.tenant) as conn:
            plain = await documents.linked_documents(conn, Caller(ctx, h.tenant), assignment)
            full = await documents.linked_documents(
                conn,
                Caller(RequestContext(**{**vars(ctx), "capabilities": frozenset(STAFF_CAPS)}), h.tenant),
                assignment,
            )
            none = await documents.linked_documents(
                conn, Caller(RequestContext(**{**vars(ctx), "capabilities": frozenset()}), h.tenant), assignment
            )
        assert [d.id for d in plain] == [photo.id]
        assert [d.id for d in full] == [photo.id, deed.id, kyc.id]
        assert pending.document.id not in [d.id for d in full]
        assert none == []


async def test_tags_upsert_remove_and_filter_lists(docs):
    async with docs() as h:
        a, b = await h.upload(PDF), await h.upload(PDF)

        tagged = (
            await h.call(
                "SetDocumentTags", pb.SetDocumentTagsRequest(id=a.id, tags={"floor": "3", "room:kind": "kitchen"})
            )
        ).document
        assert dict(tagged.tags) == {"floor": "3", "room:kind": "kitchen"}
        tagged = (
            await h.call(
                "SetDocumentTags",
                pb.SetDocumentTagsRequest(id=a.id, tags={"floor": "", "room:kind": "hall", "verified": "yes"}),
            )
        ).document
        assert dict(tagged.tags) == {"room:kind": "hall", "verified": "yes"}
        await h.call("SetDocumentTags", pb.SetDocumentTagsRequest(id=b.id, tags={"room:kind": "kitchen"}))
        got = (await h.call("GetDocument", pb.GetDocumentRequest(id=a.id))).document
        assert dict(got.tags) == {"room:kind": "hall", "verified": "yes"}

        assert await h.listed(tag_key="room:kind") == [b.id, a.id]
        assert await h.listed(tag_key="room:kind", tag_value="hall") == [a.id]
        assert await h.listed(tag_key="floor") == []

        for tags in ({"Bad Key": "x"}, {"-x": "y"}, {"k" * 64: "v"}, {}, {"k": "v" * 201}):
            refused = await h.fails("SetDocumentTags", pb.SetDocumentTagsRequest(id=a.id, tags=tags))
            assert refused.code == grpc.StatusCode.INVALID_ARGUMENT, tags
        too_many = await h.fails(
            "SetDocumentTags", pb.SetDocumentTagsRequest(id=a.id, tags={f"t{i}": "v" for i in range(49)})
        )
        assert [v.field for v in too_many.violations] == ["tags"]
        refused = await h.fails("ListDocuments", pb.ListDocumentsRequest(tag_value="hall"))
        assert [v.field for v in refused.violations] == ["tag_value"]
        audits = await h.sql("SELECT count(*) AS n FROM document_audit WHERE action = 'document.tags_set'")
        assert audits[0].n == 3


async def test_list_filters_and_pages_newest_first(docs):
    async with docs() as h:
        assignment, employee, invoice = await h.assignment(), str(uuid.uuid4()), str(uuid.uuid4())
        photo = await h.upload(
            PDF,
            source=pb.DOCUMENT_SOURCE_MOBILE_CAMERA,
            filename="site.jpg",
            content_type="image/jpeg",
            classification=pb.DOCUMENT_CLASSIFICATION_SITE_PHOTO,
            links=pb.DocumentLinks(assignment_id=assignment),
        )
        receipt = await h.upload(
            PDF, classification=pb.DOCUMENT_CLASSIFICATION_TAX_RECEIPT, links=pb.DocumentLinks(invoice_id=invoice)
        )
        payslip = await h.upload(PDF, links=pb.DocumentLinks(employee_id=employee))
        pending = (await h.presign(PDF, links=pb.DocumentLinks(assignment_id=assignment))).document

        assert await h.listed(links=pb.DocumentLinks(assignment_id=assignment)) == [pending.id, photo.id]
        assert await h.listed(links=pb.DocumentLinks(employee_id=employee)) == [payslip.id]
        assert await h.listed(links=pb.DocumentLinks(invoice_id=invoice)) == [receipt.id]
        assert await h.listed(classification=pb.DOCUMENT_CLASSIFICATION_SITE_PHOTO) == [photo.id]
        assert await h.listed(source=pb.DOCUMENT_SOURCE_MOBILE_CAMERA) == [photo.id]
        assert await h.listed(status=pb.DOCUMENT_STATUS_PENDING) == [pending.id]
        assert await h.listed(status=pb.DOCUMENT_STATUS_UPLOADED) == [payslip.id, receipt.id, photo.id]

        seen, cursor = [], ""
        while True:
            response = await h.call("ListDocuments", pb.ListDocumentsRequest(page={"limit": 3, "cursor": cursor}))
            seen.append([d.id for d in response.documents])
            cursor = response.page.next_cursor
            if not cursor:
                break
        assert seen == [[pending.id, payslip.id, receipt.id], [photo.id]]
        refused = await h.fails("ListDocuments", pb.ListDocumentsRequest(page={"cursor": "garbage"}))
        assert [v.field for v in refused.violations] == ["page.cursor"]
        refused = await h.fails("ListDocuments", pb.ListDocumentsRequest(links={"assignment_id": "x"}))
        assert [v.field for v in refused.violations] == ["links.assignment_id"]


async def test_presign_is_idempotent_by_key(docs):
    async with docs() as h:
        links = pb.DocumentLinks(work_order_id=str(uuid.uuid4()))
        request = h.presign_request(PDF, idempotency_key="upload-7", links=links)
        first = await h.call("PresignUpload", request)
        again = await h.call("PresignUpload", request)
        assert again == first  # the same document and the same signed URL
        assert (await h.sql("SELECT count(*) AS n FROM documents"))[0].n == 1

        other = h.presign_request(PDF, idempotency_key="upload-7", links=links, filename="other.pdf")
        reused = await h.fails("PresignUpload", other)
        assert (reused.code, reused.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
        assert [v.field for v in reused.violations] == ["filename"]

        await h.put_local(url_token(first.upload_url), PDF)
        assert (await h.confirm(first.document.id)).status == pb.DOCUMENT_STATUS_UPLOADED


async def test_local_objects_are_written_whole_or_not_at_all(docs, tmp_path):
    async with docs() as h:
        signed = await h.presign(big_file())
        key = (
            await h.sql("SELECT storage_key FROM documents WHERE id = CAST(:id AS uuid)", {"id": signed.document.id})
        )[0].storage_key
        assert key == (
            f"tenant/{h.tenant}/{time.gmtime().tm_year:04d}/{time.gmtime().tm_mon:02d}/"
            f"{signed.document.id}/sale-deed.pdf"
        )

        # A client that stalls mid-upload until its deadline: the partial file is never
        # visible, and is removed when the call ends.
        stalled = asyncio.Event()

        async def interrupted():
            yield pb.PutLocalObjectRequest(token=url_token(signed.upload_url), data=b"x" * CHUNK_BYTES)
            await stalled.wait()

        root = tmp_path / "files"
        call = asyncio.ensure_future(h.stub.PutLocalObject(interrupted(), timeout=3))
        partial = await poll(lambda: files_under(root), what="the upload to start")
        assert [p.name.endswith(".part") and p.name.startswith(".") for p in partial] == [True]
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await call
        assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await poll(lambda: files_under(root) == [], what="the interrupted upload's temporary file to be removed")
        async with scoped_tx(h.engine, h.tenant) as conn:
            stored = (await conn.execute(text("SELECT status FROM documents"))).scalar()
        assert stored == "PENDING"
