"""FastAPI dependencies giving route handlers the process's typed clients.

from ..deps import OpsDep

@router.get("/things/{id}")
async def get_thing(id: str, ops: OpsDep) -> Thing: ...
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .clients import BillingClient, IdentityClient, OpsClient, RepogenClient, Upstreams
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


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
UpstreamsDep = Annotated[Upstreams, Depends(get_upstreams)]
IdentityDep = Annotated[IdentityClient, Depends(get_identity)]
OpsDep = Annotated[OpsClient, Depends(get_ops)]
BillingDep = Annotated[BillingClient, Depends(get_billing)]
RepogenDep = Annotated[RepogenClient, Depends(get_repogen)]
