"""One typed gRPC client per upstream service, created once per process (see `Upstreams`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..settings import GatewaySettings
from .base import HealthResult, UpstreamClient, outgoing_metadata
from .billing import BillingClient
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

    @classmethod
    def from_settings(cls, s: GatewaySettings) -> Upstreams:
        kw = {"timeout": s.rpc_timeout, "health_timeout": s.health_timeout}
        billing = BillingClient(s.billing_addr, **kw)
        return cls(
            identity=IdentityClient(s.identity_addr, **kw),
            ops=OpsClient(s.ops_addr, **kw),
            billing=billing,
            repogen=RepogenClient(s.repogen_addr, **kw),
            invoicing=InvoicingClient(billing),
        )

    def all(self) -> dict[str, UpstreamClient]:
        """name → client, in a stable order."""
        return {c.service: c for c in (self.identity, self.ops, self.billing, self.repogen)}

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.all().values()), return_exceptions=True)
