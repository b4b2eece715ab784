"""Settings of the gateway (environment variables ZENOPS_*, see README)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from zenops_kit.settings import KitSettings

from .edge import parse_networks

MiB = 1024 * 1024


class GatewaySettings(KitSettings):
    gateway_host: str = "0.0.0.0"
    gateway_port: int = 8000

    # Upstream gRPC addresses (host:port); one long-lived channel each (identity_addr: kit).
    ops_addr: str = "127.0.0.1:50052"
    billing_addr: str = "127.0.0.1:50053"
    repogen_addr: str = "127.0.0.1:50054"

    # Deadline (seconds) on every upstream RPC unless a call passes its own.
    rpc_timeout: float = Field(5.0, gt=0)
    # Deadline (seconds) of each check behind GET /v1/health.
    health_timeout: float = Field(1.0, gt=0)
    # Largest request body accepted (declared Content-Length or streamed).
    max_body_bytes: int = Field(1 * MiB, gt=0)
    # Largest body of PUT /v1/files/{token} (the local storage driver's signed upload URLs),
    # instead of max_body_bytes; keep it equal to ops' ZENOPS_MAX_UPLOAD_BYTES.
    max_upload_bytes: int = Field(25 * MiB, gt=0)
    # Deadline (seconds) of a file upload or download through /v1/files (the whole transfer).
    file_transfer_timeout: float = Field(120.0, gt=0)
    # Browser origins allowed by CORS; empty = CORS off. JSON list or comma-separated.
    cors_origins: Annotated[list[str], NoDecode] = []

    # Seconds in-flight HTTP requests get to finish on SIGTERM.
    shutdown_grace: float = 10.0
    # Seconds between SIGTERM (readyz turns 503) and closing the listener, so load
    # balancers stop routing here first; 0 locally, a few seconds in Kubernetes.
    shutdown_drain_seconds: float = Field(0.0, ge=0)
    # The edge's addresses (CIDRs; JSON list or comma-separated): only requests from these
    # peers have their X-Forwarded-For and traceparent believed (edge.py). Local: Envoy on
    # loopback; Kubernetes: the Envoy pods' network.
    trusted_proxies: Annotated[list[str], NoDecode] = ["127.0.0.1/32", "::1/128"]

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_origins(cls, value):
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value
