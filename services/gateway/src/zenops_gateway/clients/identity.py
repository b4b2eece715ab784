"""Typed client of the identity service (zenops.identity.v1.IdentityService).

One method per RPC the gateway uses: the request proto in, the response proto out. Public
RPCs (Login, Refresh, GetJwks) take no token; every other one takes the caller's token
explicitly (a user's access token, or the gateway's service token for GetServiceInfo).
"""

from __future__ import annotations

from zenops.common.v1 import common_pb2
from zenops.identity.v1 import identity_pb2 as pb
from zenops.identity.v1 import identity_pb2_grpc

from .base import UpstreamClient


class IdentityClient(UpstreamClient):
    service = "identity"
    stub_class = identity_pb2_grpc.IdentityServiceStub
    stub: identity_pb2_grpc.IdentityServiceStub

    async def get_service_info(self, *, token: str | None, deadline: float | None = None) -> common_pb2.ServiceInfo:
        resp = await self.call(self.stub.GetServiceInfo, pb.GetServiceInfoRequest(), token=token, deadline=deadline)
        return resp.info

    # -- public ----------------------------------------------------------------------------------

    async def login(self, request: pb.LoginRequest) -> pb.LoginResponse:
        return await self.call(self.stub.Login, request)

    async def refresh(self, request: pb.RefreshRequest) -> pb.RefreshResponse:
        return await self.call(self.stub.Refresh, request)

    async def get_jwks(self, request: pb.GetJwksRequest) -> pb.GetJwksResponse:
        return await self.call(self.stub.GetJwks, request)

    # -- the caller --------------------------------------------------------------------------------

    async def logout(self, request: pb.LogoutRequest, *, token: str) -> pb.LogoutResponse:
        return await self.call(self.stub.Logout, request, token=token)

    async def get_me(self, request: pb.GetMeRequest, *, token: str) -> pb.GetMeResponse:
        return await self.call(self.stub.GetMe, request, token=token)

    async def change_password(self, request: pb.ChangePasswordRequest, *, token: str) -> pb.ChangePasswordResponse:
        return await self.call(self.stub.ChangePassword, request, token=token)

    async def list_sessions(self, request: pb.ListSessionsRequest, *, token: str) -> pb.ListSessionsResponse:
        return await self.call(self.stub.ListSessions, request, token=token)

    async def revoke_session(self, request: pb.RevokeSessionRequest, *, token: str) -> pb.RevokeSessionResponse:
        return await self.call(self.stub.RevokeSession, request, token=token)

    # -- tenants -----------------------------------------------------------------------------------

    async def create_tenant(self, request: pb.CreateTenantRequest, *, token: str) -> pb.CreateTenantResponse:
        return await self.call(self.stub.CreateTenant, request, token=token)

    async def list_tenants(self, request: pb.ListTenantsRequest, *, token: str) -> pb.ListTenantsResponse:
        return await self.call(self.stub.ListTenants, request, token=token)

    # -- users and roles ---------------------------------------------------------------------------

    async def create_user(self, request: pb.CreateUserRequest, *, token: str) -> pb.CreateUserResponse:
        return await self.call(self.stub.CreateUser, request, token=token)

    async def get_user(self, request: pb.GetUserRequest, *, token: str) -> pb.GetUserResponse:
        return await self.call(self.stub.GetUser, request, token=token)

    async def list_users(self, request: pb.ListUsersRequest, *, token: str) -> pb.ListUsersResponse:
        return await self.call(self.stub.ListUsers, request, token=token)

    async def update_user(self, request: pb.UpdateUserRequest, *, token: str) -> pb.UpdateUserResponse:
        return await self.call(self.stub.UpdateUser, request, token=token)

    async def disable_user(self, request: pb.DisableUserRequest, *, token: str) -> pb.DisableUserResponse:
        return await self.call(self.stub.DisableUser, request, token=token)

    async def set_user_roles(self, request: pb.SetUserRolesRequest, *, token: str) -> pb.SetUserRolesResponse:
        return await self.call(self.stub.SetUserRoles, request, token=token)

    async def unlock_user(self, request: pb.UnlockUserRequest, *, token: str) -> pb.UnlockUserResponse:
        return await self.call(self.stub.UnlockUser, request, token=token)

    async def list_role_templates(
        self, request: pb.ListRoleTemplatesRequest, *, token: str
    ) -> pb.ListRoleTemplatesResponse:
        return await self.call(self.stub.ListRoleTemplates, request, token=token)

    # -- audit -------------------------------------------------------------------------------------

    async def list_audit_events(self, request: pb.ListAuditEventsRequest, *, token: str) -> pb.ListAuditEventsResponse:
        return await self.call(self.stub.ListAuditEvents, request, token=token)
