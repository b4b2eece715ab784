"""zenops.repogen.v1.RepogenService: one servicer assembled from one class per area
(api/<area>.py). Servicers translate proto ↔ use cases, nothing else."""

from zenops.repogen.v1 import repogen_pb2, repogen_pb2_grpc
from zenops_kit.context import current_context
from zenops_kit.server import Runtime

from .contract import ContractRpcs
from .evidence import EvidenceRpcs
from .factory import FactoryRpcs
from .release import ReleaseRpcs
from .work_orders import WorkOrderRpcs

SERVICE_NAME = repogen_pb2.DESCRIPTOR.services_by_name["RepogenService"].full_name


class RepogenServicer(
    WorkOrderRpcs, ContractRpcs, EvidenceRpcs, FactoryRpcs, ReleaseRpcs, repogen_pb2_grpc.RepogenServiceServicer
):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def engine(self):
        return self.runtime.engine

    @property
    def settings(self):
        return self.runtime.settings

    async def GetServiceInfo(self, request, context):
        current_context().require()
        return repogen_pb2.GetServiceInfoResponse(info=await self.runtime.service_info())


def register(server, runtime: Runtime) -> list[str]:
    repogen_pb2_grpc.add_RepogenServiceServicer_to_server(RepogenServicer(runtime), server)
    return [SERVICE_NAME]
