"""Typed client of the billing service (zenops.billing.v1.BillingService)."""

from __future__ import annotations

from zenops.billing.v1 import billing_pb2, billing_pb2_grpc
from zenops.common.v1 import common_pb2

from .base import UpstreamClient


class BillingClient(UpstreamClient):
    service = "billing"
    stub_class = billing_pb2_grpc.BillingServiceStub
    stub: billing_pb2_grpc.BillingServiceStub

    async def get_service_info(self, *, token: str | None, deadline: float | None = None) -> common_pb2.ServiceInfo:
        resp = await self.call(
            self.stub.GetServiceInfo, billing_pb2.GetServiceInfoRequest(), token=token, deadline=deadline
        )
        return resp.info
