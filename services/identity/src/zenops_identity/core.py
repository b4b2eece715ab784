"""The identity service's parts, wired once per process (or per bootstrap run)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from .credentials.hashing import PasswordHasher
from .domain.login_throttle import AccountDelay, ClientThrottle
from .domain.sessions import SessionPolicy
from .domain.tenancy import Tenancy
from .settings import IdentitySettings
from .tokens.keys import SigningKeyStore
from .tokens.secrets import refresh_pepper
from .tokens.verifier import IdentityVerifier


@dataclass
class Identity:
    settings: IdentitySettings
    engine: AsyncEngine
    tenancy: Tenancy
    account_delay: AccountDelay
    client_throttle: ClientThrottle
    session_policy: SessionPolicy
    hasher: PasswordHasher
    keys: SigningKeyStore
    verifier: IdentityVerifier
    refresh_pepper: bytes
    # client_id → sha256(secret): compared in constant time, plaintext not kept around.
    client_digests: dict[str, bytes]

    @classmethod
    def create(cls, settings: IdentitySettings, engine: AsyncEngine) -> Identity:
        secret = settings.key_encryption_secret.get_secret_value()
        keys = SigningKeyStore(
            engine,
            secret=secret,
            decrypt_only=settings.decryption_secrets,
            algorithm=settings.signing_algorithm,
            access_token_ttl=settings.access_token_ttl,
            max_age=settings.signing_key_max_age,
            cache_seconds=settings.signing_key_cache_seconds,
        )
        return cls(
            settings=settings,
            engine=engine,
            tenancy=Tenancy(settings.multi_tenant_enabled, settings.internal_tenant_id, settings.external_tenant_id),
            account_delay=AccountDelay(
                free_failures=settings.login_free_failures,
                base=settings.login_delay_base,
                maximum=settings.login_delay_max,
                window=timedelta(seconds=settings.login_failure_window),
            ),
            client_throttle=ClientThrottle(settings.login_client_max_failures, settings.login_client_window),
            session_policy=SessionPolicy(
                absolute_ttl=timedelta(seconds=settings.refresh_absolute_ttl),
                idle_ttl=timedelta(seconds=settings.refresh_idle_ttl),
                grace=timedelta(seconds=settings.refresh_grace_seconds),
            ),
            hasher=PasswordHasher(
                memory_cost=settings.argon2_memory_cost,
                time_cost=settings.argon2_time_cost,
                parallelism=settings.argon2_parallelism,
                max_concurrent=max(1, settings.argon2_memory_budget_mib * 1024 // settings.argon2_memory_cost),
            ),
            keys=keys,
            verifier=IdentityVerifier(keys, engine, issuer=settings.jwt_issuer),
            refresh_pepper=refresh_pepper(secret),
            client_digests={
                client: hashlib.sha256(value.encode()).digest() for client, value in settings.service_clients.items()
            },
        )
