"""The gateway's identity routes against the REAL identity service (its own PostgreSQL
database, NATS JetStream for the session-revocation events): login → me → refresh →
logout → revoked, each bad token class, field-level 400s, indistinguishable login
failures, capability and single-tenant refusals, JWKS, sessions, password change, users,
audit, and no secret in any log line."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import jwt
from gateway_testing import assert_problem, eventually, gateway_settings, running

from zenops_devstack.testing import TokenSigner
from zenops_gateway.app import create_app
from zenops_kit.logging import JsonFormatter

ADMIN_EMAIL = "admin@zenops.local"
# Passes identity's policy: 12+ characters, not common, no part of the email or name.
ADMIN_PASSWORD = "violet-harbor-trumpet-93"
USER_PASSWORD = "quiet-meadow-lantern-58"
ISSUER = "zenops-identity"
ALGORITHMS = ["EdDSA", "ES256"]


@dataclass
class Suite:
    client: httpx.AsyncClient
    app: object
    identity: object

    async def login(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD, aud: str = "web", **extra):
        return await self.client.post(
            "/v1/auth/login", json={"email": email, "password": password, "aud": aud, **extra}
        )

    async def tokens(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD, aud: str = "web") -> dict:
        resp = await self.login(email, password, aud)
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def call(self, method: str, path: str, token: str | None, **kwargs) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def create_user(self, admin_token: str, roles: list[str], **fields) -> dict:
        body = {
            "email": f"u{uuid.uuid4().hex[:8]}@example.com",
            "display_name": "Test User",
            "password": USER_PASSWORD,
            "roles": roles,
            **fields,
        }
        resp = await self.call("POST", "/v1/users", admin_token, json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()


@asynccontextmanager
async def suite(start_service, nats_server, **identity_settings) -> AsyncIterator[Suite]:
    async with start_service("identity", bootstrap_admin_password=ADMIN_PASSWORD, **identity_settings) as identity:
        settings = gateway_settings(identity_addr=f"127.0.0.1:{identity.port}", nats_url=nats_server.url)
        app = create_app(settings)
        async with running(app) as client:
            yield Suite(client, app, identity)


def assert_401(resp: httpx.Response, code: str) -> dict:
    body = assert_problem(resp, 401, code)
    assert resp.headers["www-authenticate"] == 'Bearer realm="zenops", error="invalid_token"'
    return body


def field_errors(resp: httpx.Response, status: int = 400) -> dict[str, str]:
    body = assert_problem(resp, status)
    return {e["field"]: e["message"] for e in body["errors"]}


# -- the session life cycle ------------------------------------------------------------------------


async def test_login_me_refresh_logout_then_revoked(start_service, nats_server):
    async with suite(start_service, nats_server) as s:
        resp = await s.login()
        assert resp.status_code == 200, resp.text
        assert resp.headers["cache-control"] == "no-store" and resp.headers["pragma"] == "no-cache"
        first = resp.json()
        assert set(first) == {
            "access_token",
            "refresh_token",
            "token_type",
            "expires_in",
            "refresh_expires_in",
            "session_id",
        }
        assert first["token_type"] == "Bearer" and 0 < first["expires_in"] <= 900
        assert first["refresh_expires_in"] > first["expires_in"]
        assert first["refresh_token"].startswith("zr1.")

        me = await s.call("GET", "/v1/me", first["access_token"])
        assert me.status_code == 200, me.text
        me = me.json()
        assert me["user"]["email"] == ADMIN_EMAIL and me["user"]["status"] == "active"
        assert "super_admin" in me["user"]["roles"]
        assert me["tenant"]["kind"] == "internal" and me["tenant"]["status"] == "active"
        assert {"users.read", "users.write", "tenants.write"} <= set(me["capabilities"])
        assert me["session_id"] == first["session_id"] and me["audience"] == "web"
        assert me["user"]["created_at"].endswith("Z") and me["user"]["last_login_at"].endswith("Z")

        resp = await s.client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert resp.status_code == 200, resp.text
        assert resp.headers["cache-control"] == "no-store"
        second = resp.json()
        assert second["session_id"] == first["session_id"]
        assert second["access_token"] != first["access_token"]
        assert second["refresh_token"] != first["refresh_token"]
        assert (await s.call("GET", "/v1/me", second["access_token"])).status_code == 200

        resp = await s.call("POST", "/v1/auth/logout", second["access_token"])
        assert resp.status_code == 204 and resp.content == b""

        # identity announces the revocation on NATS; the gateway refuses the session's tokens
        # as soon as the event arrives (poll with a deadline)
        resp = await eventually(lambda: s.call("GET", "/v1/me", second["access_token"]), lambda r: r.status_code == 401)
        assert_401(resp, "TOKEN_REVOKED")
        assert_401(await s.call("GET", "/v1/me", first["access_token"]), "TOKEN_REVOKED")
        # and the session's refresh token is dead too
        resp = await s.client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
        assert_problem(resp, 401)


async def test_jwks_verifies_the_access_token(start_service, nats_server):
    async with suite(start_service, nats_server) as s:
        tokens = await s.tokens()
        resp = await s.client.get("/.well-known/jwks.json")
        assert resp.status_code == 200, resp.text
        assert resp.headers["cache-control"] == "public, max-age=300"
        jwks = resp.json()
        assert set(jwks) == {"keys"} and jwks["keys"]
        for key in jwks["keys"]:
            assert all(value not in ("", None) for value in key.values()), key  # empty members omitted
            assert key["use"] == "sig"
            assert set(key) == ({"kty", "kid", "alg", "use", "crv", "x"} | ({"y"} if key["kty"] == "EC" else set()))
        kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
        jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
        claims = jwt.decode(
            tokens["access_token"], jwt.PyJWK(jwk).key, algorithms=ALGORITHMS, audience="web", issuer=ISSUER
        )
        me = (await s.call("GET", "/v1/me", tokens["access_token"])).json()
        assert claims["sub"] == me["user"]["id"] and claims["tid"] == me["tenant"]["id"]
        assert claims["sid"] == tokens["session_id"] and set(claims["caps"]) == set(me["capabilities"])


# -- bad tokens ----------------------------------------------------------------------------------------


async def test_each_bad_token_class_is_401_with_its_reason(start_service, nats_server):
    async with suite(start_service, nats_server) as s:
        real = (await s.tokens())["access_token"]
        header = jwt.get_unverified_header(real)
        claims = jwt.decode(real, options={"verify_signature": False})
        assert (await s.call("GET", "/v1/me", real)).status_code == 200

        assert_problem(await s.call("GET", "/v1/me", None), 401, "TOKEN_MISSING")
        assert_401(await s.call("GET", "/v1/me", "not.a-jwt"), "TOKEN_MALFORMED")
        assert_401(await s.call("GET", "/v1/me", real[:-1] + "$"), "TOKEN_MALFORMED")
        # the real claims, signed by a fresh key that claims identity's kid
        forged = TokenSigner(kid=header["kid"]).sign(claims)
        assert_401(await s.call("GET", "/v1/me", forged), "TOKEN_SIGNATURE_INVALID")
        # the real claims, unsigned
        unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": header["kid"]})
        assert_401(await s.call("GET", "/v1/me", unsigned), "TOKEN_ALGORITHM_NOT_ALLOWED")
        # a key identity never published
        assert_401(await s.call("GET", "/v1/me", TokenSigner().sign(claims)), "TOKEN_KEY_UNKNOWN")
        # a real service token (aud=service) is not accepted from HTTP callers
        service_token = await s.app.state.runtime.service_token()
        assert jwt.decode(service_token, options={"verify_signature": False})["aud"] == "service"
        assert_401(await s.call("GET", "/v1/me", service_token), "TOKEN_AUDIENCE_INVALID")
        # the real token still works: none of the above disturbed it
        assert (await s.call("GET", "/v1/me", real)).status_code == 200


async def test_expired_token(start_service, nats_server):
    # identity mints 1-second access tokens; the gateway allows 5 s of clock skew
    async with suite(start_service, nats_server, access_token_ttl=1) as s:
        tokens = await s.tokens()
        assert tokens["expires_in"] == 1
        resp = await eventually(
            lambda: s.call("GET", "/v1/me", tokens["access_token"]), lambda r: r.status_code != 200, within=20
        )
        assert_401(resp, "TOKEN_EXPIRED")
        # the refresh token still gives a fresh pair
        resp = await s.client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert resp.status_code == 200, resp.text


# -- login failures tell nothing ------------------------------------------------------------------------


def comparable(resp: httpx.Response) -> tuple:
    body = {k: v for k, v in resp.json().items() if k not in ("request_id", "trace_id")}
    headers = {k: v for k, v in resp.headers.items() if k not in ("x-request-id", "content-length")}
    return resp.status_code, body, headers


async def test_login_failures_are_indistinguishable(start_service, nats_server):
    async with suite(start_service, nats_server) as s:
        admin = (await s.tokens())["access_token"]
        disabled = await s.create_user(admin, ["valuer"])
        assert (await s.call("POST", f"/v1/users/{disabled['id']}/disable", admin)).status_code == 200

        unknown = await s.login("nobody-here@zenops.local", ADMIN_PASSWORD)
        wrong = await s.login(ADMIN_EMAIL, ADMIN_PASSWORD + "x")
        off = await s.login(disabled["email"], USER_PASSWORD)
        body = assert_problem(unknown, 401, "INVALID_CREDENTIALS")
        assert body["errors"] == []
        assert comparable(unknown) == comparable(wrong) == comparable(off)
        # a refresh token that does not exist is refused the same way as any other bad one
        bogus = "zr1." + uuid.uuid4().hex + "." + "A" * 43
        assert_problem(await s.client.post("/v1/auth/refresh", json={"refresh_token": bogus}), 401)


# -- bad input: field-level 400s, from the gateway or from identity ---------------------------------------


async def test_bad_input_names_the_field(start_service, nats_server):
    async with suite(start_service, nats_server) as s:
        admin = (await s.tokens())["access_token"]

        def user(**fields):
            body = {"email": "new.user@example.com", "display_name": "New User", "password": USER_PASSWORD}
            return {**body, "roles": ["valuer"], **fields}

        # identity's rules, named by identity and passed through
        errors = field_errors(await s.call("POST", "/v1/users", admin, json=user(email="not-an-email")))
        assert set(errors) == {"email"}, errors
        errors = field_errors(await s.call("POST", "/v1/users", admin, json=user(password="p" * 129)))
        assert set(errors) == {"password"} and "128" in errors["password"], errors
        errors = field_errors(await s.call("POST", "/v1/users", admin, json=user(password="short")))
        assert set(errors) == {"password"}, errors
        resp = await s.call("POST", "/v1/users", admin, json=user(roles=["valuer", "wizard"]))
        errors = field_errors(resp)
        assert set(errors) == {"roles[1]"} and "wizard" in errors["roles[1]"], errors
        assert resp.json()["code"] == "UNKNOWN_ROLE"
        # the gateway's own bound: the body is refused before identity sees it
        errors = field_errors(await s.call("POST", "/v1/users", admin, json=user(password="p" * 1025)))
        assert errors == {"password": "String should have at most 1024 characters"}
        # an over-long password at login is identity's field error too (it says nothing of accounts)
        errors = field_errors(await s.login(ADMIN_EMAIL, "p" * 200))
        assert set(errors) == {"password"}, errors
        # roles on an existing user
        created = await s.create_user(admin, ["valuer"])
        resp = await s.call("PUT", f"/v1/users/{created['id']}/roles", admin, json={"roles": ["nope", "valuer"]})
        assert set(field_errors(resp)) == {"roles[0]"}
        # nothing in any answer repeats the password
        resp = await s.call("POST", "/v1/users", admin, json=user(password="zenops-secret-" + "q" * 200))
        assert "q" * 20 not in resp.text


# -- authorization is identity's: 403s pass through -------------------------------------------------------


async def test_capabilities_and_single_tenant_mode(start_service, nats_server):
    async with suite(start_service, nats_server) as s:
        admin = (await s.tokens())["access_token"]
        valuer = await s.create_user(admin, ["valuer"])
        token = (await s.tokens(valuer["email"], USER_PASSWORD))["access_token"]

        assert (await s.call("GET", "/v1/me", token)).json()["user"]["id"] == valuer["id"]
        body = assert_problem(await s.call("GET", "/v1/users", token), 403)
        assert body["code"] == "MISSING_CAPABILITY" and "users.read" in body["detail"]
        assert_problem(await s.call("GET", "/v1/audit/auth-events", token), 403)
        assert_problem(await s.call("POST", f"/v1/users/{valuer['id']}/disable", token), 403)
        # a user may read itself without users.read
        assert (await s.call("GET", f"/v1/users/{valuer['id']}", token)).status_code == 200

        resp = await s.call("POST", "/v1/tenants", admin, json={"slug": "acme", "name": "Acme", "kind": "customer"})
        assert_problem(resp, 403, "MULTI_TENANT_DISABLED")
        tenants = (await s.call("GET", "/v1/tenants", admin)).json()["items"]
        assert {t["kind"] for t in tenants} == {"internal", "external"}
        # a web login to the external tenant is refused in single-tenant mode
        external = next(t["id"] for t in tenants if t["kind"] == "external")
        assert_problem(await s.login(tenant_id=external), 403, "TENANT_NOT_ENABLED")


# -- users, roles, audit --------------------------------------------------------------------------------


async def test_users_roles_and_audit(start_service, nats_server):
    async with suite(start_service, nats_server) as s:
        admin = (await s.tokens())["access_token"]
        resp = await s.call(
            "POST",
            "/v1/users",
            admin,
            json={
                "email": "Ana.Valuer@Example.com",
                "display_name": "Ana",
                "password": USER_PASSWORD,
                "roles": ["valuer"],
            },
        )
        assert resp.status_code == 201, resp.text
        ana = resp.json()
        assert resp.headers["location"] == f"/v1/users/{ana['id']}"
        assert ana["status"] == "active" and ana["roles"] == ["valuer"] and ana["channel_id"] is None
        assert ana["created_at"].endswith("Z") and ana["last_login_at"] is None
        assert (await s.call("GET", resp.headers["location"], admin)).json() == ana

        resp = await s.call(
            "POST",
            "/v1/users",
            admin,
            json={"email": ana["email"], "display_name": "Twin", "password": USER_PASSWORD, "roles": ["valuer"]},
        )
        assert_problem(resp, 409)

        # merge patch: only the members present change; {} changes nothing
        resp = await s.call("PATCH", f"/v1/users/{ana['id']}", admin, json={"display_name": "Ana Maria"})
        assert resp.status_code == 200, resp.text
        patched = resp.json()
        assert patched["display_name"] == "Ana Maria" and patched["email"] == ana["email"]
        resp = await s.call(
            "PATCH",
            f"/v1/users/{ana['id']}",
            admin,
            content=b"{}",
            headers={"content-type": "application/merge-patch+json"},
        )
        assert resp.status_code == 200 and resp.json()["display_name"] == "Ana Maria"
        resp = await s.call("PATCH", f"/v1/users/{ana['id']}", admin, json={"email": "ana@example.org"})
        assert resp.json()["email"] == "ana@example.org" and resp.json()["display_name"] == "Ana Maria"
        # a staff user has no channel: identity names the field
        resp = await s.call("PATCH", f"/v1/users/{ana['id']}", admin, json={"channel_id": str(uuid.uuid4())})
        assert set(field_errors(resp)) == {"channel_id"}

        resp = await s.call("PUT", f"/v1/users/{ana['id']}/roles", admin, json={"roles": ["valuer", "accounts"]})
        assert resp.status_code == 200 and resp.json()["roles"] == ["accounts", "valuer"]

        listed = (await s.call("GET", "/v1/users?query=ana&status=active", admin)).json()
        assert [u["id"] for u in listed["items"]] == [ana["id"]] and listed["next_cursor"] is None
        page = (await s.call("GET", "/v1/users?limit=1", admin)).json()
        assert len(page["items"]) == 1 and page["next_cursor"]
        rest = (await s.call("GET", f"/v1/users?limit=10&cursor={page['next_cursor']}", admin)).json()
        assert page["items"][0]["id"] not in {u["id"] for u in rest["items"]}
        assert_problem(await s.call("GET", f"/v1/users/{uuid.uuid4()}", admin), 404)

        # a portal user acts for one channel; the merge patch moves it to another
        channel, moved = str(uuid.uuid4()), str(uuid.uuid4())
        partner = await s.create_user(admin, ["portal_user"], channel_id=channel)
        assert partner["channel_id"] == channel and partner["tenant_id"] != ana["tenant_id"]  # the external tenant
        resp = await s.call("PATCH", f"/v1/users/{partner['id']}", admin, json={"channel_id": moved})
        assert resp.status_code == 200 and resp.json()["channel_id"] == moved, resp.text
        # and `null` on a staff user (who has no channel) is accepted as "no channel"
        resp = await s.call("PATCH", f"/v1/users/{ana['id']}", admin, json={"channel_id": None})
        assert resp.status_code == 200 and resp.json()["channel_id"] is None, resp.text

        resp = await s.call("POST", f"/v1/users/{ana['id']}/disable", admin)
        assert resp.status_code == 200, resp.text
        assert resp.json()["user"]["status"] == "disabled" and resp.json()["revoked_sessions"] == 0
        assert [u["id"] for u in (await s.call("GET", "/v1/users?status=disabled", admin)).json()["items"]] == [
            ana["id"]
        ]

        templates = (await s.call("GET", "/v1/roles/templates", admin)).json()
        assert templates["version"] >= 1
        roles = {t["role"]: t for t in templates["items"]}
        assert {"super_admin", "ops_manager", "valuer", "accounts", "hr", "portal_user", "studio_operator"} <= set(
            roles
        )
        assert "users.read" not in roles["valuer"]["capabilities"]

        events = (await s.call("GET", "/v1/audit/auth-events", admin)).json()
        kinds = [e["kind"] for e in events["items"]]
        assert {"login.succeeded", "user.created", "user.updated", "user.roles_changed", "user.disabled"} <= set(kinds)
        assert all(e["occurred_at"].endswith("Z") for e in events["items"])
        only = (await s.call("GET", "/v1/audit/auth-events?kind=user.created", admin)).json()["items"]
        assert only and {e["kind"] for e in only} == {"user.created"}
        about_ana = (await s.call("GET", f"/v1/audit/auth-events?subject={ana['id']}", admin)).json()["items"]
        assert about_ana and all(ana["id"] in (e["actor"], e["target"]) for e in about_ana)
        page = (await s.call("GET", "/v1/audit/auth-events?limit=2", admin)).json()
        assert len(page["items"]) == 2 and page["next_cursor"]


# -- sessions and password change ------------------------------------------------------------------------


async def test_sessions_and_password_change(start_service, nats_server):
    async with suite(start_service, nats_server) as s:
        admin = (await s.tokens())["access_token"]
        user = await s.create_user(admin, ["valuer"])
        resp = await s.client.post(
            "/v1/auth/login",
            json={"email": user["email"], "password": USER_PASSWORD, "aud": "web"},
            headers={"user-agent": "laptop-browser/1.0"},
        )
        laptop = resp.json()
        phone = (await s.tokens(user["email"], USER_PASSWORD))["access_token"]

        sessions = (await s.call("GET", "/v1/auth/sessions", laptop["access_token"])).json()["items"]
        assert len(sessions) == 2
        current = next(x for x in sessions if x["current"])
        assert current["id"] == laptop["session_id"] and current["audience"] == "web"
        # the end user's address and user agent reached identity through the gateway
        assert current["ip"] == "127.0.0.1" and current["user_agent"] == "laptop-browser/1.0"
        other = next(x for x in sessions if not x["current"])

        resp = await s.call("DELETE", f"/v1/auth/sessions/{other['id']}", laptop["access_token"])
        assert resp.status_code == 204
        resp = await eventually(lambda: s.call("GET", "/v1/me", phone), lambda r: r.status_code == 401)
        assert_401(resp, "TOKEN_REVOKED")
        assert_problem(await s.call("DELETE", f"/v1/auth/sessions/{uuid.uuid4()}", laptop["access_token"]), 404)

        # password change: the current one is required; the new one meets the policy
        new_password = "amber-canyon-whistle-71"
        resp = await s.call(
            "POST",
            "/v1/auth/password",
            laptop["access_token"],
            json={"current_password": "not-my-password-at-all", "new_password": new_password},
        )
        assert set(field_errors(resp)) == {"current_password"}
        assert resp.json()["code"] == "CURRENT_PASSWORD_INVALID"
        resp = await s.call(
            "POST",
            "/v1/auth/password",
            laptop["access_token"],
            json={"current_password": USER_PASSWORD, "new_password": "password1234"},
        )
        assert set(field_errors(resp)) == {"new_password"}
        third = (await s.tokens(user["email"], USER_PASSWORD))["access_token"]
        resp = await s.call(
            "POST",
            "/v1/auth/password",
            laptop["access_token"],
            json={"current_password": USER_PASSWORD, "new_password": new_password},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"revoked_sessions": 1}  # the third session; the caller's stays
        assert (await s.call("GET", "/v1/me", laptop["access_token"])).status_code == 200
        resp = await eventually(lambda: s.call("GET", "/v1/me", third), lambda r: r.status_code == 401)
        assert_401(resp, "TOKEN_REVOKED")
        assert_problem(await s.login(user["email"], USER_PASSWORD), 401, "INVALID_CREDENTIALS")
        assert (await s.login(user["email"], new_password)).status_code == 200


# -- nothing secret in the logs ----------------------------------------------------------------------------


async def test_no_password_or_token_in_any_log_line(start_service, nats_server, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    async with suite(start_service, nats_server) as s:
        wrong_password = ADMIN_PASSWORD + "-typo"
        assert_problem(await s.login(ADMIN_EMAIL, wrong_password), 401)
        first = await s.tokens()
        resp = await s.client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        second = resp.json()
        user = await s.create_user(second["access_token"], ["valuer"])
        assert (await s.call("GET", f"/v1/users/{user['id']}", second["access_token"])).status_code == 200
        # failures are logged too: make some
        assert_401(await s.call("GET", "/v1/me", second["access_token"][:-4] + "AAAA"), "TOKEN_SIGNATURE_INVALID")
        assert (await s.call("POST", "/v1/auth/logout", second["access_token"])).status_code == 204
        await eventually(lambda: s.call("GET", "/v1/me", second["access_token"]), lambda r: r.status_code == 401)
        service_token = await s.app.state.runtime.service_token()

    formatter = JsonFormatter("test")
    lines = [formatter.format(record) for record in caplog.records]  # message, extras and tracebacks
    text = "\n".join(lines) + caplog.text + "".join(capsys.readouterr())
    assert len(lines) > 10  # the capture really saw the gateway and identity at work
    secrets = {
        "admin password": ADMIN_PASSWORD,
        "wrong password": wrong_password,
        "user password": USER_PASSWORD,
        "access token": first["access_token"],
        "refreshed access token": second["access_token"],
        "refresh token": first["refresh_token"],
        "rotated refresh token": second["refresh_token"],
        "service token": service_token,
    }
    for what, secret in secrets.items():
        assert secret not in text, f"{what} appears in the logs"
        if secret.count(".") == 2:  # a JWT: no part of its signature either
            assert secret.rsplit(".", 1)[1] not in text, f"{what} signature appears in the logs"
        if secret.startswith("zr1."):
            assert secret.rsplit(".", 1)[1] not in text, f"{what} secret part appears in the logs"


async def test_studio_and_portal_logins(start_service, nats_server):
    async with suite(start_service, nats_server) as s:
        studio = (await s.tokens(aud="studio"))["access_token"]
        assert (await s.call("GET", "/v1/me", studio)).json()["audience"] == "studio"

        admin = (await s.tokens())["access_token"]
        channel = str(uuid.uuid4())
        partner = await s.create_user(admin, ["portal_user"], channel_id=channel)
        # portal users log in to the portal only; the token carries their channel
        assert_problem(await s.login(partner["email"], USER_PASSWORD, aud="web"), 401, "INVALID_CREDENTIALS")
        portal = (await s.tokens(partner["email"], USER_PASSWORD, aud="portal"))["access_token"]
        me = (await s.call("GET", "/v1/me", portal)).json()
        assert me["audience"] == "portal" and me["tenant"]["kind"] == "external"
        assert me["user"]["channel_id"] == channel
        assert jwt.decode(portal, options={"verify_signature": False})["channel_id"] == channel


async def test_multi_tenant_mode_creates_tenants(start_service, nats_server):
    async with suite(start_service, nats_server, multi_tenant_enabled=True) as s:
        admin = (await s.tokens())["access_token"]
        resp = await s.call("POST", "/v1/tenants", admin, json={"slug": "acme", "name": "Acme", "kind": "customer"})
        assert resp.status_code == 201, resp.text
        acme = resp.json()
        assert acme["slug"] == "acme" and acme["kind"] == "customer" and acme["status"] == "active"
        assert uuid.UUID(acme["id"]) and acme["created_at"].endswith("Z")
        listed = (await s.call("GET", "/v1/tenants", admin)).json()["items"]
        assert acme in listed
        again = await s.call("POST", "/v1/tenants", admin, json={"slug": "acme", "name": "Acme 2", "kind": "customer"})
        assert_problem(again, 409)


async def test_a_refused_gateway_secret_is_a_503_never_a_401(start_service, nats_server):
    async with start_service("identity", bootstrap_admin_password=ADMIN_PASSWORD) as identity:
        settings = gateway_settings(
            identity_addr=f"127.0.0.1:{identity.port}", nats_url=nats_server.url, service_client_secret="wrong-secret"
        )
        async with running(create_app(settings)) as client:
            login = await client.post(
                "/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "aud": "web"}
            )
            admin = {"authorization": f"Bearer {login.json()['access_token']}"}  # control.read
            body = assert_problem(
                await client.get("/v1/meta/identity", headers=admin), 503, "SERVICE_CREDENTIALS_REJECTED"
            )
            assert "wrong-secret" not in str(body)
            meta = (await client.get("/v1/meta", headers=admin)).json()["services"]
            assert meta["identity"] == {
                **meta["identity"],
                "status": "UNAVAILABLE",
                "code": "SERVICE_CREDENTIALS_REJECTED",
            }
            # users are unaffected: their tokens are verified with identity's public keys
            resp = await client.post(
                "/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "aud": "web"}
            )
            assert resp.status_code == 200


async def test_refresh_grace_and_reuse_detection_through_the_gateway(start_service, nats_server):
    async with suite(start_service, nats_server) as s:
        first = await s.tokens()
        # two tabs refreshing at once with the same token get the same new pair, and
        # neither logs the other out
        a, b = await asyncio.gather(
            *(s.client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}) for _ in range(2))
        )
        assert a.status_code == b.status_code == 200, (a.text, b.text)
        a, b = a.json(), b.json()
        assert a["refresh_token"] == b["refresh_token"] and a["session_id"] == b["session_id"] == first["session_id"]
        assert a["access_token"] == b["access_token"]
        for tab in (a, b):
            assert (await s.call("GET", "/v1/me", tab["access_token"])).status_code == 200
    async with suite(start_service, nats_server, refresh_grace_seconds=0) as s:
        first = await s.tokens()
        second = (await s.client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
        # the spent token presented again: the whole session is revoked, everywhere
        reuse = await s.client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert_problem(reuse, 401)
        resp = await eventually(lambda: s.call("GET", "/v1/me", second["access_token"]), lambda r: r.status_code == 401)
        assert_401(resp, "TOKEN_REVOKED")
        assert_problem(await s.client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}), 401)
