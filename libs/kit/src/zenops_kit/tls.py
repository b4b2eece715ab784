"""How every process connects: gRPC server ports, gRPC client channels and NATS options.

Without TLS settings (`make run`, the tests) everything is plaintext on localhost. In the
Kubernetes prod overlay each pod mounts its certificate, key and the suite's CA
(cert-manager, deploy/k8s/components/tls) and sets ZENOPS_TLS_{CERT,KEY,CA}_FILE: gRPC
servers then bind a TLS port, clients verify the server against the CA, NATS runs over TLS.

Load balancing: gRPC keeps one HTTP/2 connection per channel, so a ClusterIP Service pins
every client to the pod it first reached. Channels therefore resolve `dns:///<host>` and
spread calls `round_robin` over every address (the gRPC Services are headless, one A record
per ready pod), and servers close connections after `MAX_CONNECTION_AGE_MS` so clients
re-resolve and scaled-out replicas get traffic.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import grpc
from grpc_health.v1 import health_pb2_grpc

from .settings import KitSettings, ServiceSettings

# Servers close each connection after ~5 min (+30 s for in-flight calls to finish): clients
# reconnect and re-resolve, so new replicas are picked up within minutes.
MAX_CONNECTION_AGE_MS = 300_000
MAX_CONNECTION_AGE_GRACE_MS = 30_000
SERVER_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
    ("grpc.max_connection_age_grace_ms", MAX_CONNECTION_AGE_GRACE_MS),
)
# round_robin over the peer's addresses. Reconnect backoff capped at 2 s (gRPC's default grows to
# 120 s): a restarted or rescheduled peer is reached again within ~2 s, not minutes later.
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


Stub = TypeVar("Stub")


class PeerStub(Generic[Stub]):
    """A generated stub of a peer service over its own `channel`, both made on first use (in
    the running loop) and then kept: a stub makes a callable per method of the service, too
    much to build per call. `peer()` is the stub; `close()` closes the channel."""

    def __init__(self, address: str, stub_class: type[Stub]) -> None:
        self.address = address
        self.stub_class = stub_class
        self._channel: grpc.aio.Channel | None = None
        self._stub: Stub | None = None

    def __call__(self) -> Stub:
        if self._stub is None:
            self._channel = channel(self.address)
            self._stub = self.stub_class(self._channel)
        return self._stub

    async def close(self) -> None:
        ch, self._channel, self._stub = self._channel, None, None
        if ch is not None:
            await ch.close()


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def tls_enabled(settings: KitSettings) -> bool:
    return bool(settings.tls_cert_file and settings.tls_key_file)


def server_credentials(settings: KitSettings) -> grpc.ServerCredentials | None:
    """The process's certificate and key, or None for plaintext."""
    if not tls_enabled(settings):
        return None
    return grpc.ssl_server_credentials([(_read(settings.tls_key_file), _read(settings.tls_cert_file))])


def channel_credentials(settings: KitSettings | None) -> grpc.ChannelCredentials | None:
    """Verify servers against the suite's CA, or None for plaintext. Without settings (a
    client built from an address alone) the CA is ZENOPS_TLS_CA_FILE of the environment."""
    ca_file = settings.tls_ca_file if settings is not None else os.environ.get("ZENOPS_TLS_CA_FILE")
    if not ca_file:
        return None
    return grpc.ssl_channel_credentials(root_certificates=_read(ca_file))


def target(address: str) -> str:
    """`host:port` → `dns:///host:port` (every address of the name, for round_robin)."""
    return (
        address if "://" in address or address.startswith(("dns:", "unix:", "ipv4:", "ipv6:")) else f"dns:///{address}"
    )


def channel(
    address: str, settings: KitSettings | None = None, *, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """A client channel to a peer service: round_robin over its addresses, TLS when the
    settings name a CA. Every gRPC client of the suite opens its channels here."""
    opts = [*CHANNEL_OPTIONS, *options]
    creds = channel_credentials(settings)
    if creds is None:
        return grpc.aio.insecure_channel(target(address), options=opts)
    return grpc.aio.secure_channel(target(address), creds, options=opts)


def bind_grpc(server: grpc.aio.Server, settings: ServiceSettings) -> int:
    """Bind the service's port (TLS when configured); returns the bound port."""
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    creds = server_credentials(settings)
    port = server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind gRPC port {address}")
    return port


def probe_server(settings: ServiceSettings, health: health_pb2_grpc.HealthServicer) -> grpc.aio.Server | None:
    """With TLS, a plaintext server on `grpc_probe_port` with the health service only: kubelet's
    grpc probes cannot speak TLS. Nothing else is served there. None without TLS (the probes
    then ask the service port)."""
    if not tls_enabled(settings):
        return None
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    address = f"{settings.grpc_host}:{settings.grpc_probe_port}"
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot bind gRPC probe port {address}")
    return server


def nats_options(settings: KitSettings) -> dict[str, Any]:
    """Keyword arguments for `nats.connect`: the process's user and password, its own inbox
    prefix (its permissions allow replies only there), TLS verified against the CA."""
    options: dict[str, Any] = {}
    if settings.nats_user:
        options["user"] = settings.nats_user
        options["inbox_prefix"] = f"_INBOX_{settings.nats_user}"
    if settings.nats_password is not None:
        options["password"] = settings.nats_password.get_secret_value()
    if settings.tls_ca_file or settings.nats_url.startswith("tls://"):
        context = ssl.create_default_context(cafile=settings.tls_ca_file)
        options["tls"] = context
    return options
