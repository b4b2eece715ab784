"""Partner intake routes: channel requests (submit, list, read, accept, reject).

Capabilities (channel_requests.read / .write / .review) are checked by ops. A portal user
(`aud=portal`, a `channel_id` claim) submits for and sees only its own channel's requests —
enforced in ops: another channel's request is 404 and absent from lists. Accepting creates
and links the assignment (source `channel`) and emits `ops.channel_request.accepted`;
rejecting records the reason and emits `ops.channel_request.rejected`. Both are idempotent:
accepting again answers the same assignment.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response

from zenops.ops.v1 import ops_pb2 as pb

from ..deps import CallerDep, OpsDep
from ..errors import problem_responses
from ..handler import LeanRoute
from ..models.common import Cursor, Limit, or_none
from ..models.intake import (
    AcceptBody,
    Accepted,
    ChannelRequest,
    ChannelRequestList,
    RejectBody,
    SubmitChannelRequestBody,
)
from ..models.ops_common import ChannelRequestStatus, id_text, pb_enum
from .ops_common import CREATED, OptionalIdempotencyKey, ops_field_names, page, query_fields

router = APIRouter(prefix="/v1", tags=["channel requests"], route_class=LeanRoute)

ChannelRequestId = Annotated[UUID, Path(description="Channel request id.")]
PATH_ID = {"id": "path.channel_request_id"}


@router.post(
    "/channel-requests",
    status_code=201,
    response_model=ChannelRequest,
    summary="Submit a channel request (portal users: for their channel; staff: channel_requests.write)",
    description="Starts `submitted`. `Location` is the request.",
    responses={**problem_responses(401, 403, 404, 409, 503), **CREATED},
)
async def submit_channel_request(
    body: SubmitChannelRequestBody,
    caller: CallerDep,
    ops: OpsDep,
    response: Response,
    idempotency_key: OptionalIdempotencyKey = None,
) -> ChannelRequest:
    with ops_field_names():
        resp = await ops.submit_channel_request(body.to_proto(idempotency_key), token=caller.token)
    response.headers["location"] = f"/v1/channel-requests/{resp.channel_request.id}"
    return ChannelRequest.from_proto(resp.channel_request)


@router.get(
    "/channel-requests",
    response_model=ChannelRequestList,
    summary="Channel requests, newest first (channel_requests.read; portal users: their channel's)",
    responses=problem_responses(401, 403, 503),
)
async def list_channel_requests(
    caller: CallerDep,
    ops: OpsDep,
    status: Annotated[ChannelRequestStatus | None, Query(description="Only requests in this state.")] = None,
    channel_id: Annotated[UUID | None, Query(description="Staff only: one channel's requests.")] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> ChannelRequestList:
    with ops_field_names(query_fields("status", "channel_id")):
        resp = await ops.list_channel_requests(
            pb.ListChannelRequestsRequest(
                page=page(limit, cursor),
                status=pb_enum(pb.ChannelRequestStatus, status, "CHANNEL_REQUEST_STATUS_"),
                channel_id=id_text(channel_id),
            ),
            token=caller.token,
        )
    return ChannelRequestList(
        items=[ChannelRequest.from_proto(r) for r in resp.channel_requests],
        next_cursor=or_none(resp.page.next_cursor),
    )


@router.get(
    "/channel-requests/{channel_request_id}",
    response_model=ChannelRequest,
    summary="One channel request (channel_requests.read; portal users: their channel's)",
    responses=problem_responses(401, 403, 404, 503),
)
async def get_channel_request(channel_request_id: ChannelRequestId, caller: CallerDep, ops: OpsDep) -> ChannelRequest:
    with ops_field_names(PATH_ID):
        resp = await ops.fetch_channel_request(
            pb.FetchChannelRequestRequest(id=str(channel_request_id)), token=caller.token
        )
    return ChannelRequest.from_proto(resp.channel_request)


@router.post(
    "/channel-requests/{channel_request_id}/accept",
    response_model=Accepted,
    summary="Accept a channel request: create and link its assignment (channel_requests.review)",
    description="Body optional: settings of the assignment it creates. Accepting an accepted request answers "
    "the same assignment and emits nothing new; a rejected one is 409.",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def accept_channel_request(
    channel_request_id: ChannelRequestId,
    caller: CallerDep,
    ops: OpsDep,
    body: AcceptBody | None = None,
    idempotency_key: OptionalIdempotencyKey = None,
) -> Accepted:
    with ops_field_names(PATH_ID):
        resp = await ops.accept_channel_request(
            (body or AcceptBody()).to_proto(str(channel_request_id), idempotency_key), token=caller.token
        )
    return Accepted.from_proto(resp)


@router.post(
    "/channel-requests/{channel_request_id}/reject",
    response_model=ChannelRequest,
    summary="Reject a channel request with a reason (channel_requests.review)",
    description="Rejecting a rejected request changes nothing; an accepted one is 409.",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def reject_channel_request(
    channel_request_id: ChannelRequestId,
    body: RejectBody,
    caller: CallerDep,
    ops: OpsDep,
    idempotency_key: OptionalIdempotencyKey = None,
) -> ChannelRequest:
    with ops_field_names(PATH_ID):
        resp = await ops.reject_channel_request(
            pb.RejectChannelRequestRequest(
                id=str(channel_request_id), reason=body.reason, idempotency_key=idempotency_key or ""
            ),
            token=caller.token,
        )
    return ChannelRequest.from_proto(resp.channel_request)
