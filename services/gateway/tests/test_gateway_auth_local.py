"""Gateway authentication and request validation without identity running.

The HTTP layer's own behaviour: which header gets which 401 reason, what the verified caller
looks like, that every identity route needs a token, and that bad bodies, queries and paths
are 400s naming the field before any RPC. The verifier is the kit's real JwtVerifier; where
identity is not running, a key of the test's own (devstack TokenSigner) stands in for its
JWKS. The same token classes against the REAL identity: test_gateway_identity.py.
"""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from fastapi import APIRouter
from gateway_testing import assert_problem, gateway_settings, running

from zenops_devstack.testing import TokenSigner
from zenops_gateway.app import USER_AUDIENCES, create_app
from zenops_gateway.deps import CallerDep
from zenops_kit.auth import JwtVerifier, RevocationList

ISSUER = "zenops-identity"

# Test-only route returning what the auth dependency hands to handlers.
extra_router = APIRouter(prefix="/test")


@extra_router.get("/whoami")
async def whoami(caller: CallerDep) -> dict:
    return {
        "user_id": caller.user_id,
        "tenant_id": caller.tenant_id,
        "audience": caller.audience,
        "session_id": caller.session_id,
        "capabilities": sorted(caller.capabilities),
        "client_ip": caller.client_ip,
        "user_agent": caller.user_agent,
        "request_id": caller.request_id,
        "token_forwarded": caller.token is not None,
    }


class Harness:
    def __init__(self, client, signer: TokenSigner, revocations: RevocationList) -> None:
        self.client = client
        self.signer = signer
        self.revocations = revocations

    def user_token(self, **kwargs) -> str:
        return self.signer.token(aud=kwargs.pop("aud", "web"), **kwargs)

    async def get(self, path: str, token: str | None = None, **kwargs):
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        return await self.client.get(path, headers=headers, **kwargs)


@pytest.fixture
async def harness():
    """The gateway with identity down; its verifier trusts the test's signing key."""
    app = create_app(gateway_settings())
    app.include_router(extra_router)
    signer = TokenSigner()
    revocations = RevocationList()
    async with running(app) as client:
        # Same verifier class and audiences as the lifespan builds; only the key source differs.
        app.state.runtime.verifier = JwtVerifier(
            signer.key_source(), issuer=ISSUER, audiences=USER_AUDIENCES, revocations=revocations
        )
        yield Harness(client, signer, revocations)


def assert_401(resp, code: str) -> dict:
    body = assert_problem(resp, 401, code)
    challenge = resp.headers["www-authenticate"]
    if code == "TOKEN_MISSING":  # RFC 6750 §3.1: no error code when no credentials were sent
        assert challenge == 'Bearer realm="zenops"'
    else:
        assert challenge == 'Bearer realm="zenops", error="invalid_token"'
    return body


async def test_a_valid_user_token_gives_the_caller(harness):
    tid, sid = str(uuid.uuid4()), str(uuid.uuid4())
    token = harness.user_token(caps=["users.read"], roles=["ops_manager"], tid=tid, sid=sid)
    resp = await harness.get("/test/whoami", token, headers={"user-agent": "browser/1.0", "x-request-id": "who-1"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["tenant_id"] == tid and body["session_id"] == sid and body["audience"] == "web"
    assert body["capabilities"] == ["users.read"]
    assert body["client_ip"] == "127.0.0.1" and body["user_agent"] == "browser/1.0"
    assert body["request_id"] == "who-1" and body["token_forwarded"] is True


@pytest.mark.parametrize("aud", ["web", "studio", "portal"])
async def test_every_user_audience_is_accepted(harness, aud):
    assert (await harness.get("/test/whoami", harness.user_token(aud=aud))).status_code == 200


async def test_missing_token(harness):
    body = assert_401(await harness.get("/test/whoami"), "TOKEN_MISSING")
    assert body["detail"] == "a bearer token is required"


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "bearer-token", "Bearer not-a-jwt", "Bearer a.b.c"]
)
async def test_malformed_authorization(harness, header):
    assert_401(await harness.client.get("/test/whoami", headers={"authorization": header}), "TOKEN_MALFORMED")


async def test_scheme_is_case_insensitive(harness):
    resp = await harness.client.get("/test/whoami", headers={"authorization": "bEaReR " + harness.user_token()})
    assert resp.status_code == 200


async def test_alg_none_is_refused(harness):
    claims = harness.signer.claims(aud="web")
    token = jwt.encode(claims, None, algorithm="none", headers={"kid": harness.signer.kid})
    assert_401(await harness.get("/test/whoami", token), "TOKEN_ALGORITHM_NOT_ALLOWED")


async def test_hmac_with_the_public_key_is_refused(harness):
    # the classic key-confusion attack: HS256 keyed with the published public key
    public = harness.signer.jwk["x"].encode()
    token = jwt.encode(harness.signer.claims(aud="web"), public, algorithm="HS256", headers={"kid": harness.signer.kid})
    assert_401(await harness.get("/test/whoami", token), "TOKEN_ALGORITHM_NOT_ALLOWED")


async def test_wrong_signature(harness):
    forger = TokenSigner(kid=harness.signer.kid)  # a fresh key claiming the known kid
    assert_401(await harness.get("/test/whoami", forger.token(aud="web")), "TOKEN_SIGNATURE_INVALID")


async def test_tampered_payload(harness):
    header, _payload, signature = harness.user_token().split(".")
    other = harness.user_token(caps=["tenants.write"]).split(".")[1]
    assert_401(await harness.get("/test/whoami", f"{header}.{other}.{signature}"), "TOKEN_SIGNATURE_INVALID")


async def test_unknown_key(harness):
    stranger = TokenSigner()  # kid identity never published
    assert_401(await harness.get("/test/whoami", stranger.token(aud="web")), "TOKEN_KEY_UNKNOWN")


async def test_expired(harness):
    now = int(time.time())
    token = harness.user_token(iat=now - 1000, nbf=now - 1000, exp=now - 60)
    assert_401(await harness.get("/test/whoami", token), "TOKEN_EXPIRED")


async def test_not_yet_valid(harness):
    now = int(time.time())
    token = harness.user_token(iat=now + 600, nbf=now + 600, exp=now + 1500)
    assert_401(await harness.get("/test/whoami", token), "TOKEN_NOT_YET_VALID")


async def test_wrong_issuer(harness):
    assert_401(await harness.get("/test/whoami", harness.user_token(iss="someone-else")), "TOKEN_ISSUER_INVALID")


@pytest.mark.parametrize("aud", ["service", "admin"])
async def test_service_tokens_and_unknown_audiences_are_refused(harness, aud):
    # service tokens are for service-to-service calls, never for the public API
    assert_401(await harness.get("/test/whoami", harness.signer.token(aud=aud)), "TOKEN_AUDIENCE_INVALID")


async def test_revoked_session(harness):
    sid = str(uuid.uuid4())
    token = harness.user_token(sid=sid)
    assert (await harness.get("/test/whoami", token)).status_code == 200
    harness.revocations.revoke([sid], time.time() + 900)
    assert_401(await harness.get("/test/whoami", token), "TOKEN_REVOKED")
    # another session of the same user is unaffected
    assert (await harness.get("/test/whoami", harness.user_token())).status_code == 200


async def test_messages_never_echo_the_token(harness):
    forger = TokenSigner(kid=harness.signer.kid)
    token = forger.token(aud="web")
    resp = await harness.get("/test/whoami", token)
    assert token not in resp.text and token.split(".")[2] not in resp.text


async def test_identity_unreachable_is_503_not_401():
    """The lifespan's own verifier: identity's JWKS cannot be fetched → 503, never 401."""
    app = create_app(gateway_settings())
    app.include_router(extra_router)
    async with running(app) as client:
        token = TokenSigner().token(aud="web")
        resp = await client.get("/test/whoami", headers={"authorization": f"Bearer {token}"})
    body = assert_problem(resp, 503)
    assert "identity" in body["detail"] and "www-authenticate" not in resp.headers
    assert resp.headers["retry-after"].isdigit()


# -- every identity route but login, refresh and JWKS needs a token ---------------------------------

UID = str(uuid.uuid4())
PROTECTED = [
    ("POST", "/v1/auth/logout", None),
    ("GET", "/v1/me", None),
    ("GET", "/v1/auth/sessions", None),
    ("DELETE", f"/v1/auth/sessions/{UID}", None),
    ("POST", "/v1/auth/password", {"current_password": "a", "new_password": "b"}),
    ("GET", "/v1/tenants", None),
    ("POST", "/v1/tenants", {"slug": "acme", "name": "Acme", "kind": "customer"}),
    ("GET", "/v1/users", None),
    ("POST", "/v1/users", {"email": "a@b.c", "display_name": "A", "password": "x", "roles": ["valuer"]}),
    ("GET", f"/v1/users/{UID}", None),
    ("PATCH", f"/v1/users/{UID}", {"display_name": "B"}),
    ("POST", f"/v1/users/{UID}/disable", None),
    ("PUT", f"/v1/users/{UID}/roles", {"roles": ["valuer"]}),
    ("GET", "/v1/roles/templates", None),
    ("GET", "/v1/audit/auth-events", None),
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=[f"{m} {p}" for m, p, _ in PROTECTED])
async def test_protected_routes_need_a_token(harness, method, path, body):
    resp = await harness.client.request(method, path, json=body)
    assert_401(resp, "TOKEN_MISSING")
    # the check happens before the body is even looked at
    resp = await harness.client.request(method, path, json={"nonsense": True} if body else None)
    assert_401(resp, "TOKEN_MISSING")


# -- bad input: 400 naming the field, before any RPC (identity is down here) --------------------------


def fields(resp) -> dict[str, str]:
    body = assert_problem(resp, 400, "VALIDATION_FAILED")
    return {e["field"]: e["message"] for e in body["errors"]}


async def test_login_body_is_validated(harness):
    resp = await harness.client.post(
        "/v1/auth/login", json={"email": "", "password": "x" * 1025, "aud": "service", "tenant_id": "acme"}
    )
    errors = fields(resp)
    assert set(errors) == {"email", "password", "aud", "tenant_id"}, errors
    assert errors["password"] == "String should have at most 1024 characters"
    assert "'web', 'studio' or 'portal'" in errors["aud"]
    assert "x" * 50 not in resp.text  # the value is never echoed
    errors = fields(await harness.client.post("/v1/auth/login", json={"password": "p", "aud": "web", "x": 1}))
    assert set(errors) == {"email", "x"}


async def test_login_and_refresh_reach_identity_when_valid(harness):
    # a valid body passes validation and reaches identity, which is down: 503, not 400/500
    resp = await harness.client.post("/v1/auth/login", json={"email": "a@b.c", "password": "pw", "aud": "web"})
    assert_problem(resp, 503, "UNAVAILABLE")
    resp = await harness.client.post("/v1/auth/refresh", json={"refresh_token": "zr1.x.y"})
    assert_problem(resp, 503, "UNAVAILABLE")
    assert fields(await harness.client.post("/v1/auth/refresh", json={"refresh_token": "r" * 2000})) == {
        "refresh_token": "String should have at most 1024 characters"
    }


async def test_user_bodies_are_validated(harness):
    token = harness.user_token()
    auth = {"authorization": f"Bearer {token}"}
    resp = await harness.client.post(
        "/v1/users",
        headers=auth,
        json={
            "email": "e" * 400,
            "display_name": "",
            "password": "p" * 1025,
            "roles": ["valuer", ""],
            "channel_id": "7",
        },
    )
    assert set(fields(resp)) == {"email", "display_name", "password", "roles[1]", "channel_id"}
    resp = await harness.client.post(
        "/v1/users", headers=auth, json={"email": "a@b.c", "display_name": "A", "password": "p"}
    )
    assert set(fields(resp)) == {"roles"}
    resp = await harness.client.put(f"/v1/users/{UID}/roles", headers=auth, json={"roles": []})
    assert set(fields(resp)) == {"roles"}
    resp = await harness.client.patch(
        f"/v1/users/{UID}", headers=auth, json={"email": None, "roles": ["super_admin"], "status": "active"}
    )
    errors = fields(resp)
    assert set(errors) == {"email", "roles", "status"}, errors  # roles/status are not patchable here
    assert "null" in errors["email"]
    resp = await harness.client.post(
        "/v1/tenants", headers=auth, json={"slug": "acme", "name": "Acme", "kind": "partner"}
    )
    assert set(fields(resp)) == {"kind"}


async def test_paths_and_queries_are_validated(harness):
    auth = {"authorization": f"Bearer {harness.user_token()}"}
    assert set(fields(await harness.client.get("/v1/users/not-a-uuid", headers=auth))) == {"path.user_id"}
    assert set(fields(await harness.client.delete("/v1/auth/sessions/42", headers=auth))) == {"path.session_id"}
    resp = await harness.client.get("/v1/users?limit=0&status=deleted&cursor=" + "c" * 2000, headers=auth)
    assert set(fields(resp)) == {"query.limit", "query.status", "query.cursor"}
    resp = await harness.client.get("/v1/audit/auth-events?limit=100000", headers=auth)
    assert set(fields(resp)) == {"query.limit"}


async def test_merge_patch_media_type_is_accepted(harness):
    auth = {"authorization": f"Bearer {harness.user_token()}", "content-type": "application/merge-patch+json"}
    resp = await harness.client.patch(f"/v1/users/{UID}", headers=auth, content=b'{"display_name": ""}')
    assert set(fields(resp)) == {"display_name"}  # parsed as JSON, then validated


# -- OpenAPI ----------------------------------------------------------------------------------------------


async def test_openapi_documents_the_identity_routes(harness):
    spec = (await harness.client.get("/v1/openapi.json")).json()
    paths = spec["paths"]
    expected = {
        ("post", "/v1/auth/login"),
        ("post", "/v1/auth/refresh"),
        ("post", "/v1/auth/logout"),
        ("get", "/v1/me"),
        ("get", "/v1/auth/sessions"),
        ("delete", "/v1/auth/sessions/{session_id}"),
        ("post", "/v1/auth/password"),
        ("get", "/v1/tenants"),
        ("post", "/v1/tenants"),
        ("get", "/v1/users"),
        ("post", "/v1/users"),
        ("get", "/v1/users/{user_id}"),
        ("patch", "/v1/users/{user_id}"),
        ("post", "/v1/users/{user_id}/disable"),
        ("put", "/v1/users/{user_id}/roles"),
        ("get", "/v1/roles/templates"),
        ("get", "/.well-known/jwks.json"),
        ("get", "/v1/audit/auth-events"),
    }
    assert expected <= {(m, p) for p, item in paths.items() for m in item}
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "Access token from `POST /v1/auth/login` or `POST /v1/auth/refresh`.",
    }
    me = paths["/v1/me"]["get"]
    assert me["security"] == [{"bearer": []}]
    assert "application/problem+json" in me["responses"]["401"]["content"]
    assert me["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Me")
    for public in (("/v1/auth/login", "post"), ("/v1/auth/refresh", "post"), ("/.well-known/jwks.json", "get")):
        assert paths[public[0]][public[1]]["security"] == []  # public: no token
    login = paths["/v1/auth/login"]["post"]
    assert "application/problem+json" in login["responses"]["400"]["content"]
    schemas = spec["components"]["schemas"]
    assert schemas["LoginBody"]["properties"]["password"]["maxLength"] == 1024
    assert schemas["LoginBody"]["properties"]["password"]["writeOnly"] is True
    assert "application/merge-patch+json" in paths["/v1/users/{user_id}"]["patch"]["requestBody"]["content"]
    assert "location" in {h.lower() for h in paths["/v1/users"]["post"]["responses"]["201"]["headers"]}
