"""Broker outage (quality bar "Reliability 3", issue 11): NATS stopped for 30 s → every
service stays SERVING (ready and live), writes through RPCs keep succeeding, and the events
they committed arrive once NATS is back. Its own NATS server: the session one is shared.

Prints its figures: writes during the outage, the outbox backlog it left, and how long the
events took to arrive after NATS returned.
"""

import asyncio
import time
import uuid
from contextlib import AsyncExitStack

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from zenops.identity.v1 import identity_pb2 as pb
from zenops.identity.v1 import identity_pb2_grpc
from zenops_devstack.nats import USERS, NatsServer
from zenops_devstack.process import free_port
from zenops_devstack.testing import poll
from zenops_kit.auth import RevocationList
from zenops_kit.events import EventBus
from zenops_kit.server import LIVENESS

OUTAGE_SECONDS = 30.0
SERVICES = ("identity", "ops", "billing", "repogen")
ADMIN_EMAIL = "admin@zenops.local"
ADMIN_PASSWORD = "Quiet-Harbour-Lantern-42"
SERVING = health_pb2.HealthCheckResponse.SERVING


async def health(channel, service: str = "") -> int:
    resp = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
    return resp.status


async def backlog(app) -> int:
    from zenops_kit.events.dead_letters import outbox_backlog

    return (await outbox_backlog(app.runtime.engine))[0]


async def test_nats_stopped_for_30_seconds(start_service, tmp_path):
    nats = NatsServer(
        tmp_path / "nats",
        free_port(),
        free_port(),
        passwords={user: uuid.uuid4().hex for user in USERS},
        harness_password=uuid.uuid4().hex,
    )
    nats.start()
    async with AsyncExitStack() as stack:
        stack.callback(nats.stop)

        def own_nats(service: str) -> dict:
            return {"nats_url": nats.url, "nats_user": service, "nats_password": nats.passwords[service]}

        apps = {
            "identity": await stack.enter_async_context(
                start_service("identity", bootstrap_admin_password=ADMIN_PASSWORD, **own_nats("identity"))
            )
        }
        identity_addr = f"127.0.0.1:{apps['identity'].port}"
        for name in SERVICES[1:]:
            apps[name] = await stack.enter_async_context(
                start_service(name, identity_addr=identity_addr, **own_nats(name))
            )
        channels = {
            name: await stack.enter_async_context(grpc.aio.insecure_channel(f"127.0.0.1:{app.port}"))
            for name, app in apps.items()
        }
        identity = identity_pb2_grpc.IdentityServiceStub(channels["identity"])

        # what the gateway and every service do with identity's events: follow the revocations
        watcher = EventBus(nats.url, "outage-test")  # the harness user
        watcher.start()
        stack.push_async_callback(watcher.drain)
        revocations = RevocationList()
        follower = asyncio.create_task(revocations.follow(watcher, lookback=300))
        stack.callback(follower.cancel)

        async def all_serving() -> bool:
            return all([await health(ch) == SERVING for ch in channels.values()])

        await poll(all_serving, timeout=30, what="every service SERVING")
        await poll(lambda: revocations.following, timeout=30, what="the identity stream followed")

        async def login_and_logout() -> str:
            """Two writes (a session, then its revocation with an outbox event); the session id."""
            resp = await identity.Login(
                pb.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD, audience="web"), timeout=10
            )
            await identity.Logout(
                pb.LogoutRequest(), metadata=(("authorization", f"Bearer {resp.tokens.access_token}"),), timeout=10
            )
            return resp.tokens.session_id

        before = await login_and_logout()
        await poll(lambda: revocations.is_revoked(before), timeout=15, what="a revocation while NATS is up")

        # -- the outage ------------------------------------------------------------------------
        nats.stop()
        await poll(
            lambda: not any(app.runtime.bus.connected for app in apps.values()),
            timeout=20,
            what="every service to see NATS gone",
        )
        revoked_during: list[str] = []
        health_checks = 0
        started = time.monotonic()
        while time.monotonic() - started < OUTAGE_SECONDS:
            for name, ch in channels.items():
                assert await health(ch) == SERVING, f"{name} not ready while NATS is down"
                assert await health(ch, LIVENESS) == SERVING, f"{name} not live while NATS is down"
                health_checks += 1
            revoked_during.append(await login_and_logout())  # writes succeed
            await asyncio.sleep(1.0)  # pacing the writes, not synchronisation
        left = await backlog(apps["identity"])
        assert left >= len(revoked_during), "the events wait in the outbox"
        assert not any(revocations.is_revoked(s) for s in revoked_during)

        # -- NATS returns: every event arrives, nothing lost -----------------------------------
        nats.start()
        back = time.monotonic()
        await poll(
            lambda: all(revocations.is_revoked(s) for s in revoked_during),
            timeout=60,
            what="every revocation committed during the outage",
        )
        arrived = time.monotonic() - back
        await poll(lambda: _zero(backlog(apps["identity"])), timeout=30, what="the outbox drained")
        assert await all_serving()
        print(
            f"\nNATS down {OUTAGE_SECONDS:.0f}s: {2 * len(revoked_during)} writes succeeded, "
            f"{health_checks} health checks all SERVING, outbox backlog {left}; "
            f"every event arrived {arrived:.1f}s after NATS returned"
        )


async def _zero(count) -> bool:
    return await count == 0
