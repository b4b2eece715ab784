"""The gateway in front of the REAL services (each with its own PostgreSQL database) and a
real NATS JetStream: aggregated health and meta, then outages and recovery."""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager

from gateway_testing import assert_problem, eventually, gateway_settings, running

from zenops_gateway.app import create_app

SERVICES = ("identity", "ops", "billing", "repogen")
ALL_CHECKS = {*SERVICES, "nats", "gateway"}
ADMIN_PASSWORD = "Quiet-Harbour-Lantern-42"


@asynccontextmanager
async def suite(start_service, nats_server):
    """All four services + a gateway pointed at them; yields (http client, {name: ServiceApp}).
    Identity first: the others verify tokens against its JWKS, and the gateway's /v1/meta asks
    every service with the service token identity issues it."""
    async with AsyncExitStack() as stack:
        identity = await stack.enter_async_context(start_service("identity", bootstrap_admin_password=ADMIN_PASSWORD))
        identity_addr = f"127.0.0.1:{identity.port}"
        apps = {"identity": identity}
        for name in SERVICES[1:]:
            apps[name] = await stack.enter_async_context(start_service(name, identity_addr=identity_addr))
        settings = gateway_settings(
            nats_url=nats_server.url, **{f"{name}_addr": f"127.0.0.1:{app.port}" for name, app in apps.items()}
        )
        client = await stack.enter_async_context(running(create_app(settings)))
        yield client, apps


async def control_reader(client) -> dict[str, str]:
    """The bootstrap super admin's authorization (it holds control.read)."""
    resp = await eventually(
        lambda: client.post(
            "/v1/auth/login", json={"email": "admin@zenops.local", "password": ADMIN_PASSWORD, "aud": "web"}
        ),
        lambda r: r.status_code == 200,
    )
    return {"authorization": f"Bearer {resp.json()['access_token']}"}


def all_serving(resp) -> bool:
    return resp.status_code == 200


async def test_health_and_meta_then_a_service_stops(start_service, nats_server):
    async with suite(start_service, nats_server) as (client, apps):
        # services turn SERVING once their own checks (database, NATS) pass: poll
        resp = await eventually(lambda: client.get("/v1/health"), all_serving)
        assert resp.json() == {"status": "up"}  # anonymous: up or down, nothing more
        assert resp.headers["content-type"] == "application/json"
        admin = await control_reader(client)
        resp = await client.get("/v1/health", headers=admin)
        assert resp.json() == {"status": "up", "checks": {name: {"status": "SERVING"} for name in ALL_CHECKS}}

        meta = (await client.get("/v1/meta", headers=admin)).json()
        assert list(meta["services"]) == [*SERVICES, "gateway"]
        for name in SERVICES:
            svc = meta["services"][name]
            assert svc["status"] == "OK" and svc["name"] == name, svc
            assert svc["environment"] == "test" and svc["version"] and svc["git_sha"]
            assert svc["build_time"].endswith("Z")

        # one service, asked with the gateway's service token
        for name in SERVICES:
            one = await client.get(f"/v1/meta/{name}", headers=admin)
            assert one.status_code == 200, one.text
            assert one.json()["name"] == name and one.json()["schema_revision"], one.json()
        body = assert_problem(await client.get("/v1/meta/nope", headers=admin), 400, "VALIDATION_FAILED")
        assert [e["field"] for e in body["errors"]] == ["path.service"]

        await apps["billing"].stop()
        resp = await eventually(lambda: client.get("/v1/health", headers=admin), lambda r: r.status_code == 503)
        body = assert_problem(resp, 503, "UNHEALTHY")
        assert set(body["checks"]) == ALL_CHECKS
        assert body["checks"]["billing"]["status"] in {"NOT_SERVING", "UNREACHABLE"}
        assert body["checks"]["billing"]["reason"]
        assert "billing" in body["detail"]
        for name in ALL_CHECKS - {"billing"}:
            assert body["checks"][name] == {"status": "SERVING"}, body
        meta = (await client.get("/v1/meta", headers=admin)).json()
        assert meta["services"]["billing"]["status"] == "UNAVAILABLE"
        assert meta["services"]["ops"]["status"] == "OK"


async def test_a_nats_outage_leaves_the_api_up_and_ready(start_service, nats_server):
    """The outbox keeps writes going while NATS is away: neither /v1/health nor /v1/readyz
    turns it "down"; the nats check (for control.read) shows the outage."""
    async with suite(start_service, nats_server) as (client, _apps):
        await eventually(lambda: client.get("/v1/health"), all_serving)
        admin = await control_reader(client)
        nats_server.stop()
        try:
            resp = await eventually(
                lambda: client.get("/v1/health", headers=admin),
                lambda r: r.json().get("checks", {}).get("nats", {}).get("status") != "SERVING",
            )
            assert resp.status_code == 200 and resp.json()["status"] == "up", resp.text
            assert resp.json()["checks"]["nats"]["reason"]
            assert (await client.get("/v1/readyz")).status_code == 200
        finally:
            nats_server.start()
        resp = await eventually(
            lambda: client.get("/v1/health", headers=admin),
            lambda r: r.json().get("checks", {}).get("nats") == {"status": "SERVING"},
            within=30,
        )
        assert resp.status_code == 200
