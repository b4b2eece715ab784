"""Evidence (ops documents checked over gRPC), audit-grade field-evidence links, the
deterministic annexure order and typed comments — readiness re-evaluated at every change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from repogen_harness import FULL_CONTRACT, STUDIO_CAPS, running_suite
from sqlalchemy.exc import DBAPIError

from zenops.repogen.v1 import repogen_pb2 as pb
from zenops_repogen.domain import evidence as rules


@pytest.fixture
def suite(start_service, tmp_path):
    return lambda **kw: running_suite(start_service, tmp_path, **kw)


def fields_of(detail) -> list[str]:
    return [v.field for v in detail.violations]


async def live_links(h, work_order_id: str, include_removed: bool = False) -> list[pb.FieldLink]:
    return list(
        (
            await h.call(
                "ListFieldLinks", pb.ListFieldLinksRequest(work_order_id=work_order_id, include_removed=include_removed)
            )
        ).links
    )


async def test_evidence_points_at_uploaded_ops_documents(suite):
    async with suite() as h:
        wo = (await h.work_order()).work_order
        await h.patch(wo.id, 0, FULL_CONTRACT)
        taken = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
        photo = await h.photo(1, captured_at=taken)
        added = await h.add_evidence(wo.id, "SITE_PHOTO", photo, caption="Front elevation", idempotency_key="ev-1")
        e = added.evidence
        assert (e.work_order_id, e.document_id, e.kind, e.caption, e.annexure_order, e.added_by) == (
            wo.id,
            photo.id,
            "SITE_PHOTO",
            "Front elevation",
            0,
            h.manager_id,
        )
        assert (e.filename, e.content_type, e.captured_at.ToDatetime(tzinfo=UTC)) == ("site-1.jpg", "image/jpeg", taken)
        # readiness came back re-evaluated: one photo of four
        [short] = [m for m in added.readiness.missing_evidence if m.kind == "SITE_PHOTO"]
        assert (short.required, short.present) == (4, 1)
        # the same key answers the same item; the same document again is refused
        assert (
            await h.add_evidence(wo.id, "SITE_PHOTO", photo, caption="Front elevation", idempotency_key="ev-1") == added
        )
        twice = await h.fails(
            "AddEvidence", pb.AddEvidenceRequest(work_order_id=wo.id, document_id=photo.id, kind="OTHER")
        )
        assert (twice.code, twice.reason, twice.metadata["field"]) == (
            grpc.StatusCode.ALREADY_EXISTS,
            "EVIDENCE_EXISTS",
            "document_id",
        )

        unknown = await h.fails(
            "AddEvidence", pb.AddEvidenceRequest(work_order_id=wo.id, document_id=str(uuid.uuid4()), kind="OTHER")
        )
        assert (unknown.code, unknown.reason, unknown.metadata["field"]) == (
            grpc.StatusCode.NOT_FOUND,
            "DOCUMENT_NOT_FOUND",
            "document_id",
        )
        pending = await h.document(b"%PDF-1.7 pending", confirm=False)
        not_uploaded = await h.fails(
            "AddEvidence", pb.AddEvidenceRequest(work_order_id=wo.id, document_id=pending.id, kind="SALE_DEED")
        )
        assert (not_uploaded.code, not_uploaded.reason, not_uploaded.metadata["field"]) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "DOCUMENT_NOT_UPLOADED",
            "document_id",
        )
        deed = await h.document()
        for request, field in [
            (pb.AddEvidenceRequest(work_order_id=wo.id, document_id=deed.id, kind="SELFIE"), "kind"),
            (pb.AddEvidenceRequest(work_order_id=wo.id, document_id=deed.id), "kind"),
            (
                pb.AddEvidenceRequest(work_order_id=wo.id, document_id=deed.id, kind="SALE_DEED", caption="c" * 501),
                "caption",
            ),
            (pb.AddEvidenceRequest(work_order_id=wo.id, document_id="doc-1", kind="SALE_DEED"), "document_id"),
            (pb.AddEvidenceRequest(work_order_id="wo", document_id=deed.id, kind="SALE_DEED"), "work_order_id"),
        ]:
            detail = await h.fails("AddEvidence", request)
            assert (detail.code, fields_of(detail)) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
        no_wo = await h.fails(
            "AddEvidence", pb.AddEvidenceRequest(work_order_id=str(uuid.uuid4()), document_id=deed.id, kind="SALE_DEED")
        )
        assert (no_wo.reason, no_wo.metadata["field"]) == ("WORK_ORDER_NOT_FOUND", "work_order_id")
        denied = await h.fails(
            "AddEvidence",
            pb.AddEvidenceRequest(work_order_id=wo.id, document_id=deed.id, kind="SALE_DEED"),
            h.token(STUDIO_CAPS),
        )
        assert denied.reason == "MISSING_CAPABILITY"
        # another tenant's document is unknown to this tenant's work order
        foreign = await h.fails(
            "AddEvidence",
            pb.AddEvidenceRequest(work_order_id=wo.id, document_id=deed.id, kind="SALE_DEED"),
            h.token(tenant=str(uuid.uuid4())),
        )
        assert foreign.reason == "WORK_ORDER_NOT_FOUND"

        deed_item = (await h.add_evidence(wo.id, "sale_deed", deed, caption="Registered sale deed")).evidence
        assert deed_item.kind == "SALE_DEED"
        listed = await h.call("ListEvidence", pb.ListEvidenceRequest(work_order_id=wo.id), h.token(STUDIO_CAPS))
        assert [x.id for x in listed.evidence] == [e.id, deed_item.id]

        # removal: a reason is required; the item stays (for the audit trail) but leaves the lists and the counts
        no_reason = await h.fails("RemoveEvidence", pb.RemoveEvidenceRequest(work_order_id=wo.id, evidence_id=e.id))
        assert fields_of(no_reason) == ["reason"]
        removed = await h.call(
            "RemoveEvidence", pb.RemoveEvidenceRequest(work_order_id=wo.id, evidence_id=e.id, reason="blurred")
        )
        [none] = [m for m in removed.readiness.missing_evidence if m.kind == "SITE_PHOTO"]
        assert none.present == 0
        again = await h.fails(
            "RemoveEvidence", pb.RemoveEvidenceRequest(work_order_id=wo.id, evidence_id=e.id, reason="blurred")
        )
        assert (again.code, again.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "EVIDENCE_REMOVED")
        gone = await h.fails(
            "RemoveEvidence", pb.RemoveEvidenceRequest(work_order_id=wo.id, evidence_id=str(uuid.uuid4()), reason="x")
        )
        assert (gone.code, gone.metadata["field"]) == (grpc.StatusCode.NOT_FOUND, "evidence_id")
        listed = await h.call("ListEvidence", pb.ListEvidenceRequest(work_order_id=wo.id))
        assert [x.id for x in listed.evidence] == [deed_item.id]
        [row] = await h.sql(
            "SELECT removed_by, removal_reason, removed_at FROM evidence WHERE id = CAST(:id AS uuid)", {"id": e.id}
        )
        assert (row.removed_by, row.removal_reason) == (h.manager_id, "blurred") and row.removed_at
        # the document may come back as new evidence
        back = (await h.add_evidence(wo.id, "SITE_PHOTO", photo)).evidence
        assert back.id != e.id
        kinds = [x["kind"] for x in await h.audit(wo.id)]
        assert kinds.count("evidence.added") == 3 and kinds.count("evidence.removed") == 1
        triggers = await h.sql(
            "SELECT trigger FROM readiness_results WHERE work_order_id = CAST(:id AS uuid) AND trigger = 'evidence'",
            {"id": wo.id},
        )
        assert len(triggers) == 4


async def test_field_links_are_added_and_removed_never_overwritten(suite):
    async with suite() as h:
        wo = (await h.work_order()).work_order
        await h.patch(wo.id, 0, FULL_CONTRACT)
        deed = (await h.add_evidence(wo.id, "SALE_DEED")).evidence
        plan = (await h.add_evidence(wo.id, "APPROVED_PLAN")).evidence
        before = await h.readiness(wo.id)
        assert any("areas.carpet" in w for w in before.warnings)

        link = (
            await h.call(
                "LinkFieldEvidence",
                pb.LinkFieldEvidenceRequest(
                    work_order_id=wo.id, field_key="areas.carpet", evidence_id=plan.id, note="carpet area on sheet 2"
                ),
            )
        ).link
        assert (link.field_key, link.evidence_id, link.note, link.linked_by, link.removed_by) == (
            "areas.carpet",
            plan.id,
            "carpet area on sheet 2",
            h.manager_id,
            "",
        )
        assert not any("areas.carpet" in w for w in (await h.readiness(wo.id)).warnings)
        legal = (
            await h.call(
                "LinkFieldEvidence",
                pb.LinkFieldEvidenceRequest(
                    work_order_id=wo.id, field_key="legal.sale_deed_number", evidence_id=deed.id
                ),
            )
        ).link
        dup = await h.fails(
            "LinkFieldEvidence",
            pb.LinkFieldEvidenceRequest(work_order_id=wo.id, field_key="areas.carpet", evidence_id=plan.id),
        )
        assert (dup.code, dup.reason) == (grpc.StatusCode.ALREADY_EXISTS, "LINK_EXISTS")
        for request, field in [
            (
                pb.LinkFieldEvidenceRequest(work_order_id=wo.id, field_key="areas.garden", evidence_id=plan.id),
                "field_key",
            ),
            (
                pb.LinkFieldEvidenceRequest(work_order_id=wo.id, field_key="Areas.Carpet", evidence_id=plan.id),
                "field_key",
            ),
            (pb.LinkFieldEvidenceRequest(work_order_id=wo.id, evidence_id=plan.id), "field_key"),
            (pb.LinkFieldEvidenceRequest(work_order_id=wo.id, field_key="areas.land", evidence_id="e"), "evidence_id"),
            (
                pb.LinkFieldEvidenceRequest(
                    work_order_id=wo.id, field_key="areas.land", evidence_id=plan.id, note="n" * 1001
                ),
                "note",
            ),
        ]:
            detail = await h.fails("LinkFieldEvidence", request)
            assert (detail.code, fields_of(detail)) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
        unknown = await h.fails(
            "LinkFieldEvidence",
            pb.LinkFieldEvidenceRequest(work_order_id=wo.id, field_key="areas.land", evidence_id=str(uuid.uuid4())),
        )
        assert (unknown.code, unknown.reason, unknown.metadata["field"]) == (
            grpc.StatusCode.NOT_FOUND,
            "EVIDENCE_NOT_FOUND",
            "evidence_id",
        )

        # unlinking sets removed_* once; the link stays in the trail
        no_reason = await h.fails(
            "UnlinkFieldEvidence", pb.UnlinkFieldEvidenceRequest(work_order_id=wo.id, link_id=link.id)
        )
        assert fields_of(no_reason) == ["reason"]
        gone = (
            await h.call(
                "UnlinkFieldEvidence",
                pb.UnlinkFieldEvidenceRequest(work_order_id=wo.id, link_id=link.id, reason="wrong sheet"),
            )
        ).link
        assert (gone.id, gone.removed_by, gone.removal_reason, gone.note) == (
            link.id,
            h.manager_id,
            "wrong sheet",
            "carpet area on sheet 2",
        )
        assert gone.HasField("removed_at") and gone.linked_at == link.linked_at
        twice = await h.fails(
            "UnlinkFieldEvidence", pb.UnlinkFieldEvidenceRequest(work_order_id=wo.id, link_id=link.id, reason="again")
        )
        assert (twice.code, twice.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LINK_REMOVED")
        missing = await h.fails(
            "UnlinkFieldEvidence",
            pb.UnlinkFieldEvidenceRequest(work_order_id=wo.id, link_id=str(uuid.uuid4()), reason="x"),
        )
        assert (missing.code, missing.reason, missing.metadata["field"]) == (
            grpc.StatusCode.NOT_FOUND,
            "FIELD_LINK_NOT_FOUND",
            "link_id",
        )
        relinked = (
            await h.call(
                "LinkFieldEvidence",
                pb.LinkFieldEvidenceRequest(
                    work_order_id=wo.id, field_key="areas.carpet", evidence_id=plan.id, note="sheet 3"
                ),
            )
        ).link
        assert relinked.id != link.id

        assert [x.id for x in await live_links(h, wo.id)] == [legal.id, relinked.id]
        trail = await live_links(h, wo.id, include_removed=True)
        assert [(x.id, bool(x.removed_by)) for x in trail] == [(link.id, True), (legal.id, False), (relinked.id, False)]

        # removing evidence removes its live links the same way
        await h.call(
            "RemoveEvidence",
            pb.RemoveEvidenceRequest(work_order_id=wo.id, evidence_id=deed.id, reason="superseded by certified copy"),
        )
        [legal_after] = [x for x in await live_links(h, wo.id, include_removed=True) if x.id == legal.id]
        assert legal_after.removal_reason == "evidence removed: superseded by certified copy"
        assert [x.id for x in await live_links(h, wo.id)] == [relinked.id]
        to_removed = await h.fails(
            "LinkFieldEvidence",
            pb.LinkFieldEvidenceRequest(work_order_id=wo.id, field_key="legal.sale_deed_number", evidence_id=deed.id),
        )
        assert (to_removed.code, to_removed.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "EVIDENCE_REMOVED")

        # the audit trail holds every add and removal, with who and why
        trail_kinds = [(x["kind"], x["reason"]) for x in await h.audit(wo.id) if x["kind"].startswith("field_link")]
        assert trail_kinds == [
            ("field_link.added", ""),
            ("field_link.added", ""),
            ("field_link.removed", "wrong sheet"),
            ("field_link.added", ""),
        ]
        # and the database refuses to overwrite or delete links and evidence, even for repogen's own role
        for statement in [
            "UPDATE field_links SET note = 'rewritten' WHERE id = CAST(:id AS uuid)",
            "UPDATE field_links SET field_key = 'areas.land' WHERE id = CAST(:id AS uuid)",
            "UPDATE field_links SET removed_by = 'x', removed_at = now() WHERE id = CAST(:removed AS uuid)",
            "DELETE FROM field_links WHERE id = CAST(:id AS uuid)",
            "UPDATE evidence SET kind = 'OTHER' WHERE id = CAST(:plan AS uuid)",
            "UPDATE evidence SET removal_reason = 'rewritten' WHERE id = CAST(:deed AS uuid)",
            "DELETE FROM evidence WHERE id = CAST(:plan AS uuid)",
        ]:
            with pytest.raises(DBAPIError):
                await h.sql(statement, {"id": relinked.id, "removed": link.id, "plan": plan.id, "deed": deed.id})


async def test_annexures_are_ordered_by_kind_then_capture_time(suite):
    async with suite() as h:
        wo = (await h.work_order()).work_order
        t0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
        # added in a scrambled order
        late_photo = (
            await h.add_evidence(wo.id, "SITE_PHOTO", await h.photo(1, captured_at=t0 + timedelta(hours=2)))
        ).evidence
        other = (await h.add_evidence(wo.id, "OTHER")).evidence
        no_time_photo = (await h.add_evidence(wo.id, "SITE_PHOTO", await h.photo(2))).evidence
        deed = (await h.add_evidence(wo.id, "SALE_DEED")).evidence
        early_photo = (await h.add_evidence(wo.id, "SITE_PHOTO", await h.photo(3, captured_at=t0))).evidence
        index = (await h.add_evidence(wo.id, "INDEX_II")).evidence
        noc = (await h.add_evidence(wo.id, "SOCIETY_NOC")).evidence
        tax = (await h.add_evidence(wo.id, "TAX_RECEIPT")).evidence

        ordered = (await h.call("AutoOrderAnnexures", pb.AutoOrderAnnexuresRequest(work_order_id=wo.id))).evidence
        expected = [deed.id, index.id, tax.id, early_photo.id, late_photo.id, no_time_photo.id, noc.id, other.id]
        assert [e.id for e in ordered] == expected
        assert [e.annexure_order for e in ordered] == list(range(1, 9))
        listed = (await h.call("ListEvidence", pb.ListEvidenceRequest(work_order_id=wo.id))).evidence
        assert [e.id for e in listed] == expected
        # deterministic: again, the same order (and the audit says what it was)
        again = (await h.call("AutoOrderAnnexures", pb.AutoOrderAnnexuresRequest(work_order_id=wo.id))).evidence
        assert again == ordered
        last = (await h.audit(wo.id))[-1]
        assert last["kind"] == "annexures.ordered" and last["detail"]["after"] == expected
        # removing one closes its gap; a new item waits, unordered, at the end until the next auto-order
        await h.call(
            "RemoveEvidence", pb.RemoveEvidenceRequest(work_order_id=wo.id, evidence_id=tax.id, reason="duplicate")
        )
        plan = (await h.add_evidence(wo.id, "APPROVED_PLAN")).evidence
        listed = (await h.call("ListEvidence", pb.ListEvidenceRequest(work_order_id=wo.id))).evidence
        assert [(e.id, e.annexure_order) for e in listed] == [
            *((eid, n) for n, eid in enumerate([x for x in expected if x != tax.id], start=1)),
            (plan.id, 0),
        ]
        final = (await h.call("AutoOrderAnnexures", pb.AutoOrderAnnexuresRequest(work_order_id=wo.id))).evidence
        assert [e.id for e in final] == [
            deed.id,
            index.id,
            plan.id,
            early_photo.id,
            late_photo.id,
            no_time_photo.id,
            noc.id,
            other.id,
        ]


def test_annexure_order_rule():
    """The pure rule: kind (KINDS order), capture time (none last), time added, id."""
    t = datetime(2026, 1, 1, tzinfo=UTC)
    items = [
        rules.Annexure("b", "SITE_PHOTO", None, t),
        rules.Annexure("a", "SITE_PHOTO", None, t),
        rules.Annexure("c", "SITE_PHOTO", t + timedelta(days=1), t + timedelta(days=5)),
        rules.Annexure("d", "SITE_PHOTO", t, t + timedelta(days=9)),
        rules.Annexure("e", "OTHER", t, t),
        rules.Annexure("f", "SALE_DEED", t + timedelta(days=3), t),
        rules.Annexure("g", "LOCATION_MAP", None, t - timedelta(days=1)),
    ]
    assert rules.annexure_order(items) == ["f", "d", "c", "a", "b", "g", "e"]
    assert rules.annexure_order(reversed(items)) == rules.annexure_order(items)
    assert rules.KINDS[0] == "SALE_DEED" and rules.KINDS[-1] == "OTHER"


async def test_comments_are_typed_and_append_only(suite):
    async with suite() as h:
        wo = (await h.work_order()).work_order
        first = (
            await h.call(
                "AddComment",
                pb.AddCommentRequest(
                    work_order_id=wo.id,
                    kind="justification",
                    body="Rates per the two 2025 sale deeds in the wing.",
                    idempotency_key="c-1",
                ),
            )
        ).comment
        assert (first.kind, first.author, first.work_order_id) == ("justification", h.manager_id, wo.id)
        assert (
            await h.call(
                "AddComment",
                pb.AddCommentRequest(
                    work_order_id=wo.id,
                    kind="justification",
                    body="Rates per the two 2025 sale deeds in the wing.",
                    idempotency_key="c-1",
                ),
            )
        ).comment == first
        note = (
            await h.call(
                "AddComment",
                pb.AddCommentRequest(work_order_id=wo.id, kind="notes", body="Client called about the due date."),
            )
        ).comment
        longest = (
            await h.call("AddComment", pb.AddCommentRequest(work_order_id=wo.id, kind="checklist", body="✓" * 10_000))
        ).comment
        for request, field in [
            (pb.AddCommentRequest(work_order_id=wo.id, kind="gossip", body="x"), "kind"),
            (pb.AddCommentRequest(work_order_id=wo.id, body="x"), "kind"),
            (pb.AddCommentRequest(work_order_id=wo.id, kind="notes", body="   "), "body"),
            (pb.AddCommentRequest(work_order_id=wo.id, kind="notes", body="x" * 10_001), "body"),
            (pb.AddCommentRequest(work_order_id=wo.id, kind="notes", body="bell \x07"), "body"),
        ]:
            detail = await h.fails("AddComment", request)
            assert (detail.code, fields_of(detail)) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
        all_comments = (
            await h.call("ListComments", pb.ListCommentsRequest(work_order_id=wo.id), h.token(STUDIO_CAPS))
        ).comments
        assert [c.id for c in all_comments] == [first.id, note.id, longest.id]
        notes = (await h.call("ListComments", pb.ListCommentsRequest(work_order_id=wo.id, kind="notes"))).comments
        assert [c.id for c in notes] == [note.id]
        assert fields_of(await h.fails("ListComments", pb.ListCommentsRequest(work_order_id=wo.id, kind="x"))) == [
            "kind"
        ]
        for statement in [
            "UPDATE comments SET body = 'edited' WHERE id = CAST(:id AS uuid)",
            "DELETE FROM comments WHERE id = CAST(:id AS uuid)",
        ]:
            with pytest.raises(DBAPIError):
                await h.sql(statement, {"id": first.id})
        assert [x["kind"] for x in await h.audit(wo.id)].count("comment.added") == 3
        # a cancelled work order takes no more comments
        await h.transition(wo.id, pb.WORK_ORDER_STATUS_CANCELLED, "withdrawn")
        closed = await h.fails("AddComment", pb.AddCommentRequest(work_order_id=wo.id, kind="notes", body="late"))
        assert closed.reason == "WORK_ORDER_CLOSED"
