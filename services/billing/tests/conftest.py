"""Fixtures of billing's tests: the real service (PostgreSQL + NATS from devstack), tokens
signed by a key of the test's own (identity is not running), and a gRPC client."""

from __future__ import annotations

from contextlib import asynccontextmanager

import grpc
import pytest
from billing_harness import Harness

from zenops_devstack.testing import TokenSigner


@pytest.fixture
def billing(start_service):
    """`async with billing(**settings) as h:` — billing running, and a client for it."""

    @asynccontextmanager
    async def start(**overrides):
        signer = TokenSigner()
        # The scheduled expiry sweep would race the tests that drive expiry themselves.
        overrides.setdefault("expiry_sweep_interval", 3600.0)
        async with start_service("billing", verifier=signer.verifier(), **overrides) as app:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                yield Harness(app, channel, signer)

    return start
