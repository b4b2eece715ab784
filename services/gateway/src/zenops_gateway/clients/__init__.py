"""One typed gRPC client per upstream service, created once per process (see `Upstreams`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..settings import GatewaySettings
from .base import HealthResult, UpstreamClient, outgoing_metadata
from .billing import BillingClient
from .events_admin import EventsAdminClient
from .identity import IdentityClient
from .invoicing import InvoicingClient
from .ops import OpsClient
from .repogen import RepogenClient

__all__ = [
    "BillingClient",
    "HealthResult",
    "IdentityClient",
    "InvoicingClient",
    "OpsClient",
    "RepogenClient",
    "UpstreamClient",
    "Upstreams",
    "outgoing_metadata",
]


@dataclass
class Upstreams:
    identity: IdentityClient
    ops: OpsClient
    billing: BillingClient
    repogen: RepogenClient
    # Billing's InvoicingService, on the billing client's channel (not a separate upstream:
    # health and meta list billing once).
    invoicing: InvoicingClient
    # Every service's EventsAdminService (the kit's), on that service's channel, by service name.
    events_admin: dict[str, EventsAdminClient]

    @classmethod
    def from_settings(cls, s: GatewaySettings) -> Upstreams:
        kw = {"timeout": s.rpc_timeout, "health_timeout": s.health_timeout}
        services = (
            IdentityClient(s.identity_addr, **kw),
            OpsClient(s.ops_addr, **kw),
            BillingClient(s.billing_addr, **kw),
            RepogenClient(s.repogen_addr, **kw),
        )
        identity, ops, billing, repogen = services
        return cls(
            identity=identity,
            ops=ops,
            billing=billing,
            repogen=repogen,
            invoicing=InvoicingClient(billing),
            events_admin={c.service: EventsAdminClient(c) for c in services},
        )

    def all(self) -> dict[str, UpstreamClient]:
        """name → client, in a stable order."""
        return {c.service: c for c in (self.identity, self.ops, self.billing, self.repogen)}

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.all().values()), return_exceptions=True)
