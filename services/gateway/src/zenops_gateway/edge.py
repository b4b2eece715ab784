"""What the gateway believes about a request's origin: only the edge (Envoy, at the
addresses in ZENOPS_TRUSTED_PROXIES) is trusted to say who the client is.

- The client address: from a trusted peer, the right-most `X-Forwarded-For` entry that is
  not itself a trusted proxy (Envoy overwrites the header with the address it saw); from
  anyone else, the peer address — a client's own `X-Forwarded-For` is ignored, so audit
  trails record real addresses.
- The trace context: a client's `traceparent`/`tracestate`/`baggage` is honoured only when
  the edge sent the request (the edge drops the client's own). From anyone else those
  headers are removed before the request's span starts (`EdgeAwareFastAPI`), so the
  gateway's span — and the services' spans and the trace ids their audit rows record —
  start a trace of the gateway's own rather than continue one the caller chose.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from .telemetry import HttpTelemetry

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
TRACE_HEADERS = (b"traceparent", b"tracestate", b"baggage")


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (or single addresses) → networks; ValueError names the bad entry."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or CIDR: {value!r}") from None
    return tuple(networks)


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class Origin:
    client_ip: str | None
    from_edge: bool  # the peer is a trusted proxy


class EdgeTrust:
    # Distinct addresses remembered (the edge's few, and the clients it forwards for).
    CACHE_SIZE = 4096

    def __init__(self, trusted: Sequence[Network]) -> None:
        self.trusted = tuple(trusted)
        # Parsing an address and testing it against the networks ran twice per request, for
        # the same few Envoy addresses (~10 µs a request): now once per address.
        self._classify = functools.lru_cache(maxsize=self.CACHE_SIZE)(self._classify_uncached)

    def _classify_uncached(self, value: str) -> tuple[str | None, bool]:
        """(the address in canonical form or None if it is not one, whether it is trusted)."""
        ip = _ip(value)
        if ip is None:
            return None, False
        return str(ip), any(ip in net for net in self.trusted)

    def is_trusted(self, address: str | None) -> bool:
        return bool(address) and self._classify(address)[1]

    def origin(self, peer: str | None, forwarded_for: Sequence[str]) -> Origin:
        """`peer`: the TCP peer; `forwarded_for`: every X-Forwarded-For header value."""
        if not self.is_trusted(peer):
            return Origin(peer or None, False)
        hops = [h for value in forwarded_for for h in value.split(",") if h.strip()]
        client = None
        for hop in reversed(hops):
            ip, trusted = self._classify(hop)
            if ip is None:
                break  # garbage: believe nothing further left
            client = ip
            if not trusted:
                break
        return Origin(client or peer, True)


class EdgeAwareFastAPI(FastAPI):
    """FastAPI that drops a non-edge caller's trace headers before the request's span reads
    them (`telemetry`, telemetry.py, runs ahead of FastAPI and every middleware)."""

    edge: EdgeTrust
    telemetry: HttpTelemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            if not self.edge.is_trusted(peer[0] if peer else None):
                scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k not in TRACE_HEADERS]}
        await self.telemetry(super().__call__, scope, receive, send)
