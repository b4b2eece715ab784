"""The local-disk driver: files under `storage_dir`, signed URLs served by the gateway.

A signed URL is `<url_prefix><token>` (ops: `/v1/files/`, repogen: `/v1/artifact-files/`):
the gateway turns `PUT` into the owning service's PutLocalObject (client stream) and `GET`
into its GetLocalObject (server stream), and the token is the only authorisation, as an S3
presigned URL's signature is. The token is a grant:

    base64url(JSON {v, p: put|get, t: tenant, d: object id, k: storage key, s: size,
                    c: content type, f: filename, e: expiry (unix seconds)})
    "." base64url(HMAC-SHA256(storage_signing_key, "zenops.local-object.v1." + url_prefix + "." + payload))

A grant is single-purpose (a download grant cannot upload), names exactly one object,
expires (signed_url_ttl_seconds) and is bound to its URL prefix (a grant one service signed
is refused by another, even under a shared key). The signature is checked in constant time
before anything in the payload is believed.

Every write (a client's upload, or the service's own `put`) goes to a temporary file next to
its final path, is flushed to disk, and is renamed into place only when complete: a reader
never sees half a file, and an aborted or oversized write leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from zenops_kit.errors import NotFound, Unauthenticated

from . import CHUNK_BYTES, DEFAULT_KEYS, KeyShape, ObjectStat, SignedRequest, StoredObject

PUT, GET = "put", "get"
_CONTEXT = b"zenops.local-object.v1."
_VERSION = 1


@dataclass(frozen=True)
class Grant:
    """What a verified token allows."""

    purpose: str  # put | get
    tenant_id: str
    object_id: str
    key: str
    size_bytes: int
    content_type: str
    filename: str
    expires_at: int  # unix seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _invalid(message: str = "the signed URL is not valid") -> Unauthenticated:
    return Unauthenticated(message, reason="SIGNED_URL_INVALID")


class GrantSigner:
    """Signs and verifies grants for one URL prefix (one service's file route)."""

    def __init__(self, key: bytes, url_prefix: str, *, keys: KeyShape = DEFAULT_KEYS) -> None:
        if not key:
            raise ValueError("storage_signing_key must not be empty")
        if not url_prefix.startswith("/") or not url_prefix.endswith("/"):
            raise ValueError(f"url_prefix must start and end with '/': {url_prefix!r}")
        self._key = key
        self._context = _CONTEXT + url_prefix.encode() + b"."
        self.keys = keys

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._key, self._context + payload.encode(), hashlib.sha256).digest()

    def sign(self, grant: Grant) -> str:
        body = {
            "v": _VERSION,
            "p": grant.purpose,
            "t": grant.tenant_id,
            "d": grant.object_id,
            "k": grant.key,
            "s": grant.size_bytes,
            "c": grant.content_type,
            "f": grant.filename,
            "e": grant.expires_at,
        }
        payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        return f"{payload}.{_b64(self._mac(payload))}"

    def verify(self, token: str, purpose: str, *, now: float | None = None) -> Grant:
        """The grant `token` carries for `purpose`; UNAUTHENTICATED SIGNED_URL_INVALID when it
        is malformed, tampered with or for another purpose, SIGNED_URL_EXPIRED when expired."""
        payload, dot, signature = (token or "").partition(".")
        if not dot or not payload or not signature or len(token) > 4096:
            raise _invalid()
        try:
            given = _unb64(signature)
        except (binascii.Error, ValueError):
            raise _invalid() from None
        if not hmac.compare_digest(given, self._mac(payload)):
            raise _invalid()
        try:
            body = json.loads(_unb64(payload))
            grant = Grant(
                purpose=body["p"],
                tenant_id=body["t"],
                object_id=body["d"],
                key=body["k"],
                size_bytes=int(body["s"]),
                content_type=body["c"],
                filename=body["f"],
                expires_at=int(body["e"]),
            )
            if body["v"] != _VERSION:
                raise ValueError
        except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise _invalid() from None
        if grant.purpose != purpose:
            raise _invalid(f"this signed URL does not allow {'uploads' if purpose == PUT else 'downloads'}")
        if not self.keys.valid(grant.key):
            raise _invalid()
        if (time.time() if now is None else now) >= grant.expires_at:
            raise Unauthenticated("the signed URL has expired", reason="SIGNED_URL_EXPIRED")
        return grant


class LocalUpload:
    """One write in progress: a temporary file renamed into place by commit()."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.temp = final.parent / f".{final.name}.{uuid.uuid4().hex}.part"
        self.size_bytes = 0
        self.sha256 = hashlib.sha256()
        self._file = None

    def _open(self) -> None:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.temp, "xb")  # noqa: SIM115 - closed by commit/abort

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    async def write(self, data: bytes) -> None:
        await asyncio.to_thread(self._file.write, data)
        self.sha256.update(data)
        self.size_bytes += len(data)

    def _commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.temp, self.final)

    async def commit(self) -> None:
        await asyncio.to_thread(self._commit)

    def abort(self) -> None:
        """Drop the temporary file (synchronous, so that it also runs in a task being cancelled;
        closing and unlinking one file does not hold the loop up)."""
        if self._file is not None and not self._file.closed:
            self._file.close()
        self.temp.unlink(missing_ok=True)


class LocalStorage:
    driver = "local"

    def __init__(self, root: Path, signing_key: bytes, *, url_prefix: str, keys: KeyShape = DEFAULT_KEYS) -> None:
        self.root = root.resolve()
        self.url_prefix = url_prefix
        self.keys = keys
        self.signer = GrantSigner(signing_key, url_prefix, keys=keys)

    @classmethod
    def from_settings(cls, settings, *, url_prefix: str, keys: KeyShape = DEFAULT_KEYS) -> LocalStorage:
        return cls(
            Path(settings.storage_dir),
            settings.storage_signing_key.get_secret_value().encode(),
            url_prefix=url_prefix,
            keys=keys,
        )

    def path(self, key: str) -> Path:
        if not self.keys.valid(key):
            raise ValueError(f"not a storage key: {key!r}")
        return self.root / key

    def _sign(self, purpose: str, obj: StoredObject, ttl_seconds: int) -> SignedRequest:
        expires = int(time.time()) + ttl_seconds
        token = self.signer.sign(
            Grant(
                purpose=purpose,
                tenant_id=obj.tenant_id,
                object_id=obj.object_id,
                key=obj.key,
                size_bytes=obj.size_bytes,
                content_type=obj.content_type,
                filename=obj.filename,
                expires_at=expires,
            )
        )
        headers = {"content-type": obj.content_type} if purpose == PUT else {}
        return SignedRequest(
            url=self.url_prefix + token,
            method="PUT" if purpose == PUT else "GET",
            headers=headers,
            expires_at=datetime.fromtimestamp(expires, UTC),
        )

    async def presign_upload(self, obj: StoredObject, ttl_seconds: int) -> SignedRequest:
        return self._sign(PUT, obj, ttl_seconds)

    async def presign_download(self, obj: StoredObject, ttl_seconds: int) -> SignedRequest:
        return self._sign(GET, obj, ttl_seconds)

    async def put(self, key: str, data: bytes, *, content_type: str) -> ObjectStat:
        upload = await self.begin_upload(key)
        try:
            for start in range(0, len(data), CHUNK_BYTES):
                await upload.write(data[start : start + CHUNK_BYTES])
            await upload.commit()
        except BaseException:
            upload.abort()
            raise
        return ObjectStat(size_bytes=upload.size_bytes, sha256=upload.sha256.hexdigest())

    def _stat(self, key: str) -> ObjectStat | None:
        digest = hashlib.sha256()
        size = 0
        try:
            with open(self.path(key), "rb") as f:
                while chunk := f.read(CHUNK_BYTES):
                    digest.update(chunk)
                    size += len(chunk)
        except FileNotFoundError:
            return None
        return ObjectStat(size_bytes=size, sha256=digest.hexdigest())

    async def stat(self, key: str) -> ObjectStat | None:
        return await asyncio.to_thread(self._stat, key)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path(key).unlink, missing_ok=True)

    async def close(self) -> None:
        return None

    # -- the gateway's side of the signed URLs (PutLocalObject / GetLocalObject) --

    def grant(self, token: str, purpose: str) -> Grant:
        return self.signer.verify(token, purpose)

    async def begin_upload(self, key: str) -> LocalUpload:
        upload = LocalUpload(self.path(key))
        await upload.open()
        return upload

    @asynccontextmanager
    async def reader(self, key: str) -> AsyncIterator[LocalReader]:
        """`async with storage.reader(key) as r:` r.size_bytes, then `async for chunk in
        r.chunks()`; NOT_FOUND OBJECT_MISSING when there is no object."""
        try:
            f = await asyncio.to_thread(open, self.path(key), "rb")
        except FileNotFoundError:
            raise NotFound("the file is not in the store", reason="OBJECT_MISSING") from None
        try:
            size = (await asyncio.to_thread(os.fstat, f.fileno())).st_size
            yield LocalReader(f, size)
        finally:
            await asyncio.to_thread(f.close)


class LocalReader:
    def __init__(self, file, size_bytes: int) -> None:
        self._file = file
        self.size_bytes = size_bytes

    async def chunks(self) -> AsyncIterator[bytes]:
        """The bytes in chunks of at most CHUNK_BYTES."""
        while chunk := await asyncio.to_thread(self._file.read, CHUNK_BYTES):
            yield chunk
