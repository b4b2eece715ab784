"""Where documents' bytes live: one interface, two drivers, chosen once per process from the
settings (`storage_driver`).

- `local` (the default under `make run`): files under `storage_dir`. Its signed URLs are
  relative to the gateway (`/v1/files/<token>`); the gateway streams the bytes through
  ops' PutLocalObject / GetLocalObject, and the HMAC-signed token in the URL is the
  authorisation (storage.local).
- `s3`: any S3-compatible store (AWS S3, MinIO, R2) through boto3; presigned URLs point at
  the store itself and the bytes never pass through ZenOps (storage.s3).

Either way an upload is two-step: presign (the document row is PENDING) → the client PUTs
the bytes to the URL → confirm reads the stored object's size and SHA-256 (`stat`) and
compares them with what the client declared. Objects are addressed by deterministic keys
(`storage_key`); a key names one document's one file and is never reused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

# Data chunks of the local driver's streams and of every read that hashes an object.
CHUNK_BYTES = 1024 * 1024

_KEY = re.compile(r"tenant/[0-9a-f-]{36}/[0-9]{4}/[0-9]{2}/[0-9a-f-]{36}/[A-Za-z0-9._-]{1,200}")


@dataclass(frozen=True)
class StoredObject:
    """One document's file, as the drivers see it."""

    key: str
    tenant_id: str
    document_id: str
    filename: str
    content_type: str
    size_bytes: int
    sha256: str  # lower-case hex


@dataclass(frozen=True)
class SignedRequest:
    """A short-lived request the client makes itself (upload or download)."""

    url: str
    method: str
    headers: dict[str, str]
    expires_at: datetime


@dataclass(frozen=True)
class ObjectStat:
    size_bytes: int
    sha256: str  # lower-case hex


class Storage(Protocol):
    """What the documents use cases need from a driver."""

    driver: str  # "local" | "s3": recorded on the document row

    async def presign_upload(self, obj: StoredObject, ttl_seconds: int) -> SignedRequest:
        """A PUT of exactly `obj`'s bytes (the headers it returns must be sent)."""
        ...

    async def presign_download(self, obj: StoredObject, ttl_seconds: int) -> SignedRequest:
        """A GET of the stored object, served as an attachment named `obj.filename`."""
        ...

    async def stat(self, key: str) -> ObjectStat | None:
        """The stored object's size and SHA-256; None when there is no object."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object (no error when it is already gone)."""
        ...

    async def close(self) -> None: ...


def storage_key(tenant_id: str, document_id: str, created_at: datetime, filename: str) -> str:
    """`tenant/<tenant_id>/<yyyy>/<mm>/<document_id>/<safe-filename>` (`filename` already
    sanitised: domain.documents.safe_filename)."""
    key = f"tenant/{tenant_id}/{created_at:%Y}/{created_at:%m}/{document_id}/{filename}"
    if not is_storage_key(key):
        raise ValueError(f"not a storage key: {key!r}")
    return key


def is_storage_key(key: str) -> bool:
    """Whether `key` has the shape storage_key makes (no path parts a file system or a
    bucket could read differently)."""
    return _KEY.fullmatch(key) is not None and "/." not in key


_ATTR = "_ops_storage"


def storage_for(runtime) -> Storage:
    """The process's driver, made on first use from the runtime's settings and kept on the
    runtime (one boto3 client / one directory for every RPC); close_storage releases it."""
    storage = getattr(runtime, _ATTR, None)
    if storage is None:
        storage = build_storage(runtime.settings)
        setattr(runtime, _ATTR, storage)
    return storage


def build_storage(settings) -> Storage:
    if settings.storage_driver == "s3":
        from .s3 import S3Storage  # boto3 is imported only by processes that use it

        return S3Storage.from_settings(settings)
    from .local import LocalStorage

    return LocalStorage.from_settings(settings)


async def close_storage(runtime) -> None:
    storage = getattr(runtime, _ATTR, None)
    if storage is not None:
        setattr(runtime, _ATTR, None)
        await storage.close()
