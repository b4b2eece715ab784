"""The local storage driver's signed URLs: `PUT /v1/files/{token}` and `GET /v1/files/{token}`
(ops' documents), `GET /v1/artifact-files/{token}` (repogen's artifacts: reports, bundles).

Presign upload / download (routes/documents.py) and the artifact download URL
(routes/repogen.py) answer these URLs when the service stores files on its own disk. They
take NO bearer token: the signed token in the path is the authorisation (single-purpose, one
object, short-lived, bound to its URL prefix — as an S3 presigned URL's signature is); the
owning service checks it.

Both stream, so a file never sits whole in the gateway's memory:

- PUT: the request body goes to ops' PutLocalObject (client stream: the token first, then
  `data` chunks of at most 1 MiB) as it arrives. The API's 1 MiB body limit does not apply
  here; the upload limit does (`ZENOPS_MAX_UPLOAD_BYTES`, 25 MiB, enforced by the body-limit
  middleware on the declared and on the streamed length; ops also refuses more than the
  document's declared size).
- GET: ops' (or repogen's) GetLocalObject (server stream) becomes the response body; its
  first message (content type, filename, size) is read before the response starts, so a bad
  or expired token, or a missing file, is an ordinary problem+json answer.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from fastapi.responses import StreamingResponse

from ..clients.objects import LocalObject
from ..deps import OpsDep, RepogenDep, SettingsDep
from ..errors import problem_responses
from ..handler import LeanRoute
from ..models.documents import StoredFile
from .ops_common import ops_field_names

router = APIRouter(prefix="/v1", tags=["files"], route_class=LeanRoute)

MAX_TOKEN = 4096
FileToken = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_TOKEN,
        pattern=r"^[A-Za-z0-9._~-]+$",
        description="The signed token of a URL from presign-upload or a download URL.",
    ),
]
FIELDS = {"token": "path.token", "data": "body"}

# A media type as RFC 9110 spells it (type/subtype and parameters), nothing that could
# break the header.
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;\s*[A-Za-z0-9!#$&^_.+-]+=[^\x00-\x1f\x7f;]+)*"
)
_UNSAFE_FALLBACK = re.compile(r'[^\x20-\x7e]|["\\%]')


def content_disposition(filename: str) -> str:
    """`attachment` with the filename twice (RFC 6266): an ASCII fallback for old clients
    and the exact UTF-8 name in `filename*`."""
    name = filename.replace("/", "_").replace("\\", "_") or "download"
    fallback = _UNSAFE_FALLBACK.sub("_", name)
    encoded = quote(name, safe="")
    if encoded == fallback:
        return f'attachment; filename="{fallback}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def safe_content_type(value: str) -> str:
    value = value.strip()
    return value if value and len(value) <= 255 and _MEDIA_TYPE.fullmatch(value) else "application/octet-stream"


@router.put(
    "/files/{token}",
    response_model=StoredFile,
    summary="Upload a file's bytes to a signed URL (no bearer token: the token is the authorisation)",
    description="The body is the file (streamed to storage; at most the upload limit, 25 MiB, and the size "
    "declared at presign). Send the `upload_headers` of the presign answer. Then confirm the upload. 401 "
    "`SIGNED_URL_INVALID` / `SIGNED_URL_EXPIRED`, 409 when the document is already uploaded, 413 beyond the "
    "upload limit.",
    responses=problem_responses(401, 404, 409, 413, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def put_file(token: FileToken, request: Request, ops: OpsDep, settings: SettingsDep) -> StoredFile:
    with ops_field_names(FIELDS):
        size = await ops.put_local_object(token, request.stream(), deadline=settings.file_transfer_timeout)
    return StoredFile(size_bytes=size)


@router.get(
    "/files/{token}",
    summary="Download a file from a signed URL (no bearer token: the token is the authorisation)",
    description="Streams the file with its `Content-Type`, `Content-Length` and `Content-Disposition: "
    "attachment`. 401 `SIGNED_URL_INVALID` / `SIGNED_URL_EXPIRED`, 404 `OBJECT_MISSING`.",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        **problem_responses(401, 404, 503),
    },
)
async def get_file(token: FileToken, ops: OpsDep, settings: SettingsDep) -> StreamingResponse:
    with ops_field_names(FIELDS):
        obj = await ops.open_local_object(token, deadline=settings.file_transfer_timeout)
    return stream_object(obj)


@router.get(
    "/artifact-files/{token}",
    summary="Download a report artifact from a signed URL (no bearer token: the token is the authorisation)",
    description="The URL of `GET /v1/artifacts/{id}/download` when repogen stores artifacts on its own disk. "
    "Streams the DOCX, PDF or export bundle with its `Content-Type`, `Content-Length` and `Content-Disposition: "
    "attachment`. 401 `SIGNED_URL_INVALID` / `SIGNED_URL_EXPIRED` (a document's URL is not an artifact's), "
    "404 `OBJECT_MISSING`.",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        **problem_responses(401, 404, 409, 503),
    },
)
async def get_artifact_file(token: FileToken, repogen: RepogenDep, settings: SettingsDep) -> StreamingResponse:
    with ops_field_names(FIELDS):
        obj = await repogen.open_local_object(token, deadline=settings.file_transfer_timeout)
    return stream_object(obj)


def stream_object(obj: LocalObject) -> StreamingResponse:
    headers = {
        # As the service stored it (checked there); never a type Starlette would amend with a charset.
        "content-type": safe_content_type(obj.content_type),
        "content-length": str(obj.size_bytes),
        "content-disposition": content_disposition(obj.filename),
        # Private, short-lived: never cached by a proxy; the browser must not sniff it into HTML.
        "cache-control": "private, no-store",
    }
    return StreamingResponse(obj.chunks(), headers=headers)
