"""Settings of the identity service (environment variables ZENOPS_*).

Secrets are SecretStr: the kit refuses their shipped defaults in production. The local
defaults below make `make test` and a bare `python -m zenops_identity serve` work; they
are never valid in production.
"""

from __future__ import annotations

import json
import uuid
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from zenops_kit.settings import LOCAL_DEFAULT_DB_PASSWORD, LOCAL_SERVICE_CLIENT_SECRET, ServiceSettings

# Processes that may authenticate with a client secret (IssueServiceToken).
KNOWN_SERVICE_CLIENTS = ("gateway", "ops", "billing", "repogen")
# Encrypts signing keys at rest on a developer machine only; production must set its own.
LOCAL_KEY_ENCRYPTION_SECRET = "zenops-local-key-encryption-secret-not-for-production"
LOCAL_SERVICE_CLIENT_SECRETS = json.dumps({client: LOCAL_SERVICE_CLIENT_SECRET for client in KNOWN_SERVICE_CLIENTS})

DAY = 24 * 3600


class IdentitySettings(ServiceSettings):
    # A misconfigured secret must not be echoed in the validation error.
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    grpc_port: int = 50051
    database_url: SecretStr = SecretStr(f"postgresql://identity:{LOCAL_DEFAULT_DB_PASSWORD}@127.0.0.1:15432/identity")

    # -- tenants -----------------------------------------------------------------------------
    multi_tenant_enabled: bool = False
    internal_tenant_id: str = "00000000-0000-4000-8000-000000000001"
    external_tenant_id: str = "00000000-0000-4000-8000-000000000002"

    # -- bootstrap (first start on an empty database) ----------------------------------------
    bootstrap_admin_email: str = "admin@zenops.local"
    # Only needed while the database has no user yet: None/empty means "not given" (local
    # runs generate one and print it once; production refuses to bootstrap without it).
    bootstrap_admin_password: SecretStr | None = None

    # -- tokens and sessions (seconds) -------------------------------------------------------
    access_token_ttl: int = Field(900, ge=1, le=3600)
    refresh_absolute_ttl: int = Field(30 * DAY, ge=60)
    refresh_idle_ttl: int = Field(7 * DAY, ge=60)
    # Window in which a spent refresh token returns the same successor (concurrent tabs).
    refresh_grace_seconds: int = Field(10, ge=0, le=300)
    service_token_ttl: int = Field(600, ge=60, le=3600)

    # -- brute force (domain/login_throttle.py) ---------------------------------------------
    # Failed logins of one account (tenant + email, known or not) answered without delay.
    login_free_failures: int = Field(5, ge=1, le=100)
    # Then each attempt waits this long after the last failure, doubling up to the maximum —
    # which must stay well inside the gateway's deadline on Login (ZENOPS_RPC_TIMEOUT, 5 s).
    login_delay_base: float = Field(0.25, gt=0, le=4)
    login_delay_max: float = Field(3.0, gt=0, le=4)
    # An account's failures are forgotten this long after the last one.
    login_failure_window: int = Field(900, ge=1)
    # Failed logins one client address (IPv6: its /64) may make per window, then refused.
    login_client_max_failures: int = Field(20, ge=1)
    login_client_window: float = Field(300.0, gt=0)

    # -- signing keys ------------------------------------------------------------------------
    signing_algorithm: Literal["EdDSA", "ES256"] = "EdDSA"
    # The active key is replaced automatically once it is this old.
    signing_key_max_age: int = Field(30 * DAY, ge=3600)
    # How often a replica checks whether the active key is due for rotation.
    signing_key_check_interval: float = Field(3600.0, gt=0)
    # How long a replica keeps using the active key it read (rotations by another replica
    # are picked up within this; the retired key stays published 60 s beyond the access-token
    # lifetime, which covers it).
    signing_key_cache_seconds: float = Field(30.0, ge=0, le=45)
    # Encrypts private signing keys at rest (and derives the refresh-token pepper).
    key_encryption_secret: SecretStr = SecretStr(LOCAL_KEY_ENCRYPTION_SECRET)
    # While rotating that secret (README "Rotating the key-encryption secret"): a JSON list
    # of further secrets that decrypt signing keys but never encrypt one.
    key_decryption_secrets: SecretStr | None = None

    # -- service clients ---------------------------------------------------------------------
    # Identity issues service tokens; it never asks itself for one.
    service_client_secret: SecretStr | None = None
    # JSON object client_id → secret, for the clients in KNOWN_SERVICE_CLIENTS.
    service_client_secrets: SecretStr = SecretStr(LOCAL_SERVICE_CLIENT_SECRETS)

    # -- password hashing (argon2id; OWASP minimums enforced by the hasher) ------------------
    argon2_memory_cost: int = Field(19456, ge=19456)
    argon2_time_cost: int = Field(2, ge=2)
    argon2_parallelism: int = Field(1, ge=1, le=16)
    # Memory the concurrent argon2 computations may use together: hashes beyond
    # floor(budget / memory cost) wait their turn instead of exhausting the pod's memory.
    argon2_memory_budget_mib: int = Field(256, ge=19)

    @field_validator("internal_tenant_id", "external_tenant_id")
    @classmethod
    def _tenant_uuid(cls, value: str) -> str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError("must be a UUID") from None

    @field_validator("bootstrap_admin_password", mode="before")
    @classmethod
    def _empty_is_none(cls, value):
        if value is None or value == "" or (isinstance(value, SecretStr) and not value.get_secret_value()):
            return None
        return value

    @field_validator("key_decryption_secrets", mode="before")
    @classmethod
    def _no_decryption_secrets(cls, value):
        if value is None or value == "" or (isinstance(value, SecretStr) and not value.get_secret_value()):
            return None
        return value

    @field_validator("key_decryption_secrets")
    @classmethod
    def _decryption_secrets(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_secret_list(value.get_secret_value())
        return value

    @field_validator("service_client_secrets")
    @classmethod
    def _client_secrets(cls, value: SecretStr) -> SecretStr:
        parse_client_secrets(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _consistent(self) -> IdentitySettings:
        if self.internal_tenant_id == self.external_tenant_id:
            raise ValueError("internal_tenant_id and external_tenant_id must differ")
        if self.login_delay_base > self.login_delay_max:
            raise ValueError("login_delay_base must not exceed login_delay_max")
        if self.refresh_idle_ttl > self.refresh_absolute_ttl:
            raise ValueError("refresh_idle_ttl must not exceed refresh_absolute_ttl")
        if self.is_production:
            if len(self.key_encryption_secret.get_secret_value()) < 32:
                raise ValueError("ZENOPS_KEY_ENCRYPTION_SECRET must be at least 32 characters in production")
            if any(len(old) < 32 for old in self.decryption_secrets):
                raise ValueError("ZENOPS_KEY_DECRYPTION_SECRETS must each be at least 32 characters in production")
            shared = [c for c, s in self.service_clients.items() if s == LOCAL_SERVICE_CLIENT_SECRET]
            if shared:
                raise ValueError(
                    "ZENOPS_SERVICE_CLIENT_SECRETS uses the local default secret for: " + ", ".join(shared)
                )
        return self

    @property
    def decryption_secrets(self) -> list[str]:
        """The secrets that only decrypt signing keys (empty unless a rotation is under way)."""
        return parse_secret_list(self.key_decryption_secrets.get_secret_value()) if self.key_decryption_secrets else []

    @property
    def service_clients(self) -> dict[str, str]:
        """client_id → secret (validated)."""
        return parse_client_secrets(self.service_client_secrets.get_secret_value())


def parse_client_secrets(raw: str) -> dict[str, str]:
    """ZENOPS_SERVICE_CLIENT_SECRETS → {client_id: secret}; ValueError that never shows a secret."""
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError("must be a JSON object of client_id → secret") from None
    if not isinstance(parsed, dict):
        raise ValueError("must be a JSON object of client_id → secret")
    unknown = sorted(k for k in parsed if k not in KNOWN_SERVICE_CLIENTS)
    if unknown:
        raise ValueError(f"unknown client ids {unknown}; known: {', '.join(KNOWN_SERVICE_CLIENTS)}")
    empty = sorted(k for k, v in parsed.items() if not isinstance(v, str) or not v.strip())
    if empty:
        raise ValueError(f"secrets must be non-empty strings (offending clients: {empty})")
    return dict(parsed)


def parse_secret_list(raw: str) -> list[str]:
    """ZENOPS_KEY_DECRYPTION_SECRETS → [secret, ...]; ValueError that never shows a secret."""
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError("must be a JSON list of secrets") from None
    if not isinstance(parsed, list) or not all(isinstance(v, str) and v.strip() for v in parsed):
        raise ValueError("must be a JSON list of non-empty strings")
    return parsed
