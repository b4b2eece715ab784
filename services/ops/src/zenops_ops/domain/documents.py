"""Documents: the rules, without I/O.

- A document is created PENDING by presign-upload with what the client declares about the
  file (name, content type, size, SHA-256) and becomes UPLOADED when confirm finds the
  stored object has exactly that size and digest. A mismatch leaves it PENDING (the bad
  object is deleted, so a correct upload can follow).
- Only allowed content types are stored (CONTENT_TYPES), up to the configured maximum size.
  The filename is reduced to a safe basename whose extension agrees with the content type
  (`safe_filename`): it becomes part of the storage key and of download headers.
- Links: at least one of assignment, channel request (both ops'), work order (repogen's),
  invoice (billing's), employee. The document belongs to the channel of its channel request
  (or of its assignment): that is what a channel partner's portal users may see.
- Portal users may link only their own channel's requests and assignments (another
  channel's are NOT_FOUND to them), not work orders or employees; their uploads' source
  defaults to portal_upload.
- Sensitivity pii and confidential need documents.read_sensitive to read: a get or a
  download is PERMISSION_DENIED SENSITIVE_DOCUMENT, a list leaves them out.
- Tags: key → value, upserted; an empty value removes the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from zenops_kit.errors import FailedPrecondition, FieldViolation, PermissionDenied
from zenops_kit.fields import invalid, not_found, optional_uuid, parse_uuid, text

READ, WRITE, READ_SENSITIVE = "documents.read", "documents.write", "documents.read_sensitive"

# Content type → the file extensions it may carry (the first is added to a name without one).
CONTENT_TYPES: dict[str, tuple[str, ...]] = {
    "application/pdf": (".pdf",),
    "image/jpeg": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "image/png": (".png",),
    "image/webp": (".webp",),
    "image/heic": (".heic",),
    "image/heif": (".heif", ".heic"),
    "image/tiff": (".tif", ".tiff"),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (".docx",),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": (".xlsx",),
    "application/msword": (".doc",),
    "application/vnd.ms-excel": (".xls",),
    "text/csv": (".csv",),
    "text/plain": (".txt", ".text"),
}
_KNOWN_EXTENSIONS = frozenset(ext for exts in CONTENT_TYPES.values() for ext in exts)

MAX_FILENAME = 200
MAX_RAW_FILENAME = 1024
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 1000
MAX_TAGS = 50
MAX_TAG_VALUE = 200
TAG_KEY = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,62}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_RUNS = re.compile(r"_{2,}")

SENSITIVE = frozenset({"PII", "CONFIDENTIAL"})
PENDING, UPLOADED = "PENDING", "UPLOADED"
PORTAL_UPLOAD = "PORTAL_UPLOAD"
DEFAULT_SENSITIVITY = "INTERNAL"
# A capture time is a real moment: not before digital photos of this business, not ahead of
# the clock by more than a device's drift.
_EARLIEST_CAPTURE = datetime(2000, 1, 1, tzinfo=UTC)
_CAPTURE_DRIFT = timedelta(days=1)

LINK_FIELDS = ("assignment_id", "channel_request_id", "work_order_id", "invoice_id", "employee_id")
# What a portal user may not link: repogen's work orders and the firm's employees.
_STAFF_ONLY_LINKS = ("work_order_id", "employee_id")

# Activity kinds written on a linked assignment's or channel request's trail.
DOCUMENT_UPLOADED = "document.uploaded"


@dataclass(frozen=True)
class Links:
    assignment_id: str | None = None
    channel_request_id: str | None = None
    work_order_id: str | None = None
    invoice_id: str | None = None
    employee_id: str | None = None

    def any(self) -> bool:
        return any(getattr(self, f) for f in LINK_FIELDS)


@dataclass(frozen=True)
class NewDocument:
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    source: str
    classification: str
    sensitivity: str
    links: Links
    captured_at: datetime | None
    captured_by_employee_id: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class Document:
    id: str
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    status: str
    source: str
    classification: str
    sensitivity: str
    captured_at: datetime | None
    captured_by_employee_id: str
    metadata: dict[str, str]
    tags: dict[str, str]
    links: Links
    channel_id: str | None
    storage_driver: str
    storage_key: str
    created_by: str
    created_at: datetime
    uploaded_at: datetime | None

    @property
    def sensitive(self) -> bool:
        return self.sensitivity in SENSITIVE


@dataclass(frozen=True)
class ListFilter:
    links: Links = field(default_factory=Links)
    tag_key: str | None = None
    tag_value: str | None = None
    classification: str | None = None
    source: str | None = None
    sensitivity: str | None = None
    status: str | None = None
    include_sensitive: bool = False
    channel_id: str | None = None  # a portal user's channel


# -- the file -------------------------------------------------------------------------------------


def content_type(value: str) -> str:
    """An allowed content type, lower-cased, without parameters ("text/plain; charset=utf-8")."""
    value = (value or "").split(";", 1)[0].strip().lower()
    if not value:
        raise invalid("content_type", "is required")
    if value not in CONTENT_TYPES:
        raise invalid(
            "content_type",
            "is not an allowed file type; allowed: " + ", ".join(CONTENT_TYPES),
            reason="CONTENT_TYPE_NOT_ALLOWED",
        )
    return value


def safe_filename(value: str, content_type_: str) -> str:
    """The basename of `value` reduced to [A-Za-z0-9._-] (control characters dropped, other
    characters → `_`, runs of `_` collapsed, no leading or trailing dots), at most
    MAX_FILENAME characters with its extension kept. The extension must be one of the content
    type's; a name without a known extension gets the content type's first."""
    if not value or not value.strip():
        raise invalid("filename", "is required")
    if len(value) > MAX_RAW_FILENAME:
        raise invalid("filename", f"must be at most {MAX_RAW_FILENAME} characters")
    name = value.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if ord(c) >= 32 and ord(c) != 127)
    name = _RUNS.sub("_", _UNSAFE.sub("_", name.strip())).strip(".")
    stem, dot, ext = name.rpartition(".")
    ext = f".{ext.lower()}" if dot else ""
    if not dot or not stem or ext not in _KNOWN_EXTENSIONS:
        stem, ext = name, ""  # no extension of a file type we store: part of the name
    allowed = CONTENT_TYPES[content_type_]
    if ext and ext not in allowed:
        raise invalid(
            "filename",
            f"has the extension {ext}, which does not match content_type {content_type_} ({', '.join(allowed)})",
        )
    ext = ext or allowed[0]
    stem = stem.rstrip(".")[: MAX_FILENAME - len(ext)].rstrip(".")
    if not stem.strip("_"):
        raise invalid("filename", "must name a file (letters or digits)")
    return stem + ext


def size_bytes(value: int, max_bytes: int) -> int:
    if value <= 0:
        raise invalid("size_bytes", "must be at least 1 byte")
    if value > max_bytes:
        raise invalid("size_bytes", f"must be at most {max_bytes} bytes", reason="FILE_TOO_LARGE")
    return value


def sha256(value: str) -> str:
    if not value:
        raise invalid("sha256", "is required")
    if not _SHA256.fullmatch(value):
        raise invalid("sha256", "must be the file's SHA-256 as 64 hexadecimal characters")
    return value.lower()


# -- what it is ----------------------------------------------------------------------------------


def metadata(values: dict[str, str]) -> dict[str, str]:
    if len(values) > MAX_METADATA_KEYS:
        raise invalid("metadata", f"must have at most {MAX_METADATA_KEYS} keys")
    cleaned = {}
    for key, value in sorted(values.items()):
        shown = key[:MAX_METADATA_KEY]
        if not key.strip():
            raise invalid("metadata", "keys must not be empty")
        if len(key) > MAX_METADATA_KEY:
            raise invalid("metadata", f"key {shown!r}… is longer than {MAX_METADATA_KEY} characters")
        if any(ord(c) < 32 or ord(c) == 127 for c in key):
            raise invalid("metadata", f"key {shown!r} must not contain control characters")
        cleaned[key] = text(value, f"metadata.{key}", max_length=MAX_METADATA_VALUE, required=False)
    return cleaned


def captured_at(value: datetime | None, now: datetime) -> datetime | None:
    if value is not None and not _EARLIEST_CAPTURE <= value <= now + _CAPTURE_DRIFT:
        raise invalid("captured_at", "must be a real capture time (after 2000, not in the future)")
    return value


def links(values: dict[str, str], *, portal: bool, field_prefix: str = "links") -> Links:
    """The request's links (ids checked); at least one; a portal user only ops' own."""
    parsed = Links(**{f: optional_uuid(values.get(f, ""), f"{field_prefix}.{f}") for f in LINK_FIELDS})
    if not parsed.any():
        raise invalid(field_prefix, "must link the document to at least one of: " + ", ".join(LINK_FIELDS))
    if portal:
        for f in _STAFF_ONLY_LINKS:
            if getattr(parsed, f):
                raise invalid(f"{field_prefix}.{f}", "cannot be set by a portal user")
        if not (parsed.assignment_id or parsed.channel_request_id):
            raise invalid(field_prefix, "a portal upload must link one of your channel's requests or assignments")
    return parsed


def new_document(
    *,
    filename: str,
    content_type_: str,
    size: int,
    digest: str,
    source: str,
    classification: str,
    sensitivity: str,
    link_values: dict[str, str],
    captured: datetime | None,
    captured_by_employee_id: str,
    metadata_values: dict[str, str],
    portal: bool,
    max_bytes: int,
    now: datetime,
) -> NewDocument:
    """PresignUpload's input, checked (errors name the request's fields). Enums arrive as
    their names ('' when unset)."""
    ctype = content_type(content_type_)
    if not source:
        if not portal:
            raise invalid("source", "is required")
        source = PORTAL_UPLOAD
    if not classification:
        raise invalid("classification", "is required")
    return NewDocument(
        filename=safe_filename(filename, ctype),
        content_type=ctype,
        size_bytes=size_bytes(size, max_bytes),
        sha256=sha256(digest),
        source=source,
        classification=classification,
        sensitivity=sensitivity or DEFAULT_SENSITIVITY,
        links=links(link_values, portal=portal),
        captured_at=captured_at(captured, now),
        captured_by_employee_id=optional_uuid(captured_by_employee_id, "captured_by_employee_id") or "",
        metadata=metadata(metadata_values),
    )


# -- which channel it belongs to ------------------------------------------------------------------


def document_channel(links_: Links, *, assignment_channel: str | None, request_channel: str | None) -> str | None:
    """The channel of the linked request, else of the linked assignment. A request and an
    assignment of different channels cannot be linked together."""
    if links_.assignment_id and links_.channel_request_id and assignment_channel != request_channel:
        raise invalid("links.assignment_id", "belongs to another channel than links.channel_request_id")
    return request_channel or assignment_channel


def link_not_found(kind: str, id_: str):
    return not_found(kind, id_, field=f"links.{kind}_id")


# -- who may read it ------------------------------------------------------------------------------


def require_readable(doc: Document, *, read_sensitive: bool) -> None:
    if doc.sensitive and not read_sensitive:
        raise PermissionDenied(
            f"document {doc.id} is {doc.sensitivity.lower()}: documents.read_sensitive is required",
            reason="SENSITIVE_DOCUMENT",
            metadata={"document_id": doc.id, "sensitivity": doc.sensitivity.lower()},
        )


def require_confirmable(doc: Document, *, read_sensitive: bool, actor: str) -> None:
    """Whoever uploaded a sensitive document may confirm it; others need read_sensitive."""
    if doc.created_by != actor:
        require_readable(doc, read_sensitive=read_sensitive)


def require_uploaded(doc: Document) -> None:
    if doc.status != UPLOADED:
        raise FailedPrecondition(
            f"document {doc.id} has not been uploaded yet",
            reason="DOCUMENT_NOT_UPLOADED",
            metadata={"document_id": doc.id},
        )


def document_not_found(document_id: str):
    return not_found("document", document_id)


# -- confirm --------------------------------------------------------------------------------------


def object_missing(doc: Document) -> FailedPrecondition:
    return FailedPrecondition(
        f"nothing has been uploaded for document {doc.id}", reason="OBJECT_MISSING", metadata={"document_id": doc.id}
    )


def verify_object(doc: Document, size: int, digest: str) -> None:
    """The stored object is the declared file, or FAILED_PRECONDITION naming what differs."""
    if size != doc.size_bytes:
        raise FailedPrecondition(
            f"the uploaded file has {size} bytes, not the declared {doc.size_bytes}",
            reason="SIZE_MISMATCH",
            violations=[FieldViolation("size_bytes", f"declared {doc.size_bytes}, uploaded {size}")],
            metadata={"document_id": doc.id, "declared": str(doc.size_bytes), "uploaded": str(size)},
        )
    if digest != doc.sha256:
        raise FailedPrecondition(
            "the uploaded file's SHA-256 differs from the declared one",
            reason="CHECKSUM_MISMATCH",
            violations=[FieldViolation("sha256", f"declared {doc.sha256}, uploaded {digest}")],
            metadata={"document_id": doc.id, "declared": doc.sha256, "uploaded": digest},
        )


# -- tags and lists -------------------------------------------------------------------------------


def tag_changes(values: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """SetDocumentTags' map: (upserts, removals); an empty value removes its key."""
    if not values:
        raise invalid("tags", "must name at least one tag")
    if len(values) > MAX_TAGS:
        raise invalid("tags", f"must have at most {MAX_TAGS} entries")
    upserts, removals = {}, []
    for key, value in sorted(values.items()):
        if not TAG_KEY.fullmatch(key):
            raise invalid("tags", f"key {key[:64]!r} must match {TAG_KEY.pattern} (lower case)")
        value = text(value, f"tags.{key}", max_length=MAX_TAG_VALUE, required=False)
        if value:
            upserts[key] = value
        else:
            removals.append(key)
    return upserts, removals


def too_many_tags(count: int):
    return invalid("tags", f"a document has at most {MAX_TAGS} tags (this would make {count})")


def list_filter(
    *,
    link_values: dict[str, str],
    tag_key: str,
    tag_value: str,
    classification: str | None,
    source: str | None,
    sensitivity: str | None,
    status: str | None,
    read_sensitive: bool,
    channel_id: str | None,
) -> ListFilter:
    parsed = Links(**{f: optional_uuid(link_values.get(f, ""), f"links.{f}") for f in LINK_FIELDS})
    if tag_key and not TAG_KEY.fullmatch(tag_key):
        raise invalid("tag_key", f"must match {TAG_KEY.pattern}")
    if tag_value and not tag_key:
        raise invalid("tag_value", "needs tag_key")
    return ListFilter(
        links=parsed,
        tag_key=tag_key or None,
        tag_value=tag_value or None,
        classification=classification,
        source=source,
        sensitivity=sensitivity,
        status=status,
        include_sensitive=read_sensitive,
        channel_id=channel_id,
    )


def document_id(value: str) -> str:
    return parse_uuid(value, "id")
