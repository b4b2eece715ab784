"""Health semantics: readiness ("" and each servicer) follows the database through the probe's
own connection; NATS never counts; liveness (`zenops.liveness`) follows only the process."""

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import make_url

from zenops_devstack.proxy import TcpProxy
from zenops_devstack.testing import poll
from zenops_kit.server import LIVENESS

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
OPS = "zenops.ops.v1.OpsService"


async def health_of(port: int, service: str = "") -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        resp = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        return resp.status


async def stays(port: int, status: int, *, seconds: float, service: str = "") -> None:
    """Sample health over `seconds` (several health intervals): it must never differ."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        assert await health_of(port, service) == status
        await asyncio.sleep(0.1)


async def test_readiness_follows_the_database_and_liveness_does_not(make_database, start_service):
    url = make_url(make_database("ops"))
    proxy = TcpProxy(url.port)
    await proxy.start()
    proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
    async with start_service("ops", database_url=proxied) as app:
        await poll(lambda: _is(app.port, SERVING), what="SERVING")
        assert await health_of(app.port, OPS) == SERVING
        assert await health_of(app.port, LIVENESS) == SERVING

        await proxy.cut()
        await poll(lambda: _is(app.port, NOT_SERVING), what="not ready while the database is unreachable")
        assert await health_of(app.port, OPS) == NOT_SERVING
        # a restart would not bring the database back: the process stays live
        assert await health_of(app.port, LIVENESS) == SERVING

        await proxy.restore()
        await poll(lambda: _is(app.port, SERVING), timeout=20, what="ready once the database is back")
    await proxy.cut()


async def test_a_nats_outage_keeps_the_service_ready(start_service, nats_server):
    proxy = TcpProxy(nats_server.port)
    await proxy.start()
    async with start_service("ops", nats_url=f"nats://127.0.0.1:{proxy.port}") as app:
        await poll(lambda: _is(app.port, SERVING), what="SERVING")
        await poll(lambda: app.runtime.bus.connected, what="NATS connected")
        await proxy.cut()
        await poll(lambda: not app.runtime.bus.connected, timeout=20, what="the client to notice the outage")
        await stays(app.port, SERVING, seconds=2.0)
        await stays(app.port, SERVING, seconds=0.5, service=OPS)
        assert await health_of(app.port, LIVENESS) == SERVING
        await proxy.restore()
        await poll(lambda: app.runtime.bus.connected, timeout=20, what="NATS reconnected")
    await proxy.cut()


async def test_an_exhausted_request_pool_is_not_unreadiness(make_database, start_service):
    async with start_service("ops", database_pool_size=2) as app:
        await poll(lambda: _is(app.port, SERVING), what="SERVING")
        engine = app.runtime.engine
        held = [await engine.connect() for _ in range(2)]  # every pooled connection busy (load)
        try:
            assert engine.sync_engine.pool.checkedout() == 2
            await stays(app.port, SERVING, seconds=3.0)  # the probe's own connection still answers
        finally:
            for conn in held:
                await conn.close()


async def _is(port, status) -> bool:
    return await health_of(port) == status
