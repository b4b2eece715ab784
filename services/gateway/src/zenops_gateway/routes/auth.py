"""Authentication routes: login, refresh, logout, the caller, its sessions and password,
and the public JWKS. Bodies of these routes carry secrets: nothing here logs them."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Response

from zenops.identity.v1 import identity_pb2 as pb

from ..deps import CallerDep, IdentityDep
from ..errors import http_field_names, problem_responses
from ..handler import LeanRoute
from ..models.identity import (
    ChangePasswordBody,
    Jwk,
    Jwks,
    LoginBody,
    Me,
    PasswordChanged,
    RefreshBody,
    Session,
    SessionList,
    TokenPair,
)

router = APIRouter(tags=["auth"], route_class=LeanRoute)

# RFC 6749 §5.1: token responses must not be cached anywhere.
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
# Keys rotate with overlap (the old key stays published until its tokens expire), so a
# few minutes of caching at the edge and in clients is safe.
JWKS_CACHE = "public, max-age=300"

AUTHENTICATED = (401, 503)


@router.post(
    "/v1/auth/login",
    response_model=TokenPair,
    summary="Email + password → a new session's access and refresh tokens",
    description="Every failure (unknown email, wrong password, locked or disabled account) is the same "
    "401 `INVALID_CREDENTIALS`. 403 `TENANT_NOT_ENABLED`: a web/studio login to another tenant in "
    "single-tenant mode.",
    responses=problem_responses(401, 403, 429, 503),
)
async def login(body: LoginBody, identity: IdentityDep, response: Response) -> TokenPair:
    with http_field_names(renames={"audience": "aud"}):
        resp = await identity.login(
            pb.LoginRequest(
                email=body.email,
                password=body.password.get_secret_value(),
                audience=body.aud,
                tenant_id=str(body.tenant_id) if body.tenant_id else "",
            )
        )
    response.headers.update(NO_STORE)
    return TokenPair.from_proto(resp.tokens)


@router.post(
    "/v1/auth/refresh",
    response_model=TokenPair,
    summary="Rotate a refresh token: the old one is spent, a new pair is returned",
    description="Presenting an already-used refresh token (outside a short grace period) revokes the whole session.",
    responses=problem_responses(401, 429, 503),
)
async def refresh(body: RefreshBody, identity: IdentityDep, response: Response) -> TokenPair:
    resp = await identity.refresh(pb.RefreshRequest(refresh_token=body.refresh_token.get_secret_value()))
    response.headers.update(NO_STORE)
    return TokenPair.from_proto(resp.tokens)


@router.post(
    "/v1/auth/logout",
    status_code=204,
    response_class=Response,
    summary="Revoke the calling token's session",
    responses=problem_responses(*AUTHENTICATED),
)
async def logout(caller: CallerDep, identity: IdentityDep) -> Response:
    await identity.logout(pb.LogoutRequest(), token=caller.token)
    return Response(status_code=204)


@router.get(
    "/v1/me",
    response_model=Me,
    summary="The caller: user, tenant, capabilities, session and audience",
    responses=problem_responses(*AUTHENTICATED, 404),
)
async def me(caller: CallerDep, identity: IdentityDep) -> Me:
    return Me.from_proto(await identity.get_me(pb.GetMeRequest(), token=caller.token))


@router.get(
    "/v1/auth/sessions",
    response_model=SessionList,
    summary="The caller's active sessions",
    responses=problem_responses(*AUTHENTICATED),
)
async def list_sessions(caller: CallerDep, identity: IdentityDep) -> SessionList:
    resp = await identity.list_sessions(pb.ListSessionsRequest(), token=caller.token)
    return SessionList(items=[Session.from_proto(s) for s in resp.sessions])


@router.delete(
    "/v1/auth/sessions/{session_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke one of the caller's sessions (any session of the tenant with users.write)",
    responses=problem_responses(*AUTHENTICATED, 403, 404),
)
async def revoke_session(
    session_id: Annotated[UUID, Path(description="Session id.")], caller: CallerDep, identity: IdentityDep
) -> Response:
    await identity.revoke_session(pb.RevokeSessionRequest(session_id=str(session_id)), token=caller.token)
    return Response(status_code=204)


@router.post(
    "/v1/auth/password",
    response_model=PasswordChanged,
    summary="Change the caller's password (the current one is required); revokes its other sessions",
    description="400 `VALIDATION_FAILED` names `new_password` with each failed rule of the password policy; "
    "400 `CURRENT_PASSWORD_INVALID` names `current_password` (and counts towards the lockout).",
    responses=problem_responses(*AUTHENTICATED),
)
async def change_password(body: ChangePasswordBody, caller: CallerDep, identity: IdentityDep) -> PasswordChanged:
    resp = await identity.change_password(
        pb.ChangePasswordRequest(
            current_password=body.current_password.get_secret_value(),
            new_password=body.new_password.get_secret_value(),
        ),
        token=caller.token,
    )
    return PasswordChanged(revoked_sessions=resp.revoked_sessions)


@router.get(
    "/.well-known/jwks.json",
    response_model=Jwks,
    response_model_exclude_none=True,
    summary="Public keys verifying access tokens (RFC 7517 JWK Set); no authentication",
    responses=problem_responses(503),
)
async def jwks(identity: IdentityDep, response: Response) -> Jwks:
    resp = await identity.get_jwks(pb.GetJwksRequest())
    response.headers["cache-control"] = JWKS_CACHE
    return Jwks(keys=[Jwk.from_proto(k) for k in resp.keys])
