"""The gateway's repogen routes against the REAL repogen service, with the REAL ops (repogen
asks it about assignments and documents) and, for the release, the REAL billing — each with
its own PostgreSQL database, files on a temporary disk, one TokenSigner trusted by every
service and by the gateway; repogen calls ops and billing with a service token signed by that
key (the capabilities identity grants repogen's client).

HTTP → typed client → repogen → HTTP: work orders from ops assignments (bank code, template,
201 + Location, replays and key reuse named as the body names them, unknown assignment 404),
the contract (merge patch → snapshot n+1 with hand-worked outputs, a stale `expected_version`
409 `VERSION_CONFLICT`, a bad contract value 400 naming `patch.<path>`), snapshots, readiness
and the 409 `READINESS_NOT_MET` with its report; templates and an override; evidence uploaded
through ops' file URLs, field links added and removed, annexure order, comments; the factory
rendering on `ready_for_render` → artifacts → a signed URL → `GET /v1/artifact-files/{token}`
streaming a DOCX whose text has the FMV in figures and words; the export bundle byte-identical
across calls with its hash in `ETag`/`X-Content-SHA256`; the billing-gated release (credits
consumed, same key → same release, a POSTPAID account without a paid invoice → 409
`INVOICE_UNPAID` and nothing changes); the monitor; capabilities (403s from repogen).
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from docx import Document
from gateway_testing import assert_problem, gateway_settings, running

from zenops_devstack.process import free_port
from zenops_devstack.testing import TokenSigner, poll
from zenops_gateway.app import USER_AUDIENCES, create_app
from zenops_kit.auth import JwtVerifier, RevocationList, ServiceTokenProvider
from zenops_repogen.service_tokens import install_service_tokens

ISSUER = "zenops-identity"

REPOGEN_CAPS = ("repogen.read", "repogen.write", "repogen.transition", "repogen.release")
MANAGER_CAPS = (
    "masterdata.read",
    "masterdata.write",
    "masterdata.approve",
    "assignments.read",
    "assignments.write",
    "assignments.transition",
    "documents.read",
    "documents.write",
    "documents.read_sensitive",
    "billing.read",
    "billing.write",
    "billing.credits.write",
    *REPOGEN_CAPS,
)
VALUER_CAPS = ("repogen.read", "repogen.write", "repogen.transition")
STUDIO_CAPS = ("repogen.read",)
# What identity grants repogen's own service client (ops reads; billing accepts any service token).
REPOGEN_SERVICE_CAPS = ("assignments.read", "masterdata.read", "documents.read", "documents.read_sensitive")

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 4 + b"\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"

# Everything the SBI under-₹5-crore template needs. Hand-worked values:
#   carpet 1000 sqft × 0.09290304 = 92.90304 → 92.90 sqm (half-up, 2 decimals)
#   FMV = 92.90 × 150000 + 200000 (car parking) = 1,39,35,000 + 2,00,000 = ₹1,41,35,000
#   realisable 95% = ₹1,34,28,250; distress 80% = ₹1,13,08,000
#   guideline 92.90 × 100000 = ₹92,90,000 (FMV above it: no warning)
CONTRACT = {
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
    "areas": {"carpet": {"value": "1000", "unit": "sqft"}, "built_up": {"value": "1150", "unit": "sqft"}},
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
    "legal": {"sale_deed_number": "BDR-1234-2019", "sale_deed_date": "2019-05-14"},
    "sections": {"justification": "Rates from recent registered sale deeds in the same society."},
}
FMV, REALISABLE, DISTRESS = 14_135_000, 13_428_250, 11_308_000
FMV_WORDS = "Rupees One Crore Forty-One Lakh Thirty-Five Thousand Only"
# The SBI_STANDARD_V1 evidence profile.
EVIDENCE = [("site_photo", 4), ("sale_deed", 1), ("tax_receipt", 1), ("location_map", 1)]


def key() -> dict[str, str]:
    return {"idempotency-key": str(uuid.uuid4())}


def fields(resp: httpx.Response, status: int = 400, code: str | None = None) -> dict[str, str]:
    body = assert_problem(resp, status, code)
    return {e["field"]: e["message"] for e in body["errors"]}


def stable(problem: dict) -> dict:
    return {k: v for k, v in problem.items() if k not in ("request_id", "trace_id")}


def docx_text(data: bytes) -> str:
    doc = Document(io.BytesIO(data))
    lines = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        for row in table.rows:
            lines.extend(cell.text for cell in row.cells)
    return "\n".join(lines)


def service_tokens(signer: TokenSigner) -> ServiceTokenProvider:
    """Repogen's service token as identity would issue it, signed by the test's key."""

    async def fetch() -> tuple[str, int]:
        return signer.token(aud="service", caps=list(REPOGEN_SERVICE_CAPS), sub="service:repogen"), 900

    return ServiceTokenProvider(fetch)


@dataclass
class Suite:
    client: httpx.AsyncClient
    signer: TokenSigner
    tenant: str
    manager_id: str
    manager: str

    def token(self, caps=MANAGER_CAPS, *, user_id: str | None = None) -> str:
        return self.signer.token(aud="web", caps=list(caps), tid=self.tenant, sub=user_id or str(uuid.uuid4()))

    async def call(self, method: str, path: str, token: str | None = None, **kwargs) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        headers["authorization"] = f"Bearer {token or self.manager}"
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def ok(self, method: str, path: str, status: int = 200, token: str | None = None, **kwargs) -> dict:
        resp = await self.call(method, path, token, **kwargs)
        assert resp.status_code == status, resp.text
        return resp.json()

    # -- ops: a bank, an assignment, documents, all through the gateway ---------------------------

    async def bank(self, code: str = "SBI") -> str:
        listed = await self.ok("GET", "/v1/banks", params={"q": code})
        found = [b for b in listed["items"] if b["code"] == code]
        if found:
            return found[0]["id"]
        return (await self.ok("POST", "/v1/banks", 201, json={"code": code, "name": f"{code} Bank"}))["id"]

    async def assignment(self, bank_code: str = "SBI") -> dict:
        body = {"source_type": "bank", "bank_id": await self.bank(bank_code), "borrower_name": "Asha Patel"}
        return await self.ok("POST", "/v1/assignments", 201, json=body)

    async def document(self, assignment_id: str, kind: str) -> str:
        photo = kind == "site_photo"
        data = (JPEG if photo else PDF) + uuid.uuid4().bytes
        body = {
            "filename": f"{kind}.{'jpg' if photo else 'pdf'}",
            "content_type": "image/jpeg" if photo else "application/pdf",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "classification": "site_photo" if photo else "legal",
            "source": "desktop_upload",
            "assignment_id": assignment_id,
        }
        presigned = await self.ok("POST", "/v1/documents/presign-upload", 201, json=body)
        upload = await self.client.put(presigned["upload_url"], content=data, headers=presigned["upload_headers"])
        assert upload.status_code == 200, upload.text
        await self.ok("POST", f"/v1/documents/{presigned['document_id']}/confirm")
        return presigned["document_id"]

    # -- repogen ---------------------------------------------------------------------------------

    async def work_order(self, bank_code: str = "SBI", **body) -> dict:
        a = await self.assignment(bank_code)
        return await self.ok("POST", "/v1/work-orders", 201, json={"assignment_id": a["id"], **body})

    async def evidence(self, wo: dict, kind: str) -> dict:
        document_id = await self.document(wo["assignment_id"], kind)
        return await self.ok(
            "POST", f"/v1/work-orders/{wo['id']}/evidence", 201, json={"document_id": document_id, "kind": kind}
        )

    async def make_ready(self, wo: dict) -> dict:
        """Accept, fill the contract, add the profile's evidence, move to ready_for_render."""
        base = f"/v1/work-orders/{wo['id']}"
        accepted = await self.ok("POST", f"{base}/transitions", json={"to": "data_pending"})
        patched = await self.ok(
            "PATCH", f"{base}/contract", json={"expected_version": accepted["snapshot_version"], "patch": CONTRACT}
        )
        assert patched["outputs"]["fair_market_value"] == FMV, patched["outputs"]
        for kind, count in EVIDENCE:
            for _ in range(count):
                await self.evidence(wo, kind)
        return await self.ok("POST", f"{base}/transitions", json={"to": "ready_for_render"})

    async def rendered(self, wo: dict, timeout: float = 90) -> dict:
        async def done():
            got = await self.ok("GET", f"/v1/work-orders/{wo['id']}")
            return got if got["status"] == "rendered" else None

        return await poll(done, timeout=timeout, what=f"work order {wo['id']} rendered")


@asynccontextmanager
async def repogen_suite(
    start_service, tmp_path: Path, *, run_workers: bool = False, with_billing: bool = False
) -> AsyncIterator[Suite]:
    signer = TokenSigner()
    async with AsyncExitStack() as stack:
        ops = await stack.enter_async_context(
            start_service("ops", verifier=signer.verifier(), storage_dir=str(tmp_path / "files"), run_workers=False)
        )
        billing_addr = f"127.0.0.1:{free_port()}"
        if with_billing:
            billing = await stack.enter_async_context(
                start_service("billing", verifier=signer.verifier(), run_workers=False)
            )
            billing_addr = f"127.0.0.1:{billing.port}"
        repogen = await stack.enter_async_context(
            start_service(
                "repogen",
                verifier=signer.verifier(),
                ops_addr=f"127.0.0.1:{ops.port}",
                billing_addr=billing_addr,
                storage_dir=str(tmp_path / "artifacts"),
                run_workers=run_workers,
            )
        )
        install_service_tokens(repogen.runtime, service_tokens(signer))
        app = create_app(
            gateway_settings(
                ops_addr=f"127.0.0.1:{ops.port}",
                repogen_addr=f"127.0.0.1:{repogen.port}",
                billing_addr=billing_addr,
                rpc_timeout=15.0,
            )
        )
        client = await stack.enter_async_context(running(app))
        app.state.runtime.verifier = JwtVerifier(
            signer.key_source(), issuer=ISSUER, audiences=USER_AUDIENCES, revocations=RevocationList()
        )
        tenant, manager_id = str(uuid.uuid4()), str(uuid.uuid4())
        manager = signer.token(aud="web", caps=list(MANAGER_CAPS), tid=tenant, sub=manager_id)
        yield Suite(client, signer, tenant, manager_id, manager)


@pytest.fixture
def suite(start_service, tmp_path):
    return lambda **kwargs: repogen_suite(start_service, tmp_path, **kwargs)


# == work orders, contract, snapshots, readiness ========================================================


async def test_work_order_contract_and_readiness(suite):
    async with suite() as s:
        a = await s.assignment("SBI")
        k = key()
        resp = await s.call("POST", "/v1/work-orders", json={"assignment_id": a["id"]}, headers=k)
        assert resp.status_code == 201, resp.text
        wo = resp.json()
        base = f"/v1/work-orders/{wo['id']}"
        assert resp.headers["location"] == base
        assert (wo["assignment_id"], wo["bank_code"], wo["status"]) == (a["id"], "SBI", "draft")
        assert wo["template_id"] == "SBI_UNDER_5CR_V1" and wo["template_overridden"] is False
        assert wo["snapshot_version"] == 0 and wo["created_by"] == s.manager_id and wo["created_at"].endswith("Z")
        first = wo["snapshot"]
        assert first["version"] == 0 and first["contract"]["schema_version"] == 1
        assert first["outputs"]["fair_market_value"] == 0 and first["readiness"]["ready"] is False
        # a replay answers the original, byte for byte; the key with another body is 409 naming the field
        again = await s.call("POST", "/v1/work-orders", json={"assignment_id": a["id"]}, headers=k)
        assert again.status_code == 201 and again.content == resp.content
        other = await s.assignment("SBI")
        problem = assert_problem(
            await s.call("POST", "/v1/work-orders", json={"assignment_id": other["id"]}, headers=k),
            409,
            "IDEMPOTENCY_KEY_REUSED",
        )
        assert {e["field"] for e in problem["errors"]} == {"assignment_id"}, problem
        # an assignment ops does not know: 404 naming the body's field
        problem = assert_problem(
            await s.call("POST", "/v1/work-orders", json={"assignment_id": str(uuid.uuid4())}), 404
        )
        assert {e["field"] for e in problem["errors"]} <= {"assignment_id"}, problem
        assert_problem(await s.call("GET", f"/v1/work-orders/{uuid.uuid4()}"), 404)

        detail = await s.ok("GET", base)
        assert detail == wo
        listed = await s.ok("GET", "/v1/work-orders", params={"assignment_id": a["id"]})
        assert [w["id"] for w in listed["items"]] == [wo["id"]] and listed["next_cursor"] is None
        assert (await s.ok("GET", "/v1/work-orders", params={"status": "rendered"}))["items"] == []

        # acceptance, then the contract in two patches
        accepted = await s.ok("POST", f"{base}/transitions", json={"to": "data_pending"})
        assert accepted["status"] == "data_pending" and accepted["readiness"] is None
        partial = {key: CONTRACT[key] for key in ("parties", "areas", "valuation_lines", "extras")}
        v1 = await s.ok("PATCH", f"{base}/contract", json={"expected_version": 0, "patch": partial})
        assert v1["version"] == 1 and v1["work_order"]["snapshot_version"] == 1
        out = v1["outputs"]
        assert (out["fair_market_value"], out["realisable_value"], out["distress_value"]) == (FMV, REALISABLE, DISTRESS)
        assert out["fair_market_value_in_words"] == FMV_WORDS
        assert out["template_id"] == "SBI_UNDER_5CR_V1" and 0 < out["completeness_score"] < 100
        assert out["areas"]["carpet"] == {"value": "1000", "unit": "sqft", "sqm": "92.90"}
        assert v1["contract"]["parties"]["borrower_name"] == "Asha Patel"
        assert v1["readiness"]["ready"] is False and "property.address" in v1["readiness"]["missing_fields"]

        # a stale version: 409 VERSION_CONFLICT, nothing written
        stale = await s.call("PATCH", f"{base}/contract", json={"expected_version": 0, "patch": {"legal": {}}})
        assert_problem(stale, 409, "VERSION_CONFLICT")
        # a bad value is named where the body has it
        bad = {"expected_version": 1, "patch": {"areas": {"carpet": {"value": "1000", "unit": "acres"}}}}
        errors = fields(await s.call("PATCH", f"{base}/contract", json=bad), 400)
        assert set(errors) == {"patch.areas.carpet.unit"}, errors
        assert (await s.ok("GET", base))["snapshot_version"] == 1

        # the rest, then a merge patch that removes a member (null) and replaces a list
        rest = {key: CONTRACT[key] for key in CONTRACT if key not in partial}
        v2 = await s.ok("PATCH", f"{base}/contract", json={"expected_version": 1, "patch": rest}, headers=key())
        assert v2["version"] == 2 and v2["outputs"]["completeness_score"] == 100
        assert v2["outputs"]["guideline_value"] == 9_290_000 and v2["outputs"]["below_guideline"] is False
        v3 = await s.ok(
            "PATCH",
            f"{base}/contract",
            json={"expected_version": 2, "patch": {"extras": [], "sections": {"justification": None}}},
        )
        assert v3["outputs"]["fair_market_value"] == FMV - 200_000
        assert "justification" not in v3["contract"]["sections"]

        # snapshots: newest first without the contract; one with it; an unknown version 404
        snapshots = await s.ok("GET", f"{base}/snapshots", params={"limit": 2})
        assert [x["version"] for x in snapshots["items"]] == [3, 2] and snapshots["next_cursor"]
        assert all(x["contract"] is None for x in snapshots["items"])
        older = await s.ok("GET", f"{base}/snapshots", params={"limit": 2, "cursor": snapshots["next_cursor"]})
        assert [x["version"] for x in older["items"]] == [1, 0] and older["next_cursor"] is None
        assert (await s.ok("GET", f"{base}/snapshots/1"))["contract"] == v1["contract"]
        assert (await s.ok("GET", f"{base}/snapshots/2"))["outputs"] == v2["outputs"]
        problem = assert_problem(await s.call("GET", f"{base}/snapshots/9"), 404)
        assert {e["field"] for e in problem["errors"]} <= {"path.version"}, problem
        assert set(fields(await s.call("GET", f"{base}/snapshots", params={"cursor": "nope"}))) == {"query.cursor"}

        # readiness: no evidence yet → the move to ready_for_render is refused with the report
        readiness = await s.ok("GET", f"{base}/readiness")
        assert readiness["snapshot_version"] == 3 and readiness["ready"] is False
        assert readiness["missing_fields"] == []
        assert {m["kind"]: (m["required"], m["present"]) for m in readiness["missing_evidence"]} == {
            "site_photo": (4, 0),
            "sale_deed": (1, 0),
            "tax_receipt": (1, 0),
            "location_map": (1, 0),
        }
        resp = await s.call("POST", f"{base}/transitions", json={"to": "ready_for_render"})
        problem = assert_problem(resp, 409, "READINESS_NOT_MET")
        assert problem["readiness"]["ready"] is False
        assert problem["readiness"]["missing_evidence"] == readiness["missing_evidence"]
        assert {e["field"] for e in problem["errors"]} == {
            "evidence.site_photo",
            "evidence.sale_deed",
            "evidence.tax_receipt",
            "evidence.location_map",
        }
        assert (await s.ok("GET", base))["status"] == "data_pending"
        # a move the lifecycle does not allow
        assert_problem(await s.call("POST", f"{base}/transitions", json={"to": "released"}), 409)

        # templates and an override
        templates = await s.ok("GET", "/v1/repogen/templates")
        by_id = {t["id"]: t for t in templates["items"]}
        assert {"SBI_UNDER_5CR_V1", "SBI_5CR_AND_ABOVE_V1", "GENERIC_BANK_V1"} <= set(by_id)
        sbi = by_id["SBI_UNDER_5CR_V1"]
        assert {(e["kind"], e["min_count"]) for e in sbi["evidence_requirements"]} == set(EVIDENCE)
        assert (sbi["realisable_percent"], sbi["distress_percent"]) == ("95", "80")
        assert templates["registry_version"]
        errors = fields(await s.call("POST", f"{base}/template", json={"template_id": "NO_SUCH_V1", "reason": "x"}))
        assert set(errors) == {"template_id"}, errors
        overridden = await s.ok(
            "POST", f"{base}/template", json={"template_id": "SBI_5CR_AND_ABOVE_V1", "reason": "The bank asked"}
        )
        assert overridden["template_id"] == "SBI_5CR_AND_ABOVE_V1" and overridden["template_overridden"] is True
        assert overridden["template_override_reason"] == "The bank asked"

        # comments
        comment = await s.ok(
            "POST", f"{base}/comments", 201, json={"kind": "justification", "body": "Three registered sales in 2024."}
        )
        assert comment["kind"] == "justification" and comment["author"] == s.manager_id
        await s.ok("POST", f"{base}/comments", 201, json={"kind": "notes", "body": "Lift working."})
        assert [
            c["id"] for c in (await s.ok("GET", f"{base}/comments", params={"kind": "justification"}))["items"]
        ] == [comment["id"]]
        assert len((await s.ok("GET", f"{base}/comments"))["items"]) == 2

        # capabilities are repogen's to check
        studio, valuer = s.token(STUDIO_CAPS), s.token(VALUER_CAPS)
        assert (await s.ok("GET", base, token=studio))["id"] == wo["id"]
        assert_problem(
            await s.call("PATCH", f"{base}/contract", studio, json={"expected_version": 3, "patch": {}}), 403
        )
        assert_problem(
            await s.call("POST", f"{base}/transitions", studio, json={"to": "cancelled", "reason": "x"}), 403
        )
        assert_problem(await s.call("GET", "/v1/work-orders", s.token(("assignments.read",))), 403)
        assert_problem(await s.call("POST", f"{base}/release", valuer, headers=key()), 403, "MISSING_CAPABILITY")
        # another tenant sees nothing
        stranger = s.signer.token(aud="web", caps=list(MANAGER_CAPS), tid=str(uuid.uuid4()), sub=str(uuid.uuid4()))
        assert_problem(await s.call("GET", base, stranger), 404)
        assert (await s.ok("GET", "/v1/work-orders", token=stranger))["items"] == []

        # cancel needs a reason
        assert_problem(await s.call("POST", f"{base}/transitions", json={"to": "cancelled"}), 400)
        cancelled = await s.ok("POST", f"{base}/transitions", json={"to": "cancelled", "reason": "Client withdrew"})
        assert cancelled["status"] == "cancelled"
        assert_problem(await s.call("PATCH", f"{base}/contract", json={"expected_version": 3, "patch": {}}), 409)


async def test_evidence_links_and_annexures(suite):
    async with suite() as s:
        wo = await s.work_order("SBI")
        base = f"/v1/work-orders/{wo['id']}"
        await s.ok("POST", f"{base}/transitions", json={"to": "data_pending"})
        await s.ok("PATCH", f"{base}/contract", json={"expected_version": 0, "patch": CONTRACT})

        map_doc = await s.document(wo["assignment_id"], "location_map")
        added = await s.ok(
            "POST",
            f"{base}/evidence",
            201,
            json={"document_id": map_doc, "kind": "location_map", "caption": "Google map"},
            headers=key(),
        )
        item = added["evidence"]
        assert (item["document_id"], item["kind"], item["caption"]) == (map_doc, "location_map", "Google map")
        assert item["filename"] == "location_map.pdf" and item["content_type"] == "application/pdf"
        assert {m["kind"] for m in added["readiness"]["missing_evidence"]} == {"site_photo", "sale_deed", "tax_receipt"}
        # a document ops does not know, or of another kind spelling
        problem = assert_problem(
            await s.call("POST", f"{base}/evidence", json={"document_id": str(uuid.uuid4()), "kind": "sale_deed"}),
            404,
        )
        assert {e["field"] for e in problem["errors"]} <= {"document_id"}, problem

        deed = (await s.evidence(wo, "sale_deed"))["evidence"]
        photos = [(await s.evidence(wo, "site_photo"))["evidence"] for _ in range(4)]
        last = await s.evidence(wo, "tax_receipt")
        assert last["readiness"]["missing_evidence"] == [] and last["readiness"]["ready"] is True

        # annexures: title deeds first, then tax proof, photographs, the map
        ordered = await s.ok("POST", f"{base}/annexures/auto-order")
        kinds = [e["kind"] for e in ordered["items"]]
        assert kinds == ["sale_deed", "tax_receipt", *["site_photo"] * 4, "location_map"], kinds
        assert [e["annexure_order"] for e in ordered["items"]] == list(range(1, 8))
        assert (await s.ok("GET", f"{base}/evidence"))["items"] == ordered["items"]

        # field links: added, removed with a reason, kept for the audit trail
        link = await s.ok(
            "POST",
            f"{base}/field-links",
            201,
            json={"field_key": "legal.sale_deed_number", "evidence_id": deed["id"], "note": "page 1"},
        )
        assert (link["field_key"], link["evidence_id"], link["note"]) == (
            "legal.sale_deed_number",
            deed["id"],
            "page 1",
        )
        assert link["linked_by"] == s.manager_id and link["removed_at"] is None
        errors = fields(
            await s.call(
                "POST", f"{base}/field-links", json={"field_key": "parties.shoe_size", "evidence_id": deed["id"]}
            )
        )
        assert set(errors) == {"field_key"}, errors
        area_link = await s.ok(
            "POST", f"{base}/field-links", 201, json={"field_key": "areas.carpet", "evidence_id": photos[0]["id"]}
        )
        k = key()
        unlink = {"link_id": area_link["id"], "reason": "wrong photo"}
        removed = await s.ok("DELETE", f"{base}/field-links", json=unlink, headers=k)
        # a retry with the key answers the same removal; without one, removing twice is 409
        assert await s.ok("DELETE", f"{base}/field-links", json=unlink, headers=k) == removed
        assert removed["removal_reason"] == "wrong photo" and removed["removed_by"] == s.manager_id
        assert removed["removed_at"] is not None
        assert_problem(
            await s.call("DELETE", f"{base}/field-links", json={"link_id": area_link["id"], "reason": "again"}), 409
        )
        current = await s.ok("GET", f"{base}/field-links")
        assert [x["id"] for x in current["items"]] == [link["id"]]
        audit = await s.ok("GET", f"{base}/field-links", params={"include_removed": "true"})
        assert {x["id"] for x in audit["items"]} == {link["id"], area_link["id"]}

        # removing evidence (reason in the query or the body) recomputes readiness
        gone = await s.ok("DELETE", f"{base}/evidence/{photos[1]['id']}", params={"reason": "blurred"})
        assert gone["readiness"]["ready"] is False
        assert gone["readiness"]["missing_evidence"] == [{"kind": "site_photo", "required": 4, "present": 3}]
        # removed once (it stays, marked removed): again is 409
        again = await s.call("DELETE", f"{base}/evidence/{photos[1]['id']}", json={"reason": "again"})
        assert_problem(again, 409, "EVIDENCE_REMOVED")
        problem = assert_problem(await s.call("DELETE", f"{base}/evidence/{uuid.uuid4()}", params={"reason": "x"}), 404)
        assert {e["field"] for e in problem["errors"]} <= {"path.evidence_id"}, problem
        assert len((await s.ok("GET", f"{base}/evidence"))["items"]) == 6
        replacement = (await s.evidence(wo, "site_photo"))["readiness"]
        assert replacement["ready"] is True
        ready = await s.ok("POST", f"{base}/transitions", json={"to": "ready_for_render"}, headers=key())
        assert ready["status"] == "ready_for_render" and ready["readiness"]["ready"] is True
        # a patch after that moves the work order back to data_pending
        repatched = await s.ok(
            "PATCH",
            f"{base}/contract",
            json={"expected_version": ready["snapshot_version"], "patch": {"inspection": {"remarks": "Re-checked"}}},
        )
        assert repatched["work_order"]["status"] == "data_pending"


# == factory, artifacts, export bundle, release, monitor ================================================


async def test_render_download_bundle_and_release(suite):
    async with suite(run_workers=True, with_billing=True) as s:
        account = await s.ok(
            "POST", "/v1/billing/accounts", 201, json={"display_name": "Sharma Associates", "policy": "credit"}
        )
        await s.ok(
            "POST",
            f"/v1/billing/accounts/{account['id']}/credits/grant",
            json={"amount": 5, "reason": "opening balance"},
            headers=key(),
        )
        wo = await s.work_order("SBI", billing_account_id=account["id"], credits=2)
        assert (wo["billing_account_id"], wo["credits"]) == (account["id"], 2)
        base = f"/v1/work-orders/{wo['id']}"
        ready = await s.make_ready(wo)
        assert ready["status"] == "ready_for_render"
        # what billing does when the work order is accepted (its consumer is not running here)
        reserved = await s.ok(
            "POST",
            "/v1/billing/credits/reserve",
            201,
            json={"account_id": account["id"], "amount": 2, "ref_type": "work_order", "ref_id": wo["id"]},
            headers=key(),
        )
        rendered = await s.rendered(wo)
        assert rendered["last_error"] is None

        # artifacts and the render job
        listing = await s.ok("GET", f"{base}/artifacts")
        [job] = listing["jobs"]
        assert job["id"] == f"{wo['id']}:{rendered['snapshot_version']}" and job["status"] == "succeeded"
        kinds = {a["kind"]: a for a in listing["items"]}
        assert {"docx", "export_bundle"} <= set(kinds)
        docx = kinds["docx"]
        assert docx["template_id"] == "SBI_UNDER_5CR_V1" and docx["template_version"] == 1
        assert docx["bundle_sha256"] == kinds["export_bundle"]["sha256"]

        # the signed URL: streamed through the gateway without a bearer token
        signed = await s.ok("GET", f"/v1/artifacts/{docx['id']}/download")
        assert signed["url"].startswith("/v1/artifact-files/") and signed["expires_at"].endswith("Z")
        got = await s.client.get(signed["url"])
        assert got.status_code == 200, got.text
        assert hashlib.sha256(got.content).hexdigest() == docx["sha256"] and len(got.content) == docx["size_bytes"]
        assert got.headers["content-type"] == docx["content_type"]
        assert got.headers["content-length"] == str(docx["size_bytes"])
        assert got.headers["content-disposition"].startswith("attachment; filename=")
        assert got.headers["cache-control"] == "private, no-store"
        text = docx_text(got.content)
        assert FMV_WORDS in text, text[:2000]
        assert any(f in text for f in ("1,41,35,000", "14,135,000", "14135000")), text[:2000]
        # a forged or foreign token is refused; an ops file URL is not an artifact URL
        forged = signed["url"][:-4] + ("AAAA" if not signed["url"].endswith("AAAA") else "BBBB")
        assert_problem(await s.client.get(forged), 401, "SIGNED_URL_INVALID")
        doc_url = (await s.ok("GET", f"/v1/documents/{await s.document(wo['assignment_id'], 'other')}/download"))["url"]
        token = doc_url.removeprefix("/v1/files/")
        assert_problem(await s.client.get(f"/v1/artifact-files/{token}"), 401, "SIGNED_URL_INVALID")
        assert_problem(await s.call("GET", f"/v1/artifacts/{uuid.uuid4()}/download"), 404)

        # the export bundle: the same bytes every time, its hash in the headers
        one = await s.call("GET", f"{base}/export-bundle")
        two = await s.call("GET", f"{base}/export-bundle")
        assert one.status_code == two.status_code == 200, one.text
        assert one.content == two.content and one.headers["content-type"] == "application/json"
        digest = hashlib.sha256(one.content).hexdigest()
        assert one.headers["x-content-sha256"] == digest and one.headers["etag"] == f'"{digest}"'
        assert digest == kinds["export_bundle"]["sha256"]
        bundle = json.loads(one.content)
        assert json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() == one.content
        not_modified = await s.call("GET", f"{base}/export-bundle", headers={"if-none-match": one.headers["etag"]})
        assert not_modified.status_code == 304 and not_modified.content == b""
        assert not_modified.headers["etag"] == one.headers["etag"]

        # the monitor
        monitor = await s.ok("GET", "/v1/repogen/monitor", params={"status": "rendered"})
        [row] = [r for r in monitor["items"] if r["work_order"]["id"] == wo["id"]]
        assert row["job_status"] == "succeeded" and row["readiness_score"] == 100 and row["last_error"] is None
        assert monitor["counts"]["rendered"] >= 1

        # the release: the key is required; billing consumes the reservation
        assert set(fields(await s.call("POST", f"{base}/release"))) == {"header.Idempotency-Key"}
        k = key()
        resp = await s.call("POST", f"{base}/release", headers=k)
        assert resp.status_code == 200, resp.text
        released = resp.json()
        r = released["release"]
        assert released["work_order"]["status"] == "released"
        assert (r["work_order_id"], r["billing_basis"], r["billing_reservation_id"]) == (
            wo["id"],
            "credits_consumed",
            reserved["reservation"]["id"],
        )
        assert r["released_by"] == s.manager_id and r["override_reason"] is None
        assert r["artifact_hashes"]["docx"] == docx["sha256"]
        wallet = (await s.ok("GET", f"/v1/billing/accounts/{account['id']}"))["wallet"]
        assert (wallet["reserved"], wallet["available"], wallet["consumed"]) == (0, 3, 2)
        # the same key: the same release; another key: 409
        again = await s.call("POST", f"{base}/release", headers=k)
        assert again.status_code == 200 and again.content == resp.content
        assert_problem(await s.call("POST", f"{base}/release", headers=key()), 409, "RELEASE_EXISTS")
        assert (await s.ok("GET", f"/v1/billing/accounts/{account['id']}"))["wallet"]["available"] == 3

        # a POSTPAID account without a paid invoice: billing refuses, nothing changes
        postpaid = await s.ok(
            "POST", "/v1/billing/accounts", 201, json={"display_name": "Bank branch", "policy": "postpaid"}
        )
        wo2 = await s.work_order("SBI", billing_account_id=postpaid["id"])
        await s.make_ready(wo2)
        before = await s.rendered(wo2)
        refused = assert_problem(
            await s.call("POST", f"/v1/work-orders/{wo2['id']}/release", headers=key()), 409, "INVOICE_UNPAID"
        )
        assert refused["detail"]
        after = await s.ok("GET", f"/v1/work-orders/{wo2['id']}")
        assert (after["status"], after["version"]) == ("rendered", before["version"])
