"""Where a service's files live (ops' documents, repogen's rendered reports): one interface,
two drivers, chosen once per process from the settings (`StorageSettings.storage_driver`).

- `local` (the default under `make run`): files under `storage_dir`. Its signed URLs are
  relative to the gateway (`<url_prefix><token>`, e.g. ops' `/v1/files/`); the gateway
  streams the bytes through the owning service's PutLocalObject / GetLocalObject, and the
  HMAC-signed token in the URL is the authorisation (storage.local).
- `s3`: any S3-compatible store (AWS S3, MinIO, R2) through boto3; presigned URLs point at
  the store itself and the bytes never pass through ZenOps (storage.s3).

What a service parameterises: the local driver's URL prefix (which gateway route serves its
files, and the signing context of its tokens, so one service's grant never opens another's
files) and the shape of its keys (`key_pattern`). The default shape,
`tenant/<tenant>/<yyyy>/<mm>/<owner id>/<safe name>`, serves both ops (owner = the document)
and repogen (owner = the work order).

A client upload is two-step (presign → the client PUTs → `stat` checks size and SHA-256); a
service that writes its own objects (repogen's artifacts) calls `put`. Objects are
addressed by deterministic keys; a key names one file and is never reused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

# Data chunks of the local driver's streams and of every read that hashes an object.
CHUNK_BYTES = 1024 * 1024

# tenant/<uuid>/<yyyy>/<mm>/<uuid>/<name>: the key shape both services use.
DEFAULT_KEY_PATTERN = re.compile(r"tenant/[0-9a-f-]{36}/[0-9]{4}/[0-9]{2}/[0-9a-f-]{36}/[A-Za-z0-9._-]{1,200}")


@dataclass(frozen=True)
class StoredObject:
    """One stored file, as the drivers see it. `object_id` is what the file belongs to (a
    document, an artifact); it travels in the local driver's grants."""

    key: str
    tenant_id: str
    object_id: str
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
    """What the use cases need from a driver."""

    driver: str  # "local" | "s3": recorded on the row that names the object

    async def presign_upload(self, obj: StoredObject, ttl_seconds: int) -> SignedRequest:
        """A PUT of exactly `obj`'s bytes (the headers it returns must be sent)."""
        ...

    async def presign_download(self, obj: StoredObject, ttl_seconds: int) -> SignedRequest:
        """A GET of the stored object, served as an attachment named `obj.filename`."""
        ...

    async def put(self, key: str, data: bytes, *, content_type: str) -> ObjectStat:
        """Store `data` under `key` (whole or not at all) and return its size and SHA-256."""
        ...

    async def stat(self, key: str) -> ObjectStat | None:
        """The stored object's size and SHA-256; None when there is no object."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object (no error when it is already gone)."""
        ...

    async def close(self) -> None: ...


class KeyShape:
    """Which keys a service's storage accepts (a fullmatch of `pattern`, and no path part a
    file system or a bucket could read differently)."""

    def __init__(self, pattern: re.Pattern[str] = DEFAULT_KEY_PATTERN) -> None:
        self.pattern = pattern

    def valid(self, key: str) -> bool:
        return self.pattern.fullmatch(key) is not None and "/." not in key


DEFAULT_KEYS = KeyShape()


def storage_key(
    tenant_id: str, owner_id: str, created_at: datetime, name: str, *, shape: KeyShape = DEFAULT_KEYS
) -> str:
    """`tenant/<tenant_id>/<yyyy>/<mm>/<owner_id>/<name>` (`name` already safe:
    [A-Za-z0-9._-])."""
    key = f"tenant/{tenant_id}/{created_at:%Y}/{created_at:%m}/{owner_id}/{name}"
    if not shape.valid(key):
        raise ValueError(f"not a storage key: {key!r}")
    return key


def is_storage_key(key: str) -> bool:
    """Whether `key` has the default shape."""
    return DEFAULT_KEYS.valid(key)


_ATTR = "_zenops_storage"


def storage_for(runtime, *, url_prefix: str, keys: KeyShape = DEFAULT_KEYS) -> Storage:
    """The process's driver, made on first use from the runtime's settings (a StorageSettings)
    and kept on the runtime (one boto3 client / one directory for every RPC); close_storage
    releases it. `url_prefix`: the gateway route of the local driver's signed URLs."""
    storage = getattr(runtime, _ATTR, None)
    if storage is None:
        storage = build_storage(runtime.settings, url_prefix=url_prefix, keys=keys)
        setattr(runtime, _ATTR, storage)
    return storage


def build_storage(settings, *, url_prefix: str, keys: KeyShape = DEFAULT_KEYS) -> Storage:
    if settings.storage_driver == "s3":
        from .s3 import S3Storage  # boto3 is imported only by processes that use it

        return S3Storage.from_settings(settings)
    from .local import LocalStorage

    return LocalStorage.from_settings(settings, url_prefix=url_prefix, keys=keys)


async def close_storage(runtime) -> None:
    storage = getattr(runtime, _ATTR, None)
    if storage is not None:
        setattr(runtime, _ATTR, None)
        await storage.close()
