"""A scrape of a real service's Prometheus endpoint (OTEL_METRICS_EXPORTER=prometheus,
ZENOPS_METRICS_PORT): RPC durations, consumer lag, the request pool, the outbox, and a
supervised worker whose start-up fails — restarted with backoff, counted and reported in
health — recovering by itself once the cause is gone.

The ops service runs as its own process (one MeterProvider per process) against its own NATS
server: the test plants a stray durable consumer there.
"""

import os
import re
import subprocess
import sys
import uuid

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from zenops_devstack.nats import USERS, NatsServer
from zenops_devstack.process import free_port
from zenops_devstack.testing import poll
from zenops_kit.events import EventBus, ensure_stream, stream_name

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
BROKEN = "ops-billing"  # ops' consumer of billing's stream: a stray durable blocks its start-up
HEALTHY = "ops-repogen"


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample `name{...}` whose labels include `labels`."""
    for line in text.splitlines():
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)", line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


async def test_a_scrape_shows_rpc_durations_consumer_lag_and_worker_restarts(make_database, tmp_path):
    nats = NatsServer(
        tmp_path / "nats",
        free_port(),
        free_port(),
        passwords={user: uuid.uuid4().hex for user in USERS},
        harness_password=uuid.uuid4().hex,
    )
    nats.start()
    harness = EventBus(nats.url, "metrics-test")
    proc = None
    try:
        harness.start()
        js = await harness.ready()
        await ensure_stream(js, "billing")
        await js.add_consumer(
            stream_name("billing"),
            ConsumerConfig(
                durable_name=BROKEN,
                deliver_policy=DeliverPolicy.NEW,
                ack_policy=AckPolicy.EXPLICIT,
                filter_subjects=["zenops.billing.reservation.failed"],
            ),
        )

        grpc_port, metrics_port = free_port(), free_port()
        env = {
            **os.environ,
            "ZENOPS_DATABASE_URL": make_database("ops"),
            "ZENOPS_NATS_URL": nats.url,
            "ZENOPS_NATS_USER": "ops",
            "ZENOPS_NATS_PASSWORD": nats.passwords["ops"],
            "ZENOPS_GRPC_HOST": "127.0.0.1",
            "ZENOPS_GRPC_PORT": str(grpc_port),
            "ZENOPS_IDENTITY_ADDR": f"127.0.0.1:{free_port()}",
            "ZENOPS_ENVIRONMENT": "test",
            "ZENOPS_EVENTS_SAMPLE_INTERVAL": "0.5",
            "OTEL_METRICS_EXPORTER": "prometheus",
            "ZENOPS_METRICS_PORT": str(metrics_port),
        }
        log = open(tmp_path / "ops.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "zenops_ops", "serve"], env=env, stdout=log, stderr=log)

        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def status(service: str = "") -> int | None:
                try:
                    return (await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)).status
                except grpc.aio.AioRpcError:
                    return None

            await poll(lambda: _eq(status(), SERVING), timeout=30, what="ops ready")
            # the failing worker is reported, and readiness does not depend on it
            await poll(
                lambda: _eq(status(f"zenops.worker.consumer-{BROKEN}"), NOT_SERVING),
                timeout=15,
                what="the blocked consumer reported NOT_SERVING",
            )
            assert await status() == SERVING
            assert await status(f"zenops.worker.consumer-{HEALTHY}") == SERVING

            # one RPC (refused: no token) for the duration histogram
            info = channel.unary_unary("/zenops.ops.v1.OpsService/GetServiceInfo")
            try:
                await info(b"", timeout=5)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAUTHENTICATED

            async def scrape() -> str:
                async with httpx.AsyncClient() as http:
                    r = await http.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2)
                    assert r.status_code == 200
                    return r.text

            async def restarted_twice() -> str | None:
                text = await scrape()
                n = sample(text, "zenops_worker_restarts_total", worker=f"consumer-{BROKEN}")
                lag = sample(text, "zenops_consumer_lag", consumer=HEALTHY, stream="ZENOPS_REPOGEN")
                # down while it waits to restart (each restart attempt itself is briefly "running")
                down = sample(text, "zenops_worker_up", worker=f"consumer-{BROKEN}") == 0
                return text if n is not None and n >= 2 and lag is not None and down else None

            text = await poll(restarted_twice, timeout=30, what="restarts, consumer lag, the worker down")
            assert sample(text, "zenops_worker_up", worker="outbox-relay") == 1
            assert sample(text, "zenops_consumer_lag", consumer=HEALTHY) == 0
            assert sample(text, "zenops_consumer_ack_pending", consumer=HEALTHY) == 0
            assert sample(text, "zenops_consumer_dead_letters_open", consumer=HEALTHY) == 0
            assert sample(text, "zenops_outbox_backlog", service="ops") == 0
            assert sample(text, "zenops_nats_connected", service="ops") == 1
            assert sample(text, "zenops_db_pool_limit", service="ops") == 8
            assert sample(text, "zenops_db_pool_connections", service="ops", state="used") is not None
            assert sample(text, "rpc_server_duration_milliseconds_count", rpc_method="GetServiceInfo") == 1

            # messages wait for the blocked consumer: its lag once the stray durable is gone
            for i in range(3):
                await js.publish(
                    "zenops.billing.reservation.failed", b"not an envelope", headers={"Nats-Msg-Id": f"m{i}"}
                )
            await js.delete_consumer(stream_name("billing"), BROKEN)
            await poll(
                lambda: _eq(status(f"zenops.worker.consumer-{BROKEN}"), SERVING),
                timeout=30,
                what="the consumer restarted by itself",
            )

            async def recovered() -> bool:
                text = await scrape()
                return (
                    sample(text, "zenops_worker_up", worker=f"consumer-{BROKEN}") == 1
                    and sample(text, "zenops_consumer_dead_letters_open", consumer=BROKEN) == 3
                    and sample(text, "zenops_consumer_lag", consumer=BROKEN) == 0
                )

            await poll(recovered, timeout=30, what="the recovered consumer's figures")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        await harness.drain()
        nats.stop()


async def _eq(value, expected) -> bool:
    return await value == expected
