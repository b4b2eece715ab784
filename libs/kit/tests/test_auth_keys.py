"""JWK parsing and the JWKS cache: rotation, refetch rate limit, single flight, TTL, outages."""

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from zenops_devstack.testing import TokenSigner, poll
from zenops_kit.auth import JwksKeySource, JwtVerifier, jwk_to_public_key, key_algorithm
from zenops_kit.errors import Unauthenticated, Unavailable

ISSUER = "zenops-identity"


class Identity:
    """What identity's GetJwks answers, as a fetch function that counts its calls."""

    def __init__(self, *signers: TokenSigner) -> None:
        self.signers = list(signers)
        self.calls = 0
        self.down = False
        self.gate: asyncio.Event | None = None  # when set, fetches wait for it

    async def fetch(self) -> list[dict]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise ConnectionError("identity is down")
        return [s.jwk for s in self.signers]


# -- jwk_to_public_key ---------------------------------------------------------------------------


def test_jwk_to_public_key_round_trips_both_algorithms():
    ed, es = TokenSigner("EdDSA"), TokenSigner("ES256")
    ed_key, es_key = jwk_to_public_key(ed.jwk), jwk_to_public_key(es.jwk)
    assert isinstance(ed_key, Ed25519PublicKey) and key_algorithm(ed_key) == "EdDSA"
    assert isinstance(es_key, ec.EllipticCurvePublicKey) and key_algorithm(es_key) == "ES256"
    assert es_key.public_numbers() == es.public_key.public_numbers()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kty": "oct", "k": "c2VjcmV0"}, "kty"),
        ({"kty": "RSA"}, "kty"),
        ({"alg": "HS256"}, "alg"),
        ({"alg": "none"}, "alg"),
        ({"alg": "ES256"}, "alg"),
        ({"crv": "Ed448"}, "crv"),
        ({"crv": "X25519"}, "crv"),
        ({"use": "enc"}, "use"),
        ({"x": "short"}, "x"),
        ({"x": "not base64!"}, "x"),
    ],
)
def test_jwk_to_public_key_refuses_other_keys(change, field):
    jwk = {**TokenSigner("EdDSA").jwk, **change}
    with pytest.raises(ValueError, match=field):
        jwk_to_public_key(jwk)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"crv": "P-384"}, "crv"),
        ({"alg": "EdDSA"}, "alg"),
        ({"y": ""}, "y"),
    ],
)
def test_jwk_to_public_key_refuses_bad_ec_keys(change, field):
    jwk = {**TokenSigner("ES256").jwk, **change}
    with pytest.raises(ValueError, match=field):
        jwk_to_public_key(jwk)


def test_ec_point_must_be_on_the_curve():
    jwk = dict(TokenSigner("ES256").jwk)
    jwk["y"] = jwk["x"]
    with pytest.raises(ValueError):
        jwk_to_public_key(jwk)


# -- JwksKeySource -----------------------------------------------------------------------------


async def test_unusable_jwks_entries_are_skipped_not_fatal():
    good = TokenSigner("EdDSA")
    identity = Identity(good)

    async def fetch():
        return [{"kty": "oct", "kid": "hmac", "alg": "HS256", "k": "c2VjcmV0"}, {"kty": "OKP"}, *await identity.fetch()]

    source = JwksKeySource(fetch, min_refetch_interval=60)
    assert await source.key(good.kid) is not None
    assert await source.key("hmac") is None


async def test_rotation_new_kid_fetched_on_first_sight_old_kid_still_verifies():
    old = TokenSigner("EdDSA", kid="k1")
    identity = Identity(old)
    source = JwksKeySource(identity.fetch, min_refetch_interval=0)
    verifier = JwtVerifier(source, issuer=ISSUER)
    old_token = old.token()
    await verifier.verify(old_token)
    assert identity.calls == 1

    new = TokenSigner("ES256", kid="k2")  # identity rotates; both keys are published
    identity.signers.append(new)
    await verifier.verify(new.token())
    assert identity.calls == 2  # the unknown kid caused exactly one refetch
    await verifier.verify(old.token())  # a fresh token of the old key, not from the cache
    await verifier.verify(old_token)
    assert identity.calls == 2


async def test_unknown_kid_refetch_is_rate_limited_and_single_flight():
    signer = TokenSigner("EdDSA")
    identity = Identity(signer)
    source = JwksKeySource(identity.fetch, min_refetch_interval=60)
    verifier = JwtVerifier(source, issuer=ISSUER)
    await verifier.verify(signer.token())
    assert identity.calls == 1

    # A rotated-in key arrives while 50 requests carry it at once: one shared refetch.
    rotated = TokenSigner("EdDSA")
    identity.signers.append(rotated)
    identity.gate = asyncio.Event()
    source.min_refetch_interval = 0
    tokens = [rotated.token() for _ in range(50)]
    pending = [asyncio.create_task(verifier.verify(t)) for t in tokens]
    await poll(lambda: identity.calls == 2, what="the refetch to start")
    identity.gate.set()
    results = await asyncio.gather(*pending)
    assert identity.calls == 2
    assert {r.subject for r in results} == {"service:test"}

    # Forged kids cannot make it hammer identity: no refetch within the interval...
    source.min_refetch_interval = 60
    strangers = [TokenSigner("EdDSA").token() for _ in range(50)]
    outcomes = await asyncio.gather(*(verifier.verify(t) for t in strangers), return_exceptions=True)
    assert all(isinstance(o, Unauthenticated) and o.reason == "TOKEN_KEY_UNKNOWN" for o in outcomes)
    assert identity.calls == 2
    # ...and once it has passed, one refetch for all of them.
    source.min_refetch_interval = 0
    outcomes = await asyncio.gather(*(verifier.verify(t) for t in strangers), return_exceptions=True)
    assert all(isinstance(o, Unauthenticated) and o.reason == "TOKEN_KEY_UNKNOWN" for o in outcomes)
    assert identity.calls == 3


async def test_first_fetch_is_shared_by_concurrent_callers():
    signer = TokenSigner("EdDSA")
    identity = Identity(signer)
    identity.gate = asyncio.Event()
    source = JwksKeySource(identity.fetch)
    pending = [asyncio.create_task(source.key(signer.kid)) for _ in range(50)]
    await poll(lambda: identity.calls == 1, what="the first fetch")
    identity.gate.set()
    keys = await asyncio.gather(*pending)
    assert identity.calls == 1 and all(k is keys[0] for k in keys)


async def test_fetch_failure_without_cache_is_unavailable_and_rate_limited():
    identity = Identity(TokenSigner("EdDSA"))
    identity.down = True
    source = JwksKeySource(identity.fetch, min_refetch_interval=60)
    for _ in range(3):
        with pytest.raises(Unavailable) as info:
            await source.key(identity.signers[0].kid)
        assert info.value.retry_after == 60
    assert identity.calls == 1  # no fetch storm while identity is down

    source.min_refetch_interval = 0
    identity.down = False
    assert await source.key(identity.signers[0].kid) is not None


async def test_fetch_failure_with_cache_keeps_serving_cached_keys():
    signer = TokenSigner("EdDSA")
    identity = Identity(signer)
    source = JwksKeySource(identity.fetch, ttl=0, min_refetch_interval=0)
    verifier = JwtVerifier(source, issuer=ISSUER, cache_size=0)
    await verifier.verify(signer.token())
    identity.down = True
    for n in (2, 3):  # ttl=0: every call starts a background refresh, which fails
        await verifier.verify(signer.token())
        await poll(lambda n=n: identity.calls == n and source._inflight is None, what=f"refresh {n}")
    # a kid it cannot look up while identity is down: 503, not 401
    with pytest.raises(Unavailable):
        await verifier.verify(TokenSigner("EdDSA").token())


async def test_ttl_refresh_in_background_drops_removed_keys():
    retired, current = TokenSigner("EdDSA"), TokenSigner("EdDSA")
    identity = Identity(retired, current)
    source = JwksKeySource(identity.fetch, ttl=0.2, min_refetch_interval=0.05)
    verifier = JwtVerifier(source, issuer=ISSUER)
    token = retired.token()
    await verifier.verify(token)  # cached now
    identity.signers.remove(retired)  # identity stops publishing the key

    async def rejected() -> bool:
        try:
            await verifier.verify(token)
        except Unauthenticated as err:
            return err.reason == "TOKEN_KEY_UNKNOWN"
        return False

    assert await poll(rejected, timeout=5, what="the removed key to stop verifying")
    await verifier.verify(current.token())


async def test_unchanged_keys_keep_their_parsed_object():
    signer = TokenSigner("EdDSA")
    identity = Identity(signer)
    source = JwksKeySource(identity.fetch, ttl=0, min_refetch_interval=0)
    first = await source.key(signer.kid)
    for n in (2, 3):
        assert await source.key(signer.kid) is first  # ttl=0: answers, and refreshes in the background
        await poll(lambda n=n: identity.calls == n and source._inflight is None, what=f"refresh {n}")
    assert await source.key(signer.kid) is first


async def test_close_cancels_a_fetch_in_flight():
    identity = Identity(TokenSigner("EdDSA"))
    identity.gate = asyncio.Event()
    source = JwksKeySource(identity.fetch)
    waiter = asyncio.create_task(source.key("k"))
    await poll(lambda: identity.calls == 1, what="the fetch to start")
    await source.close()
    with pytest.raises(asyncio.CancelledError):
        await waiter
