"""Tenant routes (creating one needs multi-tenant mode and tenants.write; identity decides)."""

from __future__ import annotations

from fastapi import APIRouter

from zenops.identity.v1 import identity_pb2 as pb

from ..deps import CallerDep, IdentityDep
from ..errors import problem_responses
from ..handler import LeanRoute
from ..models.common import enum_value
from ..models.identity import CreateTenantBody, Tenant, TenantList

router = APIRouter(prefix="/v1", tags=["tenants"], route_class=LeanRoute)


@router.get(
    "/tenants",
    response_model=TenantList,
    summary="Tenants the caller may see",
    responses=problem_responses(401, 403, 503),
)
async def list_tenants(caller: CallerDep, identity: IdentityDep) -> TenantList:
    resp = await identity.list_tenants(pb.ListTenantsRequest(), token=caller.token)
    return TenantList(items=[Tenant.from_proto(t) for t in resp.tenants])


@router.post(
    "/tenants",
    status_code=201,
    response_model=Tenant,
    summary="Create a tenant (multi-tenant mode only; tenants.write)",
    description="403 `MULTI_TENANT_DISABLED` in single-tenant mode; 409 when the slug is taken.",
    responses=problem_responses(401, 403, 409, 503),
)
async def create_tenant(body: CreateTenantBody, caller: CallerDep, identity: IdentityDep) -> Tenant:
    resp = await identity.create_tenant(
        pb.CreateTenantRequest(
            slug=body.slug, name=body.name, kind=enum_value(pb.TenantKind, body.kind, "TENANT_KIND_")
        ),
        token=caller.token,
    )
    return Tenant.from_proto(resp.tenant)
