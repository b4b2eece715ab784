"""Typed client of the repogen service (zenops.repogen.v1.RepogenService).

One method per RPC the routes use: the request proto in, the response proto out, the
caller's token explicit. Mutations that create or act carry their idempotency key in the
request's `idempotency_key` field (the routes copy the `Idempotency-Key` header there); the
requests without that field (template override, evidence removal, field links, annexure
order) take it as gRPC metadata `idempotency-key`, which repogen reads instead. Nothing here
retries on its own.

`open_local_object` reads repogen's GetLocalObject (the local storage driver's signed
artifact URLs): no token — the signed token in the URL is the authorisation — and the file
is streamed message by message as the HTTP response is sent, never held whole.
"""

from __future__ import annotations

from zenops.common.v1 import common_pb2
from zenops.repogen.v1 import repogen_pb2 as pb
from zenops.repogen.v1 import repogen_pb2_grpc

from .base import UpstreamClient, outgoing_metadata
from .objects import LocalObject, open_object_stream


def key_metadata(idempotency_key: str | None) -> dict[str, str] | None:
    """An `Idempotency-Key` as repogen reads it from metadata (requests without the field)."""
    return {"idempotency-key": idempotency_key} if idempotency_key else None


class RepogenClient(UpstreamClient):
    service = "repogen"
    stub_class = repogen_pb2_grpc.RepogenServiceStub
    stub: repogen_pb2_grpc.RepogenServiceStub

    async def get_service_info(self, *, token: str | None, deadline: float | None = None) -> common_pb2.ServiceInfo:
        resp = await self.call(self.stub.GetServiceInfo, pb.GetServiceInfoRequest(), token=token, deadline=deadline)
        return resp.info

    # -- work orders -------------------------------------------------------------------------------

    async def create_work_order(self, request: pb.CreateWorkOrderRequest, *, token: str) -> pb.CreateWorkOrderResponse:
        return await self.call(self.stub.CreateWorkOrder, request, token=token)

    async def get_work_order(self, request: pb.GetWorkOrderRequest, *, token: str) -> pb.GetWorkOrderResponse:
        return await self.call(self.stub.GetWorkOrder, request, token=token)

    async def list_work_orders(self, request: pb.ListWorkOrdersRequest, *, token: str) -> pb.ListWorkOrdersResponse:
        return await self.call(self.stub.ListWorkOrders, request, token=token)

    async def transition_work_order(
        self, request: pb.TransitionWorkOrderRequest, *, token: str
    ) -> pb.TransitionWorkOrderResponse:
        return await self.call(self.stub.TransitionWorkOrder, request, token=token)

    async def override_template(
        self, request: pb.OverrideTemplateRequest, *, token: str, idempotency_key: str | None = None
    ) -> pb.OverrideTemplateResponse:
        return await self.call(self.stub.OverrideTemplate, request, token=token, metadata=key_metadata(idempotency_key))

    async def list_templates(self, request: pb.ListTemplatesRequest, *, token: str) -> pb.ListTemplatesResponse:
        return await self.call(self.stub.ListTemplates, request, token=token)

    # -- contract, snapshots, readiness ------------------------------------------------------------

    async def patch_contract(self, request: pb.PatchContractRequest, *, token: str) -> pb.PatchContractResponse:
        return await self.call(self.stub.PatchContract, request, token=token)

    async def get_snapshot(self, request: pb.GetSnapshotRequest, *, token: str) -> pb.GetSnapshotResponse:
        return await self.call(self.stub.GetSnapshot, request, token=token)

    async def list_snapshots(self, request: pb.ListSnapshotsRequest, *, token: str) -> pb.ListSnapshotsResponse:
        return await self.call(self.stub.ListSnapshots, request, token=token)

    async def evaluate_readiness(
        self, request: pb.EvaluateReadinessRequest, *, token: str
    ) -> pb.EvaluateReadinessResponse:
        return await self.call(self.stub.EvaluateReadiness, request, token=token)

    # -- evidence, field links, annexures, comments ------------------------------------------------

    async def add_evidence(self, request: pb.AddEvidenceRequest, *, token: str) -> pb.AddEvidenceResponse:
        return await self.call(self.stub.AddEvidence, request, token=token)

    async def list_evidence(self, request: pb.ListEvidenceRequest, *, token: str) -> pb.ListEvidenceResponse:
        return await self.call(self.stub.ListEvidence, request, token=token)

    async def remove_evidence(
        self, request: pb.RemoveEvidenceRequest, *, token: str, idempotency_key: str | None = None
    ) -> pb.RemoveEvidenceResponse:
        return await self.call(self.stub.RemoveEvidence, request, token=token, metadata=key_metadata(idempotency_key))

    async def link_field_evidence(
        self, request: pb.LinkFieldEvidenceRequest, *, token: str, idempotency_key: str | None = None
    ) -> pb.LinkFieldEvidenceResponse:
        return await self.call(
            self.stub.LinkFieldEvidence, request, token=token, metadata=key_metadata(idempotency_key)
        )

    async def unlink_field_evidence(
        self, request: pb.UnlinkFieldEvidenceRequest, *, token: str, idempotency_key: str | None = None
    ) -> pb.UnlinkFieldEvidenceResponse:
        return await self.call(
            self.stub.UnlinkFieldEvidence, request, token=token, metadata=key_metadata(idempotency_key)
        )

    async def list_field_links(self, request: pb.ListFieldLinksRequest, *, token: str) -> pb.ListFieldLinksResponse:
        return await self.call(self.stub.ListFieldLinks, request, token=token)

    async def auto_order_annexures(
        self, request: pb.AutoOrderAnnexuresRequest, *, token: str, idempotency_key: str | None = None
    ) -> pb.AutoOrderAnnexuresResponse:
        return await self.call(
            self.stub.AutoOrderAnnexures, request, token=token, metadata=key_metadata(idempotency_key)
        )

    async def add_comment(self, request: pb.AddCommentRequest, *, token: str) -> pb.AddCommentResponse:
        return await self.call(self.stub.AddComment, request, token=token)

    async def list_comments(self, request: pb.ListCommentsRequest, *, token: str) -> pb.ListCommentsResponse:
        return await self.call(self.stub.ListComments, request, token=token)

    # -- export, artifacts, release, monitor -------------------------------------------------------

    async def get_export_bundle(self, request: pb.GetExportBundleRequest, *, token: str) -> pb.GetExportBundleResponse:
        return await self.call(self.stub.GetExportBundle, request, token=token)

    async def list_artifacts(self, request: pb.ListArtifactsRequest, *, token: str) -> pb.ListArtifactsResponse:
        return await self.call(self.stub.ListArtifacts, request, token=token)

    async def presign_artifact_download(
        self, request: pb.PresignArtifactDownloadRequest, *, token: str
    ) -> pb.PresignArtifactDownloadResponse:
        return await self.call(self.stub.PresignArtifactDownload, request, token=token)

    async def release_deliverable(
        self, request: pb.ReleaseDeliverableRequest, *, token: str
    ) -> pb.ReleaseDeliverableResponse:
        return await self.call(self.stub.ReleaseDeliverable, request, token=token)

    async def list_monitor(self, request: pb.ListMonitorRequest, *, token: str) -> pb.ListMonitorResponse:
        return await self.call(self.stub.ListMonitor, request, token=token)

    # -- the local storage driver's signed artifact URLs -------------------------------------------

    async def open_local_object(self, token: str, *, deadline: float) -> LocalObject:
        """repogen's GetLocalObject (the signed artifact URLs): see objects.open_object_stream."""
        return await open_object_stream(
            self.service,
            self.stub.GetLocalObject(
                pb.GetLocalObjectRequest(token=token), timeout=deadline, metadata=outgoing_metadata()
            ),
        )
