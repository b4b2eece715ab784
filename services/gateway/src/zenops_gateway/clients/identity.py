"""Typed client of the identity service (zenops.identity.v1.IdentityService)."""

from __future__ import annotations

from zenops.common.v1 import common_pb2
from zenops.identity.v1 import identity_pb2, identity_pb2_grpc

from .base import UpstreamClient


class IdentityClient(UpstreamClient):
    service = "identity"
    stub_class = identity_pb2_grpc.IdentityServiceStub
    stub: identity_pb2_grpc.IdentityServiceStub

    async def get_service_info(self, *, deadline: float | None = None) -> common_pb2.ServiceInfo:
        resp = await self.call(self.stub.GetServiceInfo, identity_pb2.GetServiceInfoRequest(), deadline=deadline)
        return resp.info
