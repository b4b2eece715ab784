"""Control-plane routes (operators): credit reconciliation on demand.

`billing.reconcile` is checked by the billing service; its PERMISSION_DENIED becomes 403."""

from __future__ import annotations

from fastapi import APIRouter

from zenops.billing.v1 import billing_pb2 as pb

from ..deps import BillingDep, CallerDep
from ..errors import problem_responses
from ..models.billing import ReconcileBody, ReconcileResult

router = APIRouter(prefix="/v1/control", tags=["control"])


@router.post(
    "/credits/reconcile",
    response_model=ReconcileResult,
    summary="Resolve stale active reservations with their owners (billing.reconcile)",
    description="Scans active reservations older than billing's threshold and asks the owning service (ops for "
    "channel requests and assignments, repogen for work orders) about each ref: delivered → `consume`, "
    "cancelled/rejected/gone → `release`, no answer → `leave` (never released by guess). `dry_run: true` "
    "answers the plan and changes nothing; `limit` bounds the batch (default 100). Every run ends with a "
    "wallet invariant check: `violations` is empty when healthy. Running it twice changes nothing the "
    "second time, so it needs no idempotency key.",
    responses=problem_responses(401, 403, 503),
)
async def reconcile(body: ReconcileBody, caller: CallerDep, billing: BillingDep) -> ReconcileResult:
    resp = await billing.reconcile(pb.ReconcileRequest(dry_run=body.dry_run, limit=body.limit or 0), token=caller.token)
    return ReconcileResult.from_proto(resp)
