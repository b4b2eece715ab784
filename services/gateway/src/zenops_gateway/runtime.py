"""The gateway's process-wide state, created by `create_app` and filled by its lifespan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from zenops_kit.events.bus import EventBus

from .clients import HealthResult, Upstreams
from .settings import GatewaySettings


@dataclass
class Runtime:
    settings: GatewaySettings
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    upstreams: Upstreams | None = None
    bus: EventBus | None = None
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

    async def check_nats(self, deadline: float) -> HealthResult:
        """Connected AND a JetStream round trip (account info) within `deadline` seconds."""
        bus = self.bus
        if bus is None or not bus.connected:
            return HealthResult("UNREACHABLE", "not connected")
        try:
            await asyncio.wait_for(bus.js.account_info(), deadline)
        except TimeoutError:
            return HealthResult("UNREACHABLE", f"JetStream did not answer within {deadline:g}s")
        except Exception as exc:  # noqa: BLE001 - any failure means not serving
            return HealthResult("NOT_SERVING", f"JetStream: {type(exc).__name__}")
        return HealthResult("SERVING")
