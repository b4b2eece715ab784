"""HTTP models of master data (banks, bank branches, client orgs, contacts, properties,
branch contacts, verification) and channels, with their conversions from zenops.ops.v1.

A record's RecordInfo is flattened into it (`verification`, `created_by`, `verified_by`,
`verified_at`, `created_at`, `updated_at`); a property's details likewise.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, field_validator

from zenops.ops.v1 import ops_pb2 as pb

from .ops_common import (
    MAX_CREDITS,
    ChannelType,
    City,
    CommissionMode,
    Email,
    Name,
    OrgType,
    Phone,
    PropertyDetails,
    RecordFields,
    StateCode,
    Strict,
    UserIds,
    enum_name,
    enum_value,
    id_text,
    ids,
    not_null,
    or_none,
    timestamp,
)

# URL kind (the collection's path segment) → the proto's record kind.
MASTER_DATA_KINDS: dict[str, str] = {
    "banks": "bank",
    "bank-branches": "bank_branch",
    "client-orgs": "client_org",
    "contacts": "contact",
    "properties": "property",
    "branch-contacts": "branch_contact",
}
MasterDataKind = Literal["banks", "bank-branches", "client-orgs", "contacts", "properties", "branch-contacts"]

# -- banks and branches ----------------------------------------------------------------------------


class Bank(RecordFields):
    id: str
    code: str = Field(description="Unique per tenant, upper case (e.g. `SBI`).")
    name: str

    @classmethod
    def from_proto(cls, b: pb.Bank) -> Bank:
        return cls(id=b.id, code=b.code, name=b.name, **cls.record(b.record))


class BankList(BaseModel):
    items: list[Bank]
    next_cursor: str | None = Field(description="Cursor of the next page; null on the last page.")


class CreateBankBody(Strict):
    code: Annotated[str, Field(min_length=1, max_length=20, description="2–20 letters or digits, e.g. `SBI`.")]
    name: Name


class Branch(RecordFields):
    id: str
    bank_id: str
    name: str
    ifsc: str = Field(description="4 letters, `0`, 6 letters or digits (e.g. `SBIN0001234`); unique per tenant.")
    city: str
    state: str
    address: str | None

    @classmethod
    def from_proto(cls, b: pb.BankBranch) -> Branch:
        return cls(
            id=b.id,
            bank_id=b.bank_id,
            name=b.name,
            ifsc=b.ifsc,
            city=b.city,
            state=b.state,
            address=or_none(b.address),
            **cls.record(b.record),
        )


class BranchList(BaseModel):
    items: list[Branch]
    next_cursor: str | None


class CreateBranchBody(Strict):
    name: Name
    ifsc: Annotated[str, Field(min_length=1, max_length=11, description="e.g. `SBIN0001234` (checked by ops).")]
    city: City
    state: StateCode
    address: Annotated[str, Field(max_length=500)] | None = None


# -- client orgs and contacts ----------------------------------------------------------------------


class ClientOrg(RecordFields):
    id: str
    name: str
    org_type: str
    gstin: str | None
    city: str | None
    state: str | None

    @classmethod
    def from_proto(cls, o: pb.ClientOrg) -> ClientOrg:
        return cls(
            id=o.id,
            name=o.name,
            org_type=o.org_type,
            gstin=or_none(o.gstin),
            city=or_none(o.city),
            state=or_none(o.state),
            **cls.record(o.record),
        )


class ClientOrgList(BaseModel):
    items: list[ClientOrg]
    next_cursor: str | None


class CreateClientOrgBody(Strict):
    name: Name
    org_type: OrgType | None = Field(None, description="Default `other`.")
    gstin: Annotated[str, Field(min_length=15, max_length=15)] | None = None
    city: Annotated[str, Field(max_length=100)] | None = None
    state: StateCode | None = None


class Contact(RecordFields):
    id: str
    name: str
    phone: str | None = Field(description="E.164, e.g. `+919812345678`.")
    email: str | None = Field(description="Lower-cased.")
    client_org_id: str | None
    designation: str | None

    @classmethod
    def from_proto(cls, c: pb.Contact) -> Contact:
        return cls(
            id=c.id,
            name=c.name,
            phone=or_none(c.phone),
            email=or_none(c.email),
            client_org_id=or_none(c.client_org_id),
            designation=or_none(c.designation),
            **cls.record(c.record),
        )


class ContactList(BaseModel):
    items: list[Contact]
    next_cursor: str | None


class CreateContactBody(Strict):
    """A phone number or an e-mail address (or both) is needed."""

    name: Name
    phone: Phone | None = None
    email: Email | None = None
    client_org_id: UUID | None = None
    designation: Annotated[str, Field(max_length=100)] | None = None


# -- properties and branch contacts ----------------------------------------------------------------


class Property(RecordFields, PropertyDetails):
    id: str

    @classmethod
    def from_proto(cls, p: pb.Property) -> Property:  # type: ignore[override]
        return cls(id=p.id, **PropertyDetails.fields(p.details), **cls.record(p.record))


class PropertyList(BaseModel):
    items: list[Property]
    next_cursor: str | None


class BranchContact(RecordFields):
    id: str
    branch_id: str
    contact_id: str
    role: str = Field(description="e.g. `branch_manager`, `credit_officer`.")

    @classmethod
    def from_proto(cls, b: pb.BranchContact) -> BranchContact:
        return cls(id=b.id, branch_id=b.branch_id, contact_id=b.contact_id, role=b.role, **cls.record(b.record))


class BranchContactList(BaseModel):
    items: list[BranchContact]
    next_cursor: str | None


class CreateBranchContactBody(Strict):
    branch_id: UUID
    contact_id: UUID
    role: Annotated[str, Field(min_length=1, max_length=100)]


# -- verification ----------------------------------------------------------------------------------


class Verified(RecordFields):
    kind: MasterDataKind = Field(description="As in the URL: `banks`, `bank-branches`, ….")
    id: str

    @classmethod
    def from_proto(cls, kind: str, r: pb.VerifyMasterDataResponse) -> Verified:
        return cls(kind=kind, id=r.id, **cls.record(r.record))


# -- channels --------------------------------------------------------------------------------------

CommissionValue = Annotated[
    int,
    Field(
        strict=True,
        ge=0,
        le=10**15,
        description="`percent`: basis points of the fee (250 = 2.5 %, at most 10000); `flat`: paise per assignment.",
    ),
]
DefaultCredits = Annotated[int, Field(strict=True, ge=0, le=MAX_CREDITS)]


class Channel(BaseModel):
    id: str
    name: str
    channel_type: ChannelType
    commission_mode: CommissionMode
    commission_value: int
    is_active: bool
    billing_account_id: str | None = Field(description="The billing account accepted requests are charged to.")
    default_credits: int = Field(description="Credits an accepted request costs when it names none.")
    portal_user_ids: list[str]
    created_by: str | None
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def from_proto(cls, c: pb.Channel) -> Channel:
        return cls(
            id=c.id,
            name=c.name,
            channel_type=enum_name(pb.ChannelType, c.channel_type, "CHANNEL_TYPE_"),
            commission_mode=enum_name(pb.CommissionMode, c.commission_mode, "COMMISSION_MODE_"),
            commission_value=c.commission_value,
            is_active=c.is_active,
            billing_account_id=or_none(c.billing_account_id),
            default_credits=c.default_credits,
            portal_user_ids=list(c.portal_user_ids),
            created_by=or_none(c.created_by),
            created_at=timestamp(c, "created_at"),
            updated_at=timestamp(c, "updated_at"),
        )


class ChannelList(BaseModel):
    items: list[Channel]
    next_cursor: str | None


class CreateChannelBody(Strict):
    name: Name
    channel_type: ChannelType
    commission_mode: CommissionMode
    commission_value: CommissionValue
    billing_account_id: UUID | None = Field(None, description="Checked with billing.")
    default_credits: DefaultCredits | None = Field(None, description="Default: ops' (1).")
    portal_user_ids: UserIds | None = None

    def to_proto(self, idempotency_key: str | None) -> pb.CreateChannelRequest:
        return pb.CreateChannelRequest(
            name=self.name,
            channel_type=enum_value(pb.ChannelType, self.channel_type, "CHANNEL_TYPE_"),
            commission_mode=enum_value(pb.CommissionMode, self.commission_mode, "COMMISSION_MODE_"),
            commission_value=self.commission_value,
            billing_account_id=id_text(self.billing_account_id),
            default_credits=self.default_credits or 0,
            portal_user_ids=ids(self.portal_user_ids),
            idempotency_key=idempotency_key or "",
        )


# Channel members a merge patch may change (UpdateChannelRequest's updatable fields).
CHANNEL_PATCHABLE = (
    "name",
    "channel_type",
    "commission_mode",
    "commission_value",
    "is_active",
    "billing_account_id",
    "default_credits",
    "portal_user_ids",
)


class ChannelPatch(Strict):
    """JSON merge patch (RFC 7396) of a channel: members present are changed, absent ones kept;
    `billing_account_id: null` unlinks the billing account, `portal_user_ids: null` empties
    the list."""

    name: Name | None = None
    channel_type: ChannelType | None = None
    commission_mode: CommissionMode | None = None
    commission_value: CommissionValue | None = None
    is_active: Annotated[bool, Field(strict=True)] | None = None
    billing_account_id: UUID | None = None
    default_credits: DefaultCredits | None = None
    portal_user_ids: UserIds | None = None

    @field_validator("name", "channel_type", "commission_mode", "commission_value", "is_active", "default_credits")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        return not_null(value)

    def mask(self) -> list[str]:
        return sorted(set(CHANNEL_PATCHABLE) & self.model_fields_set)

    def to_proto(self) -> pb.Channel:
        return pb.Channel(
            name=self.name or "",
            channel_type=enum_value(pb.ChannelType, self.channel_type, "CHANNEL_TYPE_") if self.channel_type else 0,
            commission_mode=(
                enum_value(pb.CommissionMode, self.commission_mode, "COMMISSION_MODE_") if self.commission_mode else 0
            ),
            commission_value=self.commission_value or 0,
            is_active=bool(self.is_active),
            billing_account_id=id_text(self.billing_account_id),
            default_credits=self.default_credits or 0,
            portal_user_ids=ids(self.portal_user_ids),
        )
