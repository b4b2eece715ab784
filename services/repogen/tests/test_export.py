"""The export bundle: canonical JSON of the work order's report state and its SHA-256 —
byte-identical for the same state, across calls and across a restart of the service."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from repogen_harness import FULL_CONTRACT, STUDIO_CAPS, running_suite

from zenops.repogen.v1 import repogen_pb2 as pb
from zenops_kit.rls import scoped_tx
from zenops_repogen import export, work_orders


@pytest.fixture
def suite(start_service, tmp_path):
    return lambda **kw: running_suite(start_service, tmp_path, **kw)


async def bundle(h, work_order_id: str, token: str | None = None) -> pb.GetExportBundleResponse:
    return await h.call("GetExportBundle", pb.GetExportBundleRequest(work_order_id=work_order_id), token)


def canonical(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


async def test_the_bundle_is_canonical_and_its_hash_stable(suite):
    async with suite() as h:
        wo = (await h.work_order(credits=1)).work_order
        await h.transition(wo.id, pb.WORK_ORDER_STATUS_DATA_PENDING)
        contract = {
            **FULL_CONTRACT,
            "sections": {**FULL_CONTRACT["sections"], "notes": "बांद्रा पश्चिम — ground + 7 floors"},
        }
        await h.patch(wo.id, 0, contract)
        photo = (
            await h.add_evidence(
                wo.id,
                "SITE_PHOTO",
                await h.photo(1, captured_at=datetime(2026, 2, 1, 9, 30, tzinfo=UTC)),
                caption="Front",
            )
        ).evidence
        deed = (await h.add_evidence(wo.id, "SALE_DEED", caption="Sale deed")).evidence
        dropped = (await h.add_evidence(wo.id, "OTHER")).evidence
        await h.call(
            "RemoveEvidence",
            pb.RemoveEvidenceRequest(work_order_id=wo.id, evidence_id=dropped.id, reason="not relevant"),
        )
        await h.call("AutoOrderAnnexures", pb.AutoOrderAnnexuresRequest(work_order_id=wo.id))
        link = (
            await h.call(
                "LinkFieldEvidence",
                pb.LinkFieldEvidenceRequest(
                    work_order_id=wo.id, field_key="legal.sale_deed_number", evidence_id=deed.id
                ),
            )
        ).link
        old = (
            await h.call(
                "LinkFieldEvidence",
                pb.LinkFieldEvidenceRequest(work_order_id=wo.id, field_key="areas.carpet", evidence_id=deed.id),
            )
        ).link
        await h.call(
            "UnlinkFieldEvidence",
            pb.UnlinkFieldEvidenceRequest(work_order_id=wo.id, link_id=old.id, reason="not on the deed"),
        )
        comment = (
            await h.call(
                "AddComment",
                pb.AddCommentRequest(work_order_id=wo.id, kind="justification", body="Two recent sales ₹1.5 lakh/sqm"),
            )
        ).comment

        first = await bundle(h, wo.id)
        second = await bundle(h, wo.id, h.token(STUDIO_CAPS))
        assert first.bundle == second.bundle and first.sha256 == second.sha256
        assert first.sha256 == hashlib.sha256(first.bundle).hexdigest()
        data = json.loads(first.bundle.decode("utf-8"))
        # canonical: sorted keys, no whitespace, UTF-8 as is
        assert canonical(data) == first.bundle
        assert "बांद्रा".encode() in first.bundle and b"\\u" not in first.bundle

        assert data["bundle_version"] == 1
        w = data["work_order"]
        assert (w["id"], w["assignment_id"], w["bank_code"], w["template_id"], w["credits"], w["snapshot_version"]) == (
            wo.id,
            wo.assignment_id,
            "SBI",
            "SBI_UNDER_5CR_V1",
            1,
            1,
        )
        assert "status" not in w and "version" not in w  # lifecycle bookkeeping is not report content
        assert w["created_at"].endswith("Z") and datetime.fromisoformat(w["created_at"]).tzinfo is not None
        assert data["template"]["id"] == "SBI_UNDER_5CR_V1" and data["template"]["version"] >= 1
        s = data["snapshot"]
        assert s["version"] == 1 and s["contract"]["sections"]["notes"] == contract["sections"]["notes"]
        assert s["contract"]["areas"]["carpet"] == {"value": "1000", "unit": "sqft"}  # decimals as strings
        assert s["outputs"]["fair_market_value"] == 14_135_000
        assert s["outputs"]["areas"]["carpet"]["sqm"] == "92.90"
        assert data["readiness"]["ready"] is False and "evaluated_at" not in data["readiness"]
        # live evidence only, in annexure order; live links only; comments
        assert [e["id"] for e in data["evidence"]] == [deed.id, photo.id]
        assert [(e["annexure_number"], e["annexure_order"]) for e in data["evidence"]] == [(1, 1), (2, 2)]
        assert data["evidence"][1]["captured_at"] == "2026-02-01T09:30:00.000000Z"
        assert [x["id"] for x in data["field_links"]] == [link.id]
        assert [(c["id"], c["body"]) for c in data["comments"]] == [(comment.id, "Two recent sales ₹1.5 lakh/sqm")]

        # the factory's entry point gives the very same bytes
        async with scoped_tx(h.engine, h.tenant) as conn:
            assert await export.bundle(conn, wo.id) == (first.bundle, first.sha256)

        # a change of state changes the bytes; the same state again gives the same bytes
        await h.call("AddComment", pb.AddCommentRequest(work_order_id=wo.id, kind="notes", body="Checked."))
        changed = await bundle(h, wo.id)
        assert changed.sha256 != first.sha256
        assert await bundle(h, wo.id) == changed


async def test_the_hash_survives_a_restart_and_lifecycle_moves(suite):
    async with suite() as h:
        wo = (await h.work_order()).work_order
        await h.transition(wo.id, pb.WORK_ORDER_STATUS_DATA_PENDING)
        await h.patch(wo.id, 0, FULL_CONTRACT)
        template = await h.template("SBI_UNDER_5CR_V1")
        for requirement in template.evidence_requirements:
            for _ in range(requirement.min_count):
                await h.add_evidence(wo.id, requirement.kind)
        await h.call("AutoOrderAnnexures", pb.AutoOrderAnnexuresRequest(work_order_id=wo.id))
        await h.call(
            "AddComment", pb.AddCommentRequest(work_order_id=wo.id, kind="enclosures", body="Annexures 1–7 as listed.")
        )
        before = await bundle(h, wo.id)
        # moving the work order along does not change what its report says: ready for render
        # (a new readiness row with the same result), rendered
        await h.transition(wo.id, pb.WORK_ORDER_STATUS_READY_FOR_RENDER)
        assert await bundle(h, wo.id) == before
        async with scoped_tx(h.engine, h.tenant) as conn:
            await work_orders.mark_rendered(conn, work_order_id=wo.id, snapshot_version=1, actor="factory")
        assert await bundle(h, wo.id) == before

        # a new process on the same database: the same bytes
        await h.restart()
        after = await bundle(h, wo.id)
        assert after.bundle == before.bundle and after.sha256 == before.sha256
        async with scoped_tx(h.engine, h.tenant) as conn:
            assert await export.bundle(conn, wo.id) == (before.bundle, before.sha256)


def test_canonical_form_refuses_floats_and_formats_times():
    assert export.canonical({"b": 1, "a": [True, None, "₹"]}) == '{"a":[true,null,"₹"],"b":1}'.encode()
    when = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert export.canonical({"t": when}) == b'{"t":"2026-01-02T03:04:05.000006Z"}'
    with pytest.raises(TypeError):
        export.canonical({"x": 1.5})
