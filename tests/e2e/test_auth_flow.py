"""The bootstrap admin's day through Envoy, as `make run` serves it: log in, read /v1/me,
refresh, log out; the access token verifies against the published JWKS; and afterwards no
password or token the run used appears in any process's log."""

import time

import httpx
import jwt
import pytest


def poll(fn, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def used_secrets():
    """Every password and token the module's tests handle (scanned for in the logs)."""
    return set()


def login(suite, used_secrets, aud: str = "web") -> dict:
    email, password = suite.admin_credentials
    used_secrets.add(password)
    r = httpx.post(f"{suite.url}/v1/auth/login", json={"email": email, "password": password, "aud": aud})
    assert r.status_code == 200, r.text
    assert "no-store" in r.headers.get("cache-control", "")  # RFC 6749 §5.1
    body = r.json()
    used_secrets.update({body["access_token"], body["refresh_token"]})
    return body


def test_admin_logs_in_reads_me_refreshes_and_logs_out(suite, used_secrets):
    tokens = login(suite, used_secrets)
    assert tokens["token_type"] == "Bearer"
    assert 0 < tokens["expires_in"] <= 900
    assert tokens["refresh_token"].startswith("zr1.")

    me = httpx.get(f"{suite.url}/v1/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["user"]["email"] == suite.admin_credentials[0]
    assert "super_admin" in body["user"]["roles"]
    assert "users.write" in body["capabilities"]

    refreshed = httpx.post(f"{suite.url}/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    used_secrets.update({new["access_token"], new["refresh_token"]})
    assert new["refresh_token"] != tokens["refresh_token"]
    assert httpx.get(f"{suite.url}/v1/me", headers=bearer(new["access_token"])).status_code == 200

    out = httpx.post(f"{suite.url}/v1/auth/logout", headers=bearer(new["access_token"]))
    assert out.status_code == 204, out.text
    # The session is gone: identity refuses its refresh token at once, and the gateway
    # refuses its access tokens once the revocation event has reached it.
    again = httpx.post(f"{suite.url}/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert again.status_code == 401
    rejected = poll(
        lambda: (r := httpx.get(f"{suite.url}/v1/me", headers=bearer(new["access_token"]))).status_code == 401 and r,
        what="the revoked token to be rejected",
    )
    assert rejected.json()["code"] == "TOKEN_REVOKED"


def test_access_token_verifies_against_the_published_jwks(suite, used_secrets):
    token = login(suite, used_secrets)["access_token"]
    r = httpx.get(f"{suite.url}/.well-known/jwks.json")
    assert r.status_code == 200
    keys = {k["kid"]: k for k in r.json()["keys"]}
    header = jwt.get_unverified_header(token)
    assert header["alg"] in ("EdDSA", "ES256") and header["kid"] in keys
    key = jwt.PyJWK(keys[header["kid"]])
    claims = jwt.decode(token, key.key, algorithms=[header["alg"]], audience="web", issuer="zenops-identity")
    assert claims["roles"] == ["super_admin"] and claims["sid"] and claims["tid"]


def test_login_failures_are_indistinguishable(suite, used_secrets):
    email, _ = suite.admin_credentials
    wrong = httpx.post(
        f"{suite.url}/v1/auth/login", json={"email": email, "password": "not the right password", "aud": "web"}
    )
    unknown = httpx.post(
        f"{suite.url}/v1/auth/login",
        json={"email": "nobody@zenops.local", "password": "not the right password", "aud": "web"},
    )
    assert wrong.status_code == unknown.status_code == 401
    strip = lambda b: {k: v for k, v in b.items() if k not in ("request_id", "instance", "trace_id")}  # noqa: E731
    assert strip(wrong.json()) == strip(unknown.json())
    assert wrong.json()["code"] == "INVALID_CREDENTIALS"


def test_protected_routes_need_a_token(suite):
    r = httpx.get(f"{suite.url}/v1/me")
    assert r.status_code == 401
    assert r.json()["code"] == "TOKEN_MISSING"
    assert r.headers["www-authenticate"].lower().startswith("bearer")
    bad = httpx.get(f"{suite.url}/v1/me", headers=bearer("not-a-jwt"))
    assert bad.status_code == 401 and bad.json()["code"] == "TOKEN_MALFORMED"


def test_no_password_or_token_in_any_log(suite, used_secrets):
    """Runs last in this module: scans every process's log for what the run used."""
    assert used_secrets, "the flow tests above must have run"
    secrets = used_secrets | {suite.admin_credentials[1]}
    offenders = {}
    for log in suite.logs.glob("*.log"):
        text = log.read_text(errors="replace")
        found = [s[:6] + "…" for s in secrets if s in text]
        if found:
            offenders[log.name] = found
    assert not offenders, f"secrets found in logs: {offenders}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
