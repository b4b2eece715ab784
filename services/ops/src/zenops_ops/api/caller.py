"""Who is calling ops (zenops_kit.caller): a portal user's channel is resolved to the firm
that owns it through ops' channel directory."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from zenops_kit.caller import TENANT_METADATA, Caller, idempotency_key, metadata, resolve_caller, trace_id

from ..store import channels as channel_store

__all__ = ["TENANT_METADATA", "Caller", "caller", "idempotency_key", "metadata", "trace_id"]


async def caller(engine: AsyncEngine, context, *capabilities: str) -> Caller:
    """The verified caller holding every capability named, with the tenant it acts in."""
    return await resolve_caller(
        context, capabilities, channel_tenant=lambda channel: channel_store.owner_tenant(engine, channel)
    )
