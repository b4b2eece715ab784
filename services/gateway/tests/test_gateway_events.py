"""GET /v1/control/events and POST /v1/control/dead-letters/{id}/replay through the gateway,
in front of the REAL identity and ops services (billing and repogen not running: reported
UNAVAILABLE, never a 500)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway_testing import assert_problem, gateway_settings, running
from sqlalchemy import text

from zenops.events.v1 import billing_pb2 as billing_events
from zenops_gateway.app import create_app
from zenops_kit.events import new_event

ADMIN_EMAIL = "admin@zenops.local"
ADMIN_PASSWORD = "violet-harbor-trumpet-93"
USER_PASSWORD = "quiet-meadow-lantern-58"
CONSUMER = "ops-billing"  # ops' consumer of billing's stream (zenops_ops.reactions)


@asynccontextmanager
async def suite(start_service, nats_server) -> AsyncIterator[tuple]:
    async with start_service("identity", bootstrap_admin_password=ADMIN_PASSWORD) as identity:
        identity_addr = f"127.0.0.1:{identity.port}"
        async with start_service("ops", identity_addr=identity_addr) as ops:
            settings = gateway_settings(
                identity_addr=identity_addr, ops_addr=f"127.0.0.1:{ops.port}", nats_url=nats_server.url
            )
            async with running(create_app(settings)) as client:
                yield client, ops


async def token(client, email: str, password: str) -> str:
    resp = await client.post("/v1/auth/login", json={"email": email, "password": password, "aud": "web"})
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


def bearer(tok: str) -> dict[str, str]:
    return {"authorization": f"Bearer {tok}"}


async def dead_letter(ops) -> tuple[int, str]:
    """A dead letter of ops' billing consumer, as the consumer writes it after max_deliver
    failures: an event its handler accepts now (a work order's reservation failure: no-op)."""
    env = new_event(
        event_type="billing.reservation.failed",
        payload=billing_events.ReservationFailed(
            ref_type="work_order", ref_id=str(uuid.uuid4()), requested=2, available=0, reason="INSUFFICIENT"
        ),
        producer="billing",
        producer_version="t",
        aggregate_type="reservation",
        aggregate_id=str(uuid.uuid4()),
        aggregate_version=1,
        tenant_id=str(uuid.uuid4()),
    )
    async with ops.runtime.engine.begin() as conn:
        dl_id = (
            await conn.execute(
                text(
                    "INSERT INTO dead_letters (consumer, event_id, subject, event_type, envelope, headers, error, deliveries) "
                    "VALUES (:c, CAST(:e AS uuid), 'zenops.billing.reservation.failed', :t, :env, CAST(:h AS jsonb), "
                    "'RuntimeError(\"ops was mid-deploy\")', 5) RETURNING id"
                ),
                {
                    "c": CONSUMER,
                    "e": env.event_id,
                    "t": env.event_type,
                    "env": env.SerializeToString(),
                    "h": json.dumps({}),
                },
            )
        ).scalar()
    return dl_id, env.event_id


async def inbox_rows(ops, event_id: str) -> int:
    async with ops.runtime.engine.connect() as conn:
        return (
            await conn.execute(
                text("SELECT count(*) FROM inbox WHERE consumer = :c AND event_id = CAST(:e AS uuid)"),
                {"c": CONSUMER, "e": event_id},
            )
        ).scalar()


async def test_events_view_and_dead_letter_replay(start_service, nats_server):
    async with suite(start_service, nats_server) as (client, ops):
        admin = await token(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        email = f"v{uuid.uuid4().hex[:8]}@example.com"
        created = await client.post(
            "/v1/users",
            headers=bearer(admin),
            json={"email": email, "display_name": "Val", "password": USER_PASSWORD, "roles": ["valuer"]},
        )
        assert created.status_code == 201, created.text
        valuer = await token(client, email, USER_PASSWORD)
        dl_id, event_id = await dead_letter(ops)

        # without control.read / control.write: 403 from the services, nothing replayed
        assert_problem(await client.get("/v1/control/events", headers=bearer(valuer)), 403, "MISSING_CAPABILITY")
        assert_problem(
            await client.post(f"/v1/control/dead-letters/ops:{dl_id}/replay", headers=bearer(valuer)),
            403,
            "MISSING_CAPABILITY",
        )
        assert_problem(await client.get("/v1/control/events"), 401)

        resp = await client.get("/v1/control/events", headers=bearer(admin))
        assert resp.status_code == 200, resp.text
        services = resp.json()["services"]
        assert list(services) == ["identity", "ops", "billing", "repogen"]
        for down in ("billing", "repogen"):  # not running: reported, not a failure of the view
            assert services[down]["status"] == "UNAVAILABLE" and services[down]["code"], services[down]
        ops_view = services["ops"]
        assert ops_view["status"] == "OK" and ops_view["outbox"]["backlog"] >= 0
        consumers = {c["name"]: c for c in ops_view["consumers"]}
        assert set(consumers) == {"ops-billing", "ops-repogen"}
        assert consumers[CONSUMER]["stream"] == "ZENOPS_BILLING"
        assert consumers[CONSUMER]["dead_letters_open"] == 1 and consumers[CONSUMER]["dead_letters_total"] == 1
        [listed] = ops_view["dead_letters"]
        assert listed["id"] == f"ops:{dl_id}" and listed["event_id"] == event_id
        assert listed["consumer"] == CONSUMER and listed["deliveries"] == 5 and listed["replayed_at"] is None
        assert "mid-deploy" in listed["error"]
        workers = {w["name"]: w for w in ops_view["workers"]}
        assert {"outbox-relay", "consumer-ops-billing", "consumer-ops-repogen", "revocations"} <= set(workers)
        assert services["identity"]["status"] == "OK" and services["identity"]["consumers"] == []

        # unknown: 404; malformed or another service's name: 400
        assert_problem(
            await client.post("/v1/control/dead-letters/ops:999999/replay", headers=bearer(admin)),
            404,
            "DEAD_LETTER_NOT_FOUND",
        )
        for bad in ("42", "gateway:1", "ops:0", "ops:x"):
            assert_problem(await client.post(f"/v1/control/dead-letters/{bad}/replay", headers=bearer(admin)), 400)

        replay = await client.post(f"/v1/control/dead-letters/ops:{dl_id}/replay", headers=bearer(admin))
        assert replay.status_code == 200, replay.text
        body = replay.json()
        assert body["applied"] is True
        assert body["dead_letter"]["id"] == f"ops:{dl_id}" and body["dead_letter"]["replayed_at"]
        assert await inbox_rows(ops, event_id) == 1  # handled once, with its inbox row

        again = await client.post(f"/v1/control/dead-letters/ops:{dl_id}/replay", headers=bearer(admin))
        assert_problem(again, 409, "DEAD_LETTER_ALREADY_REPLAYED")
        assert await inbox_rows(ops, event_id) == 1

        after = (await client.get("/v1/control/events", headers=bearer(admin))).json()["services"]["ops"]
        assert after["dead_letters"] == []
        consumers = {c["name"]: c for c in after["consumers"]}
        assert consumers[CONSUMER]["dead_letters_open"] == 0 and consumers[CONSUMER]["dead_letters_total"] == 1
