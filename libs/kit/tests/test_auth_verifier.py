"""JwtVerifier against real Ed25519 / P-256 keys and real PyJWT-signed tokens.

The keys reach the verifier as a real JWKS (the dicts identity's GetJwks publishes),
through JwksKeySource; identity's own tests cover the real endpoint.
"""

import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest

from zenops_devstack.testing import TokenSigner, poll
from zenops_kit.auth import AUDIENCES, JwtVerifier, RevocationList
from zenops_kit.errors import Unauthenticated, Unavailable

ISSUER = "zenops-identity"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict, claims: dict, signature: bytes = b"") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)])


async def rejected(verifier: JwtVerifier, token: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as info:
        await verifier.verify(token)
    err = info.value
    if len(token) > 3:  # the message never echoes the token
        assert token not in err.message and token not in str(err)
    return err


@pytest.fixture
def ed():
    return TokenSigner("EdDSA")


@pytest.fixture
def es():
    return TokenSigner("ES256")


@pytest.fixture
def verifier(ed, es):
    return JwtVerifier(ed.key_source(es), issuer=ISSUER)


# -- accepted tokens -----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
async def test_user_token_becomes_the_request_context(alg, ed, es, verifier):
    signer = ed if alg == "EdDSA" else es
    claims = signer.claims(
        aud="portal", roles=["channel_admin"], caps=["orders.read", "orders.write"], channel_id="ch-42"
    )
    token = signer.sign(claims)
    ctx = await verifier.verify(token, "req-1")
    assert ctx.request_id == "req-1"
    assert ctx.tenant_id == claims["tid"]
    assert ctx.subject == ctx.user_id == claims["sub"]
    assert ctx.audience == "portal"
    assert ctx.session_id == claims["sid"]
    assert ctx.channel_id == "ch-42"
    assert ctx.roles == frozenset({"channel_admin"})
    assert ctx.capabilities == frozenset({"orders.read", "orders.write"})
    assert ctx.token_id == claims["jti"]
    assert ctx.expires_at == float(claims["exp"])
    assert ctx.token == token
    assert ctx.authenticated and not ctx.is_service
    assert token not in repr(ctx)
    assert await verifier.claims(token) == claims


async def test_service_token_has_no_user_or_tenant(ed, verifier):
    ctx = await verifier.verify(ed.token(caps=["billing.reserve"]))
    assert ctx.subject == "service:test"
    assert ctx.user_id is None and ctx.tenant_id is None and ctx.session_id is None
    assert ctx.is_service and ctx.authenticated
    assert ctx.capabilities == {"billing.reserve"}


async def test_every_audience_of_the_suite_is_accepted_by_default(ed, verifier):
    assert set(AUDIENCES) == {"web", "studio", "portal", "service"}
    for aud in AUDIENCES:
        assert (await verifier.verify(ed.token(aud=aud))).audience == aud


# -- rejected tokens: one reason each ----------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.###.$$$",
        b64(b"not json") + "." + b64(b"{}") + "." + b64(b"sig"),
        b64(b"[1, 2]") + "." + b64(b"{}") + "." + b64(b"sig"),
        b64(b'{"alg": "EdDSA"}') + ".not base64!." + b64(b"sig"),
        b64(b'{"alg": "EdDSA"}') + "." + b64(b"\xff\xfe") + "." + b64(b"sig"),
        b64(b'{"alg": "EdDSA"}') + "." + b64(b"{}") + ".si=g",
        "x" * 9000,
    ],
)
async def test_malformed(token, verifier):
    err = await rejected(verifier, token)
    assert err.reason == "TOKEN_MALFORMED", err.message


async def test_alg_none_is_refused(ed, verifier):
    token = handmade({"alg": "none", "typ": "JWT", "kid": ed.kid}, ed.claims())
    err = await rejected(verifier, token)
    assert err.reason == "TOKEN_ALGORITHM_NOT_ALLOWED"
    assert "'none'" in err.message


async def test_hs256_signed_with_the_public_key_is_refused(ed, verifier):
    """Key confusion: an HMAC over the token keyed with the (public) verification key."""
    header = {"alg": "HS256", "typ": "JWT", "kid": ed.kid}
    unsigned = handmade(header, ed.claims()).rsplit(".", 1)[0]
    for secret in (base64.urlsafe_b64decode(ed.jwk["x"] + "="), json.dumps(ed.jwk).encode()):
        sig = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
        err = await rejected(verifier, f"{unsigned}.{b64(sig)}")
        assert err.reason == "TOKEN_ALGORITHM_NOT_ALLOWED"


@pytest.mark.parametrize("alg", ["RS256", "HS512", "PS256", "ES384", "Ed25519", None, 7])
async def test_other_algorithms_are_refused(alg, ed, verifier):
    err = await rejected(verifier, handmade({"alg": alg, "kid": ed.kid}, ed.claims(), b"x" * 64))
    assert err.reason == "TOKEN_ALGORITHM_NOT_ALLOWED"


async def test_header_alg_must_match_the_keys_algorithm(ed, es, verifier):
    """An ES256 header naming an Ed25519 key (and vice versa) never reaches the signature check."""
    es_token_on_ed_key = es.sign(es.claims(), headers={"kid": ed.kid})
    err = await rejected(verifier, es_token_on_ed_key)
    assert err.reason == "TOKEN_ALGORITHM_NOT_ALLOWED"
    ed_token_on_es_key = ed.sign(ed.claims(), headers={"kid": es.kid})
    assert (await rejected(verifier, ed_token_on_es_key)).reason == "TOKEN_ALGORITHM_NOT_ALLOWED"


async def test_missing_or_unknown_kid(ed, verifier):
    no_kid = handmade({"alg": "EdDSA", "typ": "JWT"}, ed.claims(), b"x" * 64)
    assert (await rejected(verifier, no_kid)).reason == "TOKEN_KEY_UNKNOWN"
    stranger = TokenSigner("EdDSA")
    err = await rejected(verifier, stranger.token())
    assert err.reason == "TOKEN_KEY_UNKNOWN"
    assert stranger.kid in err.message


async def test_signed_by_another_key_under_a_known_kid(ed, verifier):
    impostor = TokenSigner("EdDSA", kid=ed.kid)
    assert (await rejected(verifier, impostor.token())).reason == "TOKEN_SIGNATURE_INVALID"
    es_impostor = TokenSigner("ES256")
    real_es = JwtVerifier(TokenSigner("ES256", kid=es_impostor.kid).key_source(), issuer=ISSUER)
    assert (await rejected(real_es, es_impostor.token())).reason == "TOKEN_SIGNATURE_INVALID"


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
async def test_tampered_payload(alg, ed, es, verifier):
    signer = ed if alg == "EdDSA" else es
    header, _, sig = signer.token(aud="web", caps=["orders.read"]).split(".")
    forged = signer.claims(aud="web", caps=["orders.read", "users.write"])
    token = f"{header}.{b64(json.dumps(forged).encode())}.{sig}"
    assert (await rejected(verifier, token)).reason == "TOKEN_SIGNATURE_INVALID"


async def test_signature_stripped(ed, verifier):
    header, payload, _ = ed.token().split(".")
    assert (await rejected(verifier, f"{header}.{payload}.")).reason == "TOKEN_SIGNATURE_INVALID"


async def test_expired(ed, verifier):
    past = int(time.time()) - 3600
    token = ed.token(iat=past, nbf=past, exp=past + 900)
    err = await rejected(verifier, token)
    assert err.reason == "TOKEN_EXPIRED"


async def test_expiry_leeway(ed):
    """Within the leeway (clock skew) an expired token still passes; beyond it, not."""
    now = int(time.time())
    verifier = JwtVerifier(ed.key_source(), issuer=ISSUER, leeway=30)
    await verifier.verify(ed.token(iat=now - 900, exp=now - 10))
    assert (await rejected(verifier, ed.token(iat=now - 900, exp=now - 60))).reason == "TOKEN_EXPIRED"


async def test_not_yet_valid(ed, verifier):
    soon = int(time.time()) + 600
    assert (await rejected(verifier, ed.token(nbf=soon))).reason == "TOKEN_NOT_YET_VALID"
    assert (await rejected(verifier, ed.token(iat=soon, nbf=soon - 600))).reason == "TOKEN_NOT_YET_VALID"


async def test_wrong_issuer(ed, verifier):
    assert (await rejected(verifier, ed.token(iss="someone-else"))).reason == "TOKEN_ISSUER_INVALID"


async def test_wrong_audience(ed, verifier):
    assert (await rejected(verifier, ed.token(aud="mobile"))).reason == "TOKEN_AUDIENCE_INVALID"
    studio_only = JwtVerifier(ed.key_source(), issuer=ISSUER, audiences=["studio"])
    assert (await rejected(studio_only, ed.token(aud="web"))).reason == "TOKEN_AUDIENCE_INVALID"
    await studio_only.verify(ed.token(aud="studio"))


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "exp", "iat", "jti"])
async def test_missing_required_claim(claim, ed, verifier):
    claims = ed.claims(aud="web")
    del claims[claim]
    err = await rejected(verifier, ed.sign(claims))
    assert err.reason == "TOKEN_CLAIMS_INVALID"
    assert repr(claim) in err.message


@pytest.mark.parametrize("claim", ["tid", "sid"])
async def test_user_tokens_need_tenant_and_session(claim, ed, verifier):
    claims = ed.claims(aud="studio")
    del claims[claim]
    err = await rejected(verifier, ed.sign(claims))
    assert err.reason == "TOKEN_CLAIMS_INVALID"
    assert repr(claim) in err.message


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("aud", ["web", "studio"]),
        ("aud", 7),
        ("iss", 7),
        ("sub", 7),
        ("sub", ""),
        ("sub", "service:ops"),  # a user audience with a service subject
        ("sub", "not-a-uuid"),
        ("jti", 7),
        ("exp", "9999999999"),
        ("exp", "soon"),
        ("exp", True),
        ("exp", 10**400),
        ("exp", 1e300),
        ("iat", "yesterday"),
        ("nbf", "now"),
        ("tid", "tenant-1"),
        ("sid", 12),
        ("roles", "admin"),
        ("caps", ["orders.read", 3]),
        ("channel_id", 5),
        ("cv", "1"),
    ],
)
async def test_ill_typed_claims(claim, value, ed, verifier):
    claims = ed.claims(aud="web")
    claims[claim] = value
    err = await rejected(verifier, ed.sign(claims))
    assert err.reason == "TOKEN_CLAIMS_INVALID", (claim, err.reason, err.message)


async def test_service_audience_needs_a_service_subject(ed, verifier):
    err = await rejected(verifier, ed.token(aud="service", sub=str(uuid.uuid4())))
    assert err.reason == "TOKEN_CLAIMS_INVALID"


async def test_revoked_session(ed):
    revocations = RevocationList()
    verifier = JwtVerifier(ed.key_source(), issuer=ISSUER, revocations=revocations)
    claims = ed.claims(aud="web")
    token = ed.sign(claims)
    await verifier.verify(token)  # now cached
    revocations.revoke([claims["sid"]], until=claims["exp"])
    assert (await rejected(verifier, token)).reason == "TOKEN_REVOKED"
    # another session of the same user is untouched
    await verifier.verify(ed.token(aud="web", sub=claims["sub"], tid=claims["tid"]))


async def test_keys_unreachable_is_unavailable_not_401(ed):
    async def down() -> list[dict]:
        raise ConnectionError("identity is down")

    from zenops_kit.auth import JwksKeySource

    verifier = JwtVerifier(JwksKeySource(down), issuer=ISSUER)
    with pytest.raises(Unavailable):
        await verifier.verify(ed.token())


# -- the verified-token cache --------------------------------------------------------------------


async def test_cached_token_still_expires(ed):
    verifier = JwtVerifier(ed.key_source(), issuer=ISSUER, leeway=0)
    now = int(time.time())
    token = ed.token(iat=now, nbf=now, exp=now + 1)
    await verifier.verify(token)
    assert token in verifier._cache

    async def expired() -> bool:
        try:
            await verifier.verify(token)
        except Unauthenticated as err:
            return err.reason == "TOKEN_EXPIRED"
        return False

    assert await poll(expired, timeout=5, what="the cached token to expire")
    assert token not in verifier._cache


async def test_cache_is_bounded_lru(ed):
    verifier = JwtVerifier(ed.key_source(), issuer=ISSUER, cache_size=3)
    tokens = [ed.token() for _ in range(4)]
    for t in tokens[:3]:
        await verifier.verify(t)
    await verifier.verify(tokens[0])  # most recently used now
    await verifier.verify(tokens[3])  # evicts tokens[1]
    assert list(verifier._cache) == [tokens[2], tokens[0], tokens[3]]


async def test_request_id_is_per_call_even_when_cached(ed, verifier):
    token = ed.token()
    assert (await verifier.verify(token, "a")).request_id == "a"
    assert (await verifier.verify(token, "b")).request_id == "b"
    assert (await verifier.verify(token)).request_id is None


async def test_claims_are_a_copy(ed, verifier):
    token = ed.token()
    (await verifier.claims(token))["caps"] = ["everything"]
    assert (await verifier.claims(token))["caps"] == []
