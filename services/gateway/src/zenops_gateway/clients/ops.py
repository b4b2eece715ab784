"""Typed client of the ops service (zenops.ops.v1.OpsService).

One method per RPC the routes use: the request proto in, the response proto out, the
caller's token explicit. Mutations that create or act carry their idempotency key in the
request's `idempotency_key` field (the routes copy the `Idempotency-Key` header there), so a
retry of any of them is safe; nothing here retries on its own.

The local storage driver's two streaming RPCs (`put_local_object`, `open_local_object`)
carry no token — the signed token in the file URL is the authorisation — and stream: the
upload is written to ops chunk by chunk as the HTTP body arrives (never held whole in
memory), the download is read message by message as the HTTP response is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from zenops.common.v1 import common_pb2
from zenops.ops.v1 import ops_pb2 as pb
from zenops.ops.v1 import ops_pb2_grpc

from ..errors import UpstreamError
from .base import UpstreamClient, outgoing_metadata
from .objects import LocalObject, open_object_stream

# gRPC messages of a file stream carry at most this many bytes of data (well under the
# channel's 8 MiB receive limit and ops' own).
FILE_CHUNK_BYTES = 1024 * 1024


class OpsClient(UpstreamClient):
    service = "ops"
    stub_class = ops_pb2_grpc.OpsServiceStub
    stub: ops_pb2_grpc.OpsServiceStub

    async def get_service_info(self, *, token: str | None, deadline: float | None = None) -> common_pb2.ServiceInfo:
        resp = await self.call(self.stub.GetServiceInfo, pb.GetServiceInfoRequest(), token=token, deadline=deadline)
        return resp.info

    # -- master data -------------------------------------------------------------------------------

    async def create_bank(self, request: pb.CreateBankRequest, *, token: str) -> pb.CreateBankResponse:
        return await self.call(self.stub.CreateBank, request, token=token)

    async def list_banks(self, request: pb.ListBanksRequest, *, token: str) -> pb.ListBanksResponse:
        return await self.call(self.stub.ListBanks, request, token=token)

    async def create_bank_branch(
        self, request: pb.CreateBankBranchRequest, *, token: str
    ) -> pb.CreateBankBranchResponse:
        return await self.call(self.stub.CreateBankBranch, request, token=token)

    async def list_bank_branches(
        self, request: pb.ListBankBranchesRequest, *, token: str
    ) -> pb.ListBankBranchesResponse:
        return await self.call(self.stub.ListBankBranches, request, token=token)

    async def create_client_org(self, request: pb.CreateClientOrgRequest, *, token: str) -> pb.CreateClientOrgResponse:
        return await self.call(self.stub.CreateClientOrg, request, token=token)

    async def list_client_orgs(self, request: pb.ListClientOrgsRequest, *, token: str) -> pb.ListClientOrgsResponse:
        return await self.call(self.stub.ListClientOrgs, request, token=token)

    async def create_contact(self, request: pb.CreateContactRequest, *, token: str) -> pb.CreateContactResponse:
        return await self.call(self.stub.CreateContact, request, token=token)

    async def list_contacts(self, request: pb.ListContactsRequest, *, token: str) -> pb.ListContactsResponse:
        return await self.call(self.stub.ListContacts, request, token=token)

    async def create_property(self, request: pb.CreatePropertyRequest, *, token: str) -> pb.CreatePropertyResponse:
        return await self.call(self.stub.CreateProperty, request, token=token)

    async def list_properties(self, request: pb.ListPropertiesRequest, *, token: str) -> pb.ListPropertiesResponse:
        return await self.call(self.stub.ListProperties, request, token=token)

    async def create_branch_contact(
        self, request: pb.CreateBranchContactRequest, *, token: str
    ) -> pb.CreateBranchContactResponse:
        return await self.call(self.stub.CreateBranchContact, request, token=token)

    async def list_branch_contacts(
        self, request: pb.ListBranchContactsRequest, *, token: str
    ) -> pb.ListBranchContactsResponse:
        return await self.call(self.stub.ListBranchContacts, request, token=token)

    async def verify_master_data(
        self, request: pb.VerifyMasterDataRequest, *, token: str
    ) -> pb.VerifyMasterDataResponse:
        return await self.call(self.stub.VerifyMasterData, request, token=token)

    # -- channels ----------------------------------------------------------------------------------

    async def create_channel(self, request: pb.CreateChannelRequest, *, token: str) -> pb.CreateChannelResponse:
        return await self.call(self.stub.CreateChannel, request, token=token)

    async def get_channel(self, request: pb.GetChannelRequest, *, token: str) -> pb.GetChannelResponse:
        return await self.call(self.stub.GetChannel, request, token=token)

    async def list_channels(self, request: pb.ListChannelsRequest, *, token: str) -> pb.ListChannelsResponse:
        return await self.call(self.stub.ListChannels, request, token=token)

    async def update_channel(self, request: pb.UpdateChannelRequest, *, token: str) -> pb.UpdateChannelResponse:
        return await self.call(self.stub.UpdateChannel, request, token=token)

    # -- assignments -------------------------------------------------------------------------------

    async def create_assignment(
        self, request: pb.CreateAssignmentRequest, *, token: str
    ) -> pb.CreateAssignmentResponse:
        return await self.call(self.stub.CreateAssignment, request, token=token)

    async def get_assignment(self, request: pb.GetAssignmentRequest, *, token: str) -> pb.GetAssignmentResponse:
        return await self.call(self.stub.GetAssignment, request, token=token)

    async def list_assignments(self, request: pb.ListAssignmentsRequest, *, token: str) -> pb.ListAssignmentsResponse:
        return await self.call(self.stub.ListAssignments, request, token=token)

    async def update_assignment(
        self, request: pb.UpdateAssignmentRequest, *, token: str
    ) -> pb.UpdateAssignmentResponse:
        return await self.call(self.stub.UpdateAssignment, request, token=token)

    async def transition_assignment(
        self, request: pb.TransitionAssignmentRequest, *, token: str
    ) -> pb.TransitionAssignmentResponse:
        return await self.call(self.stub.TransitionAssignment, request, token=token)

    async def get_assignment_history(
        self, request: pb.GetAssignmentHistoryRequest, *, token: str
    ) -> pb.GetAssignmentHistoryResponse:
        return await self.call(self.stub.GetAssignmentHistory, request, token=token)

    # -- tasks -------------------------------------------------------------------------------------

    async def create_task(self, request: pb.CreateTaskRequest, *, token: str) -> pb.CreateTaskResponse:
        return await self.call(self.stub.CreateTask, request, token=token)

    async def list_tasks(self, request: pb.ListTasksRequest, *, token: str) -> pb.ListTasksResponse:
        return await self.call(self.stub.ListTasks, request, token=token)

    async def update_task(self, request: pb.UpdateTaskRequest, *, token: str) -> pb.UpdateTaskResponse:
        return await self.call(self.stub.UpdateTask, request, token=token)

    async def mark_task_done(self, request: pb.MarkTaskDoneRequest, *, token: str) -> pb.MarkTaskDoneResponse:
        return await self.call(self.stub.MarkTaskDone, request, token=token)

    # -- channel requests --------------------------------------------------------------------------

    async def submit_channel_request(
        self, request: pb.SubmitChannelRequestRequest, *, token: str
    ) -> pb.SubmitChannelRequestResponse:
        return await self.call(self.stub.SubmitChannelRequest, request, token=token)

    async def fetch_channel_request(
        self, request: pb.FetchChannelRequestRequest, *, token: str
    ) -> pb.FetchChannelRequestResponse:
        return await self.call(self.stub.FetchChannelRequest, request, token=token)

    async def list_channel_requests(
        self, request: pb.ListChannelRequestsRequest, *, token: str
    ) -> pb.ListChannelRequestsResponse:
        return await self.call(self.stub.ListChannelRequests, request, token=token)

    async def accept_channel_request(
        self, request: pb.AcceptChannelRequestRequest, *, token: str
    ) -> pb.AcceptChannelRequestResponse:
        return await self.call(self.stub.AcceptChannelRequest, request, token=token)

    async def reject_channel_request(
        self, request: pb.RejectChannelRequestRequest, *, token: str
    ) -> pb.RejectChannelRequestResponse:
        return await self.call(self.stub.RejectChannelRequest, request, token=token)

    # -- documents ---------------------------------------------------------------------------------

    async def presign_upload(self, request: pb.PresignUploadRequest, *, token: str) -> pb.PresignUploadResponse:
        return await self.call(self.stub.PresignUpload, request, token=token)

    async def confirm_upload(self, request: pb.ConfirmUploadRequest, *, token: str) -> pb.ConfirmUploadResponse:
        return await self.call(self.stub.ConfirmUpload, request, token=token)

    async def get_document(self, request: pb.GetDocumentRequest, *, token: str) -> pb.GetDocumentResponse:
        return await self.call(self.stub.GetDocument, request, token=token)

    async def presign_download(self, request: pb.PresignDownloadRequest, *, token: str) -> pb.PresignDownloadResponse:
        return await self.call(self.stub.PresignDownload, request, token=token)

    async def list_documents(self, request: pb.ListDocumentsRequest, *, token: str) -> pb.ListDocumentsResponse:
        return await self.call(self.stub.ListDocuments, request, token=token)

    async def set_document_tags(self, request: pb.SetDocumentTagsRequest, *, token: str) -> pb.SetDocumentTagsResponse:
        return await self.call(self.stub.SetDocumentTags, request, token=token)

    # -- analytics ---------------------------------------------------------------------------------

    async def get_analytics_overview(
        self, request: pb.GetAnalyticsOverviewRequest, *, token: str
    ) -> pb.GetAnalyticsOverviewResponse:
        return await self.call(self.stub.GetAnalyticsOverview, request, token=token)

    # -- the local storage driver's signed URLs ----------------------------------------------------

    async def put_local_object(self, token: str, body: AsyncIterator[bytes], *, deadline: float) -> int:
        """Stream `body` to ops' PutLocalObject: the first message carries only the signed
        `token`, then `data` messages of at most FILE_CHUNK_BYTES as the body arrives (at most
        one chunk is held here; gRPC flow control paces the reading). Answers the stored size.

        The request iterator style, not write(): a client interceptor may hold the call until
        it ends (OpenTelemetry's does), which write() would wait on forever. gRPC reads the
        iterator in its own task, so a failure of `body` (the HTTP body limit, a client gone)
        is kept here, the call cancelled, and the failure raised to the route. Ops may refuse
        early (bad token, already uploaded): its status is raised without reading the rest."""
        failure: list[BaseException] = []
        call: grpc.aio.StreamUnaryCall | None = None

        async def messages() -> AsyncIterator[pb.PutLocalObjectRequest]:
            yield pb.PutLocalObjectRequest(token=token)
            pending = bytearray()
            try:
                async for piece in body:
                    pending += piece
                    while len(pending) >= FILE_CHUNK_BYTES:
                        yield pb.PutLocalObjectRequest(data=bytes(pending[:FILE_CHUNK_BYTES]))
                        del pending[:FILE_CHUNK_BYTES]
            except Exception as exc:  # noqa: BLE001 - raised again by put_local_object
                failure.append(exc)
                if call is not None:
                    call.cancel()
                return
            if pending:
                yield pb.PutLocalObjectRequest(data=bytes(pending))

        call = self.stub.PutLocalObject(messages(), timeout=deadline, metadata=outgoing_metadata())
        try:
            resp: pb.PutLocalObjectResponse = await call
        except asyncio.CancelledError:
            if failure:  # cancelled by messages(): the body failed
                raise failure[0] from None
            raise
        except grpc.aio.AioRpcError as err:
            if failure:
                raise failure[0] from None
            raise UpstreamError.from_rpc_error(self.service, err) from None
        except BaseException:
            call.cancel()
            raise
        if failure:
            raise failure[0]
        return resp.size_bytes

    async def open_local_object(self, token: str, *, deadline: float) -> LocalObject:
        """ops' GetLocalObject (the signed document URLs): see objects.open_object_stream."""
        return await open_object_stream(
            self.service,
            self.stub.GetLocalObject(
                pb.GetLocalObjectRequest(token=token), timeout=deadline, metadata=outgoing_metadata()
            ),
        )
