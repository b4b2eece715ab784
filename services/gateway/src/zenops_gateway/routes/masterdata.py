"""Master-data routes (banks, bank branches, client orgs, contacts, properties, branch
contacts, verification) and channels.

Capabilities (masterdata.read / masterdata.write; verify: masterdata.approve) are checked by
ops; its PERMISSION_DENIED becomes 403 in errors.py. Records created without
masterdata.approve start `unverified`. Ops validates IFSC, PIN code, phone, e-mail and state
codes and names the field (400); a duplicate (same bank code, same IFSC) is 409.

Master-data records have no single-record route (ops has no Get RPC for them), so their
201s carry no `Location`; channels do.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Path, Query, Response
from google.protobuf.field_mask_pb2 import FieldMask

from zenops.ops.v1 import ops_pb2 as pb

from ..deps import CallerDep, OpsDep
from ..errors import problem_responses
from ..handler import LeanRoute
from ..models.common import Cursor, Limit, or_none
from ..models.masterdata import (
    MASTER_DATA_KINDS,
    Bank,
    BankList,
    Branch,
    BranchContact,
    BranchContactList,
    BranchList,
    Channel,
    ChannelList,
    ChannelPatch,
    ClientOrg,
    ClientOrgList,
    Contact,
    ContactList,
    CreateBankBody,
    CreateBranchBody,
    CreateBranchContactBody,
    CreateChannelBody,
    CreateClientOrgBody,
    CreateContactBody,
    MasterDataKind,
    Property,
    PropertyList,
    Verified,
)
from ..models.ops_common import ChannelType, PropertyBody, Search, StateCode, Verification, id_text, pb_enum
from .ops_common import CREATED, MERGE_PATCH, OptionalIdempotencyKey, ops_field_names, page, query_fields

router = APIRouter(prefix="/v1", tags=["master data"], route_class=LeanRoute)
channels_router = APIRouter(prefix="/v1", tags=["channels"], route_class=LeanRoute)

BankId = Annotated[UUID, Path(description="Bank id.")]
ChannelId = Annotated[UUID, Path(description="Channel id.")]
VerificationQuery = Annotated[Verification | None, Query(description="Only records in this verification state.")]
SearchQuery = Annotated[Search | None, Query(description="Case-insensitive text search.")]
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 503)
READ_ERRORS = problem_responses(401, 403, 503)


def verification_pb(value: str | None) -> int:
    return pb_enum(pb.Verification, value, "VERIFICATION_")


# -- banks and branches ----------------------------------------------------------------------------


@router.post(
    "/banks",
    status_code=201,
    response_model=Bank,
    summary="Create a bank (masterdata.write)",
    description="The code is upper-cased and unique per tenant (409 otherwise).",
    responses=WRITE_ERRORS,
)
async def create_bank(
    body: CreateBankBody, caller: CallerDep, ops: OpsDep, idempotency_key: OptionalIdempotencyKey = None
) -> Bank:
    with ops_field_names():
        resp = await ops.create_bank(
            pb.CreateBankRequest(code=body.code, name=body.name, idempotency_key=idempotency_key or ""),
            token=caller.token,
        )
    return Bank.from_proto(resp.bank)


@router.get("/banks", response_model=BankList, summary="Banks (masterdata.read)", responses=READ_ERRORS)
async def list_banks(
    caller: CallerDep,
    ops: OpsDep,
    verification: VerificationQuery = None,
    q: SearchQuery = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> BankList:
    with ops_field_names(query_fields("verification", query="q")):
        resp = await ops.list_banks(
            pb.ListBanksRequest(page=page(limit, cursor), verification=verification_pb(verification), query=q or ""),
            token=caller.token,
        )
    return BankList(items=[Bank.from_proto(b) for b in resp.banks], next_cursor=or_none(resp.page.next_cursor))


@router.post(
    "/banks/{bank_id}/branches",
    status_code=201,
    response_model=Branch,
    summary="Create a branch of a bank (masterdata.write)",
    description="The IFSC (4 letters, `0`, 6 letters or digits) is unique per tenant (409 otherwise); "
    "`state` is an Indian state / union territory code.",
    responses=WRITE_ERRORS,
)
async def create_branch(
    bank_id: BankId,
    body: CreateBranchBody,
    caller: CallerDep,
    ops: OpsDep,
    idempotency_key: OptionalIdempotencyKey = None,
) -> Branch:
    with ops_field_names({"bank_id": "path.bank_id"}):
        resp = await ops.create_bank_branch(
            pb.CreateBankBranchRequest(
                bank_id=str(bank_id),
                name=body.name,
                ifsc=body.ifsc,
                city=body.city,
                state=body.state,
                address=body.address or "",
                idempotency_key=idempotency_key or "",
            ),
            token=caller.token,
        )
    return Branch.from_proto(resp.branch)


@router.get(
    "/banks/{bank_id}/branches",
    response_model=BranchList,
    summary="Branches of a bank (masterdata.read)",
    responses=problem_responses(401, 403, 404, 503),
)
async def list_branches(
    bank_id: BankId,
    caller: CallerDep,
    ops: OpsDep,
    verification: VerificationQuery = None,
    q: Annotated[Search | None, Query(description="Case-insensitive match on name, IFSC or city.")] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> BranchList:
    with ops_field_names({"bank_id": "path.bank_id", **query_fields("verification", query="q")}):
        resp = await ops.list_bank_branches(
            pb.ListBankBranchesRequest(
                page=page(limit, cursor),
                bank_id=str(bank_id),
                verification=verification_pb(verification),
                query=q or "",
            ),
            token=caller.token,
        )
    return BranchList(items=[Branch.from_proto(b) for b in resp.branches], next_cursor=or_none(resp.page.next_cursor))


# -- client orgs and contacts ----------------------------------------------------------------------


@router.post(
    "/client-orgs",
    status_code=201,
    response_model=ClientOrg,
    summary="Create a client organisation (masterdata.write)",
    responses=WRITE_ERRORS,
)
async def create_client_org(
    body: CreateClientOrgBody, caller: CallerDep, ops: OpsDep, idempotency_key: OptionalIdempotencyKey = None
) -> ClientOrg:
    with ops_field_names():
        resp = await ops.create_client_org(
            pb.CreateClientOrgRequest(
                name=body.name,
                org_type=body.org_type or "",
                gstin=body.gstin or "",
                city=body.city or "",
                state=body.state or "",
                idempotency_key=idempotency_key or "",
            ),
            token=caller.token,
        )
    return ClientOrg.from_proto(resp.client_org)


@router.get(
    "/client-orgs",
    response_model=ClientOrgList,
    summary="Client organisations (masterdata.read)",
    responses=READ_ERRORS,
)
async def list_client_orgs(
    caller: CallerDep,
    ops: OpsDep,
    verification: VerificationQuery = None,
    q: SearchQuery = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> ClientOrgList:
    with ops_field_names(query_fields("verification", query="q")):
        resp = await ops.list_client_orgs(
            pb.ListClientOrgsRequest(
                page=page(limit, cursor), verification=verification_pb(verification), query=q or ""
            ),
            token=caller.token,
        )
    return ClientOrgList(
        items=[ClientOrg.from_proto(o) for o in resp.client_orgs], next_cursor=or_none(resp.page.next_cursor)
    )


@router.post(
    "/contacts",
    status_code=201,
    response_model=Contact,
    summary="Create a contact (masterdata.write)",
    description="Needs a phone number (stored E.164; 10-digit Indian mobiles become +91…) or an e-mail "
    "address (stored lower-cased), or both.",
    responses=WRITE_ERRORS,
)
async def create_contact(
    body: CreateContactBody, caller: CallerDep, ops: OpsDep, idempotency_key: OptionalIdempotencyKey = None
) -> Contact:
    with ops_field_names():
        resp = await ops.create_contact(
            pb.CreateContactRequest(
                name=body.name,
                phone=body.phone or "",
                email=body.email or "",
                client_org_id=id_text(body.client_org_id),
                designation=body.designation or "",
                idempotency_key=idempotency_key or "",
            ),
            token=caller.token,
        )
    return Contact.from_proto(resp.contact)


@router.get("/contacts", response_model=ContactList, summary="Contacts (masterdata.read)", responses=READ_ERRORS)
async def list_contacts(
    caller: CallerDep,
    ops: OpsDep,
    verification: VerificationQuery = None,
    client_org_id: Annotated[UUID | None, Query(description="Only this organisation's contacts.")] = None,
    q: SearchQuery = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> ContactList:
    with ops_field_names(query_fields("verification", "client_org_id", query="q")):
        resp = await ops.list_contacts(
            pb.ListContactsRequest(
                page=page(limit, cursor),
                verification=verification_pb(verification),
                client_org_id=id_text(client_org_id),
                query=q or "",
            ),
            token=caller.token,
        )
    return ContactList(items=[Contact.from_proto(c) for c in resp.contacts], next_cursor=or_none(resp.page.next_cursor))


# -- properties and branch contacts ----------------------------------------------------------------


@router.post(
    "/properties",
    status_code=201,
    response_model=Property,
    summary="Create a property (masterdata.write)",
    description="`pin_code`: 6 digits, not starting with 0; `state`: an Indian state / union territory code; "
    "`latitude`/`longitude`: both or neither, JSON numbers or decimal strings.",
    responses=WRITE_ERRORS,
)
async def create_property(
    body: PropertyBody, caller: CallerDep, ops: OpsDep, idempotency_key: OptionalIdempotencyKey = None
) -> Property:
    with ops_field_names({"details": ""}):  # the body is the PropertyDetails message's fields
        resp = await ops.create_property(
            pb.CreatePropertyRequest(details=body.to_proto(), idempotency_key=idempotency_key or ""),
            token=caller.token,
        )
    return Property.from_proto(resp.property)


@router.get("/properties", response_model=PropertyList, summary="Properties (masterdata.read)", responses=READ_ERRORS)
async def list_properties(
    caller: CallerDep,
    ops: OpsDep,
    verification: VerificationQuery = None,
    city: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    state: Annotated[StateCode | None, Query()] = None,
    pin_code: Annotated[str | None, Query(min_length=6, max_length=6)] = None,
    q: SearchQuery = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> PropertyList:
    with ops_field_names(query_fields("verification", "city", "state", "pin_code", query="q")):
        resp = await ops.list_properties(
            pb.ListPropertiesRequest(
                page=page(limit, cursor),
                verification=verification_pb(verification),
                city=city or "",
                state=state or "",
                pin_code=pin_code or "",
                query=q or "",
            ),
            token=caller.token,
        )
    return PropertyList(
        items=[Property.from_proto(p) for p in resp.properties], next_cursor=or_none(resp.page.next_cursor)
    )


@router.post(
    "/branch-contacts",
    status_code=201,
    response_model=BranchContact,
    summary="Link a contact to a bank branch with a role (masterdata.write)",
    responses=WRITE_ERRORS,
)
async def create_branch_contact(
    body: CreateBranchContactBody, caller: CallerDep, ops: OpsDep, idempotency_key: OptionalIdempotencyKey = None
) -> BranchContact:
    with ops_field_names():
        resp = await ops.create_branch_contact(
            pb.CreateBranchContactRequest(
                branch_id=str(body.branch_id),
                contact_id=str(body.contact_id),
                role=body.role,
                idempotency_key=idempotency_key or "",
            ),
            token=caller.token,
        )
    return BranchContact.from_proto(resp.branch_contact)


@router.get(
    "/branch-contacts",
    response_model=BranchContactList,
    summary="Branch contacts (masterdata.read)",
    responses=READ_ERRORS,
)
async def list_branch_contacts(
    caller: CallerDep,
    ops: OpsDep,
    branch_id: Annotated[UUID | None, Query(description="Only this branch's contacts.")] = None,
    contact_id: Annotated[UUID | None, Query(description="Only this contact's branches.")] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> BranchContactList:
    with ops_field_names(query_fields("branch_id", "contact_id")):
        resp = await ops.list_branch_contacts(
            pb.ListBranchContactsRequest(
                page=page(limit, cursor), branch_id=id_text(branch_id), contact_id=id_text(contact_id)
            ),
            token=caller.token,
        )
    return BranchContactList(
        items=[BranchContact.from_proto(b) for b in resp.branch_contacts], next_cursor=or_none(resp.page.next_cursor)
    )


# -- verification ----------------------------------------------------------------------------------


@router.post(
    "/master-data/{kind}/{record_id}/verify",
    response_model=Verified,
    summary="Verify a master-data record (masterdata.approve)",
    description="Marks an `unverified` record `verified`, recording who and when; verifying a verified record "
    "changes nothing (naturally idempotent).",
    responses=problem_responses(401, 403, 404, 503),
)
async def verify(
    kind: Annotated[MasterDataKind, Path(description="The record's collection.")],
    record_id: Annotated[UUID, Path(description="The record's id.")],
    caller: CallerDep,
    ops: OpsDep,
) -> Verified:
    with ops_field_names({"kind": "path.kind", "id": "path.record_id"}):
        resp = await ops.verify_master_data(
            pb.VerifyMasterDataRequest(kind=MASTER_DATA_KINDS[kind], id=str(record_id)), token=caller.token
        )
    return Verified.from_proto(kind, resp)


# -- channels --------------------------------------------------------------------------------------


@channels_router.post(
    "/channels",
    status_code=201,
    response_model=Channel,
    summary="Create a channel partner (masterdata.write)",
    description="`billing_account_id` is checked with billing (404 / 400 when unknown). `Location` is the channel.",
    responses={**WRITE_ERRORS, **CREATED},
)
async def create_channel(
    body: CreateChannelBody,
    caller: CallerDep,
    ops: OpsDep,
    response: Response,
    idempotency_key: OptionalIdempotencyKey = None,
) -> Channel:
    with ops_field_names():
        resp = await ops.create_channel(body.to_proto(idempotency_key), token=caller.token)
    response.headers["location"] = f"/v1/channels/{resp.channel.id}"
    return Channel.from_proto(resp.channel)


@channels_router.get(
    "/channels", response_model=ChannelList, summary="Channel partners (masterdata.read)", responses=READ_ERRORS
)
async def list_channels(
    caller: CallerDep,
    ops: OpsDep,
    channel_type: Annotated[ChannelType | None, Query(description="Only channels of this type.")] = None,
    is_active: Annotated[bool | None, Query(description="Only active (true) or inactive (false) channels.")] = None,
    q: SearchQuery = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> ChannelList:
    activity = "" if is_active is None else ("active" if is_active else "inactive")
    with ops_field_names(query_fields("channel_type", activity="is_active", query="q")):
        resp = await ops.list_channels(
            pb.ListChannelsRequest(
                page=page(limit, cursor),
                channel_type=pb_enum(pb.ChannelType, channel_type, "CHANNEL_TYPE_"),
                activity=activity,
                query=q or "",
            ),
            token=caller.token,
        )
    return ChannelList(items=[Channel.from_proto(c) for c in resp.channels], next_cursor=or_none(resp.page.next_cursor))


@channels_router.get(
    "/channels/{channel_id}",
    response_model=Channel,
    summary="One channel partner (masterdata.read)",
    responses=problem_responses(401, 403, 404, 503),
)
async def get_channel(channel_id: ChannelId, caller: CallerDep, ops: OpsDep) -> Channel:
    with ops_field_names({"id": "path.channel_id"}):
        resp = await ops.get_channel(pb.GetChannelRequest(id=str(channel_id)), token=caller.token)
    return Channel.from_proto(resp.channel)


@channels_router.patch(
    "/channels/{channel_id}",
    response_model=Channel,
    summary="Change a channel partner (JSON merge patch; masterdata.write)",
    description="Members present are changed, absent ones kept (RFC 7396): `name`, `channel_type`, "
    "`commission_mode`, `commission_value`, `is_active`, `billing_account_id` (`null` unlinks), "
    "`default_credits`, `portal_user_ids` (`null` empties). `{}` changes nothing.",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def update_channel(
    channel_id: ChannelId,
    patch: Annotated[ChannelPatch, Body(media_type=MERGE_PATCH)],
    caller: CallerDep,
    ops: OpsDep,
) -> Channel:
    paths = patch.mask()
    with ops_field_names({"id": "path.channel_id", "channel": "", "update_mask": "body"}):
        if not paths:
            # Never an empty update_mask: by AIP-134 that would mean "replace every field".
            resp = await ops.get_channel(pb.GetChannelRequest(id=str(channel_id)), token=caller.token)
        else:
            resp = await ops.update_channel(
                pb.UpdateChannelRequest(
                    id=str(channel_id), channel=patch.to_proto(), update_mask=FieldMask(paths=paths)
                ),
                token=caller.token,
            )
    return Channel.from_proto(resp.channel)
