"""Artifacts: what the factory stored (export bundle, DOCX, PDF), listed with the render jobs,
and downloaded through short-lived signed URLs.

Artifact bytes live in the kit's storage (zenops_kit.storage), the same interface as ops'
documents: local disk by default, an S3-compatible store in production. The local driver's
URLs are `/v1/artifact-files/<token>`, relative to the gateway, which streams the bytes from
GetLocalObject here (a public RPC: the HMAC-signed, expiring, download-only token names the
one object and is the authorisation, as an S3 presigned URL's signature is). Handing out a
download URL is audited on the work order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from zenops.repogen.v1 import repogen_pb2 as pb
from zenops_kit.caller import Caller, trace_id
from zenops_kit.errors import FailedPrecondition
from zenops_kit.fields import not_found
from zenops_kit.rls import scoped_tx
from zenops_kit.storage import SignedRequest, Storage, StoredObject, storage_for
from zenops_kit.storage.local import GET, LocalStorage

from . import contract
from .store import factory as store
from .store import work_orders as work_order_store

# The gateway route of the local storage driver's artifact URLs.
ARTIFACT_FILES_URL_PREFIX = "/v1/artifact-files/"


def files(runtime) -> Storage:
    """The process's artifact storage (made on first use; the app closes it)."""
    return storage_for(runtime, url_prefix=ARTIFACT_FILES_URL_PREFIX)


@dataclass(frozen=True)
class Listing:
    artifacts: list[Row]
    jobs: list[Row]


async def list_artifacts(engine: AsyncEngine, caller: Caller, work_order_id: str) -> Listing:
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        await contract.visible(conn, work_order_id)
        return Listing(await store.artifacts_of(conn, work_order_id), await store.jobs_of(conn, work_order_id))


async def presign_download(
    engine: AsyncEngine, storage: Storage, caller: Caller, artifact_id: str, *, ttl_seconds: int
) -> SignedRequest:
    """A download URL of the artifact (of a work order the caller sees), audited."""
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        row = await store.artifact(conn, artifact_id)
        # The work order decides visibility (a portal user's channel: RLS on work_orders).
        if row is None or await work_order_store.get(conn, row.work_order_id) is None:
            raise not_found("artifact", artifact_id, field="artifact_id")
        if row.storage_driver != storage.driver:
            raise FailedPrecondition(
                f"artifact {artifact_id} is kept by the {row.storage_driver} storage driver; "
                f"this service runs the {storage.driver} driver",
                reason="STORAGE_DRIVER_MISMATCH",
                metadata={"artifact_id": artifact_id, "driver": row.storage_driver},
            )
        signed = await storage.presign_download(
            StoredObject(
                key=row.storage_key,
                tenant_id=row.tenant_id,
                object_id=row.id,
                filename=row.filename,
                content_type=row.content_type,
                size_bytes=row.size_bytes,
                sha256=row.sha256,
            ),
            ttl_seconds,
        )
        await work_order_store.record(
            conn,
            tenant_id=caller.tenant_id,
            work_order_id=row.work_order_id,
            kind="artifact.download_signed",
            actor=caller.actor,
            trace_id=trace_id(),
            detail={
                "artifact_id": row.id,
                "kind": row.kind,
                "sha256": row.sha256,
                "expires_at": signed.expires_at.isoformat(),
            },
        )
    return signed


async def get_local_object(storage: Storage, token: str) -> AsyncIterator[pb.GetLocalObjectResponse]:
    """The object a download grant names: a first message with its content type, filename and
    size, then its bytes in chunks."""
    if not isinstance(storage, LocalStorage):
        raise FailedPrecondition(
            f"this service stores artifacts with the {storage.driver} driver; local signed URLs are not served",
            reason="LOCAL_STORAGE_DISABLED",
        )
    grant = storage.grant(token, GET)
    async with storage.reader(grant.key) as reader:
        yield pb.GetLocalObjectResponse(
            content_type=grant.content_type, filename=grant.filename, size_bytes=reader.size_bytes
        )
        async for chunk in reader.chunks():
            yield pb.GetLocalObjectResponse(data=chunk)
