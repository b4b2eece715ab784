"""What every typed upstream client shares: one long-lived channel, deadlines, error
conversion, request-id / token forwarding and the standard gRPC health check.

A typed client (see `ops.py`) adds one method per RPC the gateway uses:

    async def get_task(self, task_id: str, *, token: str | None = None) -> ops_pb2.Task:
        resp = await self.call(self.stub.GetTask, ops_pb2.GetTaskRequest(id=task_id), token=token)
        return resp.task

`call` always sets a deadline and turns `grpc.aio.AioRpcError` into `UpstreamError`,
which the central handler in `errors.py` maps to problem+json.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from zenops_kit.caller import call_metadata
from zenops_kit.tls import channel as grpc_channel

from ..errors import UpstreamError

CheckStatus = Literal["SERVING", "NOT_SERVING", "UNREACHABLE"]

# Reconnect quickly after an upstream restart (the default backoff grows to 120 s).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 5_000),
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    ("grpc.enable_retries", 0),  # never retry implicitly; see ENGINEERING.md habit 7
]


@dataclass(frozen=True)
class HealthResult:
    status: CheckStatus
    reason: str | None = None


@dataclass(frozen=True)
class ClientInfo:
    """The end user's address and user agent as the gateway saw them (services audit them)."""

    ip: str | None = None
    user_agent: str | None = None


# Set per HTTP request by middleware.RequestContextMiddleware, read by `outgoing_metadata`.
client_info_var: ContextVar[ClientInfo | None] = ContextVar("zenops_gateway_client", default=None)

# gRPC metadata values must be printable ASCII; a user agent is attacker-controlled text.
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
MAX_USER_AGENT = 512


def client_info(ip: str | None, user_agent: str | None) -> ClientInfo:
    ua = _UNPRINTABLE.sub("?", user_agent)[:MAX_USER_AGENT] if user_agent else None
    return ClientInfo(ip=ip or None, user_agent=ua or None)


def outgoing_metadata(token: str | None = None, extra: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """gRPC metadata of an onward call: the request id, the end user's address and user
    agent (`x-client-ip`, `x-client-user-agent`), the trace context (W3C `traceparent`, the
    gateway's request span: the gateway's channels carry no tracing interceptor) and, if
    given, the caller's token."""
    md = call_metadata()
    client = client_info_var.get()
    if client is not None:
        if client.ip:
            md.append(("x-client-ip", client.ip))
        if client.user_agent:
            md.append(("x-client-user-agent", client.user_agent))
    if token:
        md.append(("authorization", f"Bearer {token}"))
    for key, value in (extra or {}).items():
        md.append((key.lower(), value))
    return md


class UpstreamClient:
    """Base of the typed clients. Create once at start-up; `close()` at shutdown."""

    service: ClassVar[str]
    stub_class: ClassVar[type]

    def __init__(self, address: str, *, timeout: float, health_timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        self.health_timeout = health_timeout
        self.channel = grpc_channel(address, options=CHANNEL_OPTIONS)
        self.stub = self.stub_class(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    async def call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable,
        request: Any,
        *,
        token: str | None = None,
        deadline: float | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Any:
        """Invoke a unary RPC of this upstream with a deadline (seconds; default `rpc_timeout`);
        failures raise `UpstreamError`."""
        try:
            return await method(
                request,
                timeout=deadline if deadline is not None else self.timeout,
                metadata=outgoing_metadata(token, metadata),
            )
        except grpc.aio.AioRpcError as err:
            raise UpstreamError.from_rpc_error(self.service, err) from None

    async def check_health(self, deadline: float | None = None) -> HealthResult:
        """`grpc.health.v1.Health/Check` for the whole server (service "")."""
        deadline = deadline if deadline is not None else self.health_timeout
        try:
            resp = await self._health.Check(
                health_pb2.HealthCheckRequest(service=""), timeout=deadline, metadata=outgoing_metadata()
            )
        except grpc.aio.AioRpcError as err:
            code = err.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return HealthResult("UNREACHABLE", f"no answer within {deadline:g}s")
            if code == grpc.StatusCode.UNAVAILABLE:
                return HealthResult("UNREACHABLE", "connection failed")
            return HealthResult("NOT_SERVING", f"health check failed: {code.name}")
        if resp.status == health_pb2.HealthCheckResponse.SERVING:
            return HealthResult("SERVING")
        return HealthResult("NOT_SERVING", health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))

    async def close(self) -> None:
        await self.channel.close(grace=None)


class SharedChannelClient(UpstreamClient):
    """A client of a second gRPC service in an upstream's process: it talks over that
    upstream's channel (one connection, one address), and `close()` leaves the channel to it."""

    def __init__(self, upstream: UpstreamClient) -> None:
        self.service = upstream.service  # errors name the process that failed
        self.address = upstream.address
        self.timeout = upstream.timeout
        self.health_timeout = upstream.health_timeout
        self.channel = upstream.channel
        self.stub = self.stub_class(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    async def close(self) -> None:
        """Nothing to do: the channel is the upstream client's, closed by it."""
