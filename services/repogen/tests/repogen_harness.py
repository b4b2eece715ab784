"""Repogen under test with the REAL ops service beside it (both trusting one TokenSigner), and
a client for both with the calls tests repeat.

    @pytest.fixture
    def suite(start_service, tmp_path):
        return lambda **kw: running_suite(start_service, tmp_path, **kw)

    async def test_x(suite):
        async with suite() as h:
            wo = (await h.work_order(bank_code="SBI")).work_order
            await h.patch(wo.id, 0, {"parties": {"borrower_name": "Asha Patel"}})

Repogen asks ops (GetAssignment, GetDocument) with its own service token: here a token the
test signs with the same key ops trusts, carrying the capabilities identity grants repogen's
client (`REPOGEN_SERVICE_CAPS`), installed in place of identity's provider. Ops' master data
(banks) is made with SQL through ops' own engine; assignments and documents through ops' RPCs
(presign → PutLocalObject → confirm on local disk under the test's tmp_path).

`running_repogen(..., database_url=...)` starts repogen again on an existing database (a
restart); `h.restart()` does it inside a suite.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

import grpc
from sqlalchemy import text

from zenops.events.v1 import envelope_pb2
from zenops.ops.v1 import ops_pb2 as opb
from zenops.ops.v1 import ops_pb2_grpc
from zenops.repogen.v1 import repogen_pb2 as pb
from zenops.repogen.v1 import repogen_pb2_grpc
from zenops_devstack.testing import TokenSigner
from zenops_kit.auth import ServiceTokenProvider
from zenops_kit.db import system_tx, tenant_tx
from zenops_kit.errors import ErrorDetail, parse_rpc_error
from zenops_repogen.service_tokens import install_service_tokens

# An ops manager of the firm: everything in ops a test sets up, and all of repogen.
MANAGER_CAPS = (
    "masterdata.read",
    "masterdata.write",
    "masterdata.approve",
    "assignments.read",
    "assignments.write",
    "assignments.transition",
    "channel_requests.read",
    "channel_requests.write",
    "channel_requests.review",
    "documents.read",
    "documents.write",
    "documents.read_sensitive",
    "repogen.read",
    "repogen.write",
    "repogen.transition",
    "repogen.release",
)
# identity's roles as far as repogen is concerned.
VALUER_CAPS = ("repogen.read", "repogen.write", "repogen.transition")
STUDIO_CAPS = ("repogen.read",)
# What identity grants repogen's own service client (zenops_identity.domain.service_clients).
REPOGEN_SERVICE_CAPS = ("assignments.read", "masterdata.read", "documents.read", "documents.read_sensitive")
PORTAL_CAPS = ("channel_requests.read", "channel_requests.write", "documents.read", "documents.write")

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\xff\xd9"

# A contract with everything the SBI under-₹5-crore template needs (decimals as strings).
FULL_CONTRACT = {
    "parties": {
        "bank_code": "SBI",
        "branch_ifsc": "SBIN0001234",
        "borrower_name": "Asha Patel",
        "owner_name": "Asha Patel",
    },
    "property": {
        "address": "Flat 4B, Sea View, Bandra West, Mumbai 400050",
        "property_type": "residential_flat",
        "is_coop_society": False,
        "ownership": "freehold",
        "tenure": "freehold",
        "occupancy": "self",
        "boundaries": {"north": "Road", "south": "Building A", "east": "Garden", "west": "Plot 12"},
    },
    "areas": {
        "land": {"value": "1200", "unit": "sqft"},
        "carpet": {"value": "1000", "unit": "sqft"},
        "built_up": {"value": "1150", "unit": "sqft"},
        "super_built_up": {"value": "1300", "unit": "sqft"},
    },
    "valuation_lines": [
        {"description": "Flat (carpet)", "area": {"value": "1000", "unit": "sqft"}, "rate_per_sqm": "150000"}
    ],
    "extras": [{"description": "Car parking", "amount": "200000"}],
    "guideline": {"rate_per_sqm": "100000"},
    "inspection": {
        "date": datetime.now(UTC).date().isoformat(),
        "inspector": "R. Kulkarni",
        "remarks": "Well maintained",
    },
    "legal": {
        "sale_deed_number": "BDR-1234-2019",
        "sale_deed_date": "2019-05-14",
        "registration_office": "Bandra SRO",
        "index_ii_number": "IDX-99",
        "survey_number": "CTS 45",
        "property_tax_number": "PT-778",
        "electricity_consumer_number": "EC-12",
        "approved_plan_number": "AP-55",
        "approving_authority": "MCGM",
        "occupancy_certificate_number": "OC-9",
        "society_registration_number": "SR-1",
        "share_certificate_number": "SC-2",
    },
    "sections": {
        "justification": "Rates from recent registered sale deeds in the same society.",
        "enclosures": "Sale deed, Index II, tax receipt, photographs.",
        "checklist": "Complete",
        "notes": "None",
    },
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def service_tokens(signer: TokenSigner, caps=REPOGEN_SERVICE_CAPS) -> ServiceTokenProvider:
    """Repogen's service token as identity would issue it, signed by the test's key."""

    async def fetch() -> tuple[str, int]:
        return signer.token(aud="service", caps=list(caps), sub="service:repogen"), 900

    return ServiceTokenProvider(fetch)


class Harness:
    def __init__(self, *, signer: TokenSigner, ops_app, ops_channel: grpc.aio.Channel) -> None:
        self.signer = signer
        self.ops_app = ops_app
        self.ops = ops_pb2_grpc.OpsServiceStub(ops_channel)
        self.ops_engine = ops_app.runtime.engine
        self.app = None
        self.stub: repogen_pb2_grpc.RepogenServiceStub | None = None
        self.engine = None
        self.tenant = str(uuid.uuid4())
        self.external_tenant = str(uuid.uuid4())
        self.manager_id = str(uuid.uuid4())
        self.manager = self.token()
        self._banks: dict[str, str] = {}
        self._restart = None

    def attach(self, app, channel: grpc.aio.Channel) -> None:
        """Talk to this repogen app (after a start or restart)."""
        self.app = app
        self.stub = repogen_pb2_grpc.RepogenServiceStub(channel)
        self.engine = app.runtime.engine

    @property
    def database_url(self) -> str:
        return self.app.settings.database_url.get_secret_value()

    async def restart(self, **overrides) -> None:
        """Stop repogen and start it again on the same database (a new process, as far as the
        service can tell: new engine, new clients, new caches)."""
        await self._restart(**overrides)

    # -- tokens ----------------------------------------------------------------------------

    def token(self, caps=MANAGER_CAPS, *, tenant: str | None = None, aud: str = "web", **extra) -> str:
        """A staff token of the harness tenant (the manager unless `sub` is given)."""
        extra.setdefault("sub", self.manager_id)
        return self.signer.token(aud=aud, caps=list(caps), tid=tenant or self.tenant, **extra)

    def user(self, caps=MANAGER_CAPS, **extra) -> tuple[str, str]:
        user_id = str(uuid.uuid4())
        return user_id, self.token(caps, sub=user_id, **extra)

    def portal(self, channel_id: str, caps=PORTAL_CAPS) -> str:
        return self.signer.token(
            aud="portal",
            caps=list(caps),
            tid=self.external_tenant,
            sub=str(uuid.uuid4()),
            channel_id=channel_id,
            roles=["portal_user"],
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

    async def ops_call(self, method: str, request, token: str | None = None):
        md = (("authorization", f"Bearer {token or self.manager}"),)
        return await getattr(self.ops, method)(request, metadata=md, timeout=30)

    # -- SQL as the services' own roles (RLS applies) ------------------------------------------

    async def sql(self, statement: str, params: dict | None = None, *, tenant: str | None = "") -> list:
        """SQL through repogen's engine: `tenant` '' = the harness tenant, None = no tenant
        (the outbox and other infrastructure tables)."""
        tenant = self.tenant if tenant == "" else tenant
        tx = tenant_tx(self.engine, tenant) if tenant else system_tx(self.engine)
        async with tx as conn:
            result = await conn.execute(text(statement), params or {})
            return list(result) if result.returns_rows else []

    async def ops_sql(self, statement: str, params: dict | None = None) -> list:
        async with tenant_tx(self.ops_engine, self.tenant) as conn:
            result = await conn.execute(text(statement), params or {})
            return list(result) if result.returns_rows else []

    async def outbox(self, event_type: str) -> list[envelope_pb2.EventEnvelope]:
        rows = await self.sql(
            "SELECT envelope FROM outbox WHERE event_type = :t ORDER BY created_at, id", {"t": event_type}, tenant=None
        )
        return [envelope_pb2.EventEnvelope.FromString(bytes(r.envelope)) for r in rows]

    async def audit(self, work_order_id: str) -> list[dict]:
        rows = await self.sql(
            "SELECT kind, from_status, to_status, actor, reason, detail::text AS detail FROM work_order_events "
            "WHERE work_order_id = CAST(:id AS uuid) ORDER BY created_at, id",
            {"id": work_order_id},
        )
        return [
            {
                "kind": r.kind,
                "from": r.from_status,
                "to": r.to_status,
                "actor": r.actor,
                "reason": r.reason,
                "detail": json.loads(r.detail),
            }
            for r in rows
        ]

    # -- ops: banks, assignments, documents ------------------------------------------------------

    async def bank(self, code: str = "SBI", name: str = "State Bank of India") -> str:
        if code not in self._banks:
            bank_id = str(uuid.uuid4())
            await self.ops_sql(
                "INSERT INTO banks (id, tenant_id, code, name, created_by) VALUES (CAST(:id AS uuid), "
                "CAST(:t AS uuid), :code, :name, 'test')",
                {"id": bank_id, "t": self.tenant, "code": code, "name": name},
            )
            self._banks[code] = bank_id
        return self._banks[code]

    async def channel(self, *, billing_account_id: str | None = None, default_credits: int = 2) -> str:
        """A channel partner of the firm in ops (with its directory row, as CreateChannel writes it)."""
        channel_id = str(uuid.uuid4())
        await self.ops_sql(
            "INSERT INTO channels (id, tenant_id, name, channel_type, commission_mode, commission_value, is_active, "
            "billing_account_id, default_credits, created_by) VALUES (CAST(:id AS uuid), CAST(:t AS uuid), :name, "
            "'AGENT', 'FLAT', 0, true, CAST(:account AS uuid), :credits, 'test')",
            {
                "id": channel_id,
                "t": self.tenant,
                "name": f"Partner {channel_id[:8]}",
                "account": billing_account_id,
                "credits": default_credits,
            },
        )
        await self.ops_sql(
            "INSERT INTO channel_directory (channel_id, tenant_id) VALUES (CAST(:c AS uuid), CAST(:t AS uuid))",
            {"c": channel_id, "t": self.tenant},
        )
        return channel_id

    async def accepted_request(
        self,
        channel_id: str,
        *,
        bank_code: str | None = "SBI",
        requested_service: str = "valuation_report",
        credits: int = 0,
    ) -> opb.AcceptChannelRequestResponse:
        """A channel request submitted by the channel's portal user and accepted by the manager."""
        fields = {"bank_id": await self.bank(bank_code)} if bank_code else {}
        submitted = (
            await self.ops_call(
                "SubmitChannelRequest",
                opb.SubmitChannelRequestRequest(
                    borrower_name="Asha Patel",
                    borrower_phone="9876543210",
                    requested_service=requested_service,
                    credits=credits,
                    property=opb.PropertyDetails(
                        address_line1="Flat 4B, Sea View",
                        locality="Bandra West",
                        city="Mumbai",
                        state="MH",
                        pin_code="400050",
                        property_type="residential_flat",
                    ),
                    **fields,
                ),
                self.portal(channel_id),
            )
        ).channel_request
        return await self.ops_call("AcceptChannelRequest", opb.AcceptChannelRequestRequest(id=submitted.id))

    async def assignment(self, bank_code: str | None = "SBI", **fields) -> opb.Assignment:
        """An ops assignment: of `bank_code`'s bank, or DIRECT for a borrower when None."""
        if bank_code:
            fields.update(source_type=opb.SOURCE_TYPE_BANK, bank_id=await self.bank(bank_code))
        else:
            fields.setdefault("source_type", opb.SOURCE_TYPE_DIRECT)
        fields.setdefault("borrower_name", "Asha Patel")
        return (await self.ops_call("CreateAssignment", opb.CreateAssignmentRequest(**fields))).assignment

    async def document(
        self,
        data: bytes = PDF,
        *,
        filename: str = "sale-deed.pdf",
        content_type: str = "application/pdf",
        captured_at: datetime | None = None,
        confirm: bool = True,
        **links,
    ) -> opb.Document:
        """An ops document (UPLOADED unless confirm=False), presigned, put and confirmed."""
        request = opb.PresignUploadRequest(
            filename=filename,
            content_type=content_type,
            size_bytes=len(data),
            sha256=sha256(data),
            source=opb.DOCUMENT_SOURCE_DESKTOP_UPLOAD,
            classification=opb.DOCUMENT_CLASSIFICATION_LEGAL,
            links=opb.DocumentLinks(**links) if links else opb.DocumentLinks(work_order_id=str(uuid.uuid4())),
        )
        if captured_at is not None:
            request.captured_at.FromDatetime(captured_at)
        signed = await self.ops_call("PresignUpload", request)
        if not confirm:
            return signed.document
        token = signed.upload_url.rstrip("/").rsplit("/", 1)[1]

        async def chunks():
            yield opb.PutLocalObjectRequest(token=token, data=data)

        await self.ops.PutLocalObject(chunks(), timeout=30)
        return (await self.ops_call("ConfirmUpload", opb.ConfirmUploadRequest(id=signed.document.id))).document

    async def photo(self, n: int = 0, *, captured_at: datetime | None = None, **links) -> opb.Document:
        return await self.document(
            JPEG + n.to_bytes(4, "big"),
            filename=f"site-{n}.jpg",
            content_type="image/jpeg",
            captured_at=captured_at,
            **links,
        )

    # -- repogen shortcuts ---------------------------------------------------------------------

    async def work_order(
        self, bank_code: str | None = "SBI", token: str | None = None, **fields
    ) -> pb.CreateWorkOrderResponse:
        """CreateWorkOrder for a new ops assignment (unless `assignment_id` is given)."""
        if "assignment_id" not in fields:
            fields["assignment_id"] = (await self.assignment(bank_code)).id
        return await self.call("CreateWorkOrder", pb.CreateWorkOrderRequest(**fields), token)

    async def patch(
        self, work_order_id: str, expected_version: int, patch: dict, token: str | None = None, **fields
    ) -> pb.PatchContractResponse:
        return await self.call(
            "PatchContract",
            pb.PatchContractRequest(
                work_order_id=work_order_id, expected_version=expected_version, patch_json=json.dumps(patch), **fields
            ),
            token,
        )

    async def transition(
        self, work_order_id: str, to: int, reason: str = "", token: str | None = None, **fields
    ) -> pb.TransitionWorkOrderResponse:
        return await self.call(
            "TransitionWorkOrder",
            pb.TransitionWorkOrderRequest(id=work_order_id, to=to, reason=reason, **fields),
            token,
        )

    async def add_evidence(
        self,
        work_order_id: str,
        kind: str,
        document: opb.Document | None = None,
        caption: str = "",
        token: str | None = None,
        **fields,
    ) -> pb.AddEvidenceResponse:
        if document is None:
            document = await (
                self.photo(uuid.uuid4().int % 10**6)
                if kind == "SITE_PHOTO"
                else self.document(PDF + uuid.uuid4().bytes, filename=f"{kind.lower()}.pdf")
            )
        return await self.call(
            "AddEvidence",
            pb.AddEvidenceRequest(
                work_order_id=work_order_id, document_id=document.id, kind=kind, caption=caption, **fields
            ),
            token,
        )

    async def get(self, work_order_id: str) -> pb.WorkOrder:
        return (await self.call("GetWorkOrder", pb.GetWorkOrderRequest(id=work_order_id))).work_order

    async def readiness(self, work_order_id: str) -> pb.Readiness:
        return (
            await self.call("EvaluateReadiness", pb.EvaluateReadinessRequest(work_order_id=work_order_id))
        ).readiness

    async def template(self, template_id: str) -> pb.Template:
        listed = await self.call("ListTemplates", pb.ListTemplatesRequest())
        return next(t for t in listed.templates if t.id == template_id)

    async def make_ready(self, work_order_id: str, contract: dict | None = None) -> pb.WorkOrder:
        """Accept, fill the contract, add the evidence the template's profile asks for, then
        move to READY_FOR_RENDER."""
        wo = await self.get(work_order_id)
        if wo.status == pb.WORK_ORDER_STATUS_DRAFT:
            wo = (await self.transition(work_order_id, pb.WORK_ORDER_STATUS_DATA_PENDING)).work_order
        wo = (await self.patch(work_order_id, wo.snapshot_version, contract or FULL_CONTRACT)).work_order
        template = await self.template(wo.template_id)
        for requirement in template.evidence_requirements:
            for _ in range(requirement.min_count):
                await self.add_evidence(work_order_id, requirement.kind)
        return (await self.transition(work_order_id, pb.WORK_ORDER_STATUS_READY_FOR_RENDER)).work_order


@asynccontextmanager
async def running_repogen(
    start_service, *, signer: TokenSigner, ops_port: int, database_url: str | None = None, **overrides
):
    """repogen (its relay and consumers too unless run_workers=False) asking the ops at
    `ops_port` with a test-signed service token; yields (app, channel)."""
    async with start_service(
        "repogen", verifier=signer.verifier(), database_url=database_url, ops_addr=f"127.0.0.1:{ops_port}", **overrides
    ) as app:
        install_service_tokens(app.runtime, service_tokens(signer))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield app, channel


@asynccontextmanager
async def running_suite(start_service, tmp_path, *, ops_workers: bool = False, run_workers: bool = False, **overrides):
    """ops (local files under tmp_path; no relay or consumers unless ops_workers) and repogen
    (idem unless run_workers), trusting one signer; yields a Harness."""
    signer = TokenSigner()
    async with start_service(
        "ops", verifier=signer.verifier(), storage_dir=str(tmp_path / "ops-files"), run_workers=ops_workers
    ) as ops_app:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ops_app.port}") as ops_channel:
            h = Harness(signer=signer, ops_app=ops_app, ops_channel=ops_channel)
            async with AsyncExitStack() as stack:

                async def start(database_url: str | None = None, **more) -> None:
                    app, channel = await stack.enter_async_context(
                        running_repogen(
                            start_service,
                            signer=signer,
                            ops_port=ops_app.port,
                            database_url=database_url,
                            run_workers=run_workers,
                            **{**overrides, **more},
                        )
                    )
                    h.attach(app, channel)

                async def restart(**more) -> None:
                    url = h.database_url
                    await stack.aclose()
                    await start(url, **more)

                h._restart = restart
                await start()
                yield h


async def outcome(coro) -> tuple[str, object]:
    """('OK', response) or (reason, ErrorDetail) of an awaited call."""
    try:
        return "OK", await coro
    except grpc.aio.AioRpcError as exc:
        detail = parse_rpc_error(exc)
        return detail.reason, detail
