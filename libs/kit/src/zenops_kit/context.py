"""The per-request context (who is calling, for which tenant) every servicer reads.

The server interceptor fills it from gRPC metadata: `x-request-id`, and the bearer token
verified by the service's `TokenVerifier` (identity's JWKS verifier plugs in here).
Unverified claims are never trusted: a token that cannot be verified is rejected.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

from .errors import PermissionDenied, Unauthenticated


@dataclass(frozen=True)
class RequestContext:
    request_id: str | None = None
    tenant_id: str | None = None
    # `sub` of the token: a user id, or "service:<name>" for a service token.
    subject: str | None = None
    user_id: str | None = None
    audience: str | None = None
    session_id: str | None = None
    channel_id: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    capabilities: frozenset[str] = field(default_factory=frozenset)
    token_id: str | None = None  # `jti`
    expires_at: float | None = None  # `exp`, seconds since the epoch
    # The end user's address and user agent as the gateway saw them (audit only).
    client_ip: str | None = None
    user_agent: str | None = None
    # The caller's raw bearer token, forwarded on onward calls (never logged).
    token: str | None = field(default=None, repr=False)

    def for_call(
        self, request_id: str | None, client_ip: str | None, user_agent: str | None, token: str | None = None
    ) -> RequestContext:
        """This (verified, cached) context with one call's request id and client (and the
        raw token, where the caller keeps it: the gateway): a copy of the fields as they are,
        without `dataclasses.replace`'s per-field __init__ (the class validates nothing on
        construction)."""
        copy = object.__new__(RequestContext)
        copy.__dict__.update(self.__dict__, request_id=request_id, client_ip=client_ip, user_agent=user_agent)
        if token is not None:
            copy.__dict__["token"] = token
        return copy

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None or self.audience == "service"

    @property
    def is_service(self) -> bool:
        return self.audience == "service"

    def require(self, *capabilities: str) -> None:
        """Raise unless the caller holds every capability named."""
        if not self.authenticated:
            raise Unauthenticated("authentication required", reason="UNAUTHENTICATED")
        missing = [c for c in capabilities if c not in self.capabilities]
        if missing:
            raise PermissionDenied(
                "missing capability: " + ", ".join(missing),
                reason="MISSING_CAPABILITY",
                metadata={"missing": ",".join(missing)},
            )


ANONYMOUS = RequestContext()
_current: ContextVar[RequestContext] = ContextVar("zenops_request_context", default=ANONYMOUS)


def current_context() -> RequestContext:
    return _current.get()


def set_context(ctx: RequestContext):
    return _current.set(ctx)


def reset_context(token) -> None:
    _current.reset(token)


class TokenVerifier(Protocol):
    """Verifies a bearer token and returns the request context its claims grant
    (request_id, client_ip and user_agent are filled in by the interceptor); raises
    `Unauthenticated` with a TOKEN_* reason when the token is not acceptable."""

    async def verify(self, token: str, request_id: str | None) -> RequestContext: ...
