"""Access-token verification: a bearer JWT → the RequestContext its claims grant.

Order of checks (each failure is `Unauthenticated` with its own TOKEN_* reason; messages
never echo the token): shape (3 strict base64url parts, header and payload JSON objects)
→ `alg` in the allow-list → `kid` names a known key (one refetch) → the key's own
algorithm is the header's (key-confusion defence) → signature (PyJWT's EdDSA / ES256
algorithm objects) → required claims, iss, aud → claim types → exp / nbf / iat (with
leeway) → session not revoked.

The JWS is parsed here once, not by `jwt.decode`: PyJWT re-validates the base64 alphabet
character by character in Python, which cost as much as the Ed25519 signature itself.

Verified tokens are cached (bounded LRU keyed by the exact token string) until they
expire, so the gateway and a service do not redo the signature for every request of the
same token; expiry, revocation and "its key is still published" are checked on every call.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import Algorithm, ECAlgorithm, OKPAlgorithm

from ..context import RequestContext
from ..errors import Unauthenticated
from .keys import ALLOWED_ALGORITHMS, KeySource, PublicKey, b64url_decode, key_algorithm
from .revocation import RevocationList

# The `aud` values identity issues: one per client family, and service-to-service.
AUDIENCES: tuple[str, ...] = ("web", "studio", "portal", "service")
SERVICE_AUDIENCE = "service"
SERVICE_SUBJECT_PREFIX = "service:"
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti")
USER_REQUIRED_CLAIMS = ("tid", "sid")
# Far above any token identity issues; bounds the work an oversized header can cause.
MAX_TOKEN_LENGTH = 8192

# The allow-list itself: the only signature algorithms a token can be verified with.
_ALGORITHMS: dict[str, Algorithm] = {
    "EdDSA": OKPAlgorithm(),
    "ES256": ECAlgorithm(ECAlgorithm.SHA256, ec.SECP256R1),
}
assert tuple(_ALGORITHMS) == ALLOWED_ALGORITHMS


def _reject(reason: str, message: str) -> Unauthenticated:
    return Unauthenticated(message, reason=reason)


def _clip(value: object, n: int = 40) -> str:
    """An attacker-controlled header value, safe to put in a message."""
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def _is_number(value: object) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value) and abs(value) < 1e11  # seconds: beyond the year 5000 is nonsense
    except OverflowError:  # an integer too large for a float
        return False


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@dataclass(slots=True)
class _Verified:
    claims: dict[str, Any]
    context: RequestContext
    exp: float
    kid: str
    key: PublicKey


class JwtVerifier:
    """The suite's TokenVerifier: identity-issued EdDSA/ES256 access tokens."""

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audiences: Iterable[str] = AUDIENCES,
        leeway: float = 5.0,
        revocations: RevocationList | None = None,
        cache_size: int = 10_000,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audiences = frozenset(audiences)
        if not self.audiences:
            raise ValueError("audiences must name at least one audience")
        self.leeway = leeway
        self.revocations = revocations
        self.cache_size = cache_size
        self._cache: OrderedDict[str, _Verified] = OrderedDict()

    async def verify(self, token: str, request_id: str | None = None) -> RequestContext:
        ctx = (await self._verified(token)).context
        return dataclasses.replace(ctx, request_id=request_id) if request_id is not None else ctx

    async def claims(self, token: str) -> dict:
        """The token's verified claims (a copy)."""
        return dict((await self._verified(token)).claims)

    # -- the checks ----------------------------------------------------------------------------

    async def _verified(self, token: str) -> _Verified:
        entry = self._cache.get(token)
        if entry is not None:
            # A key identity stopped publishing (or replaced) no longer vouches for its tokens.
            if await self.keys.key(entry.kid) is entry.key:
                if token in self._cache:  # a concurrent call may have dropped it meanwhile
                    self._cache.move_to_end(token)
            else:
                self._cache.pop(token, None)
                entry = None
        if entry is None:
            entry = await self._verify_fully(token)
            if self.cache_size > 0:
                self._cache[token] = entry
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        # Checked on every call, cached or not.
        if entry.exp <= time.time() - self.leeway:
            self._cache.pop(token, None)
            raise _reject("TOKEN_EXPIRED", "the token has expired")
        if self.revocations is not None and self.revocations.is_revoked(entry.context.session_id):
            raise _reject("TOKEN_REVOKED", "the token's session has been revoked")
        return entry

    async def _verify_fully(self, token: str) -> _Verified:
        header, claims, signing_input, signature = self._parse(token)
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise _reject(
                "TOKEN_ALGORITHM_NOT_ALLOWED",
                f"token algorithm {_clip(alg)} is not allowed (allowed: {', '.join(ALLOWED_ALGORITHMS)})",
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _reject("TOKEN_KEY_UNKNOWN", "the token header names no signing key (kid)")
        key = await self.keys.key(kid)
        if key is None:
            raise _reject("TOKEN_KEY_UNKNOWN", f"the token's signing key {_clip(kid, 72)} is unknown")
        key_alg = key_algorithm(key)
        if key_alg != alg:
            # e.g. an ES256 header pointing at an Ed25519 key: never let the token pick the algorithm.
            raise _reject(
                "TOKEN_ALGORITHM_NOT_ALLOWED",
                f"signing key {_clip(kid, 72)} verifies {key_alg or 'no'} tokens, not {alg}",
            )
        if not _ALGORITHMS[key_alg].verify(signing_input, key, signature):
            raise _reject("TOKEN_SIGNATURE_INVALID", "the token signature does not verify")
        for name in REQUIRED_CLAIMS:
            if claims.get(name) is None:
                raise _reject("TOKEN_CLAIMS_INVALID", f"the token lacks the {name!r} claim")
        iss, aud = claims["iss"], claims["aud"]
        if not isinstance(iss, str):
            raise _reject("TOKEN_CLAIMS_INVALID", "claim 'iss' must be a string")
        if iss != self.issuer:
            raise _reject("TOKEN_ISSUER_INVALID", f"the token was not issued by {self.issuer!r}")
        if not isinstance(aud, str):
            raise _reject("TOKEN_CLAIMS_INVALID", "claim 'aud' must be one string")
        if aud not in self.audiences:
            raise _reject("TOKEN_AUDIENCE_INVALID", f"token audience {_clip(aud)} is not accepted here")
        context = self._context(claims, token)
        self._check_times(claims)
        return _Verified(claims=claims, context=context, exp=float(claims["exp"]), kid=kid, key=key)

    def _check_times(self, claims: dict[str, Any]) -> None:
        """As PyJWT would, with `leeway` for clock skew (types were checked by _context)."""
        now = time.time()
        if claims["exp"] <= now - self.leeway:
            raise _reject("TOKEN_EXPIRED", "the token has expired")
        if claims.get("nbf", 0) > now + self.leeway:
            raise _reject("TOKEN_NOT_YET_VALID", "the token is not valid yet (nbf in the future)")
        if claims["iat"] > now + self.leeway:
            raise _reject("TOKEN_NOT_YET_VALID", "the token is not valid yet (iat in the future)")

    @staticmethod
    def _parse(token: str) -> tuple[dict, dict, bytes, bytes]:
        """Unverified header and payload (to pick the reason code), signing input and
        signature; TOKEN_MALFORMED for anything that is not a compact JWS of JSON objects."""
        if not isinstance(token, str) or not token:
            raise _reject("TOKEN_MALFORMED", "the bearer token is empty")
        if len(token) > MAX_TOKEN_LENGTH:
            raise _reject("TOKEN_MALFORMED", f"the bearer token is longer than {MAX_TOKEN_LENGTH} characters")
        parts = token.split(".")
        if len(parts) != 3:
            raise _reject("TOKEN_MALFORMED", "the bearer token is not a JWT (three base64url parts separated by dots)")
        decoded = []
        for part, what in zip(parts[:2], ("header", "payload"), strict=True):
            try:
                value = json.loads(b64url_decode(part, what))
            except (ValueError, RecursionError):
                raise _reject("TOKEN_MALFORMED", f"the token {what} is not base64url-encoded JSON") from None
            if not isinstance(value, dict):
                raise _reject("TOKEN_MALFORMED", f"the token {what} is not a JSON object")
            decoded.append(value)
        try:
            signature = b64url_decode(parts[2], "signature")
        except ValueError:
            raise _reject("TOKEN_MALFORMED", "the token signature is not base64url") from None
        header, payload = decoded
        if "crit" in header or "b64" in header:
            raise _reject("TOKEN_MALFORMED", "the token uses JWS extensions (crit/b64) this suite does not accept")
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")  # ascii: the alphabet was checked
        return header, payload, signing_input, signature

    @staticmethod
    def _context(claims: dict[str, Any], token: str) -> RequestContext:
        def invalid(message: str) -> Unauthenticated:
            return _reject("TOKEN_CLAIMS_INVALID", message)

        aud, sub, jti = claims["aud"], claims["sub"], claims["jti"]
        if not isinstance(sub, str) or not isinstance(jti, str):
            raise invalid("claims 'sub' and 'jti' must be strings")
        for name in ("exp", "iat", *(("nbf",) if "nbf" in claims else ())):
            if not _is_number(claims[name]):
                raise invalid(f"claim {name!r} must be a number of seconds since the epoch")
        if not sub or not jti:
            raise invalid("claims 'sub' and 'jti' must be non-empty strings")
        is_service = aud == SERVICE_AUDIENCE
        if is_service != sub.startswith(SERVICE_SUBJECT_PREFIX):
            raise invalid("claim 'sub' must be 'service:<name>' exactly when 'aud' is 'service'")
        if not is_service:
            for name in USER_REQUIRED_CLAIMS:
                if claims.get(name) is None:
                    raise invalid(f"the token lacks the {name!r} claim")
            if not _is_uuid(sub):
                raise invalid("claim 'sub' must be a user id (UUID)")
        for name in ("tid", "sid"):
            if claims.get(name) is not None and not _is_uuid(claims[name]):
                raise invalid(f"claim {name!r} must be a UUID")
        channel_id = claims.get("channel_id")
        if channel_id is not None and (not isinstance(channel_id, str) or not channel_id):
            raise invalid("claim 'channel_id' must be a non-empty string")
        if "cv" in claims and (not isinstance(claims["cv"], int) or isinstance(claims["cv"], bool)):
            raise invalid("claim 'cv' must be an integer")
        lists = {}
        for name in ("roles", "caps"):
            value = claims.get(name, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise invalid(f"claim {name!r} must be a list of strings")
            lists[name] = frozenset(value)
        return RequestContext(
            tenant_id=claims.get("tid"),
            subject=sub,
            user_id=None if is_service else sub,
            audience=aud,
            session_id=claims.get("sid"),
            channel_id=channel_id,
            roles=lists["roles"],
            capabilities=lists["caps"],
            token_id=jti,
            expires_at=float(claims["exp"]),
            token=token,
        )
