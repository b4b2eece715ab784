"""The gateway's process-wide state, created by `create_app` and filled by its lifespan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timezone

from zenops_kit.events.bus import EventBus

from .clients import HealthResult, Upstreams
from .settings import GatewaySettings


@dataclass
class Runtime:
    settings: GatewaySettings
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    upstreams: Upstreams | None = None
    bus: EventBus | None = None
    # True between "clients created" and "shutdown begun" (GET /v1/readyz).
    ready: bool = False

    @property
    def build_time(self) -> datetime:
        s = self.settings.build_time
        built = datetime.fromisoformat(s) if s else self.started_at
        if built.tzinfo is None:
            built = built.replace(tzinfo=timezone.utc)
        return built.astimezone(timezone.utc)

    def require_upstreams(self) -> Upstreams:
        if self.upstreams is None:
            raise RuntimeError("the gateway has not started its clients")
        return self.upstreams

    async def check_nats(self, timeout: float) -> HealthResult:
        """Connected AND a JetStream round trip (account info) within `timeout`."""
        bus = self.bus
        if bus is None or not bus.connected:
            return HealthResult("UNREACHABLE", "not connected")
        try:
            await asyncio.wait_for(bus.js.account_info(), timeout)
        except TimeoutError:
            return HealthResult("UNREACHABLE", f"JetStream did not answer within {timeout:g}s")
        except Exception as exc:  # noqa: BLE001 - any failure means not serving
            return HealthResult("NOT_SERVING", f"JetStream: {type(exc).__name__}")
        return HealthResult("SERVING")
