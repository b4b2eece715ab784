"""Public signing keys: JWK parsing and the JWKS cache every verifier reads.

`JwksKeySource` keeps identity's published keys by `kid`, parsed once. An unknown `kid`
(a key rotated in since the last fetch) triggers one refetch, rate-limited and shared by
every concurrent caller; after `ttl` the set is refreshed in the background while the
cached keys keep serving, so a key identity stops publishing stops verifying shortly
after the TTL. When identity cannot be reached, cached keys keep serving; without any,
callers get `Unavailable` (503: retry later), never a 401.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import grpc
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .. import tls
from ..errors import Unavailable

log = logging.getLogger("zenops.auth.keys")

PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey

# The only signature algorithms of the suite (token format contract). HS*, RS* and
# "none" are never accepted, whatever a token header or a JWK claims.
ALLOWED_ALGORITHMS: tuple[str, ...] = ("EdDSA", "ES256")

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_decode(value: str, what: str) -> bytes:
    """Strict base64url without padding (RFC 7515 §2): anything else is a ValueError."""
    if not isinstance(value, str) or not _B64URL.fullmatch(value) or len(value) % 4 == 1:
        raise ValueError(f"{what} is not base64url")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} is not base64url") from exc


def key_algorithm(key: object) -> str | None:
    """The one JWS algorithm `key` may verify ("EdDSA" / "ES256"), None for any other key."""
    if isinstance(key, Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    return None


def jwk_to_public_key(jwk: dict) -> PublicKey:
    """An OKP/Ed25519 or EC/P-256 public JWK → its cryptography key; ValueError naming the
    offending member for anything else (including a JWK that claims an HS*/RS*/none alg)."""
    if not isinstance(jwk, dict):
        raise ValueError("a JWK must be a JSON object")
    kty, crv, alg, use = jwk.get("kty"), jwk.get("crv"), jwk.get("alg"), jwk.get("use")
    if use not in (None, "", "sig"):
        raise ValueError(f"JWK use must be 'sig', got {use!r}")
    if kty == "OKP":
        if crv != "Ed25519":
            raise ValueError(f"JWK crv must be Ed25519 for kty OKP, got {crv!r}")
        if alg not in (None, "", "EdDSA"):
            raise ValueError(f"JWK alg must be EdDSA for an Ed25519 key, got {alg!r}")
        x = b64url_decode(jwk.get("x", ""), "JWK x")
        if len(x) != 32:
            raise ValueError("JWK x must be 32 bytes for Ed25519")
        return Ed25519PublicKey.from_public_bytes(x)
    if kty == "EC":
        if crv != "P-256":
            raise ValueError(f"JWK crv must be P-256 for kty EC, got {crv!r}")
        if alg not in (None, "", "ES256"):
            raise ValueError(f"JWK alg must be ES256 for a P-256 key, got {alg!r}")
        x, y = b64url_decode(jwk.get("x", ""), "JWK x"), b64url_decode(jwk.get("y", ""), "JWK y")
        if len(x) != 32 or len(y) != 32:
            raise ValueError("JWK x and y must be 32 bytes each for P-256")
        # Raises ValueError for a point that is not on the curve.
        return ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
        ).public_key()
    raise ValueError(f"JWK kty must be OKP or EC, got {kty!r}")


class KeySource(Protocol):
    async def key(self, kid: str) -> PublicKey | None:
        """The public key `kid` names, None if unknown (after any refetch)."""
        ...


Fetch = Callable[[], Awaitable[list[dict]]]


class JwksKeySource:
    """A remote JWKS, cached: see the module docstring for the refresh rules."""

    def __init__(self, fetch: Fetch, *, ttl: float = 300.0, min_refetch_interval: float = 1.0) -> None:
        self._fetch = fetch
        self.ttl = ttl
        self.min_refetch_interval = min_refetch_interval
        self._keys: dict[str, PublicKey] = {}
        self._jwks: dict[str, dict] = {}  # the JWK each cached key was parsed from
        self._fetched_at: float | None = None  # monotonic time of the last successful fetch
        self._attempted_at: float | None = None  # monotonic time the last fetch started
        self._last_error: BaseException | None = None  # of the last fetch, None if it succeeded
        self._inflight: asyncio.Task | None = None
        self._on_close: Callable[[], Awaitable[None]] | None = None
        self.fetches = 0  # fetches started (observability and tests)

    @classmethod
    def from_identity(cls, address: str, *, timeout: float = 3.0, **kwargs) -> JwksKeySource:
        """Identity's GetJwks (public) over this source's own channel, opened on first use
        (so an app can be built before its event loop runs)."""
        from zenops.identity.v1 import identity_pb2, identity_pb2_grpc

        channel: grpc.aio.Channel | None = None

        async def fetch() -> list[dict]:
            nonlocal channel
            if channel is None:
                channel = tls.channel(address)
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            try:
                resp = await stub.GetJwks(identity_pb2.GetJwksRequest(), timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                raise Unavailable(f"identity at {address} did not answer GetJwks ({exc.code().name})") from None
            fields = ("kty", "kid", "alg", "use", "crv", "x", "y")
            return [{f: getattr(k, f) for f in fields if getattr(k, f)} for k in resp.keys]

        async def close() -> None:
            if channel is not None:
                await channel.close()

        source = cls(fetch, **kwargs)
        source._on_close = close
        return source

    # -- reading -----------------------------------------------------------------------------

    async def key(self, kid: str) -> PublicKey | None:
        now = time.monotonic()
        if self._fetched_at is None:
            # Nothing cached yet: this caller (and every concurrent one) waits for the fetch.
            await self._refetch(now)
            if self._fetched_at is None:
                raise self._unavailable()
        elif now - self._fetched_at >= self.ttl and self._may_fetch(now):
            self._start_fetch(now)  # stale-while-revalidate: answer from the cache meanwhile
        key = self._keys.get(kid)
        if key is not None:
            return key
        # Unknown kid: maybe a key rotated in since the last fetch; look once more.
        await self._refetch(now)
        key = self._keys.get(kid)
        if key is None and self._last_error is not None:
            raise self._unavailable()  # cannot tell "unknown" from "not fetched"
        return key

    def _may_fetch(self, now: float) -> bool:
        return self._inflight is None and (
            self._attempted_at is None or now - self._attempted_at >= self.min_refetch_interval
        )

    async def _refetch(self, now: float) -> None:
        """Wait for the fetch in flight, or start one unless one started too recently."""
        if self._inflight is None:
            if not self._may_fetch(now):
                return
            self._start_fetch(now)
        # shield: a caller that gives up must not cancel the fetch others wait for
        await asyncio.shield(self._inflight)

    def _start_fetch(self, now: float) -> None:
        self._attempted_at = now
        self.fetches += 1
        self._inflight = asyncio.create_task(self._do_fetch(), name="jwks-fetch")

    async def _do_fetch(self) -> None:
        try:
            jwks = await self._fetch()
        except Exception as exc:  # noqa: BLE001 - any failure: keep serving what is cached
            self._last_error = exc
            log.warning("cannot fetch the JWKS", extra={"error": repr(exc)[:300], "cached_keys": len(self._keys)})
            return
        finally:
            self._inflight = None
        keys: dict[str, PublicKey] = {}
        jwks_by_kid: dict[str, dict] = {}
        for jwk in jwks:
            kid = jwk.get("kid") if isinstance(jwk, dict) else None
            try:
                if not isinstance(kid, str) or not kid:
                    raise ValueError("JWK kid is missing")
                # An unchanged key keeps its object: verifiers compare keys by identity.
                same = self._jwks.get(kid) == jwk and kid in self._keys
                keys[kid] = self._keys[kid] if same else jwk_to_public_key(jwk)
                jwks_by_kid[kid] = dict(jwk)
            except ValueError as exc:  # one bad key must not take the others down
                log.warning("ignoring an unusable JWK", extra={"kid": str(kid)[:64], "error": str(exc)})
        self._keys, self._jwks = keys, jwks_by_kid
        self._fetched_at = time.monotonic()
        self._last_error = None

    def _unavailable(self) -> Unavailable:
        return Unavailable(
            "the token signing keys cannot be fetched from identity; retry later", retry_after=self.min_refetch_interval
        )

    async def close(self) -> None:
        task, self._inflight = self._inflight, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._on_close is not None:
            await self._on_close()
