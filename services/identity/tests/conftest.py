"""Fixtures of identity's tests: the real service (PostgreSQL + NATS from devstack) and a
gRPC client with helpers."""

from __future__ import annotations

from contextlib import asynccontextmanager

import grpc
import pytest
from identity_harness import ADMIN_PASSWORD, Harness


@pytest.fixture
def identity(start_service):
    """`async with identity(**settings) as h:` — identity running, bootstrapped with the
    test admin, and a client for it."""

    @asynccontextmanager
    async def start(**overrides):
        overrides.setdefault("bootstrap_admin_password", ADMIN_PASSWORD)
        async with start_service("identity", **overrides) as app:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                yield Harness(app, channel)

    return start
