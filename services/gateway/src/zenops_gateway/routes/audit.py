"""The authentication audit trail of the caller's tenant (users.read), newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from zenops.common.v1 import common_pb2
from zenops.identity.v1 import identity_pb2 as pb

from ..deps import CallerDep, IdentityDep
from ..errors import problem_responses
from ..handler import LeanRoute
from ..models.common import Cursor, Limit, or_none
from ..models.identity import AuditEvent, AuditEventList

router = APIRouter(prefix="/v1", tags=["audit"], route_class=LeanRoute)


@router.get(
    "/audit/auth-events",
    response_model=AuditEventList,
    summary="Authentication audit events of the caller's tenant, newest first (users.read)",
    responses=problem_responses(401, 403, 503),
)
async def list_auth_events(
    caller: CallerDep,
    identity: IdentityDep,
    kind: Annotated[str | None, Query(max_length=64, description="Only events of this kind.")] = None,
    subject: Annotated[
        str | None, Query(max_length=200, description="Only events whose actor or target is this.")
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> AuditEventList:
    resp = await identity.list_audit_events(
        pb.ListAuditEventsRequest(
            page=common_pb2.PageRequest(limit=limit or 0, cursor=cursor or ""), kind=kind or "", subject=subject or ""
        ),
        token=caller.token,
    )
    return AuditEventList(
        items=[AuditEvent.from_proto(e) for e in resp.events], next_cursor=or_none(resp.page.next_cursor)
    )
