"""Only the edge (ZENOPS_TRUSTED_PROXIES) is believed about who the client is: audit rows
record a direct caller's real address whatever X-Forwarded-For it sends, and the trace id a
direct caller's `traceparent` names never reaches the services' audit trail."""

from __future__ import annotations

from contextlib import asynccontextmanager

import httpx
import pytest
from gateway_testing import eventually, gateway_settings
from sqlalchemy import text

from zenops_gateway.app import create_app
from zenops_gateway.edge import EdgeTrust, parse_networks
from zenops_kit.db import tenant_tx

INTERNAL = "00000000-0000-4000-8000-000000000001"
ADMIN_PASSWORD = "Quiet-Harbour-Lantern-42"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("peer", "forwarded", "client", "from_edge"),
    [
        ("203.0.113.5", ["198.51.100.1"], "203.0.113.5", False),  # not the edge: its XFF is ignored
        ("127.0.0.1", ["198.51.100.1"], "198.51.100.1", True),
        ("127.0.0.1", ["6.6.6.6, 198.51.100.1"], "198.51.100.1", True),  # right-most untrusted hop
        ("127.0.0.1", ["198.51.100.1, 127.0.0.1"], "198.51.100.1", True),
        ("::1", ["2001:db8::7"], "2001:db8::7", True),
        ("127.0.0.1", ["not-an-address"], "127.0.0.1", True),
        ("127.0.0.1", [], "127.0.0.1", True),
        ("10.1.2.3", ["198.51.100.1"], "10.1.2.3", False),
    ],
)
def test_client_address_is_believed_only_from_the_edge(peer, forwarded, client, from_edge):
    origin = EdgeTrust(parse_networks(["127.0.0.1/32", "::1/128"])).origin(peer, forwarded)
    assert (origin.client_ip, origin.from_edge) == (client, from_edge)
    assert EdgeTrust(parse_networks(["10.0.0.0/8"])).origin("10.1.2.3", ["198.51.100.1"]).client_ip == "198.51.100.1"


def test_each_address_is_parsed_once_and_answers_stay_the_same():
    edge = EdgeTrust(parse_networks(["127.0.0.1/32"]))
    answers = [edge.origin("127.0.0.1", ["198.51.100.1"]) for _ in range(5)]
    assert {(o.client_ip, o.from_edge) for o in answers} == {("198.51.100.1", True)}
    info = edge._classify.cache_info()
    assert (info.misses, info.hits) == (2, 8)  # the peer and the hop, parsed on first sight only
    assert not edge.is_trusted("203.0.113.5") and not edge.is_trusted("") and not edge.is_trusted(None)
    assert edge.origin("127.0.0.1", ["garbage"]) == edge.origin("127.0.0.1", ["garbage"])


@asynccontextmanager
async def gateway_before_identity(start_service, nats_server):
    async with start_service("identity", bootstrap_admin_password=ADMIN_PASSWORD) as identity:
        app = create_app(gateway_settings(nats_url=nats_server.url, identity_addr=f"127.0.0.1:{identity.port}"))
        async with app.router.lifespan_context(app):
            yield app, identity


async def _login_as(app, peer: str, headers: dict[str, str]) -> None:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        resp = await eventually(
            lambda: client.post(
                "/v1/auth/login",
                headers=headers,
                json={"email": "admin@zenops.local", "password": ADMIN_PASSWORD, "aud": "web"},
            ),
            lambda r: r.status_code == 200,
        )
        assert resp.json()["access_token"]


async def _last_login(identity):
    async with tenant_tx(identity.runtime.engine, INTERNAL) as conn:
        return (
            await conn.execute(
                text(
                    "SELECT ip, trace_id FROM audit_events WHERE kind = 'login.succeeded' "
                    "ORDER BY occurred_at DESC LIMIT 1"
                )
            )
        ).one()


async def test_audit_records_the_real_address_and_a_server_side_trace(start_service, nats_server):
    spoofing = {"x-forwarded-for": "198.51.100.1", "traceparent": TRACEPARENT}
    async with gateway_before_identity(start_service, nats_server) as (app, identity):
        await _login_as(app, "203.0.113.5", spoofing)  # straight at the gateway, not through the edge
        row = await _last_login(identity)
        assert row.ip == "203.0.113.5"
        assert len(row.trace_id) == 32 and row.trace_id != CLIENT_TRACE

        await _login_as(app, "127.0.0.1", spoofing)  # through the edge (which set both headers)
        row = await _last_login(identity)
        assert (row.ip, row.trace_id) == ("198.51.100.1", CLIENT_TRACE)
