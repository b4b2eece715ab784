"""RPCs of evidence, field-evidence links, annexures and comments: proto ↔ use cases
(zenops_repogen.evidence).

Capabilities: repogen.write for every change, repogen.read for the lists. Mutations run
through `idempotent_as()` (the request's `idempotency_key`, else metadata `idempotency-key`).
"""

from __future__ import annotations

from zenops.repogen.v1 import repogen_pb2 as pb
from zenops_kit.idempotency import idempotent_as

from .. import contract, evidence
from ..ops_client import ops_client_for
from .caller import caller, idempotency_key, trace_id
from .translate import comment_pb, evidence_pb, link_pb, readiness_pb


def _readiness(changed: evidence.Changed) -> pb.Readiness:
    now = changed.readiness
    return readiness_pb(contract.readiness_dict(now.readiness), now.evaluated_at)


class EvidenceRpcs:
    """Mixed into RepogenServicer (self.engine, self.runtime, self.settings)."""

    async def AddEvidence(self, request, context):
        c = await caller(self.engine, context, "repogen.write")
        key = idempotency_key(request.idempotency_key, context)
        ops = ops_client_for(self.runtime)

        async def run(conn):
            changed = await evidence.add(
                conn,
                ops=ops,
                tenant_id=c.tenant_id,
                actor=c.actor,
                trace_id=trace_id(),
                work_order_id=request.work_order_id,
                document_id=request.document_id,
                kind=request.kind,
                caption=request.caption,
                inspection_max_age_days=self.settings.inspection_max_age_days,
            )
            return pb.AddEvidenceResponse(evidence=evidence_pb(changed.row), readiness=_readiness(changed))

        return await idempotent_as(
            self.engine, c, key, "AddEvidence", request, run=run, decode=pb.AddEvidenceResponse.FromString
        )

    async def ListEvidence(self, request, context):
        c = await caller(self.engine, context, "repogen.read")
        rows = await evidence.list_evidence(self.engine, c, request.work_order_id)
        return pb.ListEvidenceResponse(evidence=[evidence_pb(r) for r in rows])

    async def RemoveEvidence(self, request, context):
        c = await caller(self.engine, context, "repogen.write")
        key = idempotency_key("", context)

        async def run(conn):
            changed = await evidence.remove(
                conn,
                tenant_id=c.tenant_id,
                actor=c.actor,
                trace_id=trace_id(),
                work_order_id=request.work_order_id,
                evidence_id=request.evidence_id,
                reason=request.reason,
                inspection_max_age_days=self.settings.inspection_max_age_days,
            )
            return pb.RemoveEvidenceResponse(readiness=_readiness(changed))

        return await idempotent_as(
            self.engine, c, key, "RemoveEvidence", request, run=run, decode=pb.RemoveEvidenceResponse.FromString
        )

    async def LinkFieldEvidence(self, request, context):
        c = await caller(self.engine, context, "repogen.write")
        key = idempotency_key("", context)

        async def run(conn):
            changed = await evidence.link(
                conn,
                tenant_id=c.tenant_id,
                actor=c.actor,
                trace_id=trace_id(),
                work_order_id=request.work_order_id,
                field_key=request.field_key,
                evidence_id=request.evidence_id,
                note=request.note,
                inspection_max_age_days=self.settings.inspection_max_age_days,
            )
            return pb.LinkFieldEvidenceResponse(link=link_pb(changed.row))

        return await idempotent_as(
            self.engine, c, key, "LinkFieldEvidence", request, run=run, decode=pb.LinkFieldEvidenceResponse.FromString
        )

    async def UnlinkFieldEvidence(self, request, context):
        c = await caller(self.engine, context, "repogen.write")
        key = idempotency_key("", context)

        async def run(conn):
            changed = await evidence.unlink(
                conn,
                tenant_id=c.tenant_id,
                actor=c.actor,
                trace_id=trace_id(),
                work_order_id=request.work_order_id,
                link_id=request.link_id,
                reason=request.reason,
                inspection_max_age_days=self.settings.inspection_max_age_days,
            )
            return pb.UnlinkFieldEvidenceResponse(link=link_pb(changed.row))

        return await idempotent_as(
            self.engine,
            c,
            key,
            "UnlinkFieldEvidence",
            request,
            run=run,
            decode=pb.UnlinkFieldEvidenceResponse.FromString,
        )

    async def ListFieldLinks(self, request, context):
        c = await caller(self.engine, context, "repogen.read")
        rows = await evidence.list_links(self.engine, c, request.work_order_id, include_removed=request.include_removed)
        return pb.ListFieldLinksResponse(links=[link_pb(r) for r in rows])

    async def AutoOrderAnnexures(self, request, context):
        c = await caller(self.engine, context, "repogen.write")
        key = idempotency_key("", context)

        async def run(conn):
            rows = await evidence.auto_order(
                conn, tenant_id=c.tenant_id, actor=c.actor, trace_id=trace_id(), work_order_id=request.work_order_id
            )
            return pb.AutoOrderAnnexuresResponse(evidence=[evidence_pb(r) for r in rows])

        return await idempotent_as(
            self.engine, c, key, "AutoOrderAnnexures", request, run=run, decode=pb.AutoOrderAnnexuresResponse.FromString
        )

    async def AddComment(self, request, context):
        c = await caller(self.engine, context, "repogen.write")
        key = idempotency_key(request.idempotency_key, context)

        async def run(conn):
            row = await evidence.add_comment(
                conn,
                tenant_id=c.tenant_id,
                actor=c.actor,
                trace_id=trace_id(),
                work_order_id=request.work_order_id,
                kind=request.kind,
                body=request.body,
            )
            return pb.AddCommentResponse(comment=comment_pb(row))

        return await idempotent_as(
            self.engine, c, key, "AddComment", request, run=run, decode=pb.AddCommentResponse.FromString
        )

    async def ListComments(self, request, context):
        c = await caller(self.engine, context, "repogen.read")
        rows = await evidence.list_comments(self.engine, c, request.work_order_id, kind=request.kind)
        return pb.ListCommentsResponse(comments=[comment_pb(r) for r in rows])
