"""Health is flipped by real checks: NOT_SERVING while the database is unreachable."""

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import make_url

from zenops_devstack.proxy import TcpProxy
from zenops_devstack.testing import poll

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def health_of(port: int, service: str = "") -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        resp = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        return resp.status


async def test_health_follows_database_reachability(make_database, start_service):
    url = make_url(make_database("ops"))
    proxy = TcpProxy(url.port)
    await proxy.start()
    proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
    async with start_service("ops", database_url=proxied) as app:
        await poll(lambda: _is(app.port, SERVING), what="SERVING")
        assert await health_of(app.port, "zenops.ops.v1.OpsService") == SERVING

        await proxy.cut()
        await poll(lambda: _is(app.port, NOT_SERVING), what="NOT_SERVING while the database is unreachable")
        assert await health_of(app.port, "zenops.ops.v1.OpsService") == NOT_SERVING

        await proxy.restore()
        await poll(lambda: _is(app.port, SERVING), timeout=20, what="SERVING once the database is back")
    await proxy.cut()


async def test_health_follows_nats_connectivity(start_service, nats_server):
    proxy = TcpProxy(nats_server.port)
    await proxy.start()
    async with start_service("ops", nats_url=f"nats://127.0.0.1:{proxy.port}") as app:
        await poll(lambda: _is(app.port, SERVING), what="SERVING")
        await proxy.cut()
        await poll(lambda: _is(app.port, NOT_SERVING), what="NOT_SERVING while NATS is unreachable")
        await proxy.restore()
        await poll(lambda: _is(app.port, SERVING), timeout=20, what="SERVING once NATS is back")
    await proxy.cut()


async def _is(port, status) -> bool:
    return await health_of(port) == status
