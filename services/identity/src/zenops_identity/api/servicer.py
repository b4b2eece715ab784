"""zenops.identity.v1.IdentityService: proto ↔ use cases, nothing else.

Capability checks that depend only on the caller sit here (`@requires`); checks that
depend on the data (self vs others, tenants, last super admin) live in the use cases.
"""

from __future__ import annotations

from datetime import datetime

from zenops.common.v1 import common_pb2
from zenops.identity.v1 import identity_pb2, identity_pb2_grpc
from zenops_kit.auth import requires
from zenops_kit.context import current_context
from zenops_kit.server import Runtime

from ..admin import audit_log, tenants, users
from ..auth import introspection, login, refresh, service_tokens, sessions, signing
from ..auth.common import TokenPair
from ..clock import utcnow
from ..core import Identity
from ..domain.login_throttle import AccountDelay, Failures
from ..domain.roles import CAPABILITY_TABLE_VERSION, ROLES
from ..store.audit import AuditRow
from ..store.sessions import Session
from ..store.tenants import Tenant
from ..store.users import User

pb = identity_pb2
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["IdentityService"].full_name

_TENANT_KINDS = {
    "INTERNAL": pb.TENANT_KIND_INTERNAL,
    "EXTERNAL": pb.TENANT_KIND_EXTERNAL,
    "CUSTOMER": pb.TENANT_KIND_CUSTOMER,
}
_TENANT_STATUS = {"ACTIVE": pb.TENANT_STATUS_ACTIVE, "SUSPENDED": pb.TENANT_STATUS_SUSPENDED}
_USER_STATUS = {"ACTIVE": pb.USER_STATUS_ACTIVE, "DISABLED": pb.USER_STATUS_DISABLED}
_USER_STATUS_FILTER = {pb.USER_STATUS_ACTIVE: "ACTIVE", pb.USER_STATUS_DISABLED: "DISABLED"}


def _ts(target, value: datetime | None) -> None:
    if value is not None:
        target.FromDatetime(value)


def tenant_pb(t: Tenant) -> pb.Tenant:
    msg = pb.Tenant(
        id=t.id, slug=t.slug, name=t.name, kind=_TENANT_KINDS.get(t.kind, 0), status=_TENANT_STATUS.get(t.status, 0)
    )
    _ts(msg.created_at, t.created_at)
    return msg


def user_pb(u: User, delay: AccountDelay) -> pb.User:
    msg = pb.User(
        id=u.id,
        tenant_id=u.tenant_id,
        email=u.email,
        display_name=u.display_name,
        status=_USER_STATUS.get(u.status, 0),
        roles=u.roles,
        channel_id=u.channel_id or "",
    )
    _ts(msg.last_login_at, u.last_login_at)
    _ts(msg.locked_until, delay.delayed_until(Failures(u.failed_logins, u.last_failed_login_at), utcnow()))
    _ts(msg.created_at, u.created_at)
    _ts(msg.updated_at, u.updated_at)
    return msg


def session_pb(s: Session, current_sid: str | None) -> pb.Session:
    msg = pb.Session(
        id=s.id, user_id=s.user_id, audience=s.audience, ip=s.ip, user_agent=s.user_agent, current=s.id == current_sid
    )
    _ts(msg.created_at, s.created_at)
    _ts(msg.last_used_at, s.last_used_at)
    _ts(msg.expires_at, s.expires_at)
    return msg


def tokens_pb(p: TokenPair) -> pb.TokenPair:
    return pb.TokenPair(
        access_token=p.access_token,
        refresh_token=p.refresh_token,
        token_type="Bearer",
        expires_in=p.expires_in,
        refresh_expires_in=p.refresh_expires_in,
        session_id=p.session_id,
    )


def audit_pb(a: AuditRow) -> pb.AuditEvent:
    msg = pb.AuditEvent(
        id=a.id,
        tenant_id=a.tenant_id,
        kind=a.kind,
        actor=a.actor,
        target=a.target,
        ip=a.ip,
        user_agent=a.user_agent,
        trace_id=a.trace_id,
        detail=a.detail,
    )
    _ts(msg.occurred_at, a.occurred_at)
    return msg


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, runtime: Runtime, identity: Identity) -> None:
        self.runtime = runtime
        self.idn = identity

    async def GetServiceInfo(self, request, context):
        current_context().require()
        return pb.GetServiceInfoResponse(info=await self.runtime.service_info())

    # -- authentication ----------------------------------------------------------------------

    async def Login(self, request, context):
        pair = await login.login(
            self.idn,
            current_context(),
            email=request.email,
            password=request.password,
            audience=request.audience,
            tenant_id=request.tenant_id,
        )
        return pb.LoginResponse(tokens=tokens_pb(pair))

    async def Refresh(self, request, context):
        return pb.RefreshResponse(
            tokens=tokens_pb(await refresh.refresh(self.idn, current_context(), request.refresh_token))
        )

    async def Logout(self, request, context):
        await sessions.logout(self.idn, current_context())
        return pb.LogoutResponse()

    async def IntrospectToken(self, request, context):
        ctx, reason = await introspection.introspect(self.idn, current_context(), request.token)
        if ctx is None:
            return pb.IntrospectTokenResponse(active=False, reason=reason)
        msg = pb.IntrospectTokenResponse(
            active=True,
            subject=ctx.subject or "",
            tenant_id=ctx.tenant_id or "",
            audience=ctx.audience or "",
            session_id=ctx.session_id or "",
            roles=sorted(ctx.roles),
            capabilities=sorted(ctx.capabilities),
            channel_id=ctx.channel_id or "",
        )
        if ctx.expires_at is not None:
            msg.expires_at.FromSeconds(int(ctx.expires_at))
        return msg

    async def GetJwks(self, request, context):
        keys = await self.idn.keys.published()
        return pb.GetJwksResponse(
            keys=[pb.Jwk(**{k: v for k, v in jwk.items() if k in pb.Jwk.DESCRIPTOR.fields_by_name}) for jwk in keys]
        )

    async def IssueServiceToken(self, request, context):
        token, ttl = await service_tokens.issue(
            self.idn, current_context(), client_id=request.client_id, client_secret=request.client_secret
        )
        return pb.IssueServiceTokenResponse(access_token=token, expires_in=ttl)

    @requires("control.write")
    async def RotateSigningKey(self, request, context):
        return pb.RotateSigningKeyResponse(kid=await signing.rotate(self.idn, current_context()))

    # -- the caller --------------------------------------------------------------------------

    async def GetMe(self, request, context):
        me = await sessions.me(self.idn, current_context())
        return pb.GetMeResponse(
            user=user_pb(me.user, self.idn.account_delay),
            tenant=tenant_pb(me.tenant),
            capabilities=sorted(me.capabilities),
            session_id=me.session_id,
            audience=me.audience,
        )

    async def ChangePassword(self, request, context):
        revoked = await sessions.change_password(
            self.idn, current_context(), current_password=request.current_password, new_password=request.new_password
        )
        return pb.ChangePasswordResponse(revoked_sessions=revoked)

    async def ListSessions(self, request, context):
        ctx = current_context()
        found = await sessions.list_sessions(self.idn, ctx)
        return pb.ListSessionsResponse(sessions=[session_pb(s, ctx.session_id) for s in found])

    async def RevokeSession(self, request, context):
        await sessions.revoke_session(self.idn, current_context(), request.session_id)
        return pb.RevokeSessionResponse()

    # -- tenants -----------------------------------------------------------------------------

    @requires("tenants.write")
    async def CreateTenant(self, request, context):
        kind = {pb.TENANT_KIND_UNSPECIFIED: "", pb.TENANT_KIND_CUSTOMER: "CUSTOMER"}.get(request.kind, "OTHER")
        tenant = await tenants.create(self.idn, current_context(), slug=request.slug, name=request.name, kind=kind)
        return pb.CreateTenantResponse(tenant=tenant_pb(tenant))

    async def ListTenants(self, request, context):
        return pb.ListTenantsResponse(
            tenants=[tenant_pb(t) for t in await tenants.list_visible(self.idn, current_context())]
        )

    # -- users -------------------------------------------------------------------------------

    @requires("users.write")
    async def CreateUser(self, request, context):
        user = await users.create(
            self.idn,
            current_context(),
            email=request.email,
            display_name=request.display_name,
            password=request.password,
            roles=list(request.roles),
            channel_id=request.channel_id,
            tenant_id=request.tenant_id,
        )
        return pb.CreateUserResponse(user=user_pb(user, self.idn.account_delay))

    async def GetUser(self, request, context):
        user = await users.get(self.idn, current_context(), request.id)
        return pb.GetUserResponse(user=user_pb(user, self.idn.account_delay))

    @requires("users.read")
    async def ListUsers(self, request, context):
        found, cursor = await users.list_page(
            self.idn,
            current_context(),
            limit=request.page.limit,
            cursor=request.page.cursor,
            query=request.query,
            status=_USER_STATUS_FILTER.get(request.status),
        )
        return pb.ListUsersResponse(
            users=[user_pb(u, self.idn.account_delay) for u in found], page=common_pb2.PageInfo(next_cursor=cursor)
        )

    @requires("users.write")
    async def UpdateUser(self, request, context):
        values = {
            "email": request.user.email,
            "display_name": request.user.display_name,
            "channel_id": request.user.channel_id,
        }
        user = await users.update(
            self.idn, current_context(), user_id=request.id, paths=list(request.update_mask.paths), values=values
        )
        return pb.UpdateUserResponse(user=user_pb(user, self.idn.account_delay))

    @requires("users.write")
    async def DisableUser(self, request, context):
        user, revoked = await users.disable(self.idn, current_context(), request.id)
        return pb.DisableUserResponse(user=user_pb(user, self.idn.account_delay), revoked_sessions=revoked)

    @requires("users.write")
    async def SetUserRoles(self, request, context):
        user = await users.set_roles(self.idn, current_context(), user_id=request.id, roles=list(request.roles))
        return pb.SetUserRolesResponse(user=user_pb(user, self.idn.account_delay))

    @requires("users.write")
    async def UnlockUser(self, request, context):
        user, cleared = await users.unlock(self.idn, current_context(), request.id)
        return pb.UnlockUserResponse(user=user_pb(user, self.idn.account_delay), cleared_failures=cleared)

    async def ListRoleTemplates(self, request, context):
        current_context().require()
        return pb.ListRoleTemplatesResponse(
            roles=[
                pb.RoleTemplate(role=t.name, description=t.description, capabilities=sorted(t.capabilities))
                for t in ROLES.values()
            ],
            version=CAPABILITY_TABLE_VERSION,
        )

    # -- audit -------------------------------------------------------------------------------

    @requires("users.read")
    async def ListAuditEvents(self, request, context):
        rows, cursor = await audit_log.list_page(
            self.idn,
            current_context(),
            limit=request.page.limit,
            cursor=request.page.cursor,
            kind=request.kind,
            subject=request.subject,
        )
        return pb.ListAuditEventsResponse(
            events=[audit_pb(a) for a in rows], page=common_pb2.PageInfo(next_cursor=cursor)
        )


def register(server, runtime: Runtime, identity: Identity) -> list[str]:
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(IdentityServicer(runtime, identity), server)
    return [SERVICE_NAME]
