"""Assignments against the real ops service: creation (reference numbers unique and gapless
under concurrency, completeness, first history/stage/activity rows), validation naming
fields, reads, lists with every filter and cursor pagination, updates with versions."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from ops_harness import PORTAL_CAPS, VALUER_CAPS, outcome, running_ops

from zenops.ops.v1 import ops_pb2 as pb
from zenops_ops.domain import assignments as rules
from zenops_ops.store import assignments as store

MISSING = "5a0c2a47-98c6-4b7e-9d41-0a2f5e0c1b11"


@pytest.fixture
def ops(start_service):
    return lambda **kw: running_ops(start_service, **kw)


def stamp(when: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(when)
    return t


def in_days(days: float) -> Timestamp:
    return stamp(datetime.now(UTC) + timedelta(days=days))


def test_reference_numbers_and_the_firms_year():
    assert rules.reference_number(2026, 123) == "ZA-2026-000123"
    # 31 Dec 19:00 UTC is 1 Jan 00:30 in Kolkata: the new year's number
    assert rules.reference_year(datetime(2025, 12, 31, 19, 0, tzinfo=UTC)) == 2026
    assert rules.reference_year(datetime(2025, 12, 31, 18, 0, tzinfo=UTC)) == 2025
    with pytest.raises(ValueError):
        rules.reference_number(2026, 1_000_000)


def test_completeness_counts_the_fields_of_the_source():
    full = rules.Details(
        bank_id="b",
        branch_id="br",
        property_id="p",
        contact_id="c",
        due_at=datetime.now(UTC),
        assignee_ids=("u",),
        fee_paise=350_000,
        borrower_name="Asha",
    )
    assert rules.completeness("BANK", full, None) == 100
    assert rules.completeness("BANK", rules.Details(bank_id="b"), None) == 12  # 1 of 8
    assert rules.completeness("CHANNEL", rules.Details(), "ch") == 14  # 1 of 7: no branch needed
    assert rules.completeness("DIRECT", rules.Details(borrower_name="Asha", fee_paise=1), None) == 28


async def test_create_writes_the_assignment_its_first_rows_and_its_score(ops):
    async with ops(run_workers=False) as h:
        bank = await h.bank(code="SBI")
        branch = await h.branch(bank)
        prop, contact = await h.property(), await h.contact()
        valuer = str(uuid.uuid4())
        due = in_days(7)
        a = await h.create_assignment(
            source_type=pb.SOURCE_TYPE_BANK,
            bank_id=bank,
            branch_id=branch,
            property_id=prop,
            contact_id=contact,
            due_at=due,
            priority=pb.PRIORITY_HIGH,
            assignee_ids=[valuer, valuer.upper()],
            fee_paise=450_000,
            notes="Home loan, top-up",
            borrower_name="  Asha Patel  ",
        )
        year = datetime.now(UTC).astimezone(rules.FIRM_ZONE).year
        assert a.reference_number == f"ZA-{year}-000001"
        assert (a.status, a.source_type, a.priority, a.version) == (
            pb.ASSIGNMENT_STATUS_DRAFT,
            pb.SOURCE_TYPE_BANK,
            pb.PRIORITY_HIGH,
            1,
        )
        assert list(a.assignee_ids) == [valuer]  # duplicates dropped
        assert (a.borrower_name, a.fee_paise, a.completeness_score, a.created_by) == (
            "Asha Patel",
            450_000,
            100,
            h.manager_id,
        )
        assert a.due_at.ToMicroseconds() == due.ToMicroseconds()
        assert (a.bank_code, a.billing_account_id) == ("SBI", "")  # what repogen reads
        assert a.property_state == "MH"  # billing's GST place of supply

        detail = await h.call("GetAssignment", pb.GetAssignmentRequest(id=a.id))
        assert detail.assignment == a
        [created] = detail.history
        assert (created.from_status, created.to_status, created.actor) == (
            pb.ASSIGNMENT_STATUS_UNSPECIFIED,
            pb.ASSIGNMENT_STATUS_DRAFT,
            h.manager_id,
        )
        [stage] = await h.sql("SELECT stage, exited_at FROM assignment_stages")
        assert (stage.stage, stage.exited_at) == ("DRAFT", None)
        [activity] = await h.activities(assignment_id=a.id)
        assert (activity["kind"], activity["detail"]["reference_number"], activity["detail"]["fee_paise"]) == (
            "assignment.created",
            a.reference_number,
            450_000,
        )

        # a branch alone brings its bank; the minimal direct assignment scores what it has
        b = await h.create_assignment(source_type=pb.SOURCE_TYPE_BANK, branch_id=branch)
        assert (b.bank_id, b.reference_number, b.priority) == (bank, f"ZA-{year}-000002", pb.PRIORITY_MEDIUM)
        assert b.completeness_score == 25
        c = await h.create_assignment()
        assert c.completeness_score == 14

        missing = await h.fails("GetAssignment", pb.GetAssignmentRequest(id=MISSING))
        assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "ASSIGNMENT_NOT_FOUND")


async def test_detail_lists_the_documents_the_caller_may_read(ops):
    async with ops(run_workers=False) as h:
        a = await h.create_assignment()
        other = await h.create_assignment()

        async def document(name: str, sensitivity: str, assignment_id: str, status: str = "UPLOADED") -> str:
            doc_id = str(uuid.uuid4())
            await h.sql(
                "INSERT INTO documents (id, tenant_id, filename, content_type, size_bytes, sha256, status, source, "
                "classification, sensitivity, storage_driver, storage_key, assignment_id, created_by, uploaded_at) "
                "VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), :name, 'application/pdf', 10, :sha, :status, "
                "'DESKTOP_UPLOAD', 'LEGAL', :sensitivity, 'local', :key, CAST(:aid AS uuid), :actor, "
                "CASE WHEN :status = 'UPLOADED' THEN now() END)",
                {
                    "id": doc_id,
                    "tid": h.tenant,
                    "name": name,
                    "sha": "ab" * 32,
                    "status": status,
                    "sensitivity": sensitivity,
                    "key": f"tenant/{h.tenant}/{doc_id}/{name}",
                    "aid": assignment_id,
                    "actor": h.manager_id,
                },
            )
            return doc_id

        deed = await document("sale-deed.pdf", "CONFIDENTIAL", a.id)
        plan = await document("plan.pdf", "INTERNAL", a.id)
        await document("pending.pdf", "INTERNAL", a.id, status="PENDING")
        await document("elsewhere.pdf", "INTERNAL", other.id)
        detail = await h.call("GetAssignment", pb.GetAssignmentRequest(id=a.id))
        assert {d.id for d in detail.documents} == {deed, plan}
        _, reader = h.user(("assignments.read", "documents.read"))
        detail = await h.call("GetAssignment", pb.GetAssignmentRequest(id=a.id), reader)
        assert [d.id for d in detail.documents] == [plan]
        _, no_documents = h.user(("assignments.read",))
        detail = await h.call("GetAssignment", pb.GetAssignmentRequest(id=a.id), no_documents)
        assert list(detail.documents) == [] and detail.assignment.id == a.id


async def test_bad_input_names_the_field(ops):
    async with ops(run_workers=False) as h:
        bank, other_bank = await h.bank(), await h.bank()
        branch = await h.branch(other_bank)
        other_tenant = str(uuid.uuid4())
        foreign_bank = await h.bank(tenant=other_tenant)
        inactive = await h.channel(active=False)
        cases = [
            ({"source_type": pb.SOURCE_TYPE_UNSPECIFIED}, "INVALID_ARGUMENT", "source_type"),
            ({"source_type": 42}, "INVALID_ARGUMENT", "source_type"),
            ({"source_type": pb.SOURCE_TYPE_BANK}, "INVALID_ARGUMENT", "bank_id"),
            ({"source_type": pb.SOURCE_TYPE_CHANNEL}, "INVALID_ARGUMENT", "channel_id"),
            ({"source_type": pb.SOURCE_TYPE_DIRECT}, "INVALID_ARGUMENT", "client_org_id"),
            ({"source_type": pb.SOURCE_TYPE_BANK, "bank_id": "SBI"}, "INVALID_ARGUMENT", "bank_id"),
            ({"source_type": pb.SOURCE_TYPE_BANK, "bank_id": MISSING}, "NOT_FOUND", "bank_id"),
            ({"source_type": pb.SOURCE_TYPE_BANK, "bank_id": foreign_bank}, "NOT_FOUND", "bank_id"),
            (
                {"source_type": pb.SOURCE_TYPE_BANK, "bank_id": bank, "branch_id": branch},
                "INVALID_ARGUMENT",
                "branch_id",
            ),
            ({"source_type": pb.SOURCE_TYPE_BANK, "bank_id": bank, "property_id": MISSING}, "NOT_FOUND", "property_id"),
            ({"source_type": pb.SOURCE_TYPE_BANK, "bank_id": bank, "contact_id": MISSING}, "NOT_FOUND", "contact_id"),
            ({"source_type": pb.SOURCE_TYPE_DIRECT, "client_org_id": MISSING}, "NOT_FOUND", "client_org_id"),
            ({"source_type": pb.SOURCE_TYPE_CHANNEL, "channel_id": MISSING}, "NOT_FOUND", "channel_id"),
            ({"source_type": pb.SOURCE_TYPE_CHANNEL, "channel_id": inactive}, "CHANNEL_INACTIVE", None),
            ({"borrower_name": "A", "due_at": in_days(-1)}, "INVALID_ARGUMENT", "due_at"),
            ({"borrower_name": "A", "due_at": in_days(3000)}, "INVALID_ARGUMENT", "due_at"),
            ({"borrower_name": "A", "fee_paise": -1}, "INVALID_ARGUMENT", "fee_paise"),
            ({"borrower_name": "A", "priority": 9}, "INVALID_ARGUMENT", "priority"),
            ({"borrower_name": "A", "assignee_ids": ["valuer-1"]}, "INVALID_ARGUMENT", "assignee_ids"),
            (
                {"borrower_name": "A", "assignee_ids": [str(uuid.uuid4()) for _ in range(21)]},
                "INVALID_ARGUMENT",
                "assignee_ids",
            ),
            ({"borrower_name": "A", "notes": "n" * 5001}, "INVALID_ARGUMENT", "notes"),
            ({"borrower_name": "A" * 201}, "INVALID_ARGUMENT", "borrower_name"),
            ({"borrower_name": "Asha\x07"}, "INVALID_ARGUMENT", "borrower_name"),
        ]
        for fields, expected, field in cases:
            fields.setdefault("source_type", pb.SOURCE_TYPE_DIRECT)
            err = await h.fails("CreateAssignment", pb.CreateAssignmentRequest(**fields))
            code = {"INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT, "NOT_FOUND": grpc.StatusCode.NOT_FOUND}.get(
                expected, grpc.StatusCode.FAILED_PRECONDITION
            )
            assert err.code == code, (fields, err)
            if expected == "CHANNEL_INACTIVE":
                assert err.reason == expected
            elif expected == "NOT_FOUND":
                assert err.metadata["field"] == field, (fields, err)
            else:
                assert [v.field for v in err.violations] == [field], (fields, err)
        assert await h.sql("SELECT * FROM assignments") == []
        assert await h.sql("SELECT * FROM reference_counters") == []


async def test_who_may_create(ops):
    async with ops(run_workers=False) as h:
        _, valuer = h.user(VALUER_CAPS)
        assert (await h.create_assignment(token=valuer)).status == pb.ASSIGNMENT_STATUS_DRAFT
        _, accounts = h.user(("assignments.read",))
        err = await h.fails(
            "CreateAssignment",
            pb.CreateAssignmentRequest(source_type=pb.SOURCE_TYPE_DIRECT, borrower_name="A"),
            token=accounts,
        )
        assert (err.code, err.metadata["missing"]) == (grpc.StatusCode.PERMISSION_DENIED, "assignments.write")
        channel = await h.channel()
        err = await h.fails("ListAssignments", pb.ListAssignmentsRequest(), token=h.portal(channel, PORTAL_CAPS))
        assert err.code == grpc.StatusCode.PERMISSION_DENIED


async def test_fifty_concurrent_creates_get_unique_gapless_numbers(ops):
    async with ops(run_workers=False) as h:
        results = await asyncio.gather(
            *(outcome(h.create_assignment(borrower_name=f"Borrower {i}")) for i in range(50))
        )
        assert [r for r, _ in results] == ["OK"] * 50
        numbers = sorted(a.reference_number for _, a in results)
        year = datetime.now(UTC).astimezone(rules.FIRM_ZONE).year
        assert numbers == [f"ZA-{year}-{n:06d}" for n in range(1, 51)]
        [counter] = await h.sql("SELECT year, last_value FROM reference_counters")
        assert (counter.year, counter.last_value) == (year, 50)

        # a create that rolls back after taking a number gives it back
        with pytest.raises(RuntimeError):
            async with h.tx() as conn:
                assert await store.next_sequence(conn, h.tenant, year) == 51
                raise RuntimeError("the rest of the create failed")
        assert (await h.create_assignment()).reference_number == f"ZA-{year}-000051"
        # numbers are per tenant
        other = str(uuid.uuid4())
        async with h.tx(other) as conn:
            assert await store.next_sequence(conn, other, year) == 1


async def test_create_is_idempotent(ops):
    async with ops(run_workers=False) as h:
        first = await h.create_assignment(borrower_name="Asha", idempotency_key="create-1")
        again = await h.create_assignment(borrower_name="Asha", idempotency_key="create-1")
        assert again == first
        err = await h.fails(
            "CreateAssignment",
            pb.CreateAssignmentRequest(
                source_type=pb.SOURCE_TYPE_DIRECT, borrower_name="Ravi", idempotency_key="create-1"
            ),
        )
        assert (err.reason, [v.field for v in err.violations]) == ("IDEMPOTENCY_KEY_REUSED", ["borrower_name"])
        # the key in metadata works the same
        md = (("idempotency-key", "create-2"),)
        one = (
            await h.call(
                "CreateAssignment",
                pb.CreateAssignmentRequest(source_type=pb.SOURCE_TYPE_DIRECT, borrower_name="Asha"),
                metadata=md,
            )
        ).assignment
        two = (
            await h.call(
                "CreateAssignment",
                pb.CreateAssignmentRequest(source_type=pb.SOURCE_TYPE_DIRECT, borrower_name="Asha"),
                metadata=md,
            )
        ).assignment
        assert one == two
        assert len(await h.sql("SELECT id FROM assignments")) == 2


async def test_list_filters_search_and_pages(ops):
    async with ops(run_workers=False) as h:
        sbi, hdfc = await h.bank(name="SBI"), await h.bank(name="HDFC")
        channel = await h.channel()
        valuer = str(uuid.uuid4())
        juhu = await h.property(address_line1="12 Juhu Tara Road")
        a1 = await h.create_assignment(
            source_type=pb.SOURCE_TYPE_BANK,
            bank_id=sbi,
            borrower_name="Meera Iyer",
            due_at=in_days(1),
            assignee_ids=[valuer],
        )
        a2 = await h.create_assignment(
            source_type=pb.SOURCE_TYPE_BANK,
            bank_id=hdfc,
            borrower_name="Karan Shah",
            due_at=in_days(10),
            property_id=juhu,
            notes="needs 100% survey_plan",
        )
        a3 = await h.create_assignment(
            source_type=pb.SOURCE_TYPE_CHANNEL, channel_id=channel, borrower_name="Meera Iyer", assignee_ids=[valuer]
        )
        await h.transition(a2.id, pb.ASSIGNMENT_STATUS_COLLECTING)

        async def ids(**filters) -> list[str]:
            resp = await h.call("ListAssignments", pb.ListAssignmentsRequest(**filters))
            return [a.id for a in resp.assignments]

        assert await ids() == [a3.id, a2.id, a1.id]  # newest first
        assert await ids(statuses=[pb.ASSIGNMENT_STATUS_COLLECTING]) == [a2.id]
        assert await ids(statuses=[pb.ASSIGNMENT_STATUS_DRAFT, pb.ASSIGNMENT_STATUS_COLLECTING]) == [
            a3.id,
            a2.id,
            a1.id,
        ]
        assert await ids(assignee_id=valuer) == [a3.id, a1.id]
        assert await ids(bank_id=sbi) == [a1.id]
        assert await ids(channel_id=channel) == [a3.id]
        assert await ids(due_after=in_days(5)) == [a2.id]
        assert await ids(due_before=in_days(5)) == [a1.id]
        assert await ids(due_after=in_days(0), due_before=in_days(30)) == [a2.id, a1.id]
        assert await ids(query="meera") == [a3.id, a1.id]
        assert await ids(query=a2.reference_number.lower()) == [a2.id]
        assert await ids(query="juhu tara") == [a2.id]  # the property's address
        assert await ids(query="100%") == [a2.id]  # wildcards are literal
        assert await ids(query="survey_plan") == [a2.id]
        assert await ids(query="100%_") == []
        assert await ids(query="Karan", bank_id=sbi) == []

        # another tenant sees none of it
        other = await h.call("ListAssignments", pb.ListAssignmentsRequest(), token=h.token(tenant=str(uuid.uuid4())))
        assert list(other.assignments) == []
        hidden = await h.fails(
            "GetAssignment", pb.GetAssignmentRequest(id=a1.id), token=h.token(tenant=str(uuid.uuid4()))
        )
        assert hidden.code == grpc.StatusCode.NOT_FOUND

        # pages: every assignment once, newest first
        for i in range(4):
            await h.create_assignment(borrower_name=f"Page {i}")
        seen, cursor = [], ""
        while True:
            resp = await h.call("ListAssignments", pb.ListAssignmentsRequest(page={"limit": 3, "cursor": cursor}))
            seen.extend(resp.assignments)
            cursor = resp.page.next_cursor
            if not cursor:
                break
        assert len(seen) == 7 and len({a.id for a in seen}) == 7
        assert [a.created_at.ToMicroseconds() for a in seen] == sorted(
            (a.created_at.ToMicroseconds() for a in seen), reverse=True
        )

        for request, field in [
            (pb.ListAssignmentsRequest(statuses=[77]), "statuses"),
            (pb.ListAssignmentsRequest(assignee_id="me"), "assignee_id"),
            (pb.ListAssignmentsRequest(page={"cursor": "xyz"}), "page.cursor"),
            (pb.ListAssignmentsRequest(page={"limit": -1}), "page.limit"),
            (pb.ListAssignmentsRequest(query="q" * 201), "query"),
            (pb.ListAssignmentsRequest(due_after=in_days(5), due_before=in_days(1)), "due_before"),
        ]:
            err = await h.fails("ListAssignments", request)
            assert (err.code, [v.field for v in err.violations]) == (grpc.StatusCode.INVALID_ARGUMENT, [field])


async def test_update_with_mask_version_and_activity(ops):
    async with ops(run_workers=False) as h:
        bank, other_bank = await h.bank(), await h.bank()
        branch, foreign_branch = await h.branch(bank), await h.branch(other_bank)
        a = await h.create_assignment(source_type=pb.SOURCE_TYPE_BANK, bank_id=bank, borrower_name="Asha")
        valuer = str(uuid.uuid4())
        due = in_days(4)

        async def update(paths, version=0, **fields):
            return await h.call(
                "UpdateAssignment",
                pb.UpdateAssignmentRequest(
                    id=a.id, assignment=pb.Assignment(**fields), update_mask={"paths": paths}, expected_version=version
                ),
            )

        updated = (
            await update(
                ["branch_id", "due_at", "assignee_ids", "fee_paise", "priority"],
                version=1,
                branch_id=branch,
                due_at=due,
                assignee_ids=[valuer],
                fee_paise=300_000,
                priority=pb.PRIORITY_LOW,
                notes="not in the mask",
            )
        ).assignment
        assert (
            updated.version,
            updated.branch_id,
            list(updated.assignee_ids),
            updated.fee_paise,
            updated.priority,
            updated.notes,
        ) == (2, branch, [valuer], 300_000, pb.PRIORITY_LOW, "")
        assert updated.completeness_score > a.completeness_score
        assert updated.due_at.ToMicroseconds() == due.ToMicroseconds()
        [activity] = [x for x in await h.activities(assignment_id=a.id) if x["kind"] == "assignment.updated"]
        assert activity["detail"]["before"] == {
            "assignee_ids": [],
            "branch_id": None,
            "due_at": None,
            "fee_paise": 0,
            "priority": "MEDIUM",
        }
        assert activity["detail"]["after"]["fee_paise"] == 300_000
        assert activity["detail"]["completeness_score"] == {
            "before": a.completeness_score,
            "after": updated.completeness_score,
        }

        stale = await h.fails(
            "UpdateAssignment",
            pb.UpdateAssignmentRequest(
                id=a.id, assignment=pb.Assignment(notes="x"), update_mask={"paths": ["notes"]}, expected_version=1
            ),
        )
        assert (stale.code, stale.reason, stale.metadata["version"]) == (
            grpc.StatusCode.ABORTED,
            "VERSION_CONFLICT",
            "2",
        )

        # nothing changed: nothing written, the version stays
        same = (await update(["fee_paise"], fee_paise=300_000)).assignment
        assert same.version == 2

        # clearing a due date is an update; a passed due date that is not touched stays
        cleared = (await update(["due_at"])).assignment
        assert not cleared.HasField("due_at") and cleared.version == 3

        for paths, fields, field, code in [
            ([], {}, "update_mask", grpc.StatusCode.INVALID_ARGUMENT),
            (["status"], {}, "update_mask", grpc.StatusCode.INVALID_ARGUMENT),
            (["reference_number"], {}, "update_mask", grpc.StatusCode.INVALID_ARGUMENT),
            (["priority"], {}, "priority", grpc.StatusCode.INVALID_ARGUMENT),
            (["fee_paise"], {"fee_paise": -5}, "fee_paise", grpc.StatusCode.INVALID_ARGUMENT),
            (["due_at"], {"due_at": in_days(-2)}, "due_at", grpc.StatusCode.INVALID_ARGUMENT),
            (["branch_id"], {"branch_id": foreign_branch}, "branch_id", grpc.StatusCode.INVALID_ARGUMENT),
            (["bank_id", "branch_id"], {}, "bank_id", grpc.StatusCode.INVALID_ARGUMENT),
            (["contact_id"], {"contact_id": MISSING}, "contact_id", grpc.StatusCode.NOT_FOUND),
        ]:
            err = await h.fails(
                "UpdateAssignment",
                pb.UpdateAssignmentRequest(id=a.id, assignment=pb.Assignment(**fields), update_mask={"paths": paths}),
            )
            assert err.code == code, (paths, err)
            named = err.metadata.get("field") if code == grpc.StatusCode.NOT_FOUND else err.violations[0].field
            assert named == field, (paths, err)
        missing = await h.fails(
            "UpdateAssignment",
            pb.UpdateAssignmentRequest(
                id=MISSING, assignment=pb.Assignment(notes="x"), update_mask={"paths": ["notes"]}
            ),
        )
        assert missing.code == grpc.StatusCode.NOT_FOUND
        assert re.fullmatch(r"ZA-\d{4}-\d{6}", a.reference_number)
