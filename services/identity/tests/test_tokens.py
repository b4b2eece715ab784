"""Refresh rotation, grace period, reuse detection, session expiry, logout, introspection,
signing-key rotation and service tokens."""

import asyncio
import hashlib
import time

import grpc
import jwt
from identity_harness import INTERNAL, STAFF_PASSWORD, pb

from zenops.events.v1 import envelope_pb2
from zenops.events.v1 import identity_pb2 as events_pb2
from zenops_devstack.testing import TokenSigner, poll
from zenops_identity.auth import signing
from zenops_kit.auth import JwksKeySource, JwtVerifier
from zenops_kit.events import unpack_payload
from zenops_kit.settings import LOCAL_SERVICE_CLIENT_SECRET


async def refresh(h, token: str) -> pb.TokenPair:
    return (await h.call("Refresh", pb.RefreshRequest(refresh_token=token))).tokens


async def revoked_events(h) -> list:
    out = []
    for row in await h.outbox("identity.session.revoked"):
        env = envelope_pb2.EventEnvelope.FromString(row.envelope)
        out.append((env, unpack_payload(env, events_pb2.SessionsRevoked)))
    return out


async def test_refresh_rotates_and_the_new_pair_works(identity):
    async with identity() as h:
        first = await h.login()
        second = await refresh(h, first.refresh_token)
        assert second.refresh_token != first.refresh_token and second.refresh_token.startswith("zr1.")
        assert second.session_id == first.session_id and second.access_token != first.access_token
        assert second.token_type == "Bearer" and second.expires_in == 900
        third = await refresh(h, second.refresh_token)
        me = await h.call("GetMe", pb.GetMeRequest(), third.access_token)
        assert me.session_id == first.session_id
        # Only hashes are stored.
        rows = await h.sql("SELECT token_hash FROM refresh_tokens")
        stored = {bytes(r.token_hash) for r in rows}
        assert hashlib.sha256(first.refresh_token.encode()).digest() in stored
        assert not any(t.refresh_token.encode() in b for t in (first, second, third) for b in stored)
        assert len(await h.audit_rows(kind="token.refreshed")) == 2


async def test_the_same_token_within_the_grace_period_returns_the_same_pair(identity):
    async with identity() as h:
        first = await h.login()
        # Two tabs refreshing at once: both get the same new pair, neither is logged out.
        a, b = await asyncio.gather(refresh(h, first.refresh_token), refresh(h, first.refresh_token))
        assert a.refresh_token == b.refresh_token != first.refresh_token
        assert a.access_token == b.access_token != first.access_token
        c = await refresh(h, first.refresh_token)
        assert (c.refresh_token, c.access_token) == (a.refresh_token, a.access_token)
        assert c.session_id == first.session_id
        for pair in (a, b, c):
            assert (await h.call("GetMe", pb.GetMeRequest(), pair.access_token)).session_id == first.session_id
        # The successor still rotates normally.
        assert (await refresh(h, a.refresh_token)).refresh_token != a.refresh_token


async def test_reuse_after_the_grace_period_revokes_the_whole_session(identity):
    async with identity() as h:
        first = await h.login(metadata=(("x-client-ip", "198.51.100.7"),))
        second = await refresh(h, first.refresh_token)
        other_session = await h.login()
        # The grace period has passed for the spent token.
        await h.sql("UPDATE refresh_tokens SET used_at = used_at - interval '1 minute' WHERE used_at IS NOT NULL")

        err = await h.fails("Refresh", pb.RefreshRequest(refresh_token=first.refresh_token))
        assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")
        # Every token of the family is dead: the current refresh token and the access tokens.
        assert (
            await h.fails("Refresh", pb.RefreshRequest(refresh_token=second.refresh_token))
        ).reason == "REFRESH_TOKEN_INVALID"
        for access in (first.access_token, second.access_token):
            assert (await h.fails("GetMe", pb.GetMeRequest(), access)).reason == "TOKEN_REVOKED"
        # Other sessions are untouched.
        assert await h.call("GetMe", pb.GetMeRequest(), other_session.access_token)

        (row,) = await h.audit_rows(kind="token.reuse_detected")
        assert first.session_id in row.detail
        ((env, payload),) = await revoked_events(h)
        assert list(payload.session_ids) == [first.session_id] and payload.reason == "reuse_detected"
        assert env.tenant_id == INTERNAL and payload.user_id
        assert payload.access_valid_until.seconds >= time.time() + 900
        (s,) = await h.sql("SELECT revoked_reason FROM sessions WHERE id = :id", {"id": first.session_id})
        assert s.revoked_reason == "reuse_detected"
        # Presenting it again is refused without a second revocation event.
        await h.fails("Refresh", pb.RefreshRequest(refresh_token=first.refresh_token))
        assert len(await revoked_events(h)) == 1


async def test_garbage_and_forged_refresh_tokens_get_the_same_answer(identity):
    async with identity() as h:
        pair = await h.login()
        tenant_hex = INTERNAL.replace("-", "")
        for bad in (
            "",
            "garbage",
            "zr1." + tenant_hex + "." + "A" * 43,
            pair.refresh_token.replace(tenant_hex, "0" * 32),
            pair.access_token,
        ):
            err = await h.fails("Refresh", pb.RefreshRequest(refresh_token=bad))
            assert (err.code, err.reason, err.message) == (
                grpc.StatusCode.UNAUTHENTICATED,
                "REFRESH_TOKEN_INVALID",
                "the refresh token is invalid or has expired; log in again",
            )


async def test_idle_timeout_slides_and_absolute_lifetime_caps_it(identity):
    async with identity() as h:
        pair = await h.login()
        # Idle deadline passed: the session is over.
        await h.sql(
            "UPDATE sessions SET idle_expires_at = now() - interval '1 second' WHERE id = :id", {"id": pair.session_id}
        )
        assert (
            await h.fails("Refresh", pb.RefreshRequest(refresh_token=pair.refresh_token))
        ).reason == "REFRESH_TOKEN_INVALID"
        assert (await h.fails("GetMe", pb.GetMeRequest(), pair.access_token)).reason == "TOKEN_REVOKED"

        pair = await h.login()
        # One day of absolute lifetime left: a refresh slides the idle deadline up to it, not beyond.
        await h.sql(
            "UPDATE sessions SET expires_at = now() + interval '1 day', "
            "idle_expires_at = now() + interval '1 hour' WHERE id = :id",
            {"id": pair.session_id},
        )
        renewed = await refresh(h, pair.refresh_token)
        assert 86000 < renewed.refresh_expires_in <= 86400
        (s,) = await h.sql("SELECT expires_at, idle_expires_at FROM sessions WHERE id = :id", {"id": pair.session_id})
        assert s.idle_expires_at == s.expires_at

        # Absolute deadline passed.
        await h.sql(
            "UPDATE sessions SET expires_at = now() - interval '1 second', "
            "idle_expires_at = now() - interval '1 second' WHERE id = :id",
            {"id": pair.session_id},
        )
        assert (
            await h.fails("Refresh", pb.RefreshRequest(refresh_token=renewed.refresh_token))
        ).reason == "REFRESH_TOKEN_INVALID"


async def test_logout_revokes_the_session_and_announces_it(identity):
    async with identity() as h:
        pair = await h.login()
        other = await h.login()
        await h.call("Logout", pb.LogoutRequest(), pair.access_token)
        assert (await h.fails("GetMe", pb.GetMeRequest(), pair.access_token)).reason == "TOKEN_REVOKED"
        assert (
            await h.fails("Refresh", pb.RefreshRequest(refresh_token=pair.refresh_token))
        ).reason == "REFRESH_TOKEN_INVALID"
        assert await h.call("GetMe", pb.GetMeRequest(), other.access_token)
        ((_, payload),) = await revoked_events(h)
        assert list(payload.session_ids) == [pair.session_id] and payload.reason == "logout"
        assert len(await h.audit_rows(kind="logout")) == 1
        # Without a token, logout is refused.
        assert (await h.fails("Logout", pb.LogoutRequest())).reason == "TOKEN_MISSING"


async def test_disabled_user_cannot_refresh(identity):
    async with identity() as h:
        admin = await h.admin()
        user = await h.create_user(admin, "val@zenops.local")
        pair = await h.login("val@zenops.local", STAFF_PASSWORD)
        await h.call("DisableUser", pb.DisableUserRequest(id=user.id), admin)
        assert (
            await h.fails("Refresh", pb.RefreshRequest(refresh_token=pair.refresh_token))
        ).reason == "REFRESH_TOKEN_INVALID"


async def test_introspection_answers_authoritatively(identity):
    async with identity() as h:
        caller = await h.admin()
        pair = await h.login()
        resp = await h.call("IntrospectToken", pb.IntrospectTokenRequest(token=pair.access_token), caller)
        assert resp.active and resp.reason == "" and resp.session_id == pair.session_id
        assert resp.tenant_id == INTERNAL and resp.audience == "web" and list(resp.roles) == ["super_admin"]
        assert "users.read" in resp.capabilities and resp.expires_at.seconds > time.time()

        await h.call("Logout", pb.LogoutRequest(), pair.access_token)
        resp = await h.call("IntrospectToken", pb.IntrospectTokenRequest(token=pair.access_token), caller)
        assert (resp.active, resp.reason, resp.subject) == (False, "TOKEN_REVOKED", "")

        foreign = TokenSigner()  # a key identity never published
        none_alg = jwt.encode({"sub": "x"}, None, algorithm="none")
        for token, reason in (
            ("garbage", "TOKEN_MALFORMED"),
            (none_alg, "TOKEN_ALGORITHM_NOT_ALLOWED"),
            (foreign.token(aud="web"), "TOKEN_KEY_UNKNOWN"),
            ("", "TOKEN_MISSING"),
        ):
            resp = await h.call("IntrospectToken", pb.IntrospectTokenRequest(token=token), caller)
            assert (resp.active, resp.reason) == (False, reason)
        # Anonymous callers get nothing.
        err = await h.fails("IntrospectToken", pb.IntrospectTokenRequest(token=caller))
        assert err.reason == "TOKEN_MISSING"


async def test_key_rotation_keeps_old_tokens_valid_until_the_old_key_leaves_the_jwks(identity):
    async with identity(signing_key_cache_seconds=0) as h:
        admin = await h.admin()
        old_kid = jwt.get_unverified_header(admin)["kid"]
        new_kid = (await h.call("RotateSigningKey", pb.RotateSigningKeyRequest(), admin)).kid
        assert new_kid != old_kid

        jwks = {k.kid for k in (await h.call("GetJwks", pb.GetJwksRequest())).keys}
        assert jwks == {old_kid, new_kid}
        assert await h.call("GetMe", pb.GetMeRequest(), admin)  # the old token still verifies
        fresh = await h.admin()
        assert jwt.get_unverified_header(fresh)["kid"] == new_kid
        (row,) = await h.sql(
            "SELECT extract(epoch FROM publish_until - retired_at) AS window FROM signing_keys WHERE kid = :kid",
            {"kid": old_kid},
            tenant=None,
        )
        assert row.window == 900 + 60  # access-token lifetime + leeway

        # Every token the old key signed has expired: it leaves the JWKS and stops verifying.
        await h.sql(
            "UPDATE signing_keys SET publish_until = now() - interval '1 second' WHERE kid = :kid",
            {"kid": old_kid},
            tenant=None,
        )
        assert {k.kid for k in (await h.call("GetJwks", pb.GetJwksRequest())).keys} == {new_kid}
        assert (await h.fails("GetMe", pb.GetMeRequest(), admin)).reason == "TOKEN_KEY_UNKNOWN"
        assert await h.call("GetMe", pb.GetMeRequest(), fresh)
        (audit,) = await h.audit_rows(kind="signing_key.rotated")
        assert old_kid in audit.detail and new_kid in audit.detail

        # Private keys are encrypted at rest.
        rows = await h.sql("SELECT private_key FROM signing_keys", tenant=None)
        assert all(bytes(r.private_key).startswith(b"gAAAAA") for r in rows)  # Fernet tokens


async def test_rotation_needs_control_write(identity):
    async with identity() as h:
        admin = await h.admin()
        await h.create_user(admin, "val@zenops.local")
        valuer = (await h.login("val@zenops.local", STAFF_PASSWORD)).access_token
        err = await h.fails("RotateSigningKey", pb.RotateSigningKeyRequest(), valuer)
        assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_CAPABILITY")


async def test_an_old_active_key_is_rotated_automatically(identity):
    async with identity(signing_key_check_interval=0.2) as h:
        (active,) = await h.sql("SELECT kid FROM signing_keys WHERE retired_at IS NULL", tenant=None)
        assert await signing.rotate_if_due(h.app.identity) is None  # young key: nothing to do
        await h.sql("UPDATE signing_keys SET created_at = now() - interval '31 days'", tenant=None)

        async def rotated():
            rows = await h.sql("SELECT kid FROM signing_keys WHERE retired_at IS NULL", tenant=None)
            return rows and rows[0].kid != active.kid and rows[0].kid

        new_kid = await poll(rotated, what="the background rotation")
        assert any('"reason": "max_age"' in r.detail for r in await h.audit_rows(kind="signing_key.rotated"))
        assert jwt.get_unverified_header(await h.admin())["kid"] == new_kid


async def test_service_tokens(identity):
    secrets = '{"gateway": "gw-secret-0123456789", "ops": "ops-secret-0123456789"}'
    async with identity(service_client_secrets=secrets) as h:
        resp = await h.call(
            "IssueServiceToken", pb.IssueServiceTokenRequest(client_id="gateway", client_secret="gw-secret-0123456789")
        )
        assert resp.expires_in == 600

        async def fetch():
            return [{f.name: v for f, v in k.ListFields()} for k in (await h.call("GetJwks", pb.GetJwksRequest())).keys]

        verifier = JwtVerifier(JwksKeySource(fetch), issuer="zenops-identity")
        ctx = await verifier.verify(resp.access_token)
        assert ctx.is_service and ctx.subject == "service:gateway" and ctx.tenant_id is None
        assert ctx.session_id is None and ctx.capabilities == {"control.read"}
        claims = await verifier.claims(resp.access_token)
        assert claims["aud"] == "service" and claims["exp"] - claims["iat"] == 600
        # The service token authenticates calls (GetServiceInfo is not public any more).
        info = await h.call("GetServiceInfo", pb.GetServiceInfoRequest(), resp.access_token)
        assert info.info.name == "identity"
        intro = await h.call("IntrospectToken", pb.IntrospectTokenRequest(token=resp.access_token), resp.access_token)
        assert intro.active and intro.audience == "service"

        for client_id, secret in (
            ("gateway", "wrong"),
            ("gateway", ""),
            ("billing", "gw-secret-0123456789"),
            ("nobody", "gw-secret-0123456789"),
            ("ops", LOCAL_SERVICE_CLIENT_SECRET),
        ):
            err = await h.fails(
                "IssueServiceToken", pb.IssueServiceTokenRequest(client_id=client_id, client_secret=secret)
            )
            assert (err.code, err.reason, err.message) == (
                grpc.StatusCode.UNAUTHENTICATED,
                "INVALID_CLIENT",
                "invalid client credentials",
            )
        assert len(await h.audit_rows(kind="service_token.denied")) == 5
        assert len(await h.audit_rows(kind="service_token.issued")) == 1
        # A service token is not a user: no sessions, no profile.
        err = await h.fails("GetMe", pb.GetMeRequest(), resp.access_token)
        assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "USER_TOKEN_REQUIRED")
        await verifier.keys.close()


async def test_default_local_client_secrets(identity):
    async with identity() as h:
        for client in ("gateway", "ops", "billing", "repogen"):
            resp = await h.call(
                "IssueServiceToken",
                pb.IssueServiceTokenRequest(client_id=client, client_secret=LOCAL_SERVICE_CLIENT_SECRET),
            )
            assert jwt.decode(resp.access_token, options={"verify_signature": False})["sub"] == f"service:{client}"


async def test_public_methods_and_protected_ones(identity):
    async with identity() as h:
        assert (await h.call("GetJwks", pb.GetJwksRequest())).keys
        for method, request in (
            ("GetServiceInfo", pb.GetServiceInfoRequest()),
            ("GetMe", pb.GetMeRequest()),
            ("ListUsers", pb.ListUsersRequest()),
            ("ListRoleTemplates", pb.ListRoleTemplatesRequest()),
        ):
            err = await h.fails(method, request)
            assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING"), method
        assert (await h.fails("GetMe", pb.GetMeRequest(), "not-a-jwt")).reason == "TOKEN_MALFORMED"
