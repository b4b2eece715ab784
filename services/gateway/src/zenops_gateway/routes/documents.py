"""Document routes: presign upload → PUT the bytes → confirm, read, signed download URL,
list, tags.

Capabilities (documents.read / documents.write; `pii` and `confidential` documents need
documents.read_sensitive) and portal isolation (a portal user sees only documents linked to
its channel's requests and assignments) are checked by ops. Ops enforces the content types
and the size limit, sanitises the filename and, at confirm, checks the stored object's size
and SHA-256 (a mismatch is 409 and the document stays `pending`).
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response

from zenops.ops.v1 import ops_pb2 as pb

from ..deps import CallerDep, OpsDep
from ..errors import problem_responses
from ..handler import LeanRoute
from ..models.common import Cursor, Limit, or_none
from ..models.documents import (
    Document,
    DocumentList,
    DownloadUrl,
    PresignedUpload,
    PresignUploadBody,
    TagKey,
    TagsBody,
    TagValue,
)
from ..models.ops_common import Classification, DocumentSource, DocumentStatus, Sensitivity, id_text, pb_enum
from .ops_common import CREATED, OptionalIdempotencyKey, ops_field_names, page, query_fields

router = APIRouter(prefix="/v1", tags=["documents"], route_class=LeanRoute)

DocumentId = Annotated[UUID, Path(description="Document id.")]
PATH_ID = {"id": "path.document_id"}
LINKS = ("assignment_id", "channel_request_id", "work_order_id", "invoice_id", "employee_id")


@router.post(
    "/documents/presign-upload",
    status_code=201,
    response_model=PresignedUpload,
    summary="Create a document and a short-lived signed upload URL (documents.write)",
    description="The document starts `pending`. Send the file's bytes with `upload_method` to `upload_url` "
    "(relative to this API for local storage: `PUT /v1/files/{token}`, no bearer token) with "
    "`upload_headers`, then `POST /v1/documents/{id}/confirm`. `Location` is the document.",
    responses={**problem_responses(401, 403, 404, 409, 503), **CREATED},
)
async def presign_upload(
    body: PresignUploadBody,
    caller: CallerDep,
    ops: OpsDep,
    response: Response,
    idempotency_key: OptionalIdempotencyKey = None,
) -> PresignedUpload:
    with ops_field_names({"size_bytes": "size", "links": ""}):
        resp = await ops.presign_upload(body.to_proto(idempotency_key), token=caller.token)
    response.headers["location"] = f"/v1/documents/{resp.document.id}"
    return PresignedUpload.from_proto(resp)


@router.post(
    "/documents/{document_id}/confirm",
    response_model=Document,
    summary="Confirm an upload: size and SHA-256 checked, the document becomes `uploaded` (documents.write)",
    description="Naturally idempotent: confirming an uploaded document answers it as it is. 409 when the "
    "stored object is missing or its size or SHA-256 differ from the declared ones.",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def confirm_upload(document_id: DocumentId, caller: CallerDep, ops: OpsDep) -> Document:
    with ops_field_names(PATH_ID):
        resp = await ops.confirm_upload(pb.ConfirmUploadRequest(id=str(document_id)), token=caller.token)
    return Document.from_proto(resp.document)


@router.get(
    "/documents/{document_id}",
    response_model=Document,
    summary="One document's metadata, tags and links (documents.read)",
    responses=problem_responses(401, 403, 404, 503),
)
async def get_document(document_id: DocumentId, caller: CallerDep, ops: OpsDep) -> Document:
    with ops_field_names(PATH_ID):
        resp = await ops.get_document(pb.GetDocumentRequest(id=str(document_id)), token=caller.token)
    return Document.from_proto(resp.document)


@router.get(
    "/documents/{document_id}/download",
    response_model=DownloadUrl,
    summary="A short-lived signed download URL of an uploaded document (documents.read)",
    description="`url` is absolute (S3-compatible storage) or relative to this API (local storage: "
    "`GET /v1/files/{token}`, no bearer token). 409 while the document is `pending`.",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def download_url(document_id: DocumentId, caller: CallerDep, ops: OpsDep) -> DownloadUrl:
    with ops_field_names(PATH_ID):
        resp = await ops.presign_download(pb.PresignDownloadRequest(id=str(document_id)), token=caller.token)
    return DownloadUrl.from_proto(resp)


@router.get(
    "/documents",
    response_model=DocumentList,
    summary="Documents the caller may read, newest first (documents.read)",
    responses=problem_responses(401, 403, 503),
)
async def list_documents(
    caller: CallerDep,
    ops: OpsDep,
    assignment_id: Annotated[UUID | None, Query()] = None,
    channel_request_id: Annotated[UUID | None, Query()] = None,
    work_order_id: Annotated[UUID | None, Query()] = None,
    invoice_id: Annotated[UUID | None, Query()] = None,
    employee_id: Annotated[UUID | None, Query()] = None,
    tag_key: Annotated[TagKey | None, Query(description="Only documents with this tag.")] = None,
    tag_value: Annotated[TagValue | None, Query(description="…with this value (only with `tag_key`).")] = None,
    classification: Annotated[Classification | None, Query()] = None,
    source: Annotated[DocumentSource | None, Query()] = None,
    sensitivity: Annotated[Sensitivity | None, Query()] = None,
    status: Annotated[DocumentStatus | None, Query()] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> DocumentList:
    renames = {
        **query_fields("tag_key", "tag_value", "classification", "source", "sensitivity", "status"),
        "links": "query",
    }
    with ops_field_names(renames):
        resp = await ops.list_documents(
            pb.ListDocumentsRequest(
                page=page(limit, cursor),
                links=pb.DocumentLinks(
                    assignment_id=id_text(assignment_id),
                    channel_request_id=id_text(channel_request_id),
                    work_order_id=id_text(work_order_id),
                    invoice_id=id_text(invoice_id),
                    employee_id=id_text(employee_id),
                ),
                tag_key=tag_key or "",
                tag_value=tag_value or "",
                classification=pb_enum(pb.DocumentClassification, classification, "DOCUMENT_CLASSIFICATION_"),
                source=pb_enum(pb.DocumentSource, source, "DOCUMENT_SOURCE_"),
                sensitivity=pb_enum(pb.Sensitivity, sensitivity, "SENSITIVITY_"),
                status=pb_enum(pb.DocumentStatus, status, "DOCUMENT_STATUS_"),
            ),
            token=caller.token,
        )
    return DocumentList(
        items=[Document.from_proto(d) for d in resp.documents], next_cursor=or_none(resp.page.next_cursor)
    )


@router.put(
    "/documents/{document_id}/tags",
    response_model=Document,
    summary="Upsert or remove tags of a document (documents.write)",
    description="`{tags: {key: value}}` sets each tag; `{tags: {key: null}}` removes it; other tags are kept. "
    "Naturally idempotent.",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def set_tags(document_id: DocumentId, body: TagsBody, caller: CallerDep, ops: OpsDep) -> Document:
    with ops_field_names(PATH_ID):
        resp = await ops.set_document_tags(body.to_proto(str(document_id)), token=caller.token)
    return Document.from_proto(resp.document)
