"""RPCs of the contract, its snapshots, readiness and the export bundle: proto ↔ use cases
(zenops_repogen.contract, zenops_repogen.export).

Capabilities: repogen.write to patch; repogen.read for snapshots, readiness and the bundle.
"""

from __future__ import annotations

from zenops.common.v1 import common_pb2
from zenops.repogen.v1 import repogen_pb2 as pb
from zenops_kit.idempotency import idempotent_as

from .. import contract, export
from .caller import caller, idempotency_key, trace_id
from .translate import readiness_pb, snapshot_pb, work_order_pb


class ContractRpcs:
    """Mixed into RepogenServicer (self.engine, self.runtime, self.settings)."""

    async def PatchContract(self, request, context):
        c = await caller(self.engine, context, "repogen.write")
        key = idempotency_key(request.idempotency_key, context)

        async def run(conn):
            written = await contract.patch(
                conn,
                tenant_id=c.tenant_id,
                actor=c.actor,
                trace_id=trace_id(),
                work_order_id=request.work_order_id,
                expected_version=request.expected_version,
                patch_json=request.patch_json,
                inspection_max_age_days=self.settings.inspection_max_age_days,
            )
            return pb.PatchContractResponse(
                snapshot=snapshot_pb(written.snapshot), work_order=work_order_pb(written.work_order)
            )

        return await idempotent_as(
            self.engine, c, key, "PatchContract", request, run=run, decode=pb.PatchContractResponse.FromString
        )

    async def GetSnapshot(self, request, context):
        c = await caller(self.engine, context, "repogen.read")
        row = await contract.get_snapshot(
            self.engine, c, request.work_order_id, version=request.version, latest=request.latest
        )
        return pb.GetSnapshotResponse(snapshot=snapshot_pb(row))

    async def ListSnapshots(self, request, context):
        c = await caller(self.engine, context, "repogen.read")
        rows, next_cursor = await contract.list_snapshots(
            self.engine, c, request.work_order_id, limit=request.page.limit, cursor=request.page.cursor
        )
        return pb.ListSnapshotsResponse(
            snapshots=[snapshot_pb(r, with_contract=False) for r in rows],
            page=common_pb2.PageInfo(next_cursor=next_cursor),
        )

    async def EvaluateReadiness(self, request, context):
        c = await caller(self.engine, context, "repogen.read")
        now = await contract.evaluate_readiness(
            self.engine, c, request.work_order_id, inspection_max_age_days=self.settings.inspection_max_age_days
        )
        return pb.EvaluateReadinessResponse(
            readiness=readiness_pb(contract.readiness_dict(now.readiness), now.evaluated_at),
            snapshot_version=now.snapshot_version,
        )

    async def GetExportBundle(self, request, context):
        c = await caller(self.engine, context, "repogen.read")
        data, digest = await export.export_bundle(self.engine, c, request.work_order_id)
        return pb.GetExportBundleResponse(bundle=data, sha256=digest)
