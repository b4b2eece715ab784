"""Typed client of the ops service (zenops.ops.v1.OpsService)."""

from __future__ import annotations

from zenops.common.v1 import common_pb2
from zenops.ops.v1 import ops_pb2, ops_pb2_grpc

from .base import UpstreamClient


class OpsClient(UpstreamClient):
    service = "ops"
    stub_class = ops_pb2_grpc.OpsServiceStub
    stub: ops_pb2_grpc.OpsServiceStub

    async def get_service_info(self, *, token: str | None, deadline: float | None = None) -> common_pb2.ServiceInfo:
        resp = await self.call(
            self.stub.GetServiceInfo, ops_pb2.GetServiceInfoRequest(), token=token, deadline=deadline
        )
        return resp.info
