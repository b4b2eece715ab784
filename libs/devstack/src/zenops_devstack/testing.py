"""Checks every service's own test-suite runs against its real database and server."""

from __future__ import annotations

import asyncio
import importlib
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from .postgres import PostgresServer


def tables(pg: PostgresServer, database: str) -> set[str]:
    out = pg.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", database)
    return set(out.split()) if out else set()


def check_migrations_round_trip(service: str, pg: PostgresServer, url: str) -> None:
    """head → base → head: every migration applies and reverts cleanly."""
    from zenops_kit.migrations import downgrade, upgrade

    migrations = importlib.import_module(f"zenops_{service}.app").MIGRATIONS
    database = url.rsplit("/", 1)[1]
    upgrade(migrations, url)
    at_head = tables(pg, database)
    assert {"outbox", "inbox", "dead_letters"} <= at_head
    downgrade(migrations, url, "base")
    assert tables(pg, database) <= {"alembic_version"}
    upgrade(migrations, url)
    assert tables(pg, database) == at_head


async def check_serving(service: str, port: int) -> dict:
    """Health SERVING for the server and the service; reflection lists the service; its
    GetServiceInfo answers without a token. Returns the ServiceInfo as a dict."""
    from google.protobuf.json_format import MessageToDict

    pb2 = importlib.import_module(f"zenops.{service}.v1.{service}_pb2")
    pb2_grpc = importlib.import_module(f"zenops.{service}.v1.{service}_pb2_grpc")
    full_name = f"zenops.{service}.v1.{service.capitalize()}Service"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        health = health_pb2_grpc.HealthStub(ch)
        deadline = time.monotonic() + 15
        for name in ("", full_name):
            while True:  # NATS connects in the background: poll with a deadline
                resp = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    break
                assert time.monotonic() < deadline, f"{service} health {name!r} not SERVING"
                await asyncio.sleep(0.05)
        listed = set()
        async for answer in reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        ):
            listed |= {s.name for s in answer.list_services_response.service}
        assert {full_name, "grpc.health.v1.Health"} <= listed
        stub = getattr(pb2_grpc, f"{service.capitalize()}ServiceStub")(ch)
        info = (await stub.GetServiceInfo(pb2.GetServiceInfoRequest(), timeout=5)).info
    return MessageToDict(info, preserving_proto_field_name=True)
