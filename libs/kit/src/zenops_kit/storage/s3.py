"""The S3-compatible driver (AWS S3, MinIO, R2), through boto3, the official SDK.

Presigned URLs are computed locally (no request to the store). The upload URL signs the
object's content type, its exact length and its SHA-256 (`x-amz-checksum-sha256`), so the
client must send those headers (returned as `upload_headers`) and a store that checks
checksums (S3, MinIO) refuses a body that does not match before anything is stored.

A service's own write (`put`) sends the body with its SHA-256 (`ChecksumSHA256`), so a store
that checks checksums refuses a corrupted transfer, and answers the size and digest of the
bytes sent.

Confirm (`stat`) asks the store for the object with `ChecksumMode=ENABLED`: when the store
reports a full-object SHA-256 it computed on upload, that is the object's digest and no
byte is read back. Otherwise (a store that does not keep checksums, or one that kept none
for this object; moto, our test server, keeps none for presigned uploads) the object is
streamed and hashed here, so the answer never depends on what the client claimed.

boto3 blocks: every call that may touch the network runs in a worker thread
(asyncio.to_thread). One client serves the whole process (boto3 clients are thread-safe).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
from datetime import UTC, datetime, timedelta

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from zenops_kit.errors import Unavailable

from . import CHUNK_BYTES, ObjectStat, SignedRequest, StoredObject

log = logging.getLogger("zenops.storage.s3")

_MISSING = {"404", "NoSuchKey", "NotFound"}


def _store_unavailable(exc: Exception, operation: str) -> Unavailable:
    log.warning("file store call failed", extra={"operation": operation, "error": repr(exc)})
    return Unavailable("the file store is unavailable; retry later", reason="STORAGE_UNAVAILABLE")


def _missing(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return error.get("Code") in _MISSING or status == "404"


def _checksum_hex(head: dict) -> str | None:
    """The store's own full-object SHA-256 of the object, as hex; None when it has none."""
    value = head.get("ChecksumSHA256")
    if not value or head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT" or "-" in value:
        return None  # multipart (composite) checksums are not the file's digest
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


class S3Storage:
    driver = "s3"

    def __init__(self, client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings) -> S3Storage:
        endpoint = settings.s3_endpoint_url or None
        key_id = settings.s3_access_key_id.get_secret_value() if settings.s3_access_key_id else None
        secret = settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
        config = Config(
            signature_version="s3v4",
            # MinIO and most S3-compatible stores want path-style addressing.
            s3={"addressing_style": "path" if endpoint else "auto"},
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=30,
        )
        # Empty keys: boto3's default chain (environment, web identity / instance role).
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=settings.s3_region,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=config,
        )
        return cls(client, settings.s3_bucket)

    async def presign_upload(self, obj: StoredObject, ttl_seconds: int) -> SignedRequest:
        checksum = base64.b64encode(bytes.fromhex(obj.sha256)).decode()
        params = {
            "Bucket": self.bucket,
            "Key": obj.key,
            "ContentType": obj.content_type,
            "ContentLength": obj.size_bytes,
            "ChecksumSHA256": checksum,
        }
        url = await self._presign("put_object", params, ttl_seconds, "PUT")
        headers = {
            "content-type": obj.content_type,
            "content-length": str(obj.size_bytes),
            "x-amz-checksum-sha256": checksum,
        }
        return SignedRequest(url=url, method="PUT", headers=headers, expires_at=_expiry(ttl_seconds))

    async def presign_download(self, obj: StoredObject, ttl_seconds: int) -> SignedRequest:
        params = {
            "Bucket": self.bucket,
            "Key": obj.key,
            "ResponseContentType": obj.content_type,
            # the filename is sanitised ([A-Za-z0-9._-]): safe inside the quotes
            "ResponseContentDisposition": f'attachment; filename="{obj.filename}"',
        }
        url = await self._presign("get_object", params, ttl_seconds, "GET")
        return SignedRequest(url=url, method="GET", headers={}, expires_at=_expiry(ttl_seconds))

    async def _presign(self, operation: str, params: dict, ttl_seconds: int, method: str) -> str:
        # Local computation, but resolving credentials from the default chain may block.
        try:
            return await asyncio.to_thread(
                self.client.generate_presigned_url, operation, Params=params, ExpiresIn=ttl_seconds, HttpMethod=method
            )
        except BotoCoreError as exc:
            raise _store_unavailable(exc, operation) from exc

    def _put(self, key: str, data: bytes, content_type: str) -> ObjectStat:
        digest = hashlib.sha256(data)
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            ContentLength=len(data),
            ChecksumSHA256=base64.b64encode(digest.digest()).decode(),
        )
        return ObjectStat(size_bytes=len(data), sha256=digest.hexdigest())

    async def put(self, key: str, data: bytes, *, content_type: str) -> ObjectStat:
        try:
            return await asyncio.to_thread(self._put, key, data, content_type)
        except (BotoCoreError, ClientError) as exc:
            raise _store_unavailable(exc, "put") from exc

    def _stat(self, key: str) -> ObjectStat | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        digest = _checksum_hex(head)
        if digest is not None:
            return ObjectStat(size_bytes=int(head["ContentLength"]), sha256=digest)
        # Hash what is stored now (size and digest of one and the same read).
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        sha, size = hashlib.sha256(), 0
        with body:
            for chunk in body.iter_chunks(CHUNK_BYTES):
                sha.update(chunk)
                size += len(chunk)
        return ObjectStat(size_bytes=size, sha256=sha.hexdigest())

    async def stat(self, key: str) -> ObjectStat | None:
        try:
            return await asyncio.to_thread(self._stat, key)
        except (BotoCoreError, ClientError) as exc:
            raise _store_unavailable(exc, "stat") from exc

    async def delete(self, key: str) -> None:
        try:
            await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise _store_unavailable(exc, "delete") from exc

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)


def _expiry(ttl_seconds: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=ttl_seconds)
