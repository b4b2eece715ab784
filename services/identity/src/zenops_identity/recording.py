"""What identity records alongside a change, in the change's transaction: audit rows and
outbox events (identity.session.revoked, identity.user.disabled)."""

from __future__ import annotations

from datetime import datetime, timedelta

from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncConnection

from zenops.events.v1 import identity_pb2 as events_pb2
from zenops_kit.context import RequestContext
from zenops_kit.events import append_event, new_event

from .domain.audit import clean_detail
from .store import audit as audit_store

SESSION_REVOKED_EVENT = "identity.session.revoked"
USER_DISABLED_EVENT = "identity.user.disabled"


def actor_of(ctx: RequestContext) -> str:
    return ctx.user_id or ctx.subject or ""


def trace_id(ctx: RequestContext) -> str:
    span = trace.get_current_span().get_span_context()
    return format(span.trace_id, "032x") if span.is_valid else (ctx.request_id or "")


async def audit(
    conn: AsyncConnection,
    ctx: RequestContext,
    *,
    tenant_id: str,
    kind: str,
    target: str = "",
    actor: str | None = None,
    detail: dict | None = None,
) -> None:
    await audit_store.append(
        conn,
        tenant_id=tenant_id,
        kind=kind,
        actor=actor_of(ctx) if actor is None else actor,
        target=target,
        ip=ctx.client_ip or "",
        user_agent=ctx.user_agent or "",
        trace_id=trace_id(ctx),
        detail=clean_detail(detail or {}),
    )


async def sessions_revoked(
    conn: AsyncConnection,
    *,
    version: str,
    tenant_id: str,
    user_id: str,
    session_ids: list[str],
    reason: str,
    now: datetime,
    access_token_ttl: int,
) -> None:
    if not session_ids:
        return
    payload = events_pb2.SessionsRevoked(session_ids=session_ids, user_id=user_id, reason=reason)
    # Every access token of these sessions has expired by then (plus the verifiers' leeway).
    payload.access_valid_until.FromDatetime(now + timedelta(seconds=access_token_ttl + 60))
    await append_event(
        conn,
        new_event(
            event_type=SESSION_REVOKED_EVENT,
            payload=payload,
            producer="identity",
            producer_version=version,
            aggregate_type="session",
            aggregate_id=user_id,
            aggregate_version=0,
            tenant_id=tenant_id,
            occurred_at=now,
        ),
    )


async def user_disabled(
    conn: AsyncConnection,
    *,
    version: str,
    tenant_id: str,
    user_id: str,
    user_version: int,
    session_ids: list[str],
    now: datetime,
) -> None:
    payload = events_pb2.UserDisabled(user_id=user_id, session_ids=session_ids)
    await append_event(
        conn,
        new_event(
            event_type=USER_DISABLED_EVENT,
            payload=payload,
            producer="identity",
            producer_version=version,
            aggregate_type="user",
            aggregate_id=user_id,
            aggregate_version=user_version,
            tenant_id=tenant_id,
            occurred_at=now,
        ),
    )
