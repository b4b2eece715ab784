"""Control-plane routes (operators): credit reconciliation on demand, and every service's
events (outbox backlog, consumer lag, redeliveries, dead letters, workers) with the
dead-letter replay.

Capabilities are checked by the services (`billing.reconcile`, `control.read`,
`control.write`); their PERMISSION_DENIED becomes 403."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Query

from zenops.billing.v1 import billing_pb2 as pb

from ..clients.events_admin import EventsAdminClient
from ..deps import BillingDep, CallerDep, RuntimeDep, UpstreamsDep
from ..errors import UpstreamError, problem_responses
from ..handler import LeanRoute
from ..models.billing import ReconcileBody, ReconcileResult
from ..models.events import DEAD_LETTER_ID_PATTERN, DeadLetter, EventsView, ReplayResult, ServiceEvents

# The caller's own fault, the same at every service: answered as such, not as an outage.
_CALLER_ERRORS = {"UNAUTHENTICATED", "PERMISSION_DENIED", "INVALID_ARGUMENT"}

router = APIRouter(prefix="/v1/control", tags=["control"], route_class=LeanRoute)


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


@router.get(
    "/events",
    response_model=EventsView,
    summary="Every service's events: outbox backlog, consumer lag, redeliveries, dead letters (control.read)",
    description="Asks the four services at once, each within the gateway's RPC deadline. A service that "
    "does not answer is listed as `UNAVAILABLE` with a `code`, never failing the whole view. Per consumer: "
    "`pending` (not yet delivered: the lag), `ack_pending`, `redelivered` (JetStream's figures, null when "
    "JetStream did not answer) and dead letters; `dead_letters` lists the open ones, newest first "
    "(`dead_letter_limit` per service, default 20, at most 100); `workers` are the answering replica's "
    "supervised workers (running, backoff, stopped) with their restarts.",
    responses=problem_responses(401, 403),
)
async def events(
    caller: CallerDep,
    upstreams: UpstreamsDep,
    rt: RuntimeDep,
    dead_letter_limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> EventsView:
    deadline = rt.settings.rpc_timeout

    async def one(name: str, client: EventsAdminClient) -> ServiceEvents:
        try:
            resp = await client.get_event_stats(dead_letter_limit, token=caller.token, deadline=deadline)
        except UpstreamError as err:
            if err.detail.code.name in _CALLER_ERRORS:
                raise
            return ServiceEvents(status="UNAVAILABLE", code=err.detail.reason or err.detail.code.name)
        return ServiceEvents.from_proto(name, resp)

    clients = upstreams.events_admin
    answers = await asyncio.gather(*(one(name, client) for name, client in clients.items()))
    return EventsView(services=dict(zip(clients, answers, strict=True)))


@router.post(
    "/dead-letters/{dead_letter_id}/replay",
    response_model=ReplayResult,
    summary="Replay one dead letter once (control.write)",
    description="`dead_letter_id` is `<service>:<number>` as GET /v1/control/events lists it. The service runs "
    "the consumer's handler on the event now, in one transaction with the consumer's inbox row and the dead "
    "letter's `replayed_at`: `applied: false` means the consumer had already handled the event (no second "
    "effect). A replayed dead letter is never replayed again: a second replay is 409 "
    "`DEAD_LETTER_ALREADY_REPLAYED` (so the action needs no idempotency key); an unknown one is 404 "
    "`DEAD_LETTER_NOT_FOUND`; a handler that fails again is 409 `DEAD_LETTER_REPLAY_FAILED` and the dead "
    "letter stays open.",
    responses=problem_responses(400, 401, 403, 404, 409, 503, 504),
)
async def replay_dead_letter(
    dead_letter_id: Annotated[str, Path(pattern=DEAD_LETTER_ID_PATTERN, examples=["ops:42"])],
    caller: CallerDep,
    upstreams: UpstreamsDep,
) -> ReplayResult:
    service, _, number = dead_letter_id.partition(":")
    resp = await upstreams.events_admin[service].replay_dead_letter(int(number), token=caller.token)
    return ReplayResult(dead_letter=DeadLetter.from_proto(service, resp.dead_letter), applied=resp.applied)
