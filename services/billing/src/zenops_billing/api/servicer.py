"""zenops.billing.v1.BillingService."""

from zenops.billing.v1 import billing_pb2, billing_pb2_grpc
from zenops_kit.server import Runtime

from .operations import OperationsRpcs

SERVICE_NAME = billing_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name


class BillingServicer(OperationsRpcs, billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def GetServiceInfo(self, request, context):
        return billing_pb2.GetServiceInfoResponse(info=await self.runtime.service_info())


def register(server, runtime: Runtime) -> list[str]:
    billing_pb2_grpc.add_BillingServiceServicer_to_server(BillingServicer(runtime), server)
    return [SERVICE_NAME]
