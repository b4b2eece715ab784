"""User and role routes. Capabilities (users.read / users.write) are checked by identity;
its PERMISSION_DENIED becomes 403 in errors.py."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Path, Query, Response
from google.protobuf.field_mask_pb2 import FieldMask

from zenops.common.v1 import common_pb2
from zenops.identity.v1 import identity_pb2 as pb

from ..deps import CallerDep, IdentityDep
from ..errors import http_field_names, problem_responses
from ..handler import LeanRoute
from ..models.common import Cursor, Limit, enum_value, or_none
from ..models.identity import (
    CreateUserBody,
    DisabledUser,
    RolesBody,
    RoleTemplates,
    UnlockedUser,
    User,
    UserList,
    UserPatch,
    UserStatus,
)

router = APIRouter(prefix="/v1", tags=["users"], route_class=LeanRoute)

UserId = Annotated[UUID, Path(description="User id.")]
MERGE_PATCH = "application/merge-patch+json"


@router.get(
    "/users",
    response_model=UserList,
    summary="Users of the caller's tenant (users.read)",
    responses=problem_responses(401, 403, 503),
)
async def list_users(
    caller: CallerDep,
    identity: IdentityDep,
    query: Annotated[
        str | None, Query(max_length=200, description="Case-insensitive part of the email or display name.")
    ] = None,
    status: Annotated[UserStatus | None, Query(description="Only users with this status.")] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> UserList:
    resp = await identity.list_users(
        pb.ListUsersRequest(
            page=common_pb2.PageRequest(limit=limit or 0, cursor=cursor or ""),
            query=query or "",
            status=enum_value(pb.UserStatus, status, "USER_STATUS_") if status else pb.USER_STATUS_UNSPECIFIED,
        ),
        token=caller.token,
    )
    return UserList(items=[User.from_proto(u) for u in resp.users], next_cursor=or_none(resp.page.next_cursor))


@router.post(
    "/users",
    status_code=201,
    response_model=User,
    summary="Create a user in the caller's tenant (users.write)",
    description="400 names the field: `email`, `password` (each failed rule of the password policy), "
    "`roles[i]` (unknown role), `channel_id`; 409 when the email is taken in the tenant.",
    responses={**problem_responses(401, 403, 409, 503), 201: {"headers": {"Location": {"schema": {"type": "string"}}}}},
)
async def create_user(body: CreateUserBody, caller: CallerDep, identity: IdentityDep, response: Response) -> User:
    resp = await identity.create_user(
        pb.CreateUserRequest(
            email=body.email,
            display_name=body.display_name,
            password=body.password.get_secret_value(),
            roles=body.roles,
            channel_id=str(body.channel_id) if body.channel_id else "",
            tenant_id=str(body.tenant_id) if body.tenant_id else "",
        ),
        token=caller.token,
    )
    response.headers["location"] = f"/v1/users/{resp.user.id}"
    return User.from_proto(resp.user)


@router.get(
    "/users/{user_id}",
    response_model=User,
    summary="One user of the caller's tenant (users.read, or the caller itself)",
    responses=problem_responses(401, 403, 404, 503),
)
async def get_user(user_id: UserId, caller: CallerDep, identity: IdentityDep) -> User:
    resp = await identity.get_user(pb.GetUserRequest(id=str(user_id)), token=caller.token)
    return User.from_proto(resp.user)


@router.patch(
    "/users/{user_id}",
    response_model=User,
    summary="Change a user's email, display name or channel (JSON merge patch; users.write)",
    description="Members present are changed, absent ones kept (RFC 7396); `channel_id: null` unlinks "
    "the channel. Roles: `PUT /v1/users/{id}/roles`; disabling: `POST /v1/users/{id}/disable`.",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def update_user(
    user_id: UserId,
    patch: Annotated[UserPatch, Body(media_type=MERGE_PATCH)],
    caller: CallerDep,
    identity: IdentityDep,
) -> User:
    paths = sorted(patch.model_fields_set)
    if not paths:
        # An empty merge patch changes nothing. (Never send an empty update_mask: by AIP-134
        # that would mean "replace every field".)
        resp = await identity.get_user(pb.GetUserRequest(id=str(user_id)), token=caller.token)
        return User.from_proto(resp.user)
    user = pb.User(
        email=patch.email or "",
        display_name=patch.display_name or "",
        channel_id=str(patch.channel_id) if patch.channel_id else "",
    )
    with http_field_names(strip_prefix="user."):  # the body is the User message's fields
        resp = await identity.update_user(
            pb.UpdateUserRequest(id=str(user_id), user=user, update_mask=FieldMask(paths=paths)), token=caller.token
        )
    return User.from_proto(resp.user)


@router.post(
    "/users/{user_id}/disable",
    response_model=DisabledUser,
    summary="Disable a user and revoke all its sessions (users.write)",
    responses=problem_responses(401, 403, 404, 503),
)
async def disable_user(user_id: UserId, caller: CallerDep, identity: IdentityDep) -> DisabledUser:
    resp = await identity.disable_user(pb.DisableUserRequest(id=str(user_id)), token=caller.token)
    return DisabledUser(user=User.from_proto(resp.user), revoked_sessions=resp.revoked_sessions)


@router.post(
    "/users/{user_id}/unlock",
    response_model=UnlockedUser,
    summary="Forget a user's failed logins, ending their login delay at once (users.write)",
    responses=problem_responses(401, 403, 404, 503),
)
async def unlock_user(user_id: UserId, caller: CallerDep, identity: IdentityDep) -> UnlockedUser:
    resp = await identity.unlock_user(pb.UnlockUserRequest(id=str(user_id)), token=caller.token)
    return UnlockedUser(user=User.from_proto(resp.user), cleared_failures=resp.cleared_failures)


@router.put(
    "/users/{user_id}/roles",
    response_model=User,
    summary="Replace a user's roles (users.write)",
    description="400 names an unknown role by its position, e.g. `roles[1]`.",
    responses=problem_responses(401, 403, 404, 503),
)
async def set_roles(user_id: UserId, body: RolesBody, caller: CallerDep, identity: IdentityDep) -> User:
    resp = await identity.set_user_roles(pb.SetUserRolesRequest(id=str(user_id), roles=body.roles), token=caller.token)
    return User.from_proto(resp.user)


@router.get(
    "/roles/templates",
    response_model=RoleTemplates,
    summary="The role → capability table in force",
    responses=problem_responses(401, 403, 503),
)
async def role_templates(caller: CallerDep, identity: IdentityDep) -> RoleTemplates:
    resp = await identity.list_role_templates(pb.ListRoleTemplatesRequest(), token=caller.token)
    return RoleTemplates.from_proto(resp)
