"""A client for the ops service under test, with the calls and rows tests repeat.

    @pytest.fixture
    def ops(start_service):
        return lambda **settings: running_ops(start_service, **settings)

    async def test_x(ops):
        async with ops() as h:
            bank = await h.bank()
            a = await h.create_assignment(source_type=pb.SOURCE_TYPE_BANK, bank_id=bank)

Master-data rows can be made with SQL through the service's own engine (RLS applies: the
harness tenant unless told otherwise): `h.bank()`, `h.branch()`, `h.property()`,
`h.channel()`, ... so a test of one area does not depend on another area's RPCs.
"""

from __future__ import annotations

import json
import random
import uuid
from contextlib import asynccontextmanager

import grpc
from sqlalchemy import text

from zenops.events.v1 import envelope_pb2
from zenops.ops.v1 import ops_pb2 as pb
from zenops.ops.v1 import ops_pb2_grpc
from zenops_devstack.testing import TokenSigner
from zenops_kit.db import system_tx, tenant_tx
from zenops_kit.errors import ErrorDetail, parse_rpc_error

# An ops manager of the firm (identity's ops_manager role, as far as ops is concerned).
MANAGER_CAPS = (
    "masterdata.read",
    "masterdata.write",
    "masterdata.approve",
    "assignments.read",
    "assignments.write",
    "assignments.transition",
    "tasks.read",
    "tasks.write",
    "channel_requests.read",
    "channel_requests.write",
    "channel_requests.review",
    "documents.read",
    "documents.write",
    "documents.read_sensitive",
    "analytics.read",
    "repogen.read",
    "repogen.write",
    "repogen.transition",
    "repogen.release",
)
# A valuer: works assignments, cannot review intake or release reports.
VALUER_CAPS = (
    "masterdata.read",
    "masterdata.write",
    "assignments.read",
    "assignments.write",
    "assignments.transition",
    "tasks.read",
    "tasks.write",
    "channel_requests.read",
    "documents.read",
    "documents.write",
    "documents.read_sensitive",
    "repogen.read",
    "repogen.write",
    "repogen.transition",
)
# A channel partner's portal user.
PORTAL_CAPS = (
    "channel_requests.read",
    "channel_requests.write",
    "documents.read",
    "documents.write",
    "invoices.read",
    "support.read",
    "support.write",
)


def property_details(**fields) -> pb.PropertyDetails:
    values = {
        "address_line1": "Flat 4B, Sea View",
        "locality": "Bandra West",
        "city": "Mumbai",
        "state": "MH",
        "pin_code": "400050",
        "property_type": "residential_flat",
    }
    values.update(fields)
    return pb.PropertyDetails(**values)


def random_ifsc() -> str:
    letters = "".join(random.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ", k=4))
    return f"{letters}0{random.randrange(10**6):06d}"


class Harness:
    def __init__(self, app, grpc_channel: grpc.aio.Channel, signer: TokenSigner) -> None:
        self.app = app
        self.grpc_channel = grpc_channel
        self.signer = signer
        self.stub = ops_pb2_grpc.OpsServiceStub(grpc_channel)
        self.engine = app.runtime.engine
        self.settings = app.settings
        # The firm's tenant, and the external tenant portal users' tokens carry.
        self.tenant = str(uuid.uuid4())
        self.external_tenant = str(uuid.uuid4())
        self.manager_id = str(uuid.uuid4())
        self.manager = self.token()

    # -- tokens ----------------------------------------------------------------------------

    def token(self, caps=MANAGER_CAPS, *, tenant: str | None = None, aud: str = "web", **extra) -> str:
        """A staff token of the harness tenant (the manager unless `sub` is given)."""
        extra.setdefault("sub", self.manager_id)
        return self.signer.token(aud=aud, caps=list(caps), tid=tenant or self.tenant, **extra)

    def user(self, caps=MANAGER_CAPS, **extra) -> tuple[str, str]:
        """(user id, token) of a new staff user."""
        user_id = str(uuid.uuid4())
        return user_id, self.token(caps, sub=user_id, **extra)

    def portal(self, channel_id: str, caps=PORTAL_CAPS, *, user_id: str | None = None) -> str:
        """A portal user's token: the external tenant, the channel in its claim."""
        return self.signer.token(
            aud="portal",
            caps=list(caps),
            tid=self.external_tenant,
            sub=user_id or str(uuid.uuid4()),
            channel_id=channel_id,
        )

    def service_token(self, caps=(), name: str = "billing") -> str:
        return self.signer.token(aud="service", caps=list(caps), sub=f"service:{name}")

    # -- calls -----------------------------------------------------------------------------

    async def call(self, method: str, request, token: str | None = None, metadata=()):
        md = tuple(metadata) + (("authorization", f"Bearer {token or self.manager}"),)
        return await getattr(self.stub, method)(request, metadata=md, timeout=30)

    async def fails(self, method: str, request, token: str | None = None, metadata=()) -> ErrorDetail:
        try:
            await self.call(method, request, token, metadata)
        except grpc.aio.AioRpcError as exc:
            return parse_rpc_error(exc)
        raise AssertionError(f"{method} succeeded")

    # -- SQL as the service's own role -------------------------------------------------------

    async def sql(self, statement: str, params: dict | None = None, *, tenant: str | None = "") -> list:
        """Run SQL through the service's engine (RLS applies: `tenant` '' = the harness tenant,
        None = no tenant, for the outbox and other infrastructure tables)."""
        tenant = self.tenant if tenant == "" else tenant
        tx = tenant_tx(self.engine, tenant) if tenant else system_tx(self.engine)
        async with tx as conn:
            result = await conn.execute(text(statement), params or {})
            return list(result) if result.returns_rows else []

    def tx(self, tenant: str | None = None):
        """A transaction of the harness tenant (or `tenant`) on the service's own engine."""
        return tenant_tx(self.engine, tenant or self.tenant)

    async def _insert(self, table: str, values: dict, *, tenant: str | None = None) -> str:
        values = {"id": str(uuid.uuid4()), "tenant_id": tenant or self.tenant, **values}
        columns = ", ".join(values)
        placeholders = ", ".join(f":{c}" for c in values)
        await self.sql(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", values, tenant=tenant or "")
        return values["id"]

    # -- master data (rows of migration 0002) ------------------------------------------------

    async def bank(self, code: str | None = None, name: str = "State Bank of India", **kw) -> str:
        code = code or "B" + uuid.uuid4().hex[:8].upper()
        return await self._insert("banks", {"code": code, "name": name, "created_by": self.manager_id}, **kw)

    async def branch(
        self, bank_id: str, *, ifsc: str | None = None, city: str = "Mumbai", state: str = "MH", **kw
    ) -> str:
        return await self._insert(
            "bank_branches",
            {
                "bank_id": bank_id,
                "name": f"{city} main",
                "ifsc": ifsc or random_ifsc(),
                "city": city,
                "state": state,
                "created_by": self.manager_id,
            },
            **kw,
        )

    async def client_org(self, name: str = "Acme Builders", **kw) -> str:
        return await self._insert("client_orgs", {"name": name, "created_by": self.manager_id}, **kw)

    async def contact(self, name: str = "Ravi Kumar", phone: str = "+919876543210", **kw) -> str:
        return await self._insert("contacts", {"name": name, "phone": phone, "created_by": self.manager_id}, **kw)

    async def property(self, address_line1: str = "Flat 4B, Sea View", city: str = "Mumbai", **kw) -> str:
        return await self._insert(
            "properties",
            {
                "address_line1": address_line1,
                "locality": "Bandra West",
                "city": city,
                "state": "MH",
                "pin_code": "400050",
                "property_type": "residential_flat",
                "created_by": self.manager_id,
            },
            **kw,
        )

    async def channel(
        self,
        *,
        name: str | None = None,
        active: bool = True,
        billing_account_id: str | None = None,
        default_credits: int = 1,
        tenant: str | None = None,
    ) -> str:
        """A channel of the firm (and its channel_directory row, as CreateChannel writes it)."""
        tenant = tenant or self.tenant
        channel_id = await self._insert(
            "channels",
            {
                "name": name or f"Partner {uuid.uuid4().hex[:8]}",
                "channel_type": "AGENT",
                "commission_mode": "FLAT",
                "commission_value": 0,
                "is_active": active,
                "billing_account_id": billing_account_id,
                "default_credits": default_credits,
                "created_by": self.manager_id,
            },
            tenant=tenant,
        )
        await self.sql(
            "INSERT INTO channel_directory (channel_id, tenant_id) VALUES (CAST(:c AS uuid), CAST(:t AS uuid))",
            {"c": channel_id, "t": tenant},
            tenant=None,
        )
        return channel_id

    # -- ops RPC shortcuts ---------------------------------------------------------------------

    async def create_assignment(self, token: str | None = None, **fields) -> pb.Assignment:
        """CreateAssignment; a DIRECT assignment for a borrower unless told otherwise."""
        if "source_type" not in fields:
            fields["source_type"] = pb.SOURCE_TYPE_DIRECT
            fields.setdefault("borrower_name", "Asha Patel")
        return (await self.call("CreateAssignment", pb.CreateAssignmentRequest(**fields), token)).assignment

    async def transition(
        self, assignment_id: str, to: int, reason: str = "", token: str | None = None, **fields
    ) -> pb.Assignment:
        return (
            await self.call(
                "TransitionAssignment",
                pb.TransitionAssignmentRequest(id=assignment_id, to=to, reason=reason, **fields),
                token,
            )
        ).assignment

    async def submit(self, token: str, **fields) -> pb.ChannelRequest:
        """SubmitChannelRequest with a valid request unless fields say otherwise."""
        fields.setdefault("borrower_name", "Asha Patel")
        fields.setdefault("borrower_phone", "9876543210")
        fields.setdefault("property", property_details())
        fields.setdefault("requested_service", "valuation_report")
        return (
            await self.call("SubmitChannelRequest", pb.SubmitChannelRequestRequest(**fields), token)
        ).channel_request

    # -- what ops wrote ------------------------------------------------------------------------

    async def outbox(self, event_type: str) -> list[envelope_pb2.EventEnvelope]:
        rows = await self.sql(
            "SELECT envelope FROM outbox WHERE event_type = :t ORDER BY created_at, id", {"t": event_type}, tenant=None
        )
        return [envelope_pb2.EventEnvelope.FromString(bytes(r.envelope)) for r in rows]

    async def activities(self, *, assignment_id: str | None = None, channel_request_id: str | None = None) -> list:
        rows = await self.sql(
            "SELECT kind, actor, summary, detail::text AS detail, assignment_id::text, channel_request_id::text "
            "FROM activities WHERE (CAST(:a AS uuid) IS NULL OR assignment_id = CAST(:a AS uuid)) "
            "AND (CAST(:c AS uuid) IS NULL OR channel_request_id = CAST(:c AS uuid)) ORDER BY created_at, id",
            {"a": assignment_id, "c": channel_request_id},
        )
        return [
            {
                "kind": r.kind,
                "actor": r.actor,
                "summary": r.summary,
                "detail": json.loads(r.detail),
                "assignment_id": r.assignment_id,
                "channel_request_id": r.channel_request_id,
            }
            for r in rows
        ]


@asynccontextmanager
async def running_ops(start_service, *, signer: TokenSigner | None = None, **overrides):
    """`async with running_ops(start_service) as h:` — ops running on a fresh database (its
    relay and consumers too unless run_workers=False), and a client for it."""
    signer = signer or TokenSigner()
    async with start_service("ops", verifier=signer.verifier(), **overrides) as app:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield Harness(app, channel, signer)


async def outcome(coro) -> tuple[str, object]:
    """('OK', response) or (reason, ErrorDetail) of an awaited call."""
    try:
        return "OK", await coro
    except grpc.aio.AioRpcError as exc:
        detail = parse_rpc_error(exc)
        return detail.reason, detail
