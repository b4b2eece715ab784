"""ReleaseDeliverable, the use case: the manual, billing-gated release of a rendered report.

In one transaction, the work order row locked (FOR NO KEY UPDATE: releases of one work order
queue up):
1. only a RENDERED work order whose current snapshot's render job succeeded is released, and
   only once (a release exists → ALREADY_EXISTS RELEASE_EXISTS);
2. billing's AuthorizeRelease decides (billing_client.py): CREDIT consumes the reservation
   (made at acceptance), POSTPAID needs a paid invoice, an override needs a reason and
   billing.override; a refusal raises billing's reason and the transaction rolls back —
   nothing of the work order changes;
3. allowed: the release row (unique per work order, immutable: the pack, every artifact's
   SHA-256, billing's basis and reservation, the override reason, who and when), the work
   order RELEASED (work_orders.mark_released, audited), and repogen.deliverable.released in
   the outbox (ops marks the assignment DELIVERED).
The whole is idempotent by the caller's key (zenops_kit.idempotency): the same key answers
the same release.
"""

from __future__ import annotations

from google.protobuf.message import Message
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops.events.v1 import repogen_pb2 as events
from zenops.repogen.v1 import repogen_pb2 as pb
from zenops_kit.caller import Caller, trace_id
from zenops_kit.errors import AlreadyExists, FailedPrecondition
from zenops_kit.idempotency import idempotent_as

from . import contract, outbox, work_orders
from .api.translate import ts, work_order_pb
from .billing_client import BillingClient
from .domain import lifecycle
from .store import factory as factory_store
from .store import loads
from .store import release as store

OVERRIDE_CAPABILITY = "billing.override"


def release_pb(row: Row) -> pb.Release:
    r = pb.Release(
        id=row.id,
        work_order_id=row.work_order_id,
        snapshot_version=row.snapshot_version,
        artifact_hashes=loads(row.artifact_hashes),
        billing_basis=row.billing_basis,
        billing_reservation_id=row.billing_reservation_id,
        override_reason=row.override_reason,
        released_by=row.released_by,
    )
    ts(r.released_at, row.released_at)
    return r


async def _releasable(conn: AsyncConnection, work_order_id: str) -> tuple[Row, str, list[Row]]:
    """The locked work order, the pack rendered from its snapshot and that pack's artifacts."""
    work_order = await contract.visible(conn, work_order_id, lock=True)
    existing = await store.of_work_order(conn, work_order.id)
    if existing is not None:
        raise AlreadyExists(
            f"work order {work_order.id} was already released",
            reason="RELEASE_EXISTS",
            metadata={"work_order_id": work_order.id, "release_id": existing.id},
        )
    if work_order.status != lifecycle.RENDERED:
        raise FailedPrecondition(
            f"work order {work_order.id} is {work_order.status}; only a RENDERED report is released",
            reason="WORK_ORDER_NOT_RENDERED",
            metadata={"work_order_id": work_order.id, "status": work_order.status},
        )
    if not work_order.billing_account_id:
        raise FailedPrecondition(
            f"work order {work_order.id} names no billing account to charge",
            reason="BILLING_ACCOUNT_MISSING",
            metadata={"work_order_id": work_order.id},
        )
    pack_id = await store.rendered_pack(conn, work_order.id, work_order.snapshot_version)
    if pack_id is None:  # RENDERED is only reached by a successful job: a broken invariant, said plainly
        raise FailedPrecondition(
            f"work order {work_order.id} has no rendered report of snapshot {work_order.snapshot_version}",
            reason="REPORT_NOT_RENDERED",
            metadata={"work_order_id": work_order.id},
        )
    return work_order, pack_id, await factory_store.pack_artifacts(conn, pack_id)


async def release_deliverable(
    engine: AsyncEngine,
    billing: BillingClient,
    caller: Caller,
    *,
    work_order_id: str,
    override_reason: str,
    key: str,
    request: Message,
    user_token: str | None,
) -> pb.ReleaseDeliverableResponse:
    """`override_reason` checked (domain.factory.override_reason); `user_token`: the caller's own
    bearer token, sent to billing in place of repogen's when overriding."""
    if override_reason:
        caller.require(OVERRIDE_CAPABILITY)

    async def run(conn: AsyncConnection) -> pb.ReleaseDeliverableResponse:
        work_order, pack_id, artifacts = await _releasable(conn, work_order_id)
        decision = await billing.authorize_release(
            tenant_id=work_order.tenant_id,
            work_order_id=work_order.id,
            account_id=work_order.billing_account_id,
            channel_request_id=work_order.channel_request_id or "",
            credits=work_order.credits,
            override_reason=override_reason,
            attempt_key=key,
            user_token=user_token if override_reason else None,
        )
        release = await store.insert(
            conn,
            tenant_id=work_order.tenant_id,
            work_order_id=work_order.id,
            snapshot_version=work_order.snapshot_version,
            pack_id=pack_id,
            artifact_hashes={a.kind: a.sha256 for a in artifacts},
            billing_basis=decision.basis,
            billing_reservation_id=decision.reservation_id,
            override_reason=override_reason,
            actor=caller.actor,
        )
        moved = await work_orders.mark_released(
            conn,
            work_order_id=work_order.id,
            actor=caller.actor,
            trace_id=trace_id(),
            reason=override_reason,
            detail={
                "release_id": release.id,
                "billing_basis": decision.basis,
                "billing_reservation_id": decision.reservation_id,
                "pack_id": pack_id,
            },
        )
        await outbox.emit(
            conn,
            event_type=outbox.DELIVERABLE_RELEASED,
            tenant_id=work_order.tenant_id,
            aggregate_type="work_order",
            aggregate_id=work_order.id,
            aggregate_version=moved.version,
            payload=events.DeliverableReleased(
                work_order_id=work_order.id,
                deliverable_id=release.id,
                billing_account_id=work_order.billing_account_id,
                channel_request_id=work_order.channel_request_id or "",
                assignment_id=work_order.assignment_id,
                snapshot_version=work_order.snapshot_version,
            ),
        )
        return pb.ReleaseDeliverableResponse(release=release_pb(release), work_order=work_order_pb(moved))

    return await idempotent_as(
        engine, caller, key, "ReleaseDeliverable", request, run=run, decode=pb.ReleaseDeliverableResponse.FromString
    )
