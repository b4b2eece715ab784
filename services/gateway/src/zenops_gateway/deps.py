"""FastAPI dependencies giving route handlers the caller and the process's typed clients.

from ..deps import CallerDep, OpsDep

@router.get("/things/{id}")
async def get_thing(id: str, caller: CallerDep, ops: OpsDep) -> Thing:
    t = await ops.get_thing(GetThingRequest(id=id), token=caller.token)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from zenops_kit.context import RequestContext
from zenops_kit.errors import Unauthenticated
from zenops_kit.logging import request_id_var

from .clients import BillingClient, IdentityClient, InvoicingClient, OpsClient, RepogenClient, Upstreams
from .clients.base import ClientInfo, client_info_var
from .runtime import Runtime
from .settings import GatewaySettings


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_settings(request: Request) -> GatewaySettings:
    return get_runtime(request).settings


def get_upstreams(request: Request) -> Upstreams:
    return get_runtime(request).require_upstreams()


def get_identity(request: Request) -> IdentityClient:
    return get_upstreams(request).identity


def get_ops(request: Request) -> OpsClient:
    return get_upstreams(request).ops


def get_billing(request: Request) -> BillingClient:
    return get_upstreams(request).billing


def get_repogen(request: Request) -> RepogenClient:
    return get_upstreams(request).repogen


def get_invoicing(request: Request) -> InvoicingClient:
    return get_upstreams(request).invoicing


class _DocumentedBearer(HTTPBearer):
    """HTTPBearer for the OpenAPI document only: per request it does nothing (no header
    parsing, no credentials model) — `get_caller` reads the header itself."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


# Documents the scheme in OpenAPI (and Swagger UI's "Authorize"); `get_caller` parses the
# header itself so that a missing and a malformed header get different reasons.
bearer_scheme = _DocumentedBearer(
    scheme_name="bearer",
    bearerFormat="JWT",
    description="Access token from `POST /v1/auth/login` or `POST /v1/auth/refresh`.",
    auto_error=False,
)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; Unauthenticated otherwise."""
    if not authorization:
        raise Unauthenticated("a bearer token is required", reason="TOKEN_MISSING")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("authorization must be 'Bearer <token>'", reason="TOKEN_MALFORMED")
    return token


async def get_caller(
    request: Request, _documented: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
) -> RequestContext:
    """The verified caller. The access token is checked locally (signature against identity's
    JWKS, algorithm allow-list, iss/aud/exp/nbf, revoked sessions from NATS): any failure is
    401 with the TOKEN_* reason, identity unreachable while fetching keys is 503. Capabilities
    are NOT checked here: the services decide (their PERMISSION_DENIED becomes 403)."""
    token = bearer_token(request.headers.get("authorization"))
    # The verifier's cached context as is (no copy), then one copy with this request's details.
    ctx = await get_runtime(request).require_verifier().verify(token, None)
    client = client_info_var.get() or ClientInfo()
    return ctx.for_call(request_id_var.get(), client.ip, client.user_agent, token)


# Dependencies are `async def`: FastAPI runs a plain `def` dependency in its thread pool, a
# thread hop per request and dependency for what is an attribute lookup.


async def _runtime_dep(request: Request) -> Runtime:
    return get_runtime(request)


async def _settings_dep(request: Request) -> GatewaySettings:
    return get_settings(request)


async def _upstreams_dep(request: Request) -> Upstreams:
    return get_upstreams(request)


async def _identity_dep(request: Request) -> IdentityClient:
    return get_identity(request)


async def _ops_dep(request: Request) -> OpsClient:
    return get_ops(request)


async def _billing_dep(request: Request) -> BillingClient:
    return get_billing(request)


async def _repogen_dep(request: Request) -> RepogenClient:
    return get_repogen(request)


async def _invoicing_dep(request: Request) -> InvoicingClient:
    return get_invoicing(request)


CallerDep = Annotated[RequestContext, Depends(get_caller)]
RuntimeDep = Annotated[Runtime, Depends(_runtime_dep)]
SettingsDep = Annotated[GatewaySettings, Depends(_settings_dep)]
UpstreamsDep = Annotated[Upstreams, Depends(_upstreams_dep)]
IdentityDep = Annotated[IdentityClient, Depends(_identity_dep)]
OpsDep = Annotated[OpsClient, Depends(_ops_dep)]
BillingDep = Annotated[BillingClient, Depends(_billing_dep)]
RepogenDep = Annotated[RepogenClient, Depends(_repogen_dep)]
InvoicingDep = Annotated[InvoicingClient, Depends(_invoicing_dep)]
