"""Documents and files: the use cases (decide with domain.documents, store with
store.documents, move bytes with the process's storage driver).

    presign_upload → (client PUTs the bytes) → confirm_upload → presign_download

Each use case owns its transaction, scoped to the caller's tenant and, for a portal user, to
its channel (zenops_kit.rls), so another channel's documents are invisible whatever a query says.
Every mutation writes a document_audit row (and an activity on a linked assignment or
channel request when a file arrives).

The local driver's two streaming RPCs (put_local_object / get_local_object) have no caller:
the signed token names the tenant, the document and the object, and is the authorisation.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from google.protobuf.message import Message
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops.ops.v1 import ops_pb2 as pb
from zenops_kit.errors import FailedPrecondition
from zenops_kit.fields import invalid
from zenops_kit.idempotency import idempotent_as
from zenops_kit.paging import decode_cursor, encode_cursor, page_limit
from zenops_kit.rls import scoped_tx
from zenops_kit.storage import CHUNK_BYTES, Storage, StoredObject, storage_for, storage_key
from zenops_kit.storage.local import GET, PUT, LocalStorage

from .api.caller import Caller, trace_id
from .api.translate import CLASSIFICATION_PB, DOCUMENT_SOURCE_PB, DOCUMENT_STATUS_PB, SENSITIVITY_PB, ts
from .domain import documents as rules
from .domain.documents import READ, READ_SENSITIVE, Document, ListFilter, NewDocument
from .store import activity, violated_constraint
from .store import documents as store

# The gateway route of the local storage driver's signed URLs (routes/files.py).
FILES_URL_PREFIX = "/v1/files/"

# GetAssignment's documents: the newest this many (ListDocuments with links.assignment_id pages
# through all of them).
LINKED_DOCUMENTS_LIMIT = 200
_CURSOR = "documents"

_FOREIGN_KEYS = {
    "documents_assignment_fk": ("assignment", "assignment_id"),
    "documents_channel_request_fk": ("channel_request", "channel_request_id"),
}


def document_pb(doc: Document) -> pb.Document:
    msg = pb.Document(
        id=doc.id,
        filename=doc.filename,
        content_type=doc.content_type,
        size_bytes=doc.size_bytes,
        sha256=doc.sha256,
        status=DOCUMENT_STATUS_PB[doc.status],
        source=DOCUMENT_SOURCE_PB[doc.source],
        classification=CLASSIFICATION_PB[doc.classification],
        sensitivity=SENSITIVITY_PB[doc.sensitivity],
        captured_by_employee_id=doc.captured_by_employee_id,
        metadata=doc.metadata,
        tags=doc.tags,
        links=pb.DocumentLinks(**{f: getattr(doc.links, f) or "" for f in rules.LINK_FIELDS}),
        channel_id=doc.channel_id or "",
        created_by=doc.created_by,
    )
    ts(msg.captured_at, doc.captured_at)
    ts(msg.created_at, doc.created_at)
    ts(msg.uploaded_at, doc.uploaded_at)
    return msg


def files(runtime) -> Storage:
    """The process's document storage (zenops_kit.storage, made on first use)."""
    return storage_for(runtime, url_prefix=FILES_URL_PREFIX)


def _stored(doc: Document, tenant_id: str) -> StoredObject:
    return StoredObject(
        key=doc.storage_key,
        tenant_id=tenant_id,
        object_id=doc.id,
        filename=doc.filename,
        content_type=doc.content_type,
        size_bytes=doc.size_bytes,
        sha256=doc.sha256,
    )


def _require_driver(doc: Document, storage: Storage) -> None:
    if doc.storage_driver != storage.driver:
        raise FailedPrecondition(
            f"document {doc.id} is kept by the {doc.storage_driver} storage driver; this "
            f"service runs the {storage.driver} driver",
            reason="STORAGE_DRIVER_MISMATCH",
            metadata={"document_id": doc.id, "driver": doc.storage_driver},
        )


async def _visible(conn: AsyncConnection, caller: Caller, document_id: str, *, for_update: bool = False) -> Document:
    """The document if the caller's transaction can see it (its channel's, for a portal user)."""
    doc = await store.get(conn, document_id, for_update=for_update)
    if doc is None or (caller.is_portal and doc.channel_id != caller.channel_id):
        raise rules.document_not_found(document_id)
    return doc


async def _audit(conn: AsyncConnection, caller: Caller, doc: Document, action: str, detail: dict) -> None:
    await store.audit(
        conn,
        tenant_id=caller.tenant_id,
        document_id=doc.id,
        action=action,
        actor=caller.actor,
        detail=detail,
        trace_id=trace_id(),
    )


# -- upload ---------------------------------------------------------------------------------------


async def _channel_of_links(conn: AsyncConnection, caller: Caller, new: NewDocument) -> str | None:
    links = new.links
    targets = await store.link_targets(
        conn, assignment_id=links.assignment_id, channel_request_id=links.channel_request_id
    )
    if links.assignment_id and (
        "assignment" not in targets or (caller.is_portal and targets["assignment"] != caller.channel_id)
    ):
        raise rules.link_not_found("assignment", links.assignment_id)
    if links.channel_request_id and "channel_request" not in targets:
        raise rules.link_not_found("channel_request", links.channel_request_id)
    return rules.document_channel(
        links, assignment_channel=targets.get("assignment"), request_channel=targets.get("channel_request")
    )


async def presign_upload(
    engine: AsyncEngine,
    storage: Storage,
    caller: Caller,
    new: NewDocument,
    *,
    key: str,
    request: Message,
    ttl_seconds: int,
) -> pb.PresignUploadResponse:
    """Creates the PENDING document and signs its upload (idempotent by `key`)."""

    async def run(conn: AsyncConnection) -> pb.PresignUploadResponse:
        channel = await _channel_of_links(conn, caller, new)
        document_id = str(uuid.uuid4())
        created_at = datetime.now(UTC)
        object_key = storage_key(caller.tenant_id, document_id, created_at, new.filename)
        try:
            doc = await store.insert(
                conn,
                document_id=document_id,
                tenant_id=caller.tenant_id,
                channel_id=channel,
                new=new,
                driver=storage.driver,
                key=object_key,
                actor=caller.actor,
                created_at=created_at,
            )
        except IntegrityError as exc:  # a linked record vanished meanwhile
            kind_field = _FOREIGN_KEYS.get(violated_constraint(exc) or "")
            if kind_field is None:
                raise
            raise rules.link_not_found(kind_field[0], getattr(new.links, kind_field[1])) from None
        await _audit(
            conn,
            caller,
            doc,
            "document.created",
            {
                "filename": doc.filename,
                "content_type": doc.content_type,
                "size_bytes": doc.size_bytes,
                "sha256": doc.sha256,
                "source": doc.source,
                "classification": doc.classification,
                "sensitivity": doc.sensitivity,
                "links": {f: v for f, v in vars(doc.links).items() if v},
                "storage_driver": doc.storage_driver,
            },
        )
        signed = await storage.presign_upload(_stored(doc, caller.tenant_id), ttl_seconds)
        response = pb.PresignUploadResponse(
            document=document_pb(doc), upload_url=signed.url, upload_method=signed.method, upload_headers=signed.headers
        )
        ts(response.expires_at, signed.expires_at)
        return response

    return await idempotent_as(
        engine, caller, key, "PresignUpload", request, run=run, decode=pb.PresignUploadResponse.FromString
    )


async def confirm_upload(engine: AsyncEngine, storage: Storage, caller: Caller, document_id: str) -> pb.Document:
    """UPLOADED when the stored object is the declared file; confirming again answers the same.
    A wrong size or digest deletes the object (a correct upload may follow) and is audited."""
    rejected: FailedPrecondition | None = None
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        doc = await _visible(conn, caller, document_id, for_update=True)
        rules.require_confirmable(doc, read_sensitive=caller.can(READ_SENSITIVE), actor=caller.actor)
        if doc.status == rules.UPLOADED:
            return document_pb(doc)
        _require_driver(doc, storage)
        # The row lock orders this against a local upload's rename (put_local_object).
        found = await storage.stat(doc.storage_key)
        if found is None:
            raise rules.object_missing(doc)
        try:
            rules.verify_object(doc, found.size_bytes, found.sha256)
        except FailedPrecondition as err:
            rejected = err
            await storage.delete(doc.storage_key)  # under the row lock: never a newer upload
        else:
            doc = await store.mark_uploaded(conn, document_id)
            await _audit(conn, caller, doc, "document.confirmed", {"size_bytes": doc.size_bytes, "sha256": doc.sha256})
            if doc.links.assignment_id or doc.links.channel_request_id:
                # A sensitive document's name may itself be personal data: the trail says less.
                summary = (
                    f"A {doc.sensitivity.lower()} document was uploaded"
                    if doc.sensitive
                    else f"Document {doc.filename} uploaded"
                )
                await activity.record(
                    conn,
                    tenant_id=caller.tenant_id,
                    kind=rules.DOCUMENT_UPLOADED,
                    actor=caller.actor,
                    summary=summary,
                    detail={
                        "document_id": doc.id,
                        "classification": doc.classification.lower(),
                        "sensitivity": doc.sensitivity.lower(),
                    },
                    assignment_id=doc.links.assignment_id,
                    channel_request_id=doc.links.channel_request_id,
                    trace_id=trace_id(),
                )
            return document_pb(doc)
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        await _audit(conn, caller, doc, "document.upload_rejected", {"reason": rejected.reason, **rejected.metadata})
    raise rejected


# -- read -----------------------------------------------------------------------------------------


async def get_document(engine: AsyncEngine, caller: Caller, document_id: str) -> pb.Document:
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        doc = await _visible(conn, caller, document_id)
    rules.require_readable(doc, read_sensitive=caller.can(READ_SENSITIVE))
    return document_pb(doc)


async def presign_download(
    engine: AsyncEngine, storage: Storage, caller: Caller, document_id: str, *, ttl_seconds: int
) -> pb.PresignDownloadResponse:
    """A short-lived URL of an UPLOADED document; who got one is audited."""
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        doc = await _visible(conn, caller, document_id)
        rules.require_readable(doc, read_sensitive=caller.can(READ_SENSITIVE))
        rules.require_uploaded(doc)
        _require_driver(doc, storage)
        signed = await storage.presign_download(_stored(doc, caller.tenant_id), ttl_seconds)
        await _audit(conn, caller, doc, "document.download_signed", {"expires_at": signed.expires_at.isoformat()})
    response = pb.PresignDownloadResponse(url=signed.url)
    ts(response.expires_at, signed.expires_at)
    return response


async def list_documents(
    engine: AsyncEngine, caller: Caller, flt: ListFilter, *, cursor: str, limit: int
) -> tuple[list[pb.Document], str]:
    """A page, newest first, and the next page's cursor ('' at the end)."""
    limit = page_limit(limit)
    position = decode_cursor(cursor, _CURSOR, 2)
    after = None
    if position is not None:
        try:
            after = (datetime.fromisoformat(position[0]), str(uuid.UUID(position[1])))
        except ValueError:
            raise invalid("page.cursor", "is not a cursor returned by this list") from None
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        docs = await store.page(conn, flt, after=after, limit=limit)
    next_cursor = ""
    if len(docs) > limit:
        docs = docs[:limit]
        last = docs[-1]
        next_cursor = encode_cursor(_CURSOR, [last.created_at.isoformat(), last.id])
    return [document_pb(d) for d in docs], next_cursor


async def linked_documents(conn: AsyncConnection, caller: Caller, assignment_id: str) -> list[pb.Document]:
    """The UPLOADED documents of an assignment that `caller` may read, newest first (at most
    LINKED_DOCUMENTS_LIMIT): none without documents.read, no pii/confidential ones without
    documents.read_sensitive, only its channel's for a portal user. `conn` is a transaction
    of the caller's tenant."""
    if not caller.can(READ):
        return []
    flt = ListFilter(
        links=rules.Links(assignment_id=assignment_id),
        status=rules.UPLOADED,
        include_sensitive=caller.can(READ_SENSITIVE),
        channel_id=caller.channel_id,
    )
    docs = await store.page(conn, flt, after=None, limit=LINKED_DOCUMENTS_LIMIT)
    return [document_pb(d) for d in docs[:LINKED_DOCUMENTS_LIMIT]]


# -- tags -----------------------------------------------------------------------------------------


async def set_tags(
    engine: AsyncEngine, caller: Caller, document_id: str, upserts: dict[str, str], removals: list[str]
) -> pb.Document:
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        doc = await _visible(conn, caller, document_id, for_update=True)
        rules.require_readable(doc, read_sensitive=caller.can(READ_SENSITIVE))
        after = {k: v for k, v in {**doc.tags, **upserts}.items() if k not in removals}
        if len(after) > rules.MAX_TAGS:
            raise rules.too_many_tags(len(after))
        if after != doc.tags:
            await store.set_tags(
                conn, tenant_id=caller.tenant_id, document_id=doc.id, upserts=upserts, removals=removals
            )
            await _audit(conn, caller, doc, "document.tags_set", {"before": doc.tags, "after": after})
            doc = await store.get(conn, doc.id)
    return document_pb(doc)


# -- the local driver's signed URLs ---------------------------------------------------------------


def _local(storage: Storage) -> LocalStorage:
    if not isinstance(storage, LocalStorage):
        raise FailedPrecondition(
            f"this service stores files with the {storage.driver} driver; local signed URLs are not served",
            reason="LOCAL_STORAGE_DISABLED",
        )
    return storage


def _already_uploaded(document_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"document {document_id} is already uploaded",
        reason="DOCUMENT_ALREADY_UPLOADED",
        metadata={"document_id": document_id},
    )


async def _pending(engine: AsyncEngine, tenant_id: str, document_id: str) -> None:
    async with scoped_tx(engine, tenant_id) as conn:
        status = await store.status_for_share(conn, document_id)
    if status is None:
        raise rules.document_not_found(document_id)
    if status != rules.PENDING:
        raise _already_uploaded(document_id)


async def put_local_object(engine: AsyncEngine, storage: Storage, token: str, chunks: AsyncIterator[bytes]) -> int:
    """Stores the upload a PUT grant allows (exactly its declared size, in chunks of at most
    CHUNK_BYTES) and returns its size. Nothing is kept unless it all arrives; a confirmed
    document's file is never replaced."""
    local = _local(storage)
    grant = local.grant(token, PUT)
    await _pending(engine, grant.tenant_id, grant.object_id)
    upload = await local.begin_upload(grant.key)
    try:
        async for data in chunks:
            if len(data) > CHUNK_BYTES:
                raise invalid("data", f"chunks must be at most {CHUNK_BYTES} bytes")
            if upload.size_bytes + len(data) > grant.size_bytes:
                raise invalid(
                    "data", f"is longer than the declared {grant.size_bytes} bytes", reason="UPLOAD_TOO_LARGE"
                )
            await upload.write(data)
        if upload.size_bytes < grant.size_bytes:
            # Also what a cancelled call looks like: grpc.aio ends the request stream early.
            raise invalid(
                "data",
                f"ended after {upload.size_bytes} of the declared {grant.size_bytes} bytes",
                reason="UPLOAD_INCOMPLETE",
            )
        async with scoped_tx(engine, grant.tenant_id) as conn:
            # Shares the row lock confirm takes: the file is never swapped under a confirm.
            if await store.status_for_share(conn, grant.object_id) != rules.PENDING:
                raise _already_uploaded(grant.object_id)
            await upload.commit()
    except BaseException:
        upload.abort()  # synchronous: a cancelled task must not leave the temporary file behind
        raise
    return upload.size_bytes


async def get_local_object(storage: Storage, token: str) -> AsyncIterator[pb.GetLocalObjectResponse]:
    """The object a GET grant names: a first message with its content type, filename and size,
    then its bytes in chunks of at most CHUNK_BYTES."""
    local = _local(storage)
    grant = local.grant(token, GET)
    async with local.reader(grant.key) as reader:
        yield pb.GetLocalObjectResponse(
            content_type=grant.content_type, filename=grant.filename, size_bytes=reader.size_bytes
        )
        async for chunk in reader.chunks():
            yield pb.GetLocalObjectResponse(data=chunk)
