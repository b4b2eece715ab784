"""RPCs of documents and the local driver's signed URLs: proto ↔ use cases (documents.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from zenops.ops.v1 import ops_pb2 as pb
from zenops_kit.errors import DomainError
from zenops_kit.fields import choice

from .. import documents
from ..domain import documents as rules
from ..domain.documents import LINK_FIELDS, READ, READ_SENSITIVE, WRITE
from .caller import caller, idempotency_key
from .translate import CLASSIFICATION_OF, DOCUMENT_SOURCE_OF, DOCUMENT_STATUS_OF, SENSITIVITY_OF, when


def _links(msg: pb.DocumentLinks) -> dict[str, str]:
    return {f: getattr(msg, f) for f in LINK_FIELDS}


def _optional(value: int, field: str, names: dict[int, str]) -> str | None:
    return choice(value, field, names, default="") or None


class DocumentRpcs:
    """Mixed into OpsServicer (self.engine, self.runtime)."""

    async def PresignUpload(self, request, context):
        who = await caller(self.engine, context, WRITE)
        settings = self.runtime.settings
        new = rules.new_document(
            filename=request.filename,
            content_type_=request.content_type,
            size=request.size_bytes,
            digest=request.sha256,
            source=choice(request.source, "source", DOCUMENT_SOURCE_OF, default=""),
            classification=choice(request.classification, "classification", CLASSIFICATION_OF, default=""),
            sensitivity=choice(request.sensitivity, "sensitivity", SENSITIVITY_OF, default=""),
            link_values=_links(request.links),
            captured=when(request, "captured_at"),
            captured_by_employee_id=request.captured_by_employee_id,
            metadata_values=dict(request.metadata),
            portal=who.is_portal,
            max_bytes=settings.max_upload_bytes,
            now=datetime.now(UTC),
        )
        key = idempotency_key(request.idempotency_key, context)
        return await documents.presign_upload(
            self.engine,
            documents.files(self.runtime),
            who,
            new,
            key=key,
            request=request,
            ttl_seconds=settings.signed_url_ttl_seconds,
        )

    async def ConfirmUpload(self, request, context):
        who = await caller(self.engine, context, WRITE)
        doc = await documents.confirm_upload(
            self.engine, documents.files(self.runtime), who, rules.document_id(request.id)
        )
        return pb.ConfirmUploadResponse(document=doc)

    async def GetDocument(self, request, context):
        who = await caller(self.engine, context, READ)
        return pb.GetDocumentResponse(
            document=await documents.get_document(self.engine, who, rules.document_id(request.id))
        )

    async def PresignDownload(self, request, context):
        who = await caller(self.engine, context, READ)
        return await documents.presign_download(
            self.engine,
            documents.files(self.runtime),
            who,
            rules.document_id(request.id),
            ttl_seconds=self.runtime.settings.signed_url_ttl_seconds,
        )

    async def ListDocuments(self, request, context):
        who = await caller(self.engine, context, READ)
        flt = rules.list_filter(
            link_values=_links(request.links),
            tag_key=request.tag_key,
            tag_value=request.tag_value,
            classification=_optional(request.classification, "classification", CLASSIFICATION_OF),
            source=_optional(request.source, "source", DOCUMENT_SOURCE_OF),
            sensitivity=_optional(request.sensitivity, "sensitivity", SENSITIVITY_OF),
            status=_optional(request.status, "status", DOCUMENT_STATUS_OF),
            read_sensitive=who.can(READ_SENSITIVE),
            channel_id=who.channel_id,
        )
        docs, cursor = await documents.list_documents(
            self.engine, who, flt, cursor=request.page.cursor, limit=request.page.limit
        )
        response = pb.ListDocumentsResponse(documents=docs)
        response.page.next_cursor = cursor
        return response

    async def SetDocumentTags(self, request, context):
        who = await caller(self.engine, context, WRITE)
        document_id = rules.document_id(request.id)
        upserts, removals = rules.tag_changes(dict(request.tags))
        doc = await documents.set_tags(self.engine, who, document_id, upserts, removals)
        return pb.SetDocumentTagsResponse(document=doc)

    async def PutLocalObject(self, request_iterator, context):
        first = await anext(aiter(request_iterator), None)

        async def data() -> AsyncIterator[bytes]:
            if first is not None and first.data:
                yield first.data
            async for message in request_iterator:
                if message.data:
                    yield message.data

        try:
            size = await documents.put_local_object(
                self.engine, documents.files(self.runtime), first.token if first is not None else "", data()
            )
        except DomainError:
            # Read (and drop) what the client is still sending before answering: a status sent
            # while a client-streaming call is mid-upload reaches grpc's client as INTERNAL
            # ("Internal error from Core"), not as our refusal. The gateway and Envoy bound it.
            async for _ in request_iterator:
                pass
            raise
        return pb.PutLocalObjectResponse(size_bytes=size)

    async def GetLocalObject(self, request, context):
        async for message in documents.get_local_object(documents.files(self.runtime), request.token):
            yield message
