"""Who is calling and in which tenant (and, for a portal user, which channel): read once per
RPC from the verified token, before any use case runs.

- staff (aud web/studio): the token's tenant;
- portal users (aud portal): a token of the external tenant with a `channel_id` claim; the
  service acts in the tenant of the firm that owns the channel (`channel_tenant`, the
  service's own lookup) and scopes every read and write to that channel (in the queries and
  by RLS: zenops_kit.rls.scoped_tx);
- services (aud service): no tenant in the token; they name it in metadata `x-tenant-id`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass

from opentelemetry import propagate, trace

from .context import RequestContext, current_context
from .errors import PermissionDenied
from .fields import invalid, is_uuid
from .logging import request_id_var

# The gRPC servicer context of the call being served (set by the kit interceptor): its
# deadline bounds the deadlines of the onward calls it makes (onward_timeout).
servicer_context_var: ContextVar = ContextVar("zenops_servicer_context", default=None)
# What an onward call leaves of its caller's deadline, so that this service answers (e.g.
# UNAVAILABLE, saying which peer) before its own caller gives up on it.
ONWARD_MARGIN = 0.25

TENANT_METADATA = "x-tenant-id"
IDEMPOTENCY_METADATA = "idempotency-key"
MAX_KEY = 200


@dataclass(frozen=True)
class Caller:
    ctx: RequestContext
    tenant_id: str
    # Set for portal users: everything they see and do is this channel's.
    channel_id: str | None = None

    @property
    def actor(self) -> str:
        """Who acts, as rows record it: the user id, or "service:<name>"."""
        return self.ctx.user_id or self.ctx.subject or ""

    @property
    def is_portal(self) -> bool:
        return self.channel_id is not None

    def require(self, *capabilities: str) -> None:
        self.ctx.require(*capabilities)

    def can(self, capability: str) -> bool:
        return capability in self.ctx.capabilities


def metadata(context) -> dict[str, str]:
    return {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


async def resolve_caller(
    context, capabilities: tuple[str, ...], *, channel_tenant: Callable[[str], Awaitable[str | None]]
) -> Caller:
    """The verified caller holding every capability named, with the tenant it acts in;
    `channel_tenant(channel_id)` is the tenant that owns a portal user's channel (None:
    unknown to this service)."""
    ctx = current_context()
    ctx.require(*capabilities)
    if ctx.audience == "portal":
        channel = ctx.channel_id or ""
        if not is_uuid(channel):
            raise PermissionDenied("a portal token must name its channel", reason="CHANNEL_REQUIRED")
        tenant = await channel_tenant(channel.lower())
        if tenant is None:
            raise PermissionDenied("the token's channel is not known to this service", reason="CHANNEL_UNKNOWN")
        return Caller(ctx, tenant, channel.lower())
    if ctx.tenant_id:
        return Caller(ctx, ctx.tenant_id)
    if ctx.is_service:
        tenant = metadata(context).get(TENANT_METADATA, "")
        if not is_uuid(tenant):
            raise invalid(
                TENANT_METADATA,
                "a service token must name the tenant (a UUID) in this metadata",
                reason="TENANT_REQUIRED",
            )
        return Caller(ctx, tenant.lower())
    raise PermissionDenied("this token names no tenant", reason="TENANT_REQUIRED")


def idempotency_key(request_key: str, context) -> str:
    """The request's `idempotency_key` field, else metadata `idempotency-key` ('' for none)."""
    field, key = "idempotency_key", request_key
    if not key:
        field, key = IDEMPOTENCY_METADATA, metadata(context).get(IDEMPOTENCY_METADATA, "")
    if len(key) > MAX_KEY:
        raise invalid(field, f"must be at most {MAX_KEY} characters")
    if key and not all(33 <= ord(c) <= 126 for c in key):
        raise invalid(field, "must be visible ASCII characters")
    return key


def call_metadata() -> list[tuple[str, str]]:
    """This call's W3C trace context (sampled or not) and request id, as gRPC metadata for an
    onward call. Channels carry no tracing interceptor (an intercepted grpc.aio call costs
    ~70 µs of client CPU and an extra task), so the trace goes on here."""
    md: list[tuple[str, str]] = []
    if trace.get_current_span().get_span_context().is_valid:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        md.extend(carrier.items())
    request_id = request_id_var.get()
    if request_id:
        md.append(("x-request-id", request_id))
    return md


def onward_timeout(own: float) -> float:
    """The deadline (seconds) of an onward call: the client's own `own`, cut to what the call
    being served has left less ONWARD_MARGIN (at least 10 ms: past that the onward call fails
    at once, as the caller has given up anyway)."""
    context = servicer_context_var.get()
    remaining = context.time_remaining() if context is not None else None
    if remaining is None:
        return own
    return max(min(own, remaining - ONWARD_MARGIN), 0.01)


def onward_metadata(token: str, tenant_id: str | None = None) -> tuple[tuple[str, str], ...]:
    """gRPC metadata of a service's call to another service: the trace and request id
    (`call_metadata`), the bearer token and the tenant it acts in (`x-tenant-id`, for a
    service token)."""
    md = call_metadata()
    md.append(("authorization", f"Bearer {token}"))
    if tenant_id:
        md.append((TENANT_METADATA, tenant_id))
    return tuple(md)


def trace_id() -> str:
    span = trace.get_current_span().get_span_context()
    return format(span.trace_id, "032x") if span.is_valid else (current_context().request_id or "")


def ref_state_tenant(request_tenant_id: str, context) -> str:
    """The tenant a GetBillingRefState call asks about (billing's reconciliation): a service
    names it (the request's field, else metadata x-tenant-id); a user with billing.reconcile
    asks about its own tenant only."""
    ctx = current_context()
    if ctx.is_service:
        ctx.require()
        tenant = request_tenant_id or metadata(context).get(TENANT_METADATA, "")
    else:
        ctx.require("billing.reconcile")
        tenant = (ctx.tenant_id or "").lower()
        if request_tenant_id and request_tenant_id.lower() != tenant:
            raise PermissionDenied("a user asks about its own tenant only", reason="TENANT_MISMATCH")
    if not is_uuid(tenant):
        raise invalid("tenant_id", "must be a UUID" if tenant else "is required")
    return tenant.lower()
