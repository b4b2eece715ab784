"""Channel use cases: create, read, list, update.

A billing account a channel names is checked with billing first (billing_accounts): an
account billing does not know is refused naming the field, and billing being away fails
the call as UNAVAILABLE with nothing saved.

CreateChannel asks billing inside the idempotent transaction, so the key's record is the
true outcome (a refused account is replayed as refused; an UNAVAILABLE is not recorded and
a retry asks again). That holds one pooled connection for at most `billing_call_timeout`;
channels are created rarely, by staff. UpdateChannel has no key: billing is asked before
the transaction, and the row is then locked, re-read and changed.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops_kit.fields import not_found
from zenops_kit.paging import encode_cursor, page_limit
from zenops_kit.rls import scoped_tx

from .api.caller import Caller
from .billing_accounts import BillingAccounts
from .domain import channels as rules
from .domain.channels import Channel, ChannelValues
from .domain.masterdata import cursor_position
from .store import channels as store

LIST_NAME = "channels"


async def create(
    conn: AsyncConnection, values: ChannelValues, *, caller: Caller, accounts: BillingAccounts, trace_id: str = ""
) -> Channel:
    """In the caller's transaction: the channel with its directory and audit rows."""
    if values.billing_account_id:
        await accounts.check(
            tenant_id=caller.tenant_id, account_id=values.billing_account_id, field="billing_account_id"
        )
    return await store.insert(conn, values, tenant_id=caller.tenant_id, actor=caller.actor, trace_id=trace_id)


async def get(engine: AsyncEngine, caller: Caller, channel_id: str) -> Channel:
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        channel = await store.get(conn, channel_id)
    if channel is None:
        raise not_found("channel", channel_id)
    return channel


async def update(
    engine: AsyncEngine, caller: Caller, channel_id: str, values: dict, *, accounts: BillingAccounts, trace_id: str = ""
) -> Channel:
    """`values`: the masked fields' new values (domain.channels.proposed). Only what differs
    is written (version and updated_at move only then)."""
    current = await get(engine, caller, channel_id)
    account = rules.changes(current, values).get("billing_account_id")
    if account:
        await accounts.check(tenant_id=caller.tenant_id, account_id=account, field="channel.billing_account_id")
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        locked = await store.get(conn, channel_id, for_update=True)
        if locked is None:
            raise not_found("channel", channel_id)
        diff = rules.changes(locked, values)
        if not diff:
            return locked
        return await store.update(conn, locked, diff, actor=caller.actor, trace_id=trace_id)


async def list_page(
    engine: AsyncEngine,
    caller: Caller,
    *,
    limit: int,
    cursor: str,
    channel_type: str | None,
    active: bool | None,
    query: str,
) -> tuple[list[Channel], str]:
    limit = page_limit(limit)
    after = cursor_position(cursor, LIST_NAME)
    async with scoped_tx(engine, caller.tenant_id, caller.channel_id) as conn:
        rows = await store.page(
            conn, channel_type=channel_type, active=active, query=query, after=after, limit=limit + 1
        )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(LIST_NAME, [rows[-1].created_at.isoformat(), rows[-1].id]) if more else ""
    return rows, next_cursor
