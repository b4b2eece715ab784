"""This process's own `aud=service` token, for calls to other services.

Fetched from identity with the client secret, cached, and renewed once 80% of its
lifetime has passed; concurrent callers share one fetch. If a renewal fails while the
cached token is still valid, the cached token keeps serving (the next call retries).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import grpc

from .. import tls
from ..errors import DomainError, Unauthenticated, Unavailable, parse_rpc_error

log = logging.getLogger("zenops.auth.service_tokens")

Fetch = Callable[[], Awaitable[tuple[str, int]]]
RENEW_AT = 0.8  # fraction of the lifetime after which a new token is fetched
# A token this close to expiry is not handed out even when renewal failed (clock skew, transit).
_EXPIRY_MARGIN = 5.0
_RETRY_INTERVAL = 1.0


class ServiceTokenProvider:
    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._token: str | None = None
        self._renew_at = 0.0  # monotonic
        self._expires_at = 0.0  # monotonic
        self._retry_at = 0.0  # monotonic: after a failed renewal, no new fetch before this
        self._inflight: asyncio.Task | None = None
        self._on_close: Callable[[], Awaitable[None]] | None = None
        self.fetches = 0  # fetches started (observability and tests)

    @classmethod
    def from_identity(
        cls, address: str, client_id: str, client_secret: str, *, timeout: float = 5.0
    ) -> ServiceTokenProvider:
        """IssueServiceToken on identity at `address`, over this provider's own channel."""
        from zenops.identity.v1 import identity_pb2, identity_pb2_grpc

        channel: grpc.aio.Channel | None = None

        async def fetch() -> tuple[str, int]:
            nonlocal channel
            if channel is None:
                channel = tls.channel(address)
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            request = identity_pb2.IssueServiceTokenRequest(client_id=client_id, client_secret=client_secret)
            try:
                resp = await stub.IssueServiceToken(request, timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                detail = parse_rpc_error(exc)
                if detail.code in (
                    grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.PERMISSION_DENIED,
                    grpc.StatusCode.INVALID_ARGUMENT,
                ):
                    raise Unauthenticated(
                        f"identity refused the service credentials of {client_id!r}: {detail.reason}",
                        reason="SERVICE_CREDENTIALS_REJECTED",
                    ) from None
                raise Unavailable(
                    f"identity at {address} did not issue a service token ({detail.code.name})",
                    retry_after=detail.retry_after,
                ) from None
            return resp.access_token, resp.expires_in

        async def close() -> None:
            if channel is not None:
                await channel.close()

        provider = cls(fetch)
        provider._on_close = close
        return provider

    async def token(self) -> str:
        now = time.monotonic()
        if self._token is not None and (now < self._renew_at or (now < self._retry_at and self._usable(now))):
            return self._token
        if self._inflight is None:
            self.fetches += 1
            self._inflight = asyncio.create_task(self._do_fetch(), name="service-token-fetch")
        try:
            # shield: a caller that gives up must not cancel the fetch others wait for
            return await asyncio.shield(self._inflight)
        except DomainError:
            now = time.monotonic()
            self._retry_at = now + _RETRY_INTERVAL  # renewal failed: do not hammer identity
            if self._token is not None and self._usable(now):
                return self._token
            raise

    def _usable(self, now: float) -> bool:
        return now < self._expires_at - _EXPIRY_MARGIN

    async def _do_fetch(self) -> str:
        try:
            started = time.monotonic()
            try:
                token, expires_in = await self._fetch()
            except DomainError:
                raise
            except Exception as exc:  # noqa: BLE001 - callers see one kind of failure
                log.warning("cannot fetch a service token", extra={"error": repr(exc)[:200]})
                raise Unavailable("identity did not issue a service token; retry later") from exc
            if not token or expires_in <= 0:
                raise Unavailable("identity issued an unusable service token")
            self._token = token
            self._renew_at = started + RENEW_AT * expires_in
            self._expires_at = started + expires_in
            return token
        finally:
            self._inflight = None

    async def close(self) -> None:
        task, self._inflight = self._inflight, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._on_close is not None:
            await self._on_close()
