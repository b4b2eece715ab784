"""HTTP models of the identity area (auth, tenants, users, roles, audit, JWKS) and their
conversions from zenops.identity.v1 messages.

The gateway bounds and types fields (so a bad value is a 400 naming it); the identity
service applies the policies (email syntax, password policy, known roles, uniqueness) and
names the field in its INVALID_ARGUMENT, which errors.py passes through.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from zenops.identity.v1 import identity_pb2 as pb

from .common import MAX_EMAIL, Secret, enum_name, or_none, timestamp

Audience = Literal["web", "studio", "portal"]
TenantKind = Literal["internal", "external", "customer"]
TenantStatus = Literal["active", "suspended"]
UserStatus = Literal["active", "disabled"]

Email = Annotated[str, Field(min_length=1, max_length=MAX_EMAIL, examples=["ana@example.com"])]
DisplayName = Annotated[str, Field(min_length=1, max_length=200)]
# Which roles exist is identity's call (it names an unknown one, e.g. `roles[1]`).
RoleName = Annotated[str, Field(min_length=1, max_length=64)]
MAX_ROLES = 32


class Strict(BaseModel):
    """Request bodies: unknown members are an error (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


# -- auth --------------------------------------------------------------------------------------


class LoginBody(Strict):
    email: Email
    password: Secret = Field(description="At most 1024 characters here; the password policy allows 12–128.")
    aud: Audience = Field(description="The client logging in: `web`, `studio` or `portal`.")
    tenant_id: UUID | None = Field(
        None, description="Tenant to log in to; absent: the internal tenant (portal: always the external one)."
    )


class RefreshBody(Strict):
    refresh_token: Secret


class ChangePasswordBody(Strict):
    current_password: Secret
    new_password: Secret = Field(description="Checked against the password policy by identity.")


class TokenPair(BaseModel):
    """RFC 6749 §5.1 token response (answered with `Cache-Control: no-store`)."""

    access_token: str = Field(description="JWT; send as `Authorization: Bearer <access_token>`.")
    refresh_token: str = Field(description="Opaque; present it once to `POST /v1/auth/refresh`.")
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_expires_in: int = Field(description="Seconds until the refresh token's idle or absolute deadline.")
    session_id: str

    @classmethod
    def from_proto(cls, t: pb.TokenPair) -> TokenPair:
        return cls(
            access_token=t.access_token,
            refresh_token=t.refresh_token,
            expires_in=t.expires_in,
            refresh_expires_in=t.refresh_expires_in,
            session_id=t.session_id,
        )


class PasswordChanged(BaseModel):
    revoked_sessions: int = Field(description="How many of your other sessions were revoked.")


# -- tenants, users, sessions --------------------------------------------------------------------


class Tenant(BaseModel):
    id: str
    slug: str
    name: str
    kind: TenantKind
    status: TenantStatus
    created_at: datetime | None = Field(None, description="ISO-8601, UTC.")

    @classmethod
    def from_proto(cls, t: pb.Tenant) -> Tenant:
        return cls(
            id=t.id,
            slug=t.slug,
            name=t.name,
            kind=enum_name(pb.TenantKind, t.kind, "TENANT_KIND_"),
            status=enum_name(pb.TenantStatus, t.status, "TENANT_STATUS_"),
            created_at=timestamp(t, "created_at"),
        )


class TenantList(BaseModel):
    items: list[Tenant]


class CreateTenantBody(Strict):
    slug: str = Field(min_length=1, max_length=63, examples=["acme"])
    name: str = Field(min_length=1, max_length=200)
    kind: TenantKind


class User(BaseModel):
    id: str
    tenant_id: str
    email: str
    display_name: str
    status: UserStatus
    roles: list[str] = Field(description="Role names, sorted.")
    channel_id: str | None = Field(None, description="The channel a portal user acts for.")
    last_login_at: datetime | None = None
    locked_until: datetime | None = Field(
        None,
        description="Set while repeated failed logins delay this account's logins, until when (admins); "
        "`POST /v1/users/{id}/unlock` clears it.",
    )
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_proto(cls, u: pb.User) -> User:
        return cls(
            id=u.id,
            tenant_id=u.tenant_id,
            email=u.email,
            display_name=u.display_name,
            status=enum_name(pb.UserStatus, u.status, "USER_STATUS_"),
            roles=list(u.roles),
            channel_id=or_none(u.channel_id),
            last_login_at=timestamp(u, "last_login_at"),
            locked_until=timestamp(u, "locked_until"),
            created_at=timestamp(u, "created_at"),
            updated_at=timestamp(u, "updated_at"),
        )


class UserList(BaseModel):
    items: list[User]
    next_cursor: str | None = Field(description="Cursor of the next page; null on the last page.")


class CreateUserBody(Strict):
    email: Email
    display_name: DisplayName
    password: Secret = Field(description="Checked against the password policy by identity.")
    roles: list[RoleName] = Field(min_length=1, max_length=MAX_ROLES, examples=[["valuer"]])
    channel_id: UUID | None = Field(None, description="Required for portal users (role `portal_user`).")
    tenant_id: UUID | None = Field(None, description="Super admins only: another tenant; absent: yours.")


class UserPatch(Strict):
    """JSON merge patch (RFC 7396) of a user: members present are changed, absent ones kept;
    `channel_id: null` unlinks the channel; `email`/`display_name` cannot be null."""

    email: Email | None = None
    display_name: DisplayName | None = None
    channel_id: UUID | None = None

    @field_validator("email", "display_name")
    @classmethod
    def _not_null(cls, value: str | None) -> str:
        # Only runs for members present in the body (defaults are not validated).
        if value is None:
            raise PydanticCustomError("null_not_allowed", "May not be null (only `channel_id` can be removed)")
        return value


class RolesBody(Strict):
    roles: list[RoleName] = Field(min_length=1, max_length=MAX_ROLES, examples=[["ops_manager", "valuer"]])


class DisabledUser(BaseModel):
    user: User
    revoked_sessions: int = Field(description="How many of the user's sessions were revoked.")


class UnlockedUser(BaseModel):
    user: User
    cleared_failures: int = Field(description="Failed logins counted against the account before the unlock.")


class Session(BaseModel):
    id: str
    user_id: str
    audience: str = Field(description="web | studio | portal")
    ip: str | None = None
    user_agent: str | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    expires_at: datetime | None = Field(None, description="Absolute deadline of the session.")
    current: bool = Field(description="True for the session of the calling token.")

    @classmethod
    def from_proto(cls, s: pb.Session) -> Session:
        return cls(
            id=s.id,
            user_id=s.user_id,
            audience=s.audience,
            ip=or_none(s.ip),
            user_agent=or_none(s.user_agent),
            created_at=timestamp(s, "created_at"),
            last_used_at=timestamp(s, "last_used_at"),
            expires_at=timestamp(s, "expires_at"),
            current=s.current,
        )


class SessionList(BaseModel):
    items: list[Session]


class Me(BaseModel):
    user: User
    tenant: Tenant
    capabilities: list[str]
    session_id: str
    audience: str

    @classmethod
    def from_proto(cls, m: pb.GetMeResponse) -> Me:
        return cls(
            user=User.from_proto(m.user),
            tenant=Tenant.from_proto(m.tenant),
            capabilities=list(m.capabilities),
            session_id=m.session_id,
            audience=m.audience,
        )


class RoleTemplate(BaseModel):
    role: str
    description: str
    capabilities: list[str]


class RoleTemplates(BaseModel):
    version: int = Field(description="Version of the role → capability table (the `cv` claim).")
    items: list[RoleTemplate]

    @classmethod
    def from_proto(cls, r: pb.ListRoleTemplatesResponse) -> RoleTemplates:
        return cls(
            version=r.version,
            items=[
                RoleTemplate(role=t.role, description=t.description, capabilities=list(t.capabilities)) for t in r.roles
            ],
        )


# -- audit ----------------------------------------------------------------------------------------


class AuditEvent(BaseModel):
    id: str
    tenant_id: str
    kind: str = Field(description="login.succeeded, login.failed, account.locked, token.refreshed, …")
    actor: str | None = Field(None, description='The acting user or "service:<name>"; null for anonymous.')
    target: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    trace_id: str | None = None
    detail: dict[str, str] = Field(description="Non-secret detail (e.g. roles before/after).")
    occurred_at: datetime | None = None

    @classmethod
    def from_proto(cls, e: pb.AuditEvent) -> AuditEvent:
        return cls(
            id=e.id,
            tenant_id=e.tenant_id,
            kind=e.kind,
            actor=or_none(e.actor),
            target=or_none(e.target),
            ip=or_none(e.ip),
            user_agent=or_none(e.user_agent),
            trace_id=or_none(e.trace_id),
            detail=dict(e.detail),
            occurred_at=timestamp(e, "occurred_at"),
        )


class AuditEventList(BaseModel):
    items: list[AuditEvent]
    next_cursor: str | None


# -- JWKS ---------------------------------------------------------------------------------------------


class Jwk(BaseModel):
    """A public signing key (RFC 7517 / RFC 8037); members not used by its key type are omitted."""

    kty: Literal["OKP", "EC"]
    kid: str
    alg: Literal["EdDSA", "ES256"]
    use: Literal["sig"] = "sig"
    crv: Literal["Ed25519", "P-256"]
    x: str
    y: str | None = Field(None, description="EC keys only.")

    @classmethod
    def from_proto(cls, k: pb.Jwk) -> Jwk:
        return cls(kty=k.kty, kid=k.kid, alg=k.alg, use=k.use or "sig", crv=k.crv, x=k.x, y=or_none(k.y))


class Jwks(BaseModel):
    keys: list[Jwk]
