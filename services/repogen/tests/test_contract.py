"""The contract: JSON merge patches make immutable snapshots with the rules' outputs, a rules
run and a readiness result, in one transaction; stale versions conflict; bad patches are
refused naming their fields; snapshots cannot be changed at the database, even by the
service's own role."""

from __future__ import annotations

import asyncio
import json
import uuid

import grpc
import pytest
from repogen_harness import FULL_CONTRACT, STUDIO_CAPS, outcome, running_suite
from sqlalchemy.exc import DBAPIError

from zenops.common.v1 import common_pb2
from zenops.repogen.v1 import repogen_pb2 as pb

DRAFT, DATA_PENDING = pb.WORK_ORDER_STATUS_DRAFT, pb.WORK_ORDER_STATUS_DATA_PENDING


@pytest.fixture
def suite(start_service, tmp_path):
    return lambda **kw: running_suite(start_service, tmp_path, **kw)


def fields_of(detail) -> list[str]:
    return [v.field for v in detail.violations]


async def test_a_patch_writes_snapshot_n_plus_one_with_outputs_rules_run_and_readiness(suite):
    async with suite() as h:
        wo = (await h.work_order()).work_order
        resp = await h.patch(wo.id, 0, FULL_CONTRACT, idempotency_key="patch-1")
        snap, after = resp.snapshot, resp.work_order
        assert (snap.version, after.snapshot_version, after.status, after.version) == (1, 1, DRAFT, wo.version + 1)
        # hand-worked: 1000 sqft × 0.09290304 = 92.90304 → 92.90 sqm; × ₹1,50,000/sqm = ₹1,39,35,000;
        # + ₹2,00,000 car parking = ₹1,41,35,000; 95% = ₹1,34,28,250; 80% = ₹1,13,08,000
        o = snap.outputs
        assert (o.fair_market_value, o.realisable_value, o.distress_value) == (14_135_000, 13_428_250, 11_308_000)
        assert o.fair_market_value_in_words == "Rupees One Crore Forty-One Lakh Thirty-Five Thousand Only"
        assert (o.areas["carpet"].value, o.areas["carpet"].unit, o.areas["carpet"].sqm) == ("1000", "sqft", "92.90")
        # guideline ₹1,00,000/sqm × 92.90 sqm carpet = ₹92,90,000 < FMV: no warning
        assert (o.guideline_value, o.below_guideline) == (9_290_000, False)
        assert (o.template_id, o.completeness_score) == ("SBI_UNDER_5CR_V1", 100)
        assert o.rules_version
        assert json.loads(snap.contract_json) == {**json.loads(json.dumps(FULL_CONTRACT)), "schema_version": 1}
        assert snap.readiness.missing_fields == [] and not snap.readiness.ready  # the evidence is missing
        assert snap.actor == h.manager_id and snap.HasField("created_at")

        # the same key: the same snapshot, nothing new written
        assert await h.patch(wo.id, 0, FULL_CONTRACT, idempotency_key="patch-1") == resp
        runs = await h.sql(
            "SELECT snapshot_version, duration_us, messages::text AS m FROM rules_runs "
            "WHERE work_order_id = CAST(:id AS uuid) ORDER BY snapshot_version",
            {"id": wo.id},
        )
        assert [r.snapshot_version for r in runs] == [0, 1] and all(r.duration_us >= 0 for r in runs)
        results = await h.sql(
            "SELECT snapshot_version, trigger, score FROM readiness_results "
            "WHERE work_order_id = CAST(:id AS uuid) ORDER BY created_at",
            {"id": wo.id},
        )
        assert [(r.snapshot_version, r.trigger) for r in results] == [(0, "create"), (1, "patch")]
        assert results[1].score == snap.readiness.score
        [patched] = [e for e in await h.audit(wo.id) if e["kind"] == "contract.patched"]
        assert patched["detail"]["from_version"] == 0 and patched["detail"]["snapshot_version"] == 1
        assert patched["detail"]["patch"]["parties"]["borrower_name"] == "Asha Patel"

        # a merge patch: objects merge, null deletes, arrays replace
        second = await h.patch(
            wo.id,
            1,
            {
                "extras": None,
                "parties": {"owner_name": None, "borrower_name": "A. Patel"},
                "valuation_lines": [
                    {"description": "Flat", "rate_per_sqm": "100000", "area": {"value": "100", "unit": "sqm"}}
                ],
            },
        )
        contract = json.loads(second.snapshot.contract_json)
        assert contract["parties"] == {"bank_code": "SBI", "branch_ifsc": "SBIN0001234", "borrower_name": "A. Patel"}
        assert "extras" not in contract or contract["extras"] == []
        assert len(contract["valuation_lines"]) == 1
        assert second.snapshot.outputs.fair_market_value == 10_000_000
        assert "parties.owner_name" in second.snapshot.readiness.missing_fields

        # reads: one snapshot (or the latest), and the list newest first without contracts
        v1 = (
            await h.call("GetSnapshot", pb.GetSnapshotRequest(work_order_id=wo.id, version=1), h.token(STUDIO_CAPS))
        ).snapshot
        assert v1 == snap
        latest = (await h.call("GetSnapshot", pb.GetSnapshotRequest(work_order_id=wo.id, latest=True))).snapshot
        assert latest == second.snapshot
        missing = await h.fails("GetSnapshot", pb.GetSnapshotRequest(work_order_id=wo.id, version=9))
        assert (missing.code, missing.reason, missing.metadata["field"]) == (
            grpc.StatusCode.NOT_FOUND,
            "SNAPSHOT_NOT_FOUND",
            "version",
        )
        versions, cursor = [], ""
        while True:
            page = await h.call(
                "ListSnapshots",
                pb.ListSnapshotsRequest(work_order_id=wo.id, page=common_pb2.PageRequest(limit=2, cursor=cursor)),
            )
            assert all(s.contract_json == "" and s.HasField("outputs") for s in page.snapshots)
            versions += [s.version for s in page.snapshots]
            if not (cursor := page.page.next_cursor):
                break
        assert versions == [2, 1, 0]
        detail = await h.call("GetWorkOrder", pb.GetWorkOrderRequest(id=wo.id))
        assert detail.latest_snapshot.version == 2 and detail.work_order.snapshot_version == 2


async def test_template_follows_the_fmv_band_at_five_crore(suite):
    async with suite() as h:
        wo = (await h.work_order()).work_order
        # exactly ₹5,00,00,000: 100 sqm × ₹5,00,000/sqm
        at = {
            **FULL_CONTRACT,
            "extras": [],
            "valuation_lines": [
                {"description": "Flat", "area": {"value": "100", "unit": "sqm"}, "rate_per_sqm": "500000"}
            ],
        }
        up = await h.patch(wo.id, 0, at)
        assert (up.snapshot.outputs.fair_market_value, up.work_order.template_id) == (
            50_000_000,
            "SBI_5CR_AND_ABOVE_V1",
        )
        assert up.work_order.evidence_profile == (await h.template("SBI_5CR_AND_ABOVE_V1")).evidence_profile
        below = await h.patch(
            wo.id,
            1,
            {
                "valuation_lines": [
                    {"description": "Flat", "area": {"value": "100", "unit": "sqm"}, "rate_per_sqm": "499999.99"}
                ]
            },
        )
        assert (below.snapshot.outputs.fair_market_value, below.work_order.template_id) == (
            49_999_999,
            "SBI_UNDER_5CR_V1",
        )


async def test_stale_versions_conflict_and_bad_patches_name_their_fields(suite):
    async with suite() as h:
        wo = (await h.work_order()).work_order
        await h.patch(wo.id, 0, {"parties": {"borrower_name": "Asha Patel"}})
        stale = await h.fails(
            "PatchContract",
            pb.PatchContractRequest(
                work_order_id=wo.id, expected_version=0, patch_json=json.dumps({"parties": {"owner_name": "X"}})
            ),
        )
        assert (stale.code, stale.reason, stale.metadata["snapshot_version"], stale.metadata["expected_version"]) == (
            grpc.StatusCode.ABORTED,
            "VERSION_CONFLICT",
            "1",
            "0",
        )
        ahead = await h.fails(
            "PatchContract", pb.PatchContractRequest(work_order_id=wo.id, expected_version=5, patch_json="{}")
        )
        assert ahead.reason == "VERSION_CONFLICT"

        for patch_json, field in [
            ("[1, 2]", "patch_json"),
            ('"text"', "patch_json"),
            ("{not json", "patch_json"),
            ("", "patch_json"),
            ("x" * (300 * 1024), "patch_json"),
        ]:
            detail = await h.fails(
                "PatchContract", pb.PatchContractRequest(work_order_id=wo.id, expected_version=1, patch_json=patch_json)
            )
            assert (detail.code, fields_of(detail)) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
        bad = await h.fails(
            "PatchContract",
            pb.PatchContractRequest(
                work_order_id=wo.id,
                expected_version=1,
                patch_json=json.dumps(
                    {
                        "areas": {"carpet": {"value": "12x", "unit": "acres"}},
                        "property": {"property_type": "castle"},
                        "valuation_lines": [
                            {"description": "Flat", "area": {"value": "10", "unit": "sqm"}, "rate_per_sqm": 1500.5}
                        ],
                        "mystery": 1,
                    }
                ),
            ),
        )
        assert (bad.code, bad.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CONTRACT_INVALID")
        named = set(fields_of(bad))
        assert {
            "patch.areas.carpet.value",
            "patch.areas.carpet.unit",
            "patch.property.property_type",
            "patch.valuation_lines[0].rate_per_sqm",
            "patch.mystery",
        } <= named
        for request, field in [
            (pb.PatchContractRequest(work_order_id="nope", patch_json="{}"), "work_order_id"),
            (pb.PatchContractRequest(work_order_id=wo.id, expected_version=-1, patch_json="{}"), "expected_version"),
        ]:
            assert fields_of(await h.fails("PatchContract", request)) == [field]
        unknown = await h.fails(
            "PatchContract", pb.PatchContractRequest(work_order_id=str(uuid.uuid4()), patch_json="{}")
        )
        assert (unknown.code, unknown.reason, unknown.metadata["field"]) == (
            grpc.StatusCode.NOT_FOUND,
            "WORK_ORDER_NOT_FOUND",
            "work_order_id",
        )
        denied = await h.fails(
            "PatchContract",
            pb.PatchContractRequest(work_order_id=wo.id, expected_version=1, patch_json="{}"),
            h.token(STUDIO_CAPS),
        )
        assert denied.reason == "MISSING_CAPABILITY"
        # nothing of the refused patches was written
        assert (await h.get(wo.id)).snapshot_version == 1
        assert (
            len(await h.sql("SELECT version FROM snapshots WHERE work_order_id = CAST(:id AS uuid)", {"id": wo.id}))
            == 2
        )


async def test_concurrent_patches_of_one_version_one_wins(suite):
    async with suite() as h:
        wo = (await h.work_order()).work_order
        results = await asyncio.gather(
            *(outcome(h.patch(wo.id, 0, {"sections": {"notes": f"writer {i}"}})) for i in range(6))
        )
        reasons = sorted(r for r, _ in results)
        assert reasons == ["OK"] + ["VERSION_CONFLICT"] * 5
        versions = await h.sql(
            "SELECT version FROM snapshots WHERE work_order_id = CAST(:id AS uuid) ORDER BY version", {"id": wo.id}
        )
        assert [v.version for v in versions] == [0, 1]


async def test_snapshots_and_the_audit_trail_cannot_change_at_the_database(suite):
    async with suite() as h:
        wo = (await h.work_order()).work_order
        await h.patch(wo.id, 0, FULL_CONTRACT)
        params = {"id": wo.id}
        for statement in [
            "UPDATE snapshots SET contract = '{}' WHERE work_order_id = CAST(:id AS uuid)",
            "UPDATE snapshots SET actor = 'someone else' WHERE work_order_id = CAST(:id AS uuid) AND version = 1",
            "DELETE FROM snapshots WHERE work_order_id = CAST(:id AS uuid)",
            "TRUNCATE snapshots CASCADE",
            "UPDATE rules_runs SET duration_us = 0 WHERE work_order_id = CAST(:id AS uuid)",
            "DELETE FROM rules_runs WHERE work_order_id = CAST(:id AS uuid)",
            "UPDATE readiness_results SET ready = true WHERE work_order_id = CAST(:id AS uuid)",
            "DELETE FROM readiness_results WHERE work_order_id = CAST(:id AS uuid)",
            "UPDATE work_order_events SET actor = 'nobody' WHERE work_order_id = CAST(:id AS uuid)",
            "DELETE FROM work_order_events WHERE work_order_id = CAST(:id AS uuid)",
            "TRUNCATE work_order_events",
        ]:
            # as repogen's own role (the owner of the tables), in the work order's tenant
            with pytest.raises(DBAPIError) as info:
                await h.sql(statement, params if ":id" in statement else None)
            assert "immutable" in str(info.value) or "permission" in str(info.value).lower(), statement
        rows = await h.sql(
            "SELECT version, contract::text AS c FROM snapshots WHERE work_order_id = CAST(:id AS uuid) "
            "ORDER BY version",
            params,
        )
        assert [r.version for r in rows] == [0, 1]
        assert json.loads(rows[1].c)["parties"]["borrower_name"] == "Asha Patel"


async def test_readiness_now_without_writing(suite):
    async with suite() as h:
        wo = (await h.work_order()).work_order
        await h.patch(wo.id, 0, FULL_CONTRACT)
        before = await h.sql("SELECT count(*) AS n FROM readiness_results")
        got = await h.call("EvaluateReadiness", pb.EvaluateReadinessRequest(work_order_id=wo.id), h.token(STUDIO_CAPS))
        assert got.snapshot_version == 1 and not got.readiness.ready and got.readiness.HasField("evaluated_at")
        assert {m.kind for m in got.readiness.missing_evidence} == {
            "SITE_PHOTO",
            "SALE_DEED",
            "TAX_RECEIPT",
            "LOCATION_MAP",
        }
        assert any(w.startswith("UNLINKED_FIELD") for w in got.readiness.warnings)
        assert await h.sql("SELECT count(*) AS n FROM readiness_results") == before
        # an old inspection is a warning, never a block
        await h.patch(wo.id, 1, {"inspection": {"date": "2020-01-15"}})
        old = (await h.call("EvaluateReadiness", pb.EvaluateReadinessRequest(work_order_id=wo.id))).readiness
        assert any("inspection" in w.lower() for w in old.warnings)
        assert old.missing_fields == []
        # guideline above the FMV: a warning too
        await h.patch(wo.id, 2, {"guideline": {"rate_per_sqm": None, "value": "99000000"}})
        low = (await h.call("EvaluateReadiness", pb.EvaluateReadinessRequest(work_order_id=wo.id))).readiness
        assert any("BELOW_GUIDELINE" in w for w in low.warnings)
        assert fields_of(await h.fails("EvaluateReadiness", pb.EvaluateReadinessRequest(work_order_id="x"))) == [
            "work_order_id"
        ]
