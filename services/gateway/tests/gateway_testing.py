"""Helpers shared by the gateway tests (the devstack fixtures come from the root conftest)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI

from zenops_devstack.process import free_port
from zenops_gateway.settings import GatewaySettings

T = TypeVar("T")


def gateway_settings(**overrides: Any) -> GatewaySettings:
    """Settings pointing at free (closed) ports unless overridden: no upstream answers."""
    values: dict[str, Any] = {
        "environment": "test",
        "identity_addr": f"127.0.0.1:{free_port()}",
        "ops_addr": f"127.0.0.1:{free_port()}",
        "billing_addr": f"127.0.0.1:{free_port()}",
        "repogen_addr": f"127.0.0.1:{free_port()}",
        "nats_url": f"nats://127.0.0.1:{free_port()}",
        "health_timeout": 1.0,
        "rpc_timeout": 2.0,
    }
    values.update(overrides)
    return GatewaySettings(**values)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give an HTTP client talking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield client


async def eventually(
    probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], *, within: float = 20.0, interval: float = 0.1
) -> T:
    """Poll `probe` until `check(result)` holds or the deadline passes (then fail)."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if check(result):
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within}s; last result: {result!r}")
        await asyncio.sleep(interval)


def assert_problem(resp: httpx.Response, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body = resp.json()
    assert set(body) >= {"type", "title", "status", "detail", "code", "errors", "trace_id", "request_id"}, body
    assert body["status"] == status
    assert body["request_id"] == resp.headers["x-request-id"]
    if code is not None:
        assert body["code"] == code, body
    return body
