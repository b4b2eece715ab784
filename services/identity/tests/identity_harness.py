"""A client for the identity service under test, with the calls tests repeat."""

from __future__ import annotations

import grpc
from sqlalchemy import text

from zenops.identity.v1 import identity_pb2 as pb
from zenops.identity.v1 import identity_pb2_grpc
from zenops_kit.db import system_tx, tenant_tx
from zenops_kit.errors import ErrorDetail, parse_rpc_error

ADMIN_EMAIL = "admin@zenops.local"
ADMIN_PASSWORD = "Quiet-Harbour-Lantern-42"
INTERNAL = "00000000-0000-4000-8000-000000000001"
EXTERNAL = "00000000-0000-4000-8000-000000000002"
STAFF_PASSWORD = "Velvet-Orchard-Compass-77"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


class Harness:
    def __init__(self, app, channel: grpc.aio.Channel) -> None:
        self.app = app
        self.channel = channel
        self.stub = identity_pb2_grpc.IdentityServiceStub(channel)
        self.engine = app.runtime.engine
        self.settings = app.settings

    async def call(self, method: str, request, token: str | None = None, metadata=()):
        md = tuple(metadata) + (bearer(token) if token else ())
        return await getattr(self.stub, method)(request, metadata=md, timeout=10)

    async def fails(self, method: str, request, token: str | None = None, metadata=()) -> ErrorDetail:
        try:
            await self.call(method, request, token, metadata)
        except grpc.aio.AioRpcError as exc:
            return parse_rpc_error(exc)
        raise AssertionError(f"{method} succeeded")

    async def raw_failure(self, method: str, request, token: str | None = None) -> grpc.aio.AioRpcError:
        try:
            await self.call(method, request, token)
        except grpc.aio.AioRpcError as exc:
            return exc
        raise AssertionError(f"{method} succeeded")

    async def login(
        self,
        email: str = ADMIN_EMAIL,
        password: str = ADMIN_PASSWORD,
        audience: str = "web",
        tenant_id: str = "",
        metadata=(),
    ) -> pb.TokenPair:
        resp = await self.call(
            "Login",
            pb.LoginRequest(email=email, password=password, audience=audience, tenant_id=tenant_id),
            metadata=metadata,
        )
        return resp.tokens

    async def admin(self) -> str:
        return (await self.login()).access_token

    async def create_user(
        self,
        token: str,
        email: str,
        roles=("valuer",),
        *,
        password: str = STAFF_PASSWORD,
        display_name: str = "Test Person",
        channel_id: str = "",
        tenant_id: str = "",
    ) -> pb.User:
        resp = await self.call(
            "CreateUser",
            pb.CreateUserRequest(
                email=email,
                display_name=display_name,
                password=password,
                roles=list(roles),
                channel_id=channel_id,
                tenant_id=tenant_id,
            ),
            token,
        )
        return resp.user

    async def sql(self, statement: str, params: dict | None = None, *, tenant: str | None = INTERNAL) -> list:
        """Run SQL as the service's role (RLS applies: `tenant` None = no tenant)."""
        tx = tenant_tx(self.engine, tenant) if tenant else system_tx(self.engine)
        async with tx as conn:
            result = await conn.execute(text(statement), params or {})
            return list(result) if result.returns_rows else []

    async def audit_rows(self, tenant: str = INTERNAL, kind: str | None = None) -> list:
        rows = await self.sql(
            "SELECT kind, actor, target, ip, user_agent, trace_id, detail::text AS detail "
            "FROM audit_events ORDER BY occurred_at, id",
            tenant=tenant,
        )
        return [r for r in rows if kind is None or r.kind == kind]

    async def outbox(self, event_type: str) -> list:
        return await self.sql(
            "SELECT envelope FROM outbox WHERE event_type = :t ORDER BY created_at", {"t": event_type}, tenant=None
        )
