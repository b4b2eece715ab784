"""RPCs of master data and channels: proto ↔ use cases (masterdata, channels), nothing else.

masterdata.read for lists and GetChannel, masterdata.write for creates and UpdateChannel,
masterdata.approve for VerifyMasterData (and, held by a creator, a record starts verified).
Creates run through `idempotent_as()` (key: the request's `idempotency_key`, else metadata).
"""

from __future__ import annotations

from zenops.common.v1 import common_pb2
from zenops.ops.v1 import ops_pb2 as pb
from zenops_kit import india
from zenops_kit.fields import invalid, optional_uuid, parse_uuid
from zenops_kit.idempotency import idempotent_as

from .. import channels, masterdata
from ..billing_accounts import billing_accounts_for
from ..domain import channels as channel_rules
from ..domain import masterdata as rules
from ..domain import places
from ..domain.channels import Channel
from ..domain.masterdata import Bank, Branch, BranchContact, ClientOrg, Contact, Property, Record
from .caller import caller, idempotency_key, trace_id
from .translate import (
    CHANNEL_TYPE_OF,
    CHANNEL_TYPE_PB,
    COMMISSION_MODE_OF,
    COMMISSION_MODE_PB,
    VERIFICATION_OF,
    VERIFICATION_PB,
    ts,
)

READ, WRITE, APPROVE = "masterdata.read", "masterdata.write", rules.APPROVE


# -- proto ↔ domain ----------------------------------------------------------------------------


def record_pb(r: Record) -> pb.RecordInfo:
    info = pb.RecordInfo(
        verification=VERIFICATION_PB[r.verification], created_by=r.created_by, verified_by=r.verified_by
    )
    ts(info.verified_at, r.verified_at)
    ts(info.created_at, r.created_at)
    ts(info.updated_at, r.updated_at)
    return info


def bank_pb(b: Bank) -> pb.Bank:
    return pb.Bank(id=b.id, code=b.code, name=b.name, record=record_pb(b.record))


def branch_pb(b: Branch) -> pb.BankBranch:
    return pb.BankBranch(
        id=b.id,
        bank_id=b.bank_id,
        name=b.name,
        ifsc=b.ifsc,
        city=b.city,
        state=b.state,
        address=b.address,
        record=record_pb(b.record),
    )


def client_org_pb(o: ClientOrg) -> pb.ClientOrg:
    return pb.ClientOrg(
        id=o.id, name=o.name, org_type=o.org_type, gstin=o.gstin, city=o.city, state=o.state, record=record_pb(o.record)
    )


def contact_pb(c: Contact) -> pb.Contact:
    return pb.Contact(
        id=c.id,
        name=c.name,
        phone=c.phone,
        email=c.email,
        client_org_id=c.client_org_id or "",
        designation=c.designation,
        record=record_pb(c.record),
    )


def details_pb(d: places.PropertyDetails) -> pb.PropertyDetails:
    return pb.PropertyDetails(
        address_line1=d.address_line1,
        address_line2=d.address_line2,
        locality=d.locality,
        city=d.city,
        state=d.state,
        pin_code=d.pin_code,
        property_type=d.property_type,
        latitude="" if d.latitude is None else str(d.latitude),
        longitude="" if d.longitude is None else str(d.longitude),
    )


def property_pb(p: Property) -> pb.Property:
    return pb.Property(id=p.id, details=details_pb(p.details), record=record_pb(p.record))


def branch_contact_pb(b: BranchContact) -> pb.BranchContact:
    return pb.BranchContact(
        id=b.id, branch_id=b.branch_id, contact_id=b.contact_id, role=b.role, record=record_pb(b.record)
    )


def channel_pb(c: Channel) -> pb.Channel:
    channel = pb.Channel(
        id=c.id,
        name=c.name,
        channel_type=CHANNEL_TYPE_PB[c.channel_type],
        commission_mode=COMMISSION_MODE_PB[c.commission_mode],
        commission_value=c.commission_value,
        is_active=c.is_active,
        billing_account_id=c.billing_account_id or "",
        default_credits=c.default_credits,
        portal_user_ids=list(c.portal_user_ids),
        created_by=c.created_by,
    )
    ts(channel.created_at, c.created_at)
    ts(channel.updated_at, c.updated_at)
    return channel


def _enum_name(value: int, names: dict[int, str]) -> str:
    """The stored name of an enum value; '' when unset, the number when unknown (refused later)."""
    return names.get(value, "" if value == 0 else str(value))


def _verification(value: int) -> str | None:
    if value == 0:
        return None
    if value not in VERIFICATION_OF:
        raise invalid("verification", "must be unverified, verified or unset")
    return VERIFICATION_OF[value]


def _page_info(cursor: str) -> common_pb2.PageInfo:
    return common_pb2.PageInfo(next_cursor=cursor)


class MasterDataRpcs:
    """Mixed into OpsServicer (self.engine, self.runtime)."""

    async def _create(self, who, context, request, operation: str, response_type, create):
        """`create(conn)` → the response message, once per idempotency key."""
        key = idempotency_key(request.idempotency_key, context)
        return await idempotent_as(
            self.engine, who, key, operation, request, run=create, decode=response_type.FromString
        )

    # -- master data: creates -------------------------------------------------------------------

    async def CreateBank(self, request, context):
        who = await caller(self.engine, context, WRITE)
        bank = rules.new_bank(request.code, request.name)

        async def create(conn):
            made = await masterdata.create_bank(conn, bank, caller=who, trace_id=trace_id())
            return pb.CreateBankResponse(bank=bank_pb(made))

        return await self._create(who, context, request, "CreateBank", pb.CreateBankResponse, create)

    async def CreateBankBranch(self, request, context):
        who = await caller(self.engine, context, WRITE)
        branch = rules.new_branch(
            bank_id=request.bank_id,
            name=request.name,
            ifsc=request.ifsc,
            city=request.city,
            state=request.state,
            address=request.address,
        )

        async def create(conn):
            made = await masterdata.create_branch(conn, branch, caller=who, trace_id=trace_id())
            return pb.CreateBankBranchResponse(branch=branch_pb(made))

        return await self._create(who, context, request, "CreateBankBranch", pb.CreateBankBranchResponse, create)

    async def CreateClientOrg(self, request, context):
        who = await caller(self.engine, context, WRITE)
        org = rules.new_client_org(
            name=request.name, org_type=request.org_type, gstin=request.gstin, city=request.city, state=request.state
        )

        async def create(conn):
            made = await masterdata.create_client_org(conn, org, caller=who, trace_id=trace_id())
            return pb.CreateClientOrgResponse(client_org=client_org_pb(made))

        return await self._create(who, context, request, "CreateClientOrg", pb.CreateClientOrgResponse, create)

    async def CreateContact(self, request, context):
        who = await caller(self.engine, context, WRITE)
        contact = rules.new_contact(
            name=request.name,
            phone=request.phone,
            email=request.email,
            client_org_id=request.client_org_id,
            designation=request.designation,
        )

        async def create(conn):
            made = await masterdata.create_contact(conn, contact, caller=who, trace_id=trace_id())
            return pb.CreateContactResponse(contact=contact_pb(made))

        return await self._create(who, context, request, "CreateContact", pb.CreateContactResponse, create)

    async def CreateProperty(self, request, context):
        who = await caller(self.engine, context, WRITE)
        details = places.property_details(request.details, "details")

        async def create(conn):
            made = await masterdata.create_property(conn, details, caller=who, trace_id=trace_id())
            return pb.CreatePropertyResponse(property=property_pb(made))

        return await self._create(who, context, request, "CreateProperty", pb.CreatePropertyResponse, create)

    async def CreateBranchContact(self, request, context):
        who = await caller(self.engine, context, WRITE)
        link = rules.new_branch_contact(branch_id=request.branch_id, contact_id=request.contact_id, role=request.role)

        async def create(conn):
            made = await masterdata.create_branch_contact(conn, link, caller=who, trace_id=trace_id())
            return pb.CreateBranchContactResponse(branch_contact=branch_contact_pb(made))

        return await self._create(who, context, request, "CreateBranchContact", pb.CreateBranchContactResponse, create)

    # -- master data: lists ---------------------------------------------------------------------

    async def ListBanks(self, request, context):
        who = await caller(self.engine, context, READ)
        found, cursor = await masterdata.list_banks(
            self.engine,
            who,
            limit=request.page.limit,
            cursor=request.page.cursor,
            verification=_verification(request.verification),
            query=rules.query(request.query),
        )
        return pb.ListBanksResponse(banks=[bank_pb(b) for b in found], page=_page_info(cursor))

    async def ListBankBranches(self, request, context):
        who = await caller(self.engine, context, READ)
        found, cursor = await masterdata.list_branches(
            self.engine,
            who,
            limit=request.page.limit,
            cursor=request.page.cursor,
            bank_id=optional_uuid(request.bank_id, "bank_id"),
            verification=_verification(request.verification),
            query=rules.query(request.query),
        )
        return pb.ListBankBranchesResponse(branches=[branch_pb(b) for b in found], page=_page_info(cursor))

    async def ListClientOrgs(self, request, context):
        who = await caller(self.engine, context, READ)
        found, cursor = await masterdata.list_client_orgs(
            self.engine,
            who,
            limit=request.page.limit,
            cursor=request.page.cursor,
            verification=_verification(request.verification),
            query=rules.query(request.query),
        )
        return pb.ListClientOrgsResponse(client_orgs=[client_org_pb(o) for o in found], page=_page_info(cursor))

    async def ListContacts(self, request, context):
        who = await caller(self.engine, context, READ)
        found, cursor = await masterdata.list_contacts(
            self.engine,
            who,
            limit=request.page.limit,
            cursor=request.page.cursor,
            client_org_id=optional_uuid(request.client_org_id, "client_org_id"),
            verification=_verification(request.verification),
            query=rules.query(request.query),
        )
        return pb.ListContactsResponse(contacts=[contact_pb(c) for c in found], page=_page_info(cursor))

    async def ListProperties(self, request, context):
        who = await caller(self.engine, context, READ)
        found, cursor = await masterdata.list_properties(
            self.engine,
            who,
            limit=request.page.limit,
            cursor=request.page.cursor,
            city=rules.query(request.city, "city"),
            state=india.state(request.state, "state", required=False),
            pin_code=places.pin_code(request.pin_code, "pin_code") if request.pin_code.strip() else "",
            verification=_verification(request.verification),
            query=rules.query(request.query),
        )
        return pb.ListPropertiesResponse(properties=[property_pb(p) for p in found], page=_page_info(cursor))

    async def ListBranchContacts(self, request, context):
        who = await caller(self.engine, context, READ)
        found, cursor = await masterdata.list_branch_contacts(
            self.engine,
            who,
            limit=request.page.limit,
            cursor=request.page.cursor,
            branch_id=optional_uuid(request.branch_id, "branch_id"),
            contact_id=optional_uuid(request.contact_id, "contact_id"),
        )
        return pb.ListBranchContactsResponse(
            branch_contacts=[branch_contact_pb(b) for b in found], page=_page_info(cursor)
        )

    async def VerifyMasterData(self, request, context):
        who = await caller(self.engine, context, APPROVE)
        kind = rules.check_kind(request.kind)
        verified = await masterdata.verify(
            self.engine, who, kind=kind, record_id=parse_uuid(request.id, "id"), trace_id=trace_id()
        )
        return pb.VerifyMasterDataResponse(kind=verified.kind, id=verified.id, record=record_pb(verified.record))

    # -- channels -------------------------------------------------------------------------------

    async def CreateChannel(self, request, context):
        who = await caller(self.engine, context, WRITE)
        values = channel_rules.new_channel(
            name=request.name,
            channel_type=_enum_name(request.channel_type, CHANNEL_TYPE_OF),
            commission_mode=_enum_name(request.commission_mode, COMMISSION_MODE_OF),
            commission_value=request.commission_value,
            billing_account_id=request.billing_account_id,
            default_credits=request.default_credits,
            portal_user_ids=list(request.portal_user_ids),
        )
        accounts = billing_accounts_for(self.runtime)

        async def create(conn):
            made = await channels.create(conn, values, caller=who, accounts=accounts, trace_id=trace_id())
            return pb.CreateChannelResponse(channel=channel_pb(made))

        return await self._create(who, context, request, "CreateChannel", pb.CreateChannelResponse, create)

    async def GetChannel(self, request, context):
        who = await caller(self.engine, context, READ)
        channel = await channels.get(self.engine, who, parse_uuid(request.id, "id"))
        return pb.GetChannelResponse(channel=channel_pb(channel))

    async def ListChannels(self, request, context):
        who = await caller(self.engine, context, READ)
        kind = _enum_name(request.channel_type, CHANNEL_TYPE_OF)
        found, cursor = await channels.list_page(
            self.engine,
            who,
            limit=request.page.limit,
            cursor=request.page.cursor,
            channel_type=channel_rules.check_channel_type(kind) if kind else None,
            active=channel_rules.activity(request.activity),
            query=rules.query(request.query),
        )
        return pb.ListChannelsResponse(channels=[channel_pb(c) for c in found], page=_page_info(cursor))

    async def UpdateChannel(self, request, context):
        who = await caller(self.engine, context, WRITE)
        channel_id = parse_uuid(request.id, "id")
        paths = channel_rules.update_mask(list(request.update_mask.paths))
        given = request.channel
        values = channel_rules.proposed(
            paths,
            {
                "name": given.name,
                "channel_type": _enum_name(given.channel_type, CHANNEL_TYPE_OF),
                "commission_mode": _enum_name(given.commission_mode, COMMISSION_MODE_OF),
                "commission_value": given.commission_value,
                "is_active": given.is_active,
                "billing_account_id": given.billing_account_id,
                "default_credits": given.default_credits,
                "portal_user_ids": list(given.portal_user_ids),
            },
        )
        channel = await channels.update(
            self.engine, who, channel_id, values, accounts=billing_accounts_for(self.runtime), trace_id=trace_id()
        )
        return pb.UpdateChannelResponse(channel=channel_pb(channel))
