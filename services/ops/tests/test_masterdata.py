"""Master data over real gRPC against the real ops service (its own PostgreSQL database):
banks, bank branches, client orgs, contacts, properties and branch contacts.

Every create and list; UNVERIFIED for a creator without masterdata.approve and VERIFIED
(by, at) with it; VerifyMasterData (no-op the second time, unknown kind / id); duplicate
bank codes, IFSCs and branch contacts → ALREADY_EXISTS; bad IFSC / PIN / phone / e-mail /
state / GSTIN / oversized strings → INVALID_ARGUMENT naming the field; unknown and other
tenants' references → NOT_FOUND naming the field; 403 without the capabilities; another
tenant sees nothing; idempotent replays; cursor pages newest first.
"""

from __future__ import annotations

import uuid

import grpc
import pytest
from ops_harness import running_ops

from zenops.common.v1 import common_pb2
from zenops.ops.v1 import ops_pb2 as pb

READ = ("masterdata.read",)
WRITER = ("masterdata.read", "masterdata.write")  # a valuer, as far as master data goes
APPROVER = ("masterdata.read", "masterdata.write", "masterdata.approve")  # an ops manager
UNVERIFIED, VERIFIED = pb.VERIFICATION_UNVERIFIED, pb.VERIFICATION_VERIFIED


@pytest.fixture
def ops(start_service):
    return lambda **settings: running_ops(start_service, run_workers=False, **settings)


def details(**fields) -> pb.PropertyDetails:
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


class Made:
    """One record of every kind, made through the RPCs."""

    def __init__(self, h, token: str) -> None:
        self.h, self.token = h, token

    async def all(self, *, code: str = "SBI", ifsc: str = "SBIN0001234") -> Made:
        call, t = self.h.call, self.token
        self.bank = (await call("CreateBank", pb.CreateBankRequest(code=code, name="State Bank of India"), t)).bank
        self.branch = (
            await call(
                "CreateBankBranch",
                pb.CreateBankBranchRequest(
                    bank_id=self.bank.id,
                    name="Fort branch",
                    ifsc=ifsc,
                    city="Mumbai",
                    state="mh",
                    address="Horniman Circle, Fort",
                ),
                t,
            )
        ).branch
        self.org = (
            await call(
                "CreateClientOrg",
                pb.CreateClientOrgRequest(
                    name="Acme Builders", org_type="builder", gstin="27aapfu0939f1zv", city="Pune", state="MH"
                ),
                t,
            )
        ).client_org
        self.contact = (
            await call(
                "CreateContact",
                pb.CreateContactRequest(
                    name="Ravi Kumar",
                    phone="98765 43210",
                    email="Ravi.Kumar@Example.COM",
                    client_org_id=self.org.id,
                    designation="Branch manager",
                ),
                t,
            )
        ).contact
        self.property = (
            await call(
                "CreateProperty", pb.CreatePropertyRequest(details=details(latitude="19.0596", longitude="72.8295")), t
            )
        ).property
        self.link = (
            await call(
                "CreateBranchContact",
                pb.CreateBranchContactRequest(
                    branch_id=self.branch.id, contact_id=self.contact.id, role=" Branch  Manager "
                ),
                t,
            )
        ).branch_contact
        return self

    def records(self) -> dict[str, pb.RecordInfo]:
        return {
            "bank": self.bank.record,
            "bank_branch": self.branch.record,
            "client_org": self.org.record,
            "contact": self.contact.record,
            "property": self.property.record,
            "branch_contact": self.link.record,
        }

    def ids(self) -> dict[str, str]:
        return {
            "bank": self.bank.id,
            "bank_branch": self.branch.id,
            "client_org": self.org.id,
            "contact": self.contact.id,
            "property": self.property.id,
            "branch_contact": self.link.id,
        }


def field_of(detail) -> str:
    return detail.violations[0].field if detail.violations else detail.metadata.get("field", "")


async def test_creates_normalise_and_start_unverified_without_the_approve_capability(ops):
    async with ops() as h:
        writer_id, writer = h.user(WRITER)
        made = await Made(h, writer).all()

        assert (made.bank.code, made.bank.name) == ("SBI", "State Bank of India")
        assert (made.branch.bank_id, made.branch.ifsc, made.branch.state) == (made.bank.id, "SBIN0001234", "MH")
        assert (made.org.org_type, made.org.gstin) == ("builder", "27AAPFU0939F1ZV")
        assert (made.contact.phone, made.contact.email) == ("+919876543210", "ravi.kumar@example.com")
        assert made.contact.client_org_id == made.org.id
        assert made.property.details.latitude == "19.059600" and made.property.details.longitude == "72.829500"
        assert made.property.details.locality == "Bandra West"
        assert made.link.role == "branch manager"
        for kind, record in made.records().items():
            assert record.verification == UNVERIFIED, kind
            assert record.created_by == writer_id
            assert not record.verified_by and not record.HasField("verified_at")
            assert record.HasField("created_at") and record.HasField("updated_at")

        # an ops manager's records are verified at once, by them
        approver_id, approver = h.user(APPROVER)
        verified = await Made(h, approver).all(code="HDFC", ifsc="HDFC0000001")
        for kind, record in verified.records().items():
            assert record.verification == VERIFIED, kind
            assert record.verified_by == approver_id and record.created_by == approver_id
            assert record.HasField("verified_at")

        # every create is audited
        rows = await h.sql("SELECT resource_type, action, actor FROM masterdata_audit ORDER BY created_at")
        assert sorted((r.resource_type, r.actor) for r in rows if r.action == "created") == sorted(
            [(k, writer_id) for k in made.ids()] + [(k, approver_id) for k in made.ids()]
        )


async def test_lists_filter_by_verification_query_and_their_own_filters(ops):
    async with ops() as h:
        _, writer = h.user(WRITER)
        mine = await Made(h, writer).all()
        theirs = await Made(h, h.token(APPROVER)).all(code="HDFC", ifsc="HDFC0000001")
        other_bank = (await h.call("CreateBank", pb.CreateBankRequest(code="ICICI", name="ICICI Bank"))).bank
        pune = (
            await h.call(
                "CreateProperty",
                pb.CreatePropertyRequest(
                    details=details(
                        address_line1="Plot 7, Baner Road",
                        city="Pune",
                        pin_code="411045",
                        property_type="plot",
                        locality="Baner",
                    )
                ),
            )
        ).property
        reader = h.token(READ)

        async def ids(method, token=reader, **fields) -> list[str]:
            resp = await h.call(method, getattr(pb, method + "Request")(**fields), token)
            items = next(getattr(resp, f.name) for f in resp.DESCRIPTOR.fields if f.name != "page")
            return [i.id for i in items]

        # newest first
        assert await ids("ListBanks") == [other_bank.id, theirs.bank.id, mine.bank.id]
        assert await ids("ListBanks", verification=UNVERIFIED) == [mine.bank.id]
        assert await ids("ListBanks", verification=VERIFIED) == [other_bank.id, theirs.bank.id]
        assert await ids("ListBanks", query="icic") == [other_bank.id]
        assert await ids("ListBanks", query="state bank") == [theirs.bank.id, mine.bank.id]
        assert await ids("ListBanks", query="%") == []  # taken literally

        assert await ids("ListBankBranches", bank_id=mine.bank.id) == [mine.branch.id]
        assert await ids("ListBankBranches", query="hdfc0") == [theirs.branch.id]
        assert await ids("ListBankBranches", verification=UNVERIFIED) == [mine.branch.id]

        assert await ids("ListClientOrgs", query="acme") == [theirs.org.id, mine.org.id]
        assert await ids("ListClientOrgs", verification=VERIFIED) == [theirs.org.id]

        assert await ids("ListContacts", client_org_id=mine.org.id) == [mine.contact.id]
        assert await ids("ListContacts", query="example.com", verification=UNVERIFIED) == [mine.contact.id]

        assert await ids("ListProperties", city="PUNE") == [pune.id]
        assert await ids("ListProperties", state="mh", pin_code="400050") == [theirs.property.id, mine.property.id]
        assert await ids("ListProperties", query="baner") == [pune.id]
        assert await ids("ListProperties", state="KA") == []

        assert await ids("ListBranchContacts", branch_id=mine.branch.id) == [mine.link.id]
        assert await ids("ListBranchContacts", contact_id=theirs.contact.id) == [theirs.link.id]
        assert await ids("ListBranchContacts") == [theirs.link.id, mine.link.id]

        # a list's filters are validated like a create's fields
        for method, fields, field in [
            ("ListBanks", {"verification": 7}, "verification"),
            ("ListBanks", {"query": "x" * 101}, "query"),
            ("ListBankBranches", {"bank_id": "not-a-uuid"}, "bank_id"),
            ("ListContacts", {"client_org_id": "42"}, "client_org_id"),
            ("ListProperties", {"pin_code": "040005"}, "pin_code"),
            ("ListProperties", {"state": "XX"}, "state"),
            ("ListBranchContacts", {"contact_id": "nope"}, "contact_id"),
            ("ListBanks", {"page": common_pb2.PageRequest(cursor="garbage")}, "page.cursor"),
            ("ListBanks", {"page": common_pb2.PageRequest(limit=-1)}, "page.limit"),
        ]:
            detail = await h.fails(method, getattr(pb, method + "Request")(**fields), reader)
            assert detail.code == grpc.StatusCode.INVALID_ARGUMENT, (method, fields)
            assert field_of(detail) == field, (method, fields, detail)


async def test_cursor_pages_are_newest_first_and_cover_every_record_once(ops):
    async with ops() as h:
        made = [
            (await h.call("CreateBank", pb.CreateBankRequest(code=f"BK{i}", name=f"Bank {i}"))).bank.id
            for i in range(7)
        ]
        seen, cursor, pages = [], "", 0
        while True:
            resp = await h.call("ListBanks", pb.ListBanksRequest(page=common_pb2.PageRequest(limit=3, cursor=cursor)))
            seen += [b.id for b in resp.banks]
            pages += 1
            cursor = resp.page.next_cursor
            if not cursor:
                break
        assert pages == 3 and seen == list(reversed(made))
        # a cursor of another list is not one of this list's
        first = await h.call("ListBanks", pb.ListBanksRequest(page=common_pb2.PageRequest(limit=1)))
        detail = await h.fails(
            "ListClientOrgs", pb.ListClientOrgsRequest(page=common_pb2.PageRequest(cursor=first.page.next_cursor))
        )
        assert (detail.code, field_of(detail)) == (grpc.StatusCode.INVALID_ARGUMENT, "page.cursor")


async def test_verify_every_kind_once_then_it_is_a_no_op(ops):
    async with ops() as h:
        _, writer = h.user(WRITER)
        made = await Made(h, writer).all()
        approver_id, approver = h.user(APPROVER)
        for kind, record_id in made.ids().items():
            resp = await h.call("VerifyMasterData", pb.VerifyMasterDataRequest(kind=kind, id=record_id), approver)
            assert (resp.kind, resp.id, resp.record.verification) == (kind, record_id, VERIFIED)
            assert resp.record.verified_by == approver_id and resp.record.HasField("verified_at")
            again = await h.call(
                "VerifyMasterData", pb.VerifyMasterDataRequest(kind=kind, id=record_id), h.token(APPROVER)
            )
            assert again.record == resp.record, kind  # same verifier, same time

        # the HTTP routes' spellings name the same kinds
        other = (await h.call("CreateClientOrg", pb.CreateClientOrgRequest(name="Beta Corp"), writer)).client_org
        resp = await h.call("VerifyMasterData", pb.VerifyMasterDataRequest(kind="client-orgs", id=other.id))
        assert (resp.kind, resp.record.verification) == ("client_org", VERIFIED)

        banks = await h.call("ListBanks", pb.ListBanksRequest(verification=UNVERIFIED))
        assert not banks.banks
        audit = await h.sql(
            "SELECT resource_type, resource_id::text AS id, actor FROM masterdata_audit WHERE action = 'verified'"
        )
        assert sorted((r.resource_type, r.id) for r in audit) == sorted(
            list(made.ids().items()) + [("client_org", other.id)]
        )  # once each, the no-ops wrote nothing

        cases = [
            (pb.VerifyMasterDataRequest(kind="planet", id=made.bank.id), grpc.StatusCode.INVALID_ARGUMENT, "kind"),
            (pb.VerifyMasterDataRequest(kind="", id=made.bank.id), grpc.StatusCode.INVALID_ARGUMENT, "kind"),
            (pb.VerifyMasterDataRequest(kind="bank", id="nope"), grpc.StatusCode.INVALID_ARGUMENT, "id"),
            (pb.VerifyMasterDataRequest(kind="bank", id=str(uuid.uuid4())), grpc.StatusCode.NOT_FOUND, "id"),
            # a branch's id is not a bank's
            (pb.VerifyMasterDataRequest(kind="bank", id=made.branch.id), grpc.StatusCode.NOT_FOUND, "id"),
        ]
        for request, code, field in cases:
            detail = await h.fails("VerifyMasterData", request)
            assert (detail.code, field_of(detail)) == (code, field), request


async def test_duplicate_codes_ifscs_and_branch_contacts_are_refused(ops):
    async with ops() as h:
        made = await Made(h, h.token()).all()
        cases = [
            ("CreateBank", pb.CreateBankRequest(code="sbi", name="Another"), "BANK_CODE_TAKEN", "code"),
            (
                "CreateBankBranch",
                pb.CreateBankBranchRequest(
                    bank_id=made.bank.id, name="Copy", ifsc="sbin0001234", city="Pune", state="MH"
                ),
                "IFSC_TAKEN",
                "ifsc",
            ),
            (
                "CreateBranchContact",
                pb.CreateBranchContactRequest(
                    branch_id=made.branch.id, contact_id=made.contact.id, role="BRANCH MANAGER"
                ),
                "BRANCH_CONTACT_EXISTS",
                "role",
            ),
        ]
        for method, request, reason, field in cases:
            detail = await h.fails(method, request)
            assert (detail.code, detail.reason, field_of(detail)) == (grpc.StatusCode.ALREADY_EXISTS, reason, field)
        # the same contact in another role is a new link
        await h.call(
            "CreateBranchContact",
            pb.CreateBranchContactRequest(branch_id=made.branch.id, contact_id=made.contact.id, role="credit officer"),
        )
        # codes and IFSCs are unique per tenant: another firm may have its own SBI
        other = h.token(tenant=str(uuid.uuid4()))
        bank = (await h.call("CreateBank", pb.CreateBankRequest(code="SBI", name="State Bank"), other)).bank
        await h.call(
            "CreateBankBranch",
            pb.CreateBankBranchRequest(bank_id=bank.id, name="Fort", ifsc="SBIN0001234", city="Mumbai", state="MH"),
            other,
        )


BAD_INPUT = [
    ("CreateBank", dict(code="", name="X"), "code"),
    ("CreateBank", dict(code="S", name="X"), "code"),
    ("CreateBank", dict(code="SB-I", name="X"), "code"),
    ("CreateBank", dict(code="A" * 21, name="X"), "code"),
    ("CreateBank", dict(code="SBI", name=""), "name"),
    ("CreateBank", dict(code="SBI", name="x" * 201), "name"),
    ("CreateBank", dict(code="SBI", name="bad\x00name"), "name"),
    ("CreateBankBranch", dict(name="B", ifsc="SBIN0001234", city="Mumbai", state="MH"), "bank_id"),
    ("CreateBankBranch", dict(bank_id="12", name="B", ifsc="SBIN0001234", city="Mumbai", state="MH"), "bank_id"),
    ("CreateBankBranch", dict(bank_id="{bank}", name="B", ifsc="SBIN1001234", city="Mumbai", state="MH"), "ifsc"),
    ("CreateBankBranch", dict(bank_id="{bank}", name="B", ifsc="SBIN000123", city="Mumbai", state="MH"), "ifsc"),
    ("CreateBankBranch", dict(bank_id="{bank}", name="B", ifsc="SBIN0001234", city="Mumbai", state="ZZ"), "state"),
    ("CreateBankBranch", dict(bank_id="{bank}", name="B", ifsc="SBIN0001234", city="", state="MH"), "city"),
    (
        "CreateBankBranch",
        dict(bank_id="{bank}", name="B", ifsc="SBIN0001234", city="Mumbai", state="MH", address="a" * 501),
        "address",
    ),
    ("CreateClientOrg", dict(name="Acme", org_type="alien"), "org_type"),
    ("CreateClientOrg", dict(name="Acme", gstin="27AAPFU0939F1Z"), "gstin"),
    ("CreateClientOrg", dict(name="Acme", gstin="27AAPFU0939F0ZV"), "gstin"),
    ("CreateClientOrg", dict(name="Acme", state="Maharashtra"), "state"),
    ("CreateClientOrg", dict(name="Acme", city="c" * 101), "city"),
    ("CreateContact", dict(name="Ravi"), "phone"),
    ("CreateContact", dict(name="Ravi", phone="12345"), "phone"),
    ("CreateContact", dict(name="Ravi", phone="+91 98765 4321x"), "phone"),
    ("CreateContact", dict(name="Ravi", email="ravi@"), "email"),
    ("CreateContact", dict(name="Ravi", phone="9876543210", email="not an email"), "email"),
    ("CreateContact", dict(name="Ravi", phone="9876543210", client_org_id="x"), "client_org_id"),
    ("CreateContact", dict(name="Ravi", phone="9876543210", designation="d" * 101), "designation"),
    ("CreateContact", dict(name="", phone="9876543210"), "name"),
    ("CreateProperty", dict(details=details(pin_code="012345")), "details.pin_code"),
    ("CreateProperty", dict(details=details(pin_code="40005")), "details.pin_code"),
    ("CreateProperty", dict(details=details(state="QQ")), "details.state"),
    ("CreateProperty", dict(details=details(property_type="castle")), "details.property_type"),
    ("CreateProperty", dict(details=details(address_line1="")), "details.address_line1"),
    ("CreateProperty", dict(details=details(address_line1="a" * 201)), "details.address_line1"),
    ("CreateProperty", dict(details=details(city="c" * 101)), "details.city"),
    ("CreateProperty", dict(details=details(latitude="19.0")), "details.longitude"),
    ("CreateProperty", dict(details=details(latitude="91", longitude="72")), "details.latitude"),
    ("CreateProperty", dict(details=details(latitude="19", longitude="east")), "details.longitude"),
    ("CreateProperty", dict(), "details.property_type"),
    ("CreateBranchContact", dict(branch_id="{branch}", contact_id="{contact}", role=""), "role"),
    ("CreateBranchContact", dict(branch_id="{branch}", contact_id="{contact}", role="r" * 101), "role"),
    ("CreateBranchContact", dict(branch_id="b", contact_id="{contact}", role="manager"), "branch_id"),
    ("CreateBranchContact", dict(branch_id="{branch}", contact_id="", role="manager"), "contact_id"),
    ("CreateBank", dict(code="SBI", name="X", idempotency_key="k" * 201), "idempotency_key"),
]


async def test_bad_input_is_invalid_argument_naming_the_field_and_saves_nothing(ops):
    async with ops() as h:
        made = await Made(h, h.token()).all(code="ZZB", ifsc="ZZBB0000001")
        refs = {"{bank}": made.bank.id, "{branch}": made.branch.id, "{contact}": made.contact.id}
        before = await h.sql("SELECT count(*) AS n FROM masterdata_audit")
        for method, fields, field in BAD_INPUT:
            fields = {k: refs.get(v, v) if isinstance(v, str) else v for k, v in fields.items()}
            detail = await h.fails(method, getattr(pb, method + "Request")(**fields))
            assert detail.code == grpc.StatusCode.INVALID_ARGUMENT, (method, fields, detail)
            assert field in [v.field for v in detail.violations], (method, fields, detail)
        assert await h.sql("SELECT count(*) AS n FROM masterdata_audit") == before


async def test_unknown_and_other_tenants_references_are_not_found_naming_the_field(ops):
    async with ops() as h:
        made = await Made(h, h.token()).all()
        other_tenant = h.token(tenant=str(uuid.uuid4()))
        # the other firm's own org, branch and contact: unknown to this tenant
        theirs = await Made(h, other_tenant).all()
        cases = [
            (
                "CreateBankBranch",
                pb.CreateBankBranchRequest(
                    bank_id=str(uuid.uuid4()), name="B", ifsc="ABCD0123456", city="Mumbai", state="MH"
                ),
                "bank_id",
            ),
            (
                "CreateBankBranch",
                pb.CreateBankBranchRequest(
                    bank_id=theirs.bank.id, name="B", ifsc="ABCD0123456", city="Mumbai", state="MH"
                ),
                "bank_id",
            ),
            (
                "CreateContact",
                pb.CreateContactRequest(name="R", phone="9876543210", client_org_id=theirs.org.id),
                "client_org_id",
            ),
            (
                "CreateContact",
                pb.CreateContactRequest(name="R", email="r@example.com", client_org_id=str(uuid.uuid4())),
                "client_org_id",
            ),
            (
                "CreateBranchContact",
                pb.CreateBranchContactRequest(branch_id=theirs.branch.id, contact_id=made.contact.id, role="m"),
                "branch_id",
            ),
            (
                "CreateBranchContact",
                pb.CreateBranchContactRequest(branch_id=made.branch.id, contact_id=theirs.contact.id, role="m"),
                "contact_id",
            ),
            (
                "CreateBranchContact",
                pb.CreateBranchContactRequest(branch_id=made.branch.id, contact_id=str(uuid.uuid4()), role="m"),
                "contact_id",
            ),
        ]
        for method, request, field in cases:
            detail = await h.fails(method, request)
            assert detail.code == grpc.StatusCode.NOT_FOUND, (method, request, detail)
            assert field_of(detail) == field and detail.metadata["field"] == field


async def test_capabilities_are_checked_in_ops(ops):
    async with ops() as h:
        made = await Made(h, h.token()).all()
        nothing, reader, writer = h.token(()), h.token(READ), h.token(WRITER)
        partner = await h.call(
            "CreateChannel",
            pb.CreateChannelRequest(
                name="Partner", channel_type=pb.CHANNEL_TYPE_AGENT, commission_mode=pb.COMMISSION_MODE_FLAT
            ),
        )
        portal = h.portal(partner.channel.id)
        creates = [
            ("CreateBank", pb.CreateBankRequest(code="NEW", name="New Bank")),
            (
                "CreateBankBranch",
                pb.CreateBankBranchRequest(bank_id=made.bank.id, name="B", ifsc="ABCD0123456", city="Pune", state="MH"),
            ),
            ("CreateClientOrg", pb.CreateClientOrgRequest(name="Org")),
            ("CreateContact", pb.CreateContactRequest(name="R", phone="9876543210")),
            ("CreateProperty", pb.CreatePropertyRequest(details=details())),
            (
                "CreateBranchContact",
                pb.CreateBranchContactRequest(branch_id=made.branch.id, contact_id=made.contact.id, role="x"),
            ),
        ]
        lists = [
            "ListBanks",
            "ListBankBranches",
            "ListClientOrgs",
            "ListContacts",
            "ListProperties",
            "ListBranchContacts",
        ]
        for token in (nothing, reader, portal):
            for method, request in creates:
                assert (await h.fails(method, request, token)).code == grpc.StatusCode.PERMISSION_DENIED, method
        for token in (nothing, portal):
            for method in lists:
                detail = await h.fails(method, getattr(pb, method + "Request")(), token)
                assert detail.code == grpc.StatusCode.PERMISSION_DENIED, method
        for token in (nothing, reader, writer, portal):
            detail = await h.fails("VerifyMasterData", pb.VerifyMasterDataRequest(kind="bank", id=made.bank.id), token)
            assert detail.code == grpc.StatusCode.PERMISSION_DENIED
        detail = await h.fails("ListBanks", pb.ListBanksRequest(), "not-a-token")
        assert detail.code == grpc.StatusCode.UNAUTHENTICATED
        # nothing was made by the refused calls
        assert len((await h.call("ListBanks", pb.ListBanksRequest(), reader)).banks) == 1


async def test_another_tenant_sees_and_verifies_nothing(ops):
    async with ops() as h:
        made = await Made(h, h.token(WRITER)).all()
        other = h.token(tenant=str(uuid.uuid4()))
        for method in (
            "ListBanks",
            "ListBankBranches",
            "ListClientOrgs",
            "ListContacts",
            "ListProperties",
            "ListBranchContacts",
        ):
            resp = await h.call(method, getattr(pb, method + "Request")(), other)
            assert not any(getattr(resp, f.name) for f in resp.DESCRIPTOR.fields if f.name != "page"), method
        for kind, record_id in made.ids().items():
            detail = await h.fails("VerifyMasterData", pb.VerifyMasterDataRequest(kind=kind, id=record_id), other)
            assert detail.code == grpc.StatusCode.NOT_FOUND, kind
        # still unverified for its own tenant
        assert all(
            r.verification == UNVERIFIED
            for r in [b.record for b in (await h.call("ListBanks", pb.ListBanksRequest())).banks]
        )
        # a service names the tenant it acts for
        service = h.service_token(("masterdata.read",), name="repogen")
        banks = await h.call("ListBanks", pb.ListBanksRequest(), service, metadata=(("x-tenant-id", h.tenant),))
        assert [b.id for b in banks.banks] == [made.bank.id]


async def test_creates_replay_by_idempotency_key(ops):
    async with ops() as h:
        key = str(uuid.uuid4())
        request = pb.CreateBankRequest(code="AXIS", name="Axis Bank", idempotency_key=key)
        first = await h.call("CreateBank", request)
        again = await h.call("CreateBank", request)
        assert again == first
        # the key may come in metadata instead of the field
        plain = pb.CreateBankRequest(code="AXIS", name="Axis Bank")
        assert await h.call("CreateBank", plain, metadata=(("idempotency-key", key),)) == first
        assert len((await h.call("ListBanks", pb.ListBanksRequest())).banks) == 1

        detail = await h.fails("CreateBank", pb.CreateBankRequest(code="AXIS", name="Axis", idempotency_key=key))
        assert (detail.code, detail.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
        assert [v.field for v in detail.violations] == ["name"]

        # a failure is recorded with its key and replayed as it was
        branch = pb.CreateBankBranchRequest(
            bank_id=first.bank.id,
            name="B",
            ifsc="UTIB0000001",
            city="Pune",
            state="MH",
            idempotency_key=str(uuid.uuid4()),
        )
        made = await h.call("CreateBankBranch", branch)
        assert await h.call("CreateBankBranch", branch) == made
        dup_key = str(uuid.uuid4())
        dup = pb.CreateBankBranchRequest(
            bank_id=first.bank.id, name="C", ifsc="UTIB0000001", city="Pune", state="MH", idempotency_key=dup_key
        )
        assert (await h.fails("CreateBankBranch", dup)).reason == "IFSC_TAKEN"
        replayed = await h.fails("CreateBankBranch", dup)
        assert (replayed.code, replayed.reason, field_of(replayed)) == (
            grpc.StatusCode.ALREADY_EXISTS,
            "IFSC_TAKEN",
            "ifsc",
        )
        recorded = await h.sql("SELECT error->>'reason' AS reason FROM idempotency_keys WHERE key = :k", {"k": dup_key})
        assert [r.reason for r in recorded] == ["IFSC_TAKEN"]
        for kind_request in (
            ("CreateContact", pb.CreateContactRequest(name="R", phone="9876543210", idempotency_key=key + "c")),
            ("CreateProperty", pb.CreatePropertyRequest(details=details(), idempotency_key=key + "p")),
            ("CreateClientOrg", pb.CreateClientOrgRequest(name="Org", idempotency_key=key + "o")),
        ):
            method, req = kind_request
            assert await h.call(method, req) == await h.call(method, req)
        assert len((await h.call("ListContacts", pb.ListContactsRequest())).contacts) == 1
        assert len((await h.call("ListProperties", pb.ListPropertiesRequest())).properties) == 1
