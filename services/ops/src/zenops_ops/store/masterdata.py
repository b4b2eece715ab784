"""banks, bank_branches, client_orgs, contacts, properties, branch_contacts and their audit
trail (masterdata_audit).

One table description per kind drives the three statements every kind shares: insert
(the record and its audit row in one statement), newest-first pages, verify. A create is
one round trip; constraint violations become named errors here (a taken code or IFSC →
ALREADY_EXISTS, a reference outside the tenant → NOT_FOUND: the foreign keys are
tenant-qualified, see migration 0002), never a 500.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from zenops_kit.errors import DomainError

from ..domain import masterdata as rules
from ..domain.masterdata import (
    Bank,
    Branch,
    BranchContact,
    ClientOrg,
    Contact,
    NewBank,
    NewBranch,
    NewBranchContact,
    NewClientOrg,
    NewContact,
    Property,
    Record,
)
from ..domain.places import PropertyDetails
from . import violated_constraint

_RECORD = "verification, created_by, COALESCE(verified_by, '') AS verified_by, verified_at, created_at, updated_at"


def _record(r) -> Record:
    return Record(
        verification=r.verification,
        created_by=r.created_by,
        verified_by=r.verified_by,
        verified_at=r.verified_at,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _details(r) -> PropertyDetails:
    return PropertyDetails(
        address_line1=r.address_line1,
        address_line2=r.address_line2,
        locality=r.locality,
        city=r.city,
        state=r.state,
        pin_code=r.pin_code,
        property_type=r.property_type,
        latitude=r.latitude,
        longitude=r.longitude,
    )


@dataclass(frozen=True)
class Table:
    kind: str  # as VerifyMasterData names it
    name: str
    columns: str  # the select list of the kind's own columns
    search: tuple[str, ...]  # what a list's `query` matches (ILIKE)
    make: Callable  # row → domain record


BANKS = Table(
    "bank",
    "banks",
    "code, name",
    ("code", "name"),
    lambda r: Bank(id=r.id, code=r.code, name=r.name, record=_record(r)),
)
BRANCHES = Table(
    "bank_branch",
    "bank_branches",
    "bank_id::text AS bank_id, name, ifsc, city, state, address",
    ("name", "ifsc", "city"),
    lambda r: Branch(
        id=r.id,
        bank_id=r.bank_id,
        name=r.name,
        ifsc=r.ifsc,
        city=r.city,
        state=r.state,
        address=r.address,
        record=_record(r),
    ),
)
CLIENT_ORGS = Table(
    "client_org",
    "client_orgs",
    "name, org_type, gstin, city, state",
    ("name", "gstin", "city"),
    lambda r: ClientOrg(
        id=r.id, name=r.name, org_type=r.org_type, gstin=r.gstin, city=r.city, state=r.state, record=_record(r)
    ),
)
CONTACTS = Table(
    "contact",
    "contacts",
    "name, phone, email, client_org_id::text AS client_org_id, designation",
    ("name", "phone", "email", "designation"),
    lambda r: Contact(
        id=r.id,
        name=r.name,
        phone=r.phone,
        email=r.email,
        client_org_id=r.client_org_id,
        designation=r.designation,
        record=_record(r),
    ),
)
PROPERTIES = Table(
    "property",
    "properties",
    "address_line1, address_line2, locality, city, state, pin_code, property_type, latitude, longitude",
    ("address_line1", "address_line2", "locality", "city", "pin_code"),
    lambda r: Property(id=r.id, details=_details(r), record=_record(r)),
)
BRANCH_CONTACTS = Table(
    "branch_contact",
    "branch_contacts",
    "branch_id::text AS branch_id, contact_id::text AS contact_id, role",
    (),
    lambda r: BranchContact(id=r.id, branch_id=r.branch_id, contact_id=r.contact_id, role=r.role, record=_record(r)),
)
TABLES = {t.kind: t for t in (BANKS, BRANCHES, CLIENT_ORGS, CONTACTS, PROPERTIES, BRANCH_CONTACTS)}

_AUDIT = (
    "INSERT INTO masterdata_audit (id, tenant_id, resource_type, resource_id, action, actor, detail, trace_id) "
    "SELECT CAST(:audit_id AS uuid), tenant_id, :kind, id, :action, :actor, CAST(:detail AS jsonb), :trace "
    "FROM {source}"
)


def _violation(exc: IntegrityError, errors: dict[str, Callable[[], DomainError]]) -> BaseException:
    make = errors.get(violated_constraint(exc) or "")
    return make() if make is not None else exc


async def _insert(
    conn: AsyncConnection,
    table: Table,
    *,
    tenant_id: str,
    actor: str,
    verification: str,
    values: dict[str, tuple[str, object]],
    trace_id: str,
    errors: dict[str, Callable[[], DomainError]],
):
    """`values`: column → (SQL expression of its parameter, value); parameters are named as
    their columns."""
    columns = ", ".join(values)
    expressions = ", ".join(expr for expr, _ in values.values())
    statement = text(f"""
        WITH r AS (
            INSERT INTO {table.name} (id, tenant_id, {columns}, verification, created_by, verified_by, verified_at)
            VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), {expressions}, :verification, :actor, :verified_by,
                    CASE WHEN CAST(:verified AS boolean) THEN now() END)
            RETURNING *
        ), audit AS ({_AUDIT.format(source="r")})
        SELECT id::text AS id, {table.columns}, {_RECORD} FROM r""")
    verified = verification == rules.VERIFIED
    params = {name: value for name, (_, value) in values.items()}
    detail = json.dumps({**params, "verification": verification}, default=str)
    params.update(
        id=str(uuid.uuid4()),
        tid=tenant_id,
        verification=verification,
        actor=actor,
        verified_by=actor if verified else None,
        verified=verified,
        audit_id=str(uuid.uuid4()),
        kind=table.kind,
        action="created",
        trace=trace_id,
        detail=detail,
    )
    try:
        row = (await conn.execute(statement, params)).one()
    except IntegrityError as exc:
        raise _violation(exc, errors) from None
    return table.make(row)


async def insert_bank(conn: AsyncConnection, bank: NewBank, **common) -> Bank:
    return await _insert(
        conn,
        BANKS,
        values={"code": (":code", bank.code), "name": (":name", bank.name)},
        errors={"banks_code_unique": lambda: rules.taken("BANK_CODE_TAKEN", "code", "is already used by another bank")},
        **common,
    )


async def insert_branch(conn: AsyncConnection, branch: NewBranch, **common) -> Branch:
    return await _insert(
        conn,
        BRANCHES,
        values={
            "bank_id": ("CAST(:bank_id AS uuid)", branch.bank_id),
            "name": (":name", branch.name),
            "ifsc": (":ifsc", branch.ifsc),
            "city": (":city", branch.city),
            "state": (":state", branch.state),
            "address": (":address", branch.address),
        },
        errors={
            "bank_branches_ifsc_unique": lambda: rules.taken("IFSC_TAKEN", "ifsc", "is already used by another branch"),
            "bank_branches_bank_fk": lambda: rules.missing("bank", branch.bank_id, "bank_id"),
        },
        **common,
    )


async def insert_client_org(conn: AsyncConnection, org: NewClientOrg, **common) -> ClientOrg:
    return await _insert(
        conn,
        CLIENT_ORGS,
        values={
            "name": (":name", org.name),
            "org_type": (":org_type", org.org_type),
            "gstin": (":gstin", org.gstin),
            "city": (":city", org.city),
            "state": (":state", org.state),
        },
        errors={},
        **common,
    )


async def insert_contact(conn: AsyncConnection, contact: NewContact, **common) -> Contact:
    return await _insert(
        conn,
        CONTACTS,
        values={
            "name": (":name", contact.name),
            "phone": (":phone", contact.phone),
            "email": (":email", contact.email),
            "client_org_id": ("CAST(:client_org_id AS uuid)", contact.client_org_id),
            "designation": (":designation", contact.designation),
        },
        errors={
            "contacts_client_org_fk": lambda: rules.missing("client_org", contact.client_org_id or "", "client_org_id")
        },
        **common,
    )


async def insert_property(conn: AsyncConnection, details: PropertyDetails, **common) -> Property:
    names = ("address_line1", "address_line2", "locality", "city", "state", "pin_code", "property_type")
    values: dict[str, tuple[str, object]] = {n: (f":{n}", getattr(details, n)) for n in names}
    values["latitude"] = ("CAST(:latitude AS numeric)", details.latitude)
    values["longitude"] = ("CAST(:longitude AS numeric)", details.longitude)
    return await _insert(conn, PROPERTIES, values=values, errors={}, **common)


async def insert_branch_contact(conn: AsyncConnection, link: NewBranchContact, **common) -> BranchContact:
    return await _insert(
        conn,
        BRANCH_CONTACTS,
        values={
            "branch_id": ("CAST(:branch_id AS uuid)", link.branch_id),
            "contact_id": ("CAST(:contact_id AS uuid)", link.contact_id),
            "role": (":role", link.role),
        },
        errors={
            "branch_contacts_unique": lambda: rules.taken(
                "BRANCH_CONTACT_EXISTS", "role", "this contact already has this role at this branch"
            ),
            "branch_contacts_branch_fk": lambda: rules.missing("branch", link.branch_id, "branch_id"),
            "branch_contacts_contact_fk": lambda: rules.missing("contact", link.contact_id, "contact_id"),
        },
        **common,
    )


@dataclass
class Filters:
    """A list's WHERE clauses (ANDed) and their parameters."""

    clauses: list[str]
    params: dict

    @classmethod
    def new(cls) -> Filters:
        return cls([], {})

    def add(self, clause: str, **params) -> Filters:
        self.clauses.append(clause)
        self.params.update(params)
        return self


async def page(
    conn: AsyncConnection,
    table: Table,
    filters: Filters,
    *,
    verification: str | None,
    query: str,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list:
    """Newest first; `after` = (created_at, id) of the previous page's last record."""
    if verification:
        filters.add("verification = :verification", verification=verification)
    if query and table.search:
        filters.add("(" + " OR ".join(f"{c} ILIKE :q" for c in table.search) + ")", q=rules.like_pattern(query))
    if after is not None:
        filters.add("(created_at, id) < (:after_at, CAST(:after_id AS uuid))", after_at=after[0], after_id=after[1])
    where = ("WHERE " + " AND ".join(filters.clauses)) if filters.clauses else ""
    rows = await conn.execute(
        text(
            f"SELECT id::text AS id, {table.columns}, {_RECORD} FROM {table.name} {where} "
            "ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        {**filters.params, "limit": limit},
    )
    return [table.make(r) for r in rows]


async def verify(conn: AsyncConnection, table: Table, record_id: str, *, actor: str, trace_id: str) -> Record | None:
    """The record verified by `actor` (and audited) if it was not yet; as it stands if it was;
    None when the tenant has no such record."""
    row = (
        await conn.execute(
            text(f"""
        WITH u AS (
            UPDATE {table.name} SET verification = 'VERIFIED', verified_by = :actor, verified_at = now(),
                                    updated_at = now()
            WHERE id = CAST(:id AS uuid) AND verification = 'UNVERIFIED'
            RETURNING *
        ), audit AS ({_AUDIT.format(source="u")})
        SELECT {_RECORD} FROM u"""),
            {
                "id": record_id,
                "actor": actor,
                "audit_id": str(uuid.uuid4()),
                "kind": table.kind,
                "action": "verified",
                "detail": "{}",
                "trace": trace_id,
            },
        )
    ).first()
    if row is None:
        row = (
            await conn.execute(
                text(f"SELECT {_RECORD} FROM {table.name} WHERE id = CAST(:id AS uuid)"), {"id": record_id}
            )
        ).first()
    return _record(row) if row is not None else None
