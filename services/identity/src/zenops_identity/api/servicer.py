"""zenops.identity.v1.IdentityService."""

from zenops.identity.v1 import identity_pb2, identity_pb2_grpc
from zenops_kit.server import Runtime

SERVICE_NAME = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def GetServiceInfo(self, request, context):
        return identity_pb2.GetServiceInfoResponse(info=await self.runtime.service_info())


def register(server, runtime: Runtime) -> list[str]:
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(IdentityServicer(runtime), server)
    return [SERVICE_NAME]
