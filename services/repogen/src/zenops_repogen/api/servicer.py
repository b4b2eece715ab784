"""zenops.repogen.v1.RepogenService."""

from zenops.repogen.v1 import repogen_pb2, repogen_pb2_grpc
from zenops_kit.server import Runtime

SERVICE_NAME = repogen_pb2.DESCRIPTOR.services_by_name["RepogenService"].full_name


class RepogenServicer(repogen_pb2_grpc.RepogenServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def GetServiceInfo(self, request, context):
        return repogen_pb2.GetServiceInfoResponse(info=await self.runtime.service_info())


def register(server, runtime: Runtime) -> list[str]:
    repogen_pb2_grpc.add_RepogenServiceServicer_to_server(RepogenServicer(runtime), server)
    return [SERVICE_NAME]
