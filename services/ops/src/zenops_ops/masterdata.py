"""Master data use cases: create (in the caller's transaction, which `idempotent_as()` opens),
list (cursor pages, newest first), verify.

A record starts VERIFIED when its creator holds masterdata.approve and UNVERIFIED otherwise;
verifying a verified record changes nothing and answers it as it stands. Every create and
verification writes an audit row (masterdata_audit) in the same statement.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops_kit.fields import not_found
from zenops_kit.paging import encode_cursor, page_limit
from zenops_kit.rls import scoped_tx

from .api.caller import Caller
from .domain import masterdata as rules
from .domain.masterdata import (
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
    Verified,
)
from .domain.places import PropertyDetails
from .store import masterdata as store
from .store.masterdata import Filters, Table


def _common(caller: Caller, trace_id: str) -> dict:
    return {
        "tenant_id": caller.tenant_id,
        "actor": caller.actor,
        "trace_id": trace_id,
        "verification": rules.initial_verification(caller.ctx.capabilities),
    }


async def create_bank(conn: AsyncConnection, bank: NewBank, *, caller: Caller, trace_id: str = "") -> Bank:
    return await store.insert_bank(conn, bank, **_common(caller, trace_id))


async def create_branch(conn: AsyncConnection, branch: NewBranch, *, caller: Caller, trace_id: str = "") -> Branch:
    return await store.insert_branch(conn, branch, **_common(caller, trace_id))


async def create_client_org(
    conn: AsyncConnection, org: NewClientOrg, *, caller: Caller, trace_id: str = ""
) -> ClientOrg:
    return await store.insert_client_org(conn, org, **_common(caller, trace_id))


async def create_contact(conn: AsyncConnection, contact: NewContact, *, caller: Caller, trace_id: str = "") -> Contact:
    return await store.insert_contact(conn, contact, **_common(caller, trace_id))


async def create_property(
    conn: AsyncConnection, details: PropertyDetails, *, caller: Caller, trace_id: str = ""
) -> Property:
    return await store.insert_property(conn, details, **_common(caller, trace_id))


async def create_branch_contact(
    conn: AsyncConnection, link: NewBranchContact, *, caller: Caller, trace_id: str = ""
) -> BranchContact:
    return await store.insert_branch_contact(conn, link, **_common(caller, trace_id))


async def _page(
    engine: AsyncEngine,
    caller: Caller,
    table: Table,
    filters: Filters,
    *,
    limit: int,
    cursor: str,
    verification: str | None = None,
    query: str = "",
) -> tuple[list, str]:
    limit = page_limit(limit)
    after = rules.cursor_position(cursor, table.name)
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        rows = await store.page(
            conn, table, filters, verification=verification, query=query, after=after, limit=limit + 1
        )
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    next_cursor = encode_cursor(table.name, [last.record.created_at.isoformat(), last.id]) if last else ""
    return rows, next_cursor


async def list_banks(
    engine: AsyncEngine, caller: Caller, *, limit: int, cursor: str, verification: str | None, query: str
) -> tuple[list[Bank], str]:
    return await _page(
        engine, caller, store.BANKS, Filters.new(), limit=limit, cursor=cursor, verification=verification, query=query
    )


async def list_branches(
    engine: AsyncEngine,
    caller: Caller,
    *,
    limit: int,
    cursor: str,
    bank_id: str | None,
    verification: str | None,
    query: str,
) -> tuple[list[Branch], str]:
    filters = Filters.new()
    if bank_id:
        filters.add("bank_id = CAST(:bank_id AS uuid)", bank_id=bank_id)
    return await _page(
        engine, caller, store.BRANCHES, filters, limit=limit, cursor=cursor, verification=verification, query=query
    )


async def list_client_orgs(
    engine: AsyncEngine, caller: Caller, *, limit: int, cursor: str, verification: str | None, query: str
) -> tuple[list[ClientOrg], str]:
    return await _page(
        engine,
        caller,
        store.CLIENT_ORGS,
        Filters.new(),
        limit=limit,
        cursor=cursor,
        verification=verification,
        query=query,
    )


async def list_contacts(
    engine: AsyncEngine,
    caller: Caller,
    *,
    limit: int,
    cursor: str,
    client_org_id: str | None,
    verification: str | None,
    query: str,
) -> tuple[list[Contact], str]:
    filters = Filters.new()
    if client_org_id:
        filters.add("client_org_id = CAST(:client_org_id AS uuid)", client_org_id=client_org_id)
    return await _page(
        engine, caller, store.CONTACTS, filters, limit=limit, cursor=cursor, verification=verification, query=query
    )


async def list_properties(
    engine: AsyncEngine,
    caller: Caller,
    *,
    limit: int,
    cursor: str,
    city: str,
    state: str,
    pin_code: str,
    verification: str | None,
    query: str,
) -> tuple[list[Property], str]:
    filters = Filters.new()
    if city:
        filters.add("lower(city) = lower(:city)", city=city)
    if state:
        filters.add("state = :state", state=state)
    if pin_code:
        filters.add("pin_code = :pin_code", pin_code=pin_code)
    return await _page(
        engine, caller, store.PROPERTIES, filters, limit=limit, cursor=cursor, verification=verification, query=query
    )


async def list_branch_contacts(
    engine: AsyncEngine, caller: Caller, *, limit: int, cursor: str, branch_id: str | None, contact_id: str | None
) -> tuple[list[BranchContact], str]:
    filters = Filters.new()
    if branch_id:
        filters.add("branch_id = CAST(:branch_id AS uuid)", branch_id=branch_id)
    if contact_id:
        filters.add("contact_id = CAST(:contact_id AS uuid)", contact_id=contact_id)
    return await _page(engine, caller, store.BRANCH_CONTACTS, filters, limit=limit, cursor=cursor)


async def verify(engine: AsyncEngine, caller: Caller, *, kind: str, record_id: str, trace_id: str = "") -> Verified:
    """`kind` canonical (domain.masterdata.kind), `record_id` a UUID."""
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        record = await store.verify(conn, store.TABLES[kind], record_id, actor=caller.actor, trace_id=trace_id)
    if record is None:
        raise not_found(kind, record_id)
    return Verified(kind=kind, id=record_id, record=record)
