"""Signing keys: created, encrypted at rest, cached, published and rotated.

- Exactly one key is active (signs); a partial unique index enforces it.
- Rotation retires the active key and publishes it until every token it signed has
  expired: publish_until = now + access-token lifetime + leeway (the leeway also covers
  replicas that keep signing with a cached key for up to `signing_key_cache_seconds`).
- JWKS = every key whose publish_until is unset (active) or in the future.
- Creating the first key and rotating run under a transaction-level advisory lock, so two
  replicas starting together create one key.
- Private keys are encrypted under ZENOPS_KEY_ENCRYPTION_SECRET; during a rotation of that
  secret, ZENOPS_KEY_DECRYPTION_SECRETS also decrypt, and `reencrypt` moves every key to
  the current secret (README "Rotating the key-encryption secret").
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zenops_kit.auth import jwk_to_public_key
from zenops_kit.db import autocommit, system_tx

from ..clock import utcnow
from ..store import signing_keys as db
from .secrets import encrypted_under, signing_key_cipher

PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey
# Clock skew and propagation margin on top of the access-token lifetime.
PUBLISH_LEEWAY = timedelta(seconds=60)
# An unknown kid triggers at most one database look-up per this many seconds.
MIN_REFETCH_INTERVAL = 1.0


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def generate(alg: str) -> tuple[PrivateKey, dict]:
    """A new private key and its public JWK (kid = RFC 7638 thumbprint)."""
    if alg == "EdDSA":
        private: PrivateKey = Ed25519PrivateKey.generate()
        raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        numbers = private.public_key().public_numbers()
        members = {
            "crv": "P-256",
            "kty": "EC",
            "x": _b64(numbers.x.to_bytes(32, "big")),
            "y": _b64(numbers.y.to_bytes(32, "big")),
        }
    else:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    thumbprint = _b64(hashlib.sha256(json.dumps(members, sort_keys=True, separators=(",", ":")).encode()).digest())
    return private, {**members, "kid": thumbprint, "alg": alg, "use": "sig"}


@dataclass(frozen=True)
class Rotation:
    old_kid: str | None
    new: db.KeyRow


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private_key: PrivateKey
    public_jwk: dict
    created_at: datetime


class SigningKeyStore:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        secret: str,
        decrypt_only: Sequence[str] = (),
        algorithm: str,
        access_token_ttl: int,
        max_age: int,
        cache_seconds: float,
    ) -> None:
        self.engine = engine
        self.algorithm = algorithm
        self.retire_publish = timedelta(seconds=access_token_ttl) + PUBLISH_LEEWAY
        self.max_age = timedelta(seconds=max_age)
        self.cache_seconds = cache_seconds
        self._secret = secret
        self._cipher = signing_key_cipher(secret, decrypt_only)
        self._active: SigningKey | None = None
        self._active_read = 0.0
        self._public: dict[str, tuple[object, datetime | None]] = {}
        self._public_read = 0.0
        self._refetch_lock = asyncio.Lock()

    # -- signing -----------------------------------------------------------------------------

    async def active(self) -> SigningKey:
        """The key to sign with (cached for `cache_seconds`)."""
        if self._active is None or time.monotonic() - self._active_read > self.cache_seconds:
            async with autocommit(self.engine) as conn:
                row = await db.active(conn)
            if row is None:
                await self.ensure_active()
            else:
                self._remember_active(row)
        assert self._active is not None
        return self._active

    def _remember_active(self, row: db.KeyRow) -> None:
        if self._active is None or self._active.kid != row.kid:
            private = serialization.load_der_private_key(self._cipher.decrypt(row.private_key), password=None)
            self._active = SigningKey(row.kid, row.alg, private, row.public_jwk, row.created_at)
        self._active_read = time.monotonic()

    async def ensure_active(self) -> SigningKey:
        """Create the first key unless one exists (safe with concurrent replicas)."""
        async with system_tx(self.engine) as conn:
            await db.lock(conn)
            row = await db.active(conn)
            if row is None:
                row = await self._create(conn, utcnow())
        self._remember_active(row)
        return self._active

    async def _create(self, conn: AsyncConnection, now: datetime) -> db.KeyRow:
        private, jwk = generate(self.algorithm)
        encrypted = self._cipher.encrypt(
            private.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        row = db.KeyRow(
            kid=jwk["kid"],
            alg=self.algorithm,
            private_key=encrypted,
            public_jwk=jwk,
            created_at=now,
            retired_at=None,
            publish_until=None,
        )
        await db.insert(conn, row)
        return row

    async def rotate(self, conn: AsyncConnection, *, only_if_due: bool = False) -> Rotation | None:
        """Retire the active key and create a new one, in the caller's transaction (call
        `activate` once it has committed). None when `only_if_due` and the key is young."""
        await db.lock(conn)
        now = utcnow()
        current = await db.active(conn)
        if only_if_due and current is not None and now - current.created_at < self.max_age:
            return None
        if current is not None:
            await db.retire(conn, current.kid, now, now + self.retire_publish)
        return Rotation(old_kid=current.kid if current else None, new=await self._create(conn, now))

    def activate(self, rotation: Rotation) -> None:
        """After the rotation committed: this replica signs with the new key at once."""
        self._remember_active(rotation.new)
        self._public_read = 0.0

    async def reencrypt(self) -> tuple[int, int]:
        """Re-encrypt every stored private key (retired ones too) under the current secret,
        in one transaction under the rotation lock; returns (keys, re-encrypted). Keys already
        under it are left alone, so running it again changes nothing. Raises InvalidToken,
        changing nothing, if a key decrypts under none of the configured secrets."""
        async with system_tx(self.engine) as conn:
            await db.lock(conn)
            rows = await db.all_keys(conn)
            stale = [row for row in rows if not encrypted_under(self._secret, row.private_key)]
            for row in stale:
                await db.set_private_key(conn, row.kid, self._cipher.rotate(row.private_key))
        return len(rows), len(stale)

    # -- verification ------------------------------------------------------------------------

    async def published(self) -> list[dict]:
        """The JWKS: active key and retired keys still within their publication window."""
        async with autocommit(self.engine) as conn:
            rows = await db.published(conn, utcnow())
        return [row.public_jwk for row in rows]

    async def public_key(self, kid: str):
        """The public key for `kid` while it is published; None otherwise."""
        stale = time.monotonic() - self._public_read > self.cache_seconds
        if stale or kid not in self._public:
            await self._refetch(force=stale)
        entry = self._public.get(kid)
        if entry is None:
            return None
        key, publish_until = entry
        if publish_until is not None and publish_until <= utcnow():
            return None
        return key

    async def _refetch(self, *, force: bool) -> None:
        async with self._refetch_lock:  # single flight
            if not force and time.monotonic() - self._public_read < MIN_REFETCH_INTERVAL:
                return
            async with autocommit(self.engine) as conn:
                rows = await db.published(conn, utcnow())
            # Keep the same key object per kid: the kit verifier's token cache checks identity.
            known = self._public
            self._public = {
                row.kid: (
                    known[row.kid][0] if row.kid in known else jwk_to_public_key(row.public_jwk),
                    row.publish_until,
                )
                for row in rows
            }
            self._public_read = time.monotonic()
