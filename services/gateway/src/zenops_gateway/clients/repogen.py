"""Typed client of the repogen service (zenops.repogen.v1.RepogenService)."""

from __future__ import annotations

from zenops.common.v1 import common_pb2
from zenops.repogen.v1 import repogen_pb2, repogen_pb2_grpc

from .base import UpstreamClient


class RepogenClient(UpstreamClient):
    service = "repogen"
    stub_class = repogen_pb2_grpc.RepogenServiceStub
    stub: repogen_pb2_grpc.RepogenServiceStub

    async def get_service_info(self, *, token: str | None, deadline: float | None = None) -> common_pb2.ServiceInfo:
        resp = await self.call(
            self.stub.GetServiceInfo, repogen_pb2.GetServiceInfoRequest(), token=token, deadline=deadline
        )
        return resp.info
