"""Master data: banks, bank branches, client orgs, contacts, properties and branch contacts.

Pure rules: what a valid record is (each check names the field as the request names it),
which verification state a new record starts in, the kinds VerifyMasterData knows, and the
shapes the store hands back. Indian formats (IFSC, PIN, state, phone) live in `places`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from zenops_kit import india
from zenops_kit.errors import AlreadyExists, FieldViolation, InvalidArgument, NotFound
from zenops_kit.fields import invalid, is_uuid, optional_uuid, parse_uuid, text
from zenops_kit.paging import decode_cursor

from . import places

UNVERIFIED = "UNVERIFIED"
VERIFIED = "VERIFIED"
VERIFICATIONS = (UNVERIFIED, VERIFIED)
APPROVE = "masterdata.approve"

# VerifyMasterData's `kind`: canonical name → table. Also accepted: the plural and
# hyphenated spellings the HTTP routes use (banks, client-orgs, ...).
KINDS: dict[str, str] = {
    "bank": "banks",
    "bank_branch": "bank_branches",
    "client_org": "client_orgs",
    "contact": "contacts",
    "property": "properties",
    "branch_contact": "branch_contacts",
}
_KIND_ALIASES = {
    **{k: k for k in KINDS},
    **{t: k for k, t in KINDS.items()},
    "branch": "bank_branch",
    "branches": "bank_branch",
}

ORG_TYPES = ("bank", "corporate", "individual", "builder", "government", "other")
_BANK_CODE = re.compile(r"[A-Z0-9]{2,20}")
# 2-digit state code, PAN (5 letters, 4 digits, 1 letter), entity number, 'Z', check character.
_GSTIN = re.compile(r"[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]")

MAX_NAME = 200
MAX_CITY = 100
MAX_ADDRESS = 500
MAX_DESIGNATION = 100
MAX_ROLE = 100
MAX_QUERY = 100


# -- shapes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """Who made and who verified a record (RecordInfo)."""

    verification: str
    created_by: str
    verified_by: str
    verified_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class NewBank:
    code: str
    name: str


@dataclass(frozen=True)
class Bank(NewBank):
    id: str
    record: Record


@dataclass(frozen=True)
class NewBranch:
    bank_id: str
    name: str
    ifsc: str
    city: str
    state: str
    address: str


@dataclass(frozen=True)
class Branch(NewBranch):
    id: str
    record: Record


@dataclass(frozen=True)
class NewClientOrg:
    name: str
    org_type: str
    gstin: str
    city: str
    state: str


@dataclass(frozen=True)
class ClientOrg(NewClientOrg):
    id: str
    record: Record


@dataclass(frozen=True)
class NewContact:
    name: str
    phone: str
    email: str
    client_org_id: str | None
    designation: str


@dataclass(frozen=True)
class Contact(NewContact):
    id: str
    record: Record


@dataclass(frozen=True)
class Property:
    id: str
    details: places.PropertyDetails
    record: Record


@dataclass(frozen=True)
class NewBranchContact:
    branch_id: str
    contact_id: str
    role: str


@dataclass(frozen=True)
class BranchContact(NewBranchContact):
    id: str
    record: Record


@dataclass(frozen=True)
class Verified:
    """VerifyMasterData's answer: the record's state after the call."""

    kind: str
    id: str
    record: Record


# -- rules -----------------------------------------------------------------------------------


def initial_verification(capabilities) -> str:
    """A record made by an approver is verified at once; anyone else's waits for one."""
    return VERIFIED if APPROVE in capabilities else UNVERIFIED


def check_kind(value: str) -> str:
    """VerifyMasterData's `kind`, canonical (bank, bank_branch, client_org, ...)."""
    name = (value or "").strip().lower().replace("-", "_")
    if not name:
        raise invalid("kind", "is required")
    if name not in _KIND_ALIASES:
        raise invalid("kind", "must be one of " + ", ".join(KINDS))
    return _KIND_ALIASES[name]


def check_bank_code(value: str, field: str = "code") -> str:
    value = (value or "").strip().upper()
    if not value:
        raise invalid(field, "is required")
    if not _BANK_CODE.fullmatch(value):
        raise invalid(field, "must be 2 to 20 letters or digits (e.g. SBI, HDFC)")
    return value


def check_org_type(value: str, field: str = "org_type") -> str:
    value = (value or "").strip().lower()
    if not value:
        return "other"
    if value not in ORG_TYPES:
        raise invalid(field, "must be one of " + ", ".join(ORG_TYPES))
    return value


def check_gstin(value: str, field: str = "gstin") -> str:
    """'' = none; otherwise a 15-character GSTIN (upper-cased)."""
    value = (value or "").strip().upper()
    if value and not _GSTIN.fullmatch(value):
        raise invalid(field, "must be a 15-character GSTIN (e.g. 27AAPFU0939F1ZV)")
    return value


def new_bank(code: str, name: str) -> NewBank:
    return NewBank(code=check_bank_code(code), name=text(name, "name", max_length=MAX_NAME))


def new_branch(*, bank_id: str, name: str, ifsc: str, city: str, state: str, address: str) -> NewBranch:
    return NewBranch(
        bank_id=parse_uuid(bank_id, "bank_id"),
        name=text(name, "name", max_length=MAX_NAME),
        ifsc=places.ifsc(ifsc, "ifsc"),
        city=text(city, "city", max_length=MAX_CITY),
        state=india.state(state, "state"),
        address=text(address, "address", max_length=MAX_ADDRESS, required=False),
    )


def new_client_org(*, name: str, org_type: str, gstin: str, city: str, state: str) -> NewClientOrg:
    return NewClientOrg(
        name=text(name, "name", max_length=MAX_NAME),
        org_type=check_org_type(org_type),
        gstin=check_gstin(gstin),
        city=text(city, "city", max_length=MAX_CITY, required=False),
        state=india.state(state, "state", required=False),
    )


def new_contact(*, name: str, phone: str, email: str, client_org_id: str, designation: str) -> NewContact:
    contact = NewContact(
        name=text(name, "name", max_length=MAX_NAME),
        phone=places.phone(phone, "phone"),
        email=places.email(email, "email"),
        client_org_id=optional_uuid(client_org_id, "client_org_id"),
        designation=text(designation, "designation", max_length=MAX_DESIGNATION, required=False),
    )
    if not contact.phone and not contact.email:
        description = "is required when no e-mail address is given"
        raise InvalidArgument(
            "a contact needs a phone number or an e-mail address",
            violations=[
                FieldViolation("phone", description),
                FieldViolation("email", "is required when no phone is given"),
            ],
        )
    return contact


def new_branch_contact(*, branch_id: str, contact_id: str, role: str) -> NewBranchContact:
    """The role is kept lower-case with single spaces (branch_manager, credit officer, ...)."""
    role = " ".join(text(role, "role", max_length=MAX_ROLE).split()).lower()
    return NewBranchContact(
        branch_id=parse_uuid(branch_id, "branch_id"), contact_id=parse_uuid(contact_id, "contact_id"), role=role
    )


# -- lists -----------------------------------------------------------------------------------


def query(value: str, field: str = "query") -> str:
    """A list's free-text filter ('' for none)."""
    return text(value, field, max_length=MAX_QUERY, required=False)


def like_pattern(value: str) -> str:
    """`value` as an ILIKE pattern matching it anywhere (its own % and _ taken literally)."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def cursor_position(cursor: str, list_name: str) -> tuple[datetime, str] | None:
    """(created_at, id) after which the page starts; None for the first page."""
    position = decode_cursor(cursor, list_name, 2)
    if position is None:
        return None
    try:
        at = datetime.fromisoformat(position[0])
    except ValueError:
        raise invalid("page.cursor", "is not a cursor returned by this list") from None
    if at.tzinfo is None or not is_uuid(position[1]):
        raise invalid("page.cursor", "is not a cursor returned by this list")
    return at, position[1].lower()


# -- errors ----------------------------------------------------------------------------------


def missing(kind_: str, id_: str, field: str) -> NotFound:
    """A referenced record that is not in the caller's tenant: NOT_FOUND naming the field."""
    return NotFound(
        f"{kind_.replace('_', ' ')} {id_} not found",
        reason=f"{kind_.upper()}_NOT_FOUND",
        violations=[FieldViolation(field, f"no such {kind_.replace('_', ' ')}")],
        metadata={"field": field, "id": id_},
    )


def taken(reason: str, field: str, description: str) -> AlreadyExists:
    return AlreadyExists(
        f"{field} {description}",
        reason=reason,
        violations=[FieldViolation(field, description)],
        metadata={"field": field},
    )
