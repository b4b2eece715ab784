"""zenops.ops.v1.OpsService."""

from zenops.ops.v1 import ops_pb2, ops_pb2_grpc
from zenops_kit.server import Runtime

SERVICE_NAME = ops_pb2.DESCRIPTOR.services_by_name["OpsService"].full_name


class OpsServicer(ops_pb2_grpc.OpsServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def GetServiceInfo(self, request, context):
        return ops_pb2.GetServiceInfoResponse(info=await self.runtime.service_info())


def register(server, runtime: Runtime) -> list[str]:
    ops_pb2_grpc.add_OpsServiceServicer_to_server(OpsServicer(runtime), server)
    return [SERVICE_NAME]
