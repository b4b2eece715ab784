"""Billing accounts: create, read, list, update (policy and status changes audited with a
reason), and the status read other systems gate their flows on."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops_kit.db import tenant_tx
from zenops_kit.paging import decode_cursor, encode_cursor, page_limit

from .domain import accounts as rules
from .domain.accounts import Account
from .domain.wallet import account_not_found, invalid, is_uuid, parse_uuid
from .store import accounts as store
from .store import invoices as invoice_store
from .store.sql import raw_tenant_tx


async def create(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    actor: str,
    external_key: str,
    display_name: str,
    policy: str,
    gstin: str,
    billing_address: str,
    trace_id: str = "",
) -> Account:
    """Validated values in (see domain.accounts); the account with an empty wallet out."""
    account = await store.insert(
        conn,
        account_id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        external_key=external_key,
        display_name=display_name,
        policy=policy,
        gstin=gstin,
        billing_address=billing_address,
    )
    await store.append_event(
        conn,
        tenant_id=tenant_id,
        account_id=account.id,
        kind=rules.ACCOUNT_CREATED,
        actor=actor,
        detail={"policy": policy, "external_key": external_key, "display_name": display_name},
        trace_id=trace_id,
    )
    return account


async def update(
    engine: AsyncEngine,
    *,
    tenant_id: str,
    account_id: str,
    changes: dict[str, str],
    reason: str,
    actor: str,
    trace_id: str = "",
) -> Account:
    """`changes`: validated new values (domain.accounts.clean_update). Only values that differ
    are written; a policy or status change needs a reason and is recorded with it."""
    async with tenant_tx(engine, tenant_id) as conn:
        return await _update(
            conn,
            tenant_id=tenant_id,
            account_id=account_id,
            changes=changes,
            reason=reason,
            actor=actor,
            trace_id=trace_id,
        )


async def _update(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    account_id: str,
    changes: dict[str, str],
    reason: str,
    actor: str,
    trace_id: str,
) -> Account:
    account = await store.get(conn, account_id, for_update=True)
    if account is None:
        raise account_not_found(account_id)
    diff = {k: v for k, v in changes.items() if getattr(account, k) != v}
    if any(k in diff for k in rules.REASON_REQUIRED) and not reason:
        raise invalid("reason", "is required to change the policy or status (it is recorded)")
    if not diff:
        return account
    await store.update(conn, account_id, diff, field_prefix="account.")
    for name, kind in (("policy", rules.POLICY_CHANGED), ("status", rules.STATUS_CHANGED)):
        if name in diff:
            await store.append_event(
                conn,
                tenant_id=tenant_id,
                account_id=account_id,
                kind=kind,
                actor=actor,
                reason=reason,
                detail={"before": getattr(account, name), "after": diff[name]},
                trace_id=trace_id,
            )
    others = {k: v for k, v in diff.items() if k not in rules.REASON_REQUIRED}
    if others:
        await store.append_event(
            conn,
            tenant_id=tenant_id,
            account_id=account_id,
            kind=rules.ACCOUNT_UPDATED,
            actor=actor,
            reason=reason,
            detail={"fields": sorted(others), "before": {k: getattr(account, k) for k in others}, "after": others},
            trace_id=trace_id,
        )
    return await store.get(conn, account_id)


async def get(engine: AsyncEngine, tenant_id: str, account_id: str, field: str = "id") -> Account:
    account_id = parse_uuid(account_id, field)
    # asyncpg directly: BEGIN and the tenant in one round trip, no SQLAlchemy around the one read
    async with raw_tenant_tx(engine, tenant_id) as conn:
        account = await store.get(conn, account_id)
    if account is None:
        raise account_not_found(account_id)
    return account


async def status(
    engine: AsyncEngine, tenant_id: str, *, account_id: str | None, external_key: str | None
) -> tuple[Account, int, int]:
    """(account, open reservations, unpaid invoices: issued and not settled) by id or external key."""
    if account_id is not None:
        account_id = parse_uuid(account_id, "account_id")
    elif external_key is not None:
        if not external_key:
            raise invalid("external_key", "is required")
    else:
        raise invalid("account", "give account_id or external_key")
    async with tenant_tx(engine, tenant_id) as conn:
        if account_id is not None:
            account = await store.get(conn, account_id)
        else:
            account = await store.by_external_key(conn, external_key)
        if account is None:
            raise account_not_found(account_id or "")
        open_reservations = await store.open_reservations(conn, account.id)
        unpaid = await invoice_store.unpaid_count(conn, account.id)
    return account, open_reservations, unpaid


async def list_page(
    engine: AsyncEngine, tenant_id: str, *, limit: int, cursor: str, status: str | None, policy: str | None
) -> tuple[list[Account], str]:
    limit = page_limit(limit)
    after = decode_cursor(cursor, "accounts", 2)
    if after is not None:
        check_cursor_position(after[0], after[1])
    async with tenant_tx(engine, tenant_id) as conn:
        rows = await store.page(conn, status=status, policy=policy, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor("accounts", [rows[-1].created_at.isoformat(), rows[-1].id]) if more else ""
    return rows, next_cursor


def check_cursor_position(at: str, key: str, *, key_is_uuid: bool = True) -> None:
    """A cursor that decodes but does not hold a time and an id is not one of ours."""
    try:
        datetime.fromisoformat(at)
    except ValueError:
        raise invalid("page.cursor", "is not a cursor returned by this list") from None
    if key_is_uuid and not is_uuid(key):
        raise invalid("page.cursor", "is not a cursor returned by this list")
