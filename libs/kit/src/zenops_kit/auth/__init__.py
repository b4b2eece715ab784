"""Token verification shared by every service and the gateway.

identity signs access tokens (EdDSA or ES256) and publishes its public keys (JWKS);
everyone else verifies with `JwtVerifier(JwksKeySource.from_identity(addr), issuer=...)`,
rejects tokens of revoked sessions (`RevocationList.follow`), declares capability checks
with `@requires(...)`, and calls other services with a `ServiceTokenProvider` token.
"""

from .capabilities import requires
from .keys import ALLOWED_ALGORITHMS, JwksKeySource, KeySource, PublicKey, jwk_to_public_key, key_algorithm
from .revocation import RevocationList
from .service_tokens import ServiceTokenProvider
from .verifier import AUDIENCES, JwtVerifier

__all__ = [
    "ALLOWED_ALGORITHMS",
    "AUDIENCES",
    "JwksKeySource",
    "JwtVerifier",
    "KeySource",
    "PublicKey",
    "RevocationList",
    "ServiceTokenProvider",
    "jwk_to_public_key",
    "key_algorithm",
    "requires",
]
