"""Typed settings from the environment (twelve-factor).

Every service subclasses `ServiceSettings`. Defaults are safe for a local run; secrets are
`SecretStr` and a service refuses to start in production while any of them still has its
shipped default (or the database URL still carries the local default password).
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["local", "test", "development", "production"]

# The password every local role gets unless devstack generated one; never valid in production.
LOCAL_DEFAULT_DB_PASSWORD = "zenops-local"
# The service client secret every local process shares unless devstack generated them.
LOCAL_SERVICE_CLIENT_SECRET = "zenops-local-service-secret"


class DefaultSecretError(RuntimeError):
    """A production service was configured with a shipped default secret."""


class KitSettings(BaseSettings):
    """Settings every process of the suite has (gateway included)."""

    # Secrets may also be files named like the variable (ZENOPS_DATABASE_URL, ...) in the
    # directory ZENOPS_SECRETS_DIR (Kubernetes mounts the Secrets there; an environment
    # variable, when set, wins).
    model_config = SettingsConfigDict(
        env_prefix="ZENOPS_", extra="ignore", frozen=True, secrets_dir=os.environ.get("ZENOPS_SECRETS_DIR") or None
    )

    environment: Environment = "local"
    log_level: str = "INFO"
    nats_url: str = "nats://127.0.0.1:14222"
    # JetStream replicas for the streams this service creates (3 in a cluster).
    nats_stream_replicas: int = 1
    # This process's NATS user (its permissions: deploy/k8s/base/nats/permissions.conf) and
    # password; None connects anonymously, which only a test server accepts.
    nats_user: str | None = None
    nats_password: SecretStr | None = None

    # TLS (all unset: plaintext, as under `make run`). The CA verifies the servers this
    # process calls (gRPC peers, NATS; a `tls://` NATS URL or a CA turns NATS TLS on); the
    # certificate and key are what a gRPC server presents (zenops_kit.tls).
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    version: str = "0.1.0"
    git_sha: str = "unknown"
    build_time: str = ""  # ISO-8601; empty means "process start time"
    # Port of the Prometheus scrape endpoint (/metrics) when OTEL_METRICS_EXPORTER includes
    # `prometheus`; 0 = none (9464 in Kubernetes).
    metrics_port: int = 0

    # Authentication: identity issues tokens; everyone verifies them against its JWKS.
    identity_addr: str = "127.0.0.1:50051"
    jwt_issuer: str = "zenops-identity"
    # This process's client secret for identity's IssueServiceToken (client id = service name).
    service_client_secret: SecretStr = SecretStr(LOCAL_SERVICE_CLIENT_SECRET)

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> KitSettings:
        if not self.is_production:
            return self
        offenders = []
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                secret = value.get_secret_value()
                default = field.default.get_secret_value() if isinstance(field.default, SecretStr) else None
                if not secret or secret == default or LOCAL_DEFAULT_DB_PASSWORD in secret:
                    offenders.append(f"ZENOPS_{name.upper()}")
        if offenders:
            raise DefaultSecretError(
                "refusing to start in production with default or empty secrets: " + ", ".join(sorted(offenders))
            )
        return self


class ServiceSettings(KitSettings):
    """Settings of a domain service (one gRPC server, one database)."""

    grpc_host: str = "0.0.0.0"
    grpc_port: int = 50051
    # With TLS, kubelet's grpc probes (plaintext only) ask this port, which serves the health
    # service alone, in plaintext (zenops_kit.tls.bind_grpc).
    grpc_probe_port: int = 50050
    database_url: SecretStr = SecretStr(f"postgresql://zenops:{LOCAL_DEFAULT_DB_PASSWORD}@127.0.0.1:15432/zenops")
    database_pool_size: int = 8
    # Seconds between health probes of the database and NATS.
    health_interval: float = 1.0
    # Seconds granted to in-flight RPCs on SIGTERM.
    shutdown_grace: float = 10.0
    # Seconds a signalled process keeps accepting calls while it reports not ready, so calls
    # already on their way (in a caller's channel, or sent before an orchestrator removed the
    # endpoint) are served instead of refused.
    shutdown_drain: float = 1.0
    # Whether this process runs the outbox relay and event consumers (the default role).
    run_workers: bool = True
    # Seconds between samples of the outbox and consumer figures behind the zenops.outbox.*
    # and zenops.consumer.* gauges (GetEventStats always reads them afresh).
    events_sample_interval: float = 10.0
