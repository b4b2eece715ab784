"""zenops.ops.v1.OpsService: one servicer assembled from one class per area (api/<area>.py).
Servicers translate proto ↔ use cases, nothing else."""

from zenops.ops.v1 import ops_pb2, ops_pb2_grpc
from zenops_kit.context import current_context
from zenops_kit.server import Runtime

from .analytics import AnalyticsRpcs
from .assignments import AssignmentRpcs
from .documents import DocumentRpcs
from .intake import IntakeRpcs
from .masterdata import MasterDataRpcs
from .tasks import TaskRpcs

SERVICE_NAME = ops_pb2.DESCRIPTOR.services_by_name["OpsService"].full_name


class OpsServicer(
    MasterDataRpcs, AssignmentRpcs, TaskRpcs, IntakeRpcs, DocumentRpcs, AnalyticsRpcs, ops_pb2_grpc.OpsServiceServicer
):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def engine(self):
        return self.runtime.engine

    async def GetServiceInfo(self, request, context):
        current_context().require()
        return ops_pb2.GetServiceInfoResponse(info=await self.runtime.service_info())


def register(server, runtime: Runtime) -> list[str]:
    ops_pb2_grpc.add_OpsServiceServicer_to_server(OpsServicer(runtime), server)
    return [SERVICE_NAME]
