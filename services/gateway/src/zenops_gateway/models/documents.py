"""HTTP models of documents (presign upload, confirm, read, download URL, tags, lists) and
their conversions from zenops.ops.v1."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints

from zenops.ops.v1 import ops_pb2 as pb

from .ops_common import (
    Classification,
    DocumentSource,
    DocumentStatus,
    Sensitivity,
    Strict,
    UtcDatetime,
    enum_name,
    id_text,
    or_none,
    pb_enum,
    timestamp,
    to_timestamp,
)

# Far above any file ops accepts (its limit is a setting, 25 MiB by default), far below int64.
MAX_DOCUMENT_BYTES = 1 << 40
MAX_METADATA = 50
MAX_TAGS = 50
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=63)]
TagValue = Annotated[str, StringConstraints(min_length=1, max_length=200)]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=100)]
MetadataValue = Annotated[str, StringConstraints(max_length=1000)]


class DocumentLinks(BaseModel):
    """What the document is linked to (at least one)."""

    assignment_id: str | None
    channel_request_id: str | None
    work_order_id: str | None = Field(description="repogen's work order.")
    invoice_id: str | None = Field(description="billing's invoice.")
    employee_id: str | None

    @classmethod
    def from_proto(cls, links: pb.DocumentLinks) -> DocumentLinks:
        return cls(
            assignment_id=or_none(links.assignment_id),
            channel_request_id=or_none(links.channel_request_id),
            work_order_id=or_none(links.work_order_id),
            invoice_id=or_none(links.invoice_id),
            employee_id=or_none(links.employee_id),
        )


class Document(BaseModel):
    id: str
    filename: str = Field(description="Sanitised.")
    content_type: str
    size_bytes: int
    sha256: str = Field(description="Lower-case hex.")
    status: DocumentStatus = Field(description="`pending` until the upload is confirmed.")
    source: DocumentSource
    classification: Classification
    sensitivity: Sensitivity = Field(description="`pii` and `confidential` need documents.read_sensitive.")
    captured_at: datetime | None
    captured_by_employee_id: str | None
    metadata: dict[str, str]
    tags: dict[str, str]
    links: DocumentLinks
    channel_id: str | None = Field(description="The channel the document belongs to (portal isolation).")
    created_by: str | None
    created_at: datetime | None
    uploaded_at: datetime | None

    @classmethod
    def from_proto(cls, d: pb.Document) -> Document:
        return cls(
            id=d.id,
            filename=d.filename,
            content_type=d.content_type,
            size_bytes=d.size_bytes,
            sha256=d.sha256,
            status=enum_name(pb.DocumentStatus, d.status, "DOCUMENT_STATUS_"),
            source=enum_name(pb.DocumentSource, d.source, "DOCUMENT_SOURCE_"),
            classification=enum_name(pb.DocumentClassification, d.classification, "DOCUMENT_CLASSIFICATION_"),
            sensitivity=enum_name(pb.Sensitivity, d.sensitivity, "SENSITIVITY_"),
            captured_at=timestamp(d, "captured_at"),
            captured_by_employee_id=or_none(d.captured_by_employee_id),
            metadata=dict(sorted(d.metadata.items())),
            tags=dict(sorted(d.tags.items())),
            links=DocumentLinks.from_proto(d.links),
            channel_id=or_none(d.channel_id),
            created_by=or_none(d.created_by),
            created_at=timestamp(d, "created_at"),
            uploaded_at=timestamp(d, "uploaded_at"),
        )


class DocumentList(BaseModel):
    items: list[Document]
    next_cursor: str | None = Field(description="Cursor of the next page; null on the last page.")


class PresignUploadBody(Strict):
    """A document to upload. Link it to at least one of `assignment_id`, `channel_request_id`,
    `work_order_id`, `invoice_id`, `employee_id`."""

    filename: Annotated[str, Field(min_length=1, max_length=255, description="Sanitised by ops.")]
    content_type: Annotated[str, Field(min_length=1, max_length=255, examples=["application/pdf"])]
    size: Annotated[
        int, Field(strict=True, gt=0, le=MAX_DOCUMENT_BYTES, description="Bytes; ops refuses files over its limit.")
    ]
    sha256: Annotated[
        str, Field(min_length=64, max_length=64, description="Hex SHA-256 of the file (checked at confirm).")
    ]
    classification: Classification
    source: DocumentSource | None = Field(
        None, description="How the file was captured; portal users' uploads are `portal_upload`, staff name it."
    )
    sensitivity: Sensitivity | None = Field(None, description="Default `internal`.")
    assignment_id: UUID | None = None
    channel_request_id: UUID | None = None
    work_order_id: UUID | None = None
    invoice_id: UUID | None = None
    employee_id: UUID | None = None
    captured_at: UtcDatetime | None = None
    captured_by_employee_id: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=MAX_METADATA)] | None = None

    def to_proto(self, idempotency_key: str | None) -> pb.PresignUploadRequest:
        return pb.PresignUploadRequest(
            filename=self.filename,
            content_type=self.content_type,
            size_bytes=self.size,
            sha256=self.sha256,
            source=pb_enum(pb.DocumentSource, self.source, "DOCUMENT_SOURCE_"),
            classification=pb_enum(pb.DocumentClassification, self.classification, "DOCUMENT_CLASSIFICATION_"),
            sensitivity=pb_enum(pb.Sensitivity, self.sensitivity, "SENSITIVITY_"),
            links=pb.DocumentLinks(
                assignment_id=id_text(self.assignment_id),
                channel_request_id=id_text(self.channel_request_id),
                work_order_id=id_text(self.work_order_id),
                invoice_id=id_text(self.invoice_id),
                employee_id=id_text(self.employee_id),
            ),
            captured_at=to_timestamp(self.captured_at),
            captured_by_employee_id=self.captured_by_employee_id or "",
            metadata=self.metadata or {},
            idempotency_key=idempotency_key or "",
        )


class PresignedUpload(BaseModel):
    """Where to send the file's bytes: `upload_method` (PUT) to `upload_url` (absolute for
    S3-compatible storage, relative to this API for local storage) with `upload_headers`,
    before `expires_at`; then confirm."""

    document_id: str
    upload_url: str
    upload_method: str
    upload_headers: dict[str, str]
    expires_at: datetime | None
    document: Document

    @classmethod
    def from_proto(cls, r: pb.PresignUploadResponse) -> PresignedUpload:
        return cls(
            document_id=r.document.id,
            upload_url=r.upload_url,
            upload_method=r.upload_method,
            upload_headers=dict(sorted(r.upload_headers.items())),
            expires_at=timestamp(r, "expires_at"),
            document=Document.from_proto(r.document),
        )


class DownloadUrl(BaseModel):
    """A short-lived signed URL of the file (absolute, or relative to this API)."""

    url: str
    expires_at: datetime | None

    @classmethod
    def from_proto(cls, r: pb.PresignDownloadResponse) -> DownloadUrl:
        return cls(url=r.url, expires_at=timestamp(r, "expires_at"))


class TagsBody(Strict):
    tags: Annotated[
        dict[TagKey, TagValue | None],
        Field(max_length=MAX_TAGS, description="key → value: upserts the tag; key → null: removes it."),
    ]

    def to_proto(self, document_id: str) -> pb.SetDocumentTagsRequest:
        # The proto's empty value removes the tag.
        return pb.SetDocumentTagsRequest(id=document_id, tags={k: v or "" for k, v in self.tags.items()})


class StoredFile(BaseModel):
    size_bytes: int = Field(description="Bytes stored.")
