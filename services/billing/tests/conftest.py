"""Fixtures of billing's tests: the real service (PostgreSQL + NATS from devstack), tokens
signed by a key of the test's own (identity is not running), and a gRPC client."""

from __future__ import annotations

import asyncio
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
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                    yield Harness(app, channel, signer)
            finally:
                await stop_recancelling(app)

    return start


async def stop_recancelling(app) -> None:
    """app.stop(), cancelling its tasks again while it waits on them: nats-py's fetch() uses
    asyncio.wait_for, which on Python 3.11 can swallow a cancellation (gh-86296), leaving the
    kit's stop() awaiting a consumer forever. (The kit's ServiceApp.stop wants the same loop.)"""
    stopping = asyncio.ensure_future(app.stop())
    while True:
        done, _ = await asyncio.wait({stopping}, timeout=1.0)
        if done:
            stopping.result()
            return
        for task in app._tasks:
            if not task.done():
                task.cancel()
