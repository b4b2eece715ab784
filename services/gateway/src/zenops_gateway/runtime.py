"""The gateway's process-wide state, created by `create_app` and filled by its lifespan."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from zenops_kit.auth import JwtVerifier, ServiceTokenProvider
from zenops_kit.errors import Unauthenticated, Unavailable
from zenops_kit.events.bus import EventBus

from .clients import HealthResult, Upstreams
from .settings import GatewaySettings

log = logging.getLogger("zenops.gateway")

SERVICE_TOKEN_UNAVAILABLE = "SERVICE_TOKEN_UNAVAILABLE"


@dataclass
class Runtime:
    settings: GatewaySettings
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    upstreams: Upstreams | None = None
    bus: EventBus | None = None
    # Verifies callers' access tokens against identity's JWKS and the revocations from NATS.
    verifier: JwtVerifier | None = None
    # The gateway's own `aud=service` token (for calls made on nobody's behalf, e.g. /v1/meta).
    service_tokens: ServiceTokenProvider | None = None
    # True between "clients created" and "shutdown begun" (GET /v1/readyz).
    ready: bool = False

    @property
    def build_time(self) -> datetime:
        s = self.settings.build_time
        built = datetime.fromisoformat(s) if s else self.started_at
        if built.tzinfo is None:
            built = built.replace(tzinfo=UTC)
        return built.astimezone(UTC)

    def require_upstreams(self) -> Upstreams:
        if self.upstreams is None:
            raise RuntimeError("the gateway has not started its clients")
        return self.upstreams

    def require_verifier(self) -> JwtVerifier:
        if self.verifier is None:
            raise Unavailable("the gateway is starting or shutting down", reason="NOT_READY")
        return self.verifier

    async def service_token(self) -> str:
        """The gateway's service token (cached and renewed by the kit's provider). Failures
        raise kit `Unavailable` (mapped to 503 by errors.py)."""
        if self.service_tokens is None:
            raise Unavailable("the gateway is starting or shutting down", reason="NOT_READY")
        try:
            return await self.service_tokens.token()
        except Unauthenticated as err:
            # Identity refused the gateway's own client secret: a deployment fault, never the
            # HTTP caller's (who must not get a 401 for it).
            log.error("identity refused the gateway's service credentials", extra={"reason": err.reason})
            raise Unavailable("the gateway cannot authenticate to the services", reason=err.reason) from None
        except Unavailable as err:
            raise Unavailable(
                "the gateway cannot get its service token from identity",
                reason=SERVICE_TOKEN_UNAVAILABLE,
                retry_after=err.retry_after,
            ) from None

    async def check_nats(self, deadline: float) -> HealthResult:
        """Connected AND a JetStream round trip (account info) within `deadline` seconds."""
        bus = self.bus
        if bus is None or not bus.connected:
            return HealthResult("UNREACHABLE", "not connected")
        try:
            async with asyncio.timeout(deadline):
                await bus.js.account_info()
        except TimeoutError:
            return HealthResult("UNREACHABLE", f"JetStream did not answer within {deadline:g}s")
        except Exception as exc:  # noqa: BLE001 - any failure means not serving
            return HealthResult("NOT_SERVING", f"JetStream: {type(exc).__name__}")
        return HealthResult("SERVING")
