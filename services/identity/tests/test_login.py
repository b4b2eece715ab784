"""Login: tokens and claims, indistinguishable failures, progressive delay instead of a lock,
per-client throttling, admin unlock, timing, field errors, transparent re-hash."""

import asyncio
import statistics
import time
from datetime import timedelta

import bcrypt
import grpc
import jwt
import pytest
from identity_harness import ADMIN_EMAIL, ADMIN_PASSWORD, EXTERNAL, INTERNAL, STAFF_PASSWORD, pb

from zenops_identity.credentials.hashing import PasswordHasher
from zenops_kit.auth import jwk_to_public_key
from zenops_kit.errors import parse_rpc_error

CHANNEL = "5f0c6a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"


async def test_login_issues_a_verifiable_token_pair_with_the_contract_claims(identity):
    async with identity() as h:
        pair = await h.login(metadata=(("x-client-ip", "203.0.113.9"), ("x-client-user-agent", "pytest/1")))
        assert pair.token_type == "Bearer" and pair.expires_in == 900 and pair.session_id
        assert pair.refresh_expires_in == 7 * 24 * 3600
        assert pair.refresh_token.startswith("zr1." + INTERNAL.replace("-", "") + ".")

        header = jwt.get_unverified_header(pair.access_token)
        assert header["alg"] == "EdDSA" and header["typ"] == "JWT"
        jwks = {k.kid: k for k in (await h.call("GetJwks", pb.GetJwksRequest())).keys}
        jwk = jwks[header["kid"]]
        assert (jwk.kty, jwk.crv, jwk.alg, jwk.use, jwk.y) == ("OKP", "Ed25519", "EdDSA", "sig", "")
        key = jwk_to_public_key({"kty": jwk.kty, "crv": jwk.crv, "x": jwk.x, "alg": jwk.alg, "use": jwk.use})
        claims = jwt.decode(pair.access_token, key, algorithms=["EdDSA"], audience="web", issuer="zenops-identity")
        assert set(claims) == {"iss", "sub", "aud", "tid", "roles", "caps", "cv", "sid", "jti", "iat", "nbf", "exp"}
        assert claims["tid"] == INTERNAL and claims["roles"] == ["super_admin"] and claims["sid"] == pair.session_id
        assert claims["exp"] - claims["iat"] == 900 and claims["nbf"] == claims["iat"] and claims["cv"] == 1
        assert "users.write" in claims["caps"]

        me = await h.call("GetMe", pb.GetMeRequest(), pair.access_token)
        assert me.user.email == ADMIN_EMAIL and me.tenant.kind == pb.TENANT_KIND_INTERNAL
        assert me.session_id == pair.session_id and me.audience == "web" and me.user.last_login_at.seconds
        ok = await h.audit_rows(kind="login.succeeded")
        assert ok[-1].ip == "203.0.113.9" and ok[-1].user_agent == "pytest/1" and ok[-1].actor == me.user.id
        assert len(ok[-1].trace_id) == 32 and int(ok[-1].trace_id, 16)


async def test_es256_signing_algorithm(identity):
    async with identity(signing_algorithm="ES256") as h:
        token = await h.admin()
        assert jwt.get_unverified_header(token)["alg"] == "ES256"
        (jwk,) = (await h.call("GetJwks", pb.GetJwksRequest())).keys
        assert (jwk.kty, jwk.crv, jwk.alg) == ("EC", "P-256", "ES256") and jwk.x and jwk.y
        assert (await h.call("GetMe", pb.GetMeRequest(), token)).user.email == ADMIN_EMAIL


def _answer(exc: grpc.aio.AioRpcError) -> tuple:
    """Everything a caller can observe about a failed call."""
    trailers = tuple(sorted((k, v) for k, v in (exc.trailing_metadata() or ()) if k != "x-request-id"))
    return exc.code(), exc.details(), trailers


async def test_every_login_failure_is_the_same_answer(identity):
    async with identity() as h:
        admin = await h.admin()
        await h.create_user(admin, "val@zenops.local")
        disabled = await h.create_user(admin, "gone@zenops.local")
        await h.call("DisableUser", pb.DisableUserRequest(id=disabled.id), admin)
        await h.create_user(admin, "partner@zenops.local", ["portal_user"], channel_id=CHANNEL)

        async def failure(email, password, audience="web"):
            return await h.raw_failure("Login", pb.LoginRequest(email=email, password=password, audience=audience))

        answers = {
            "wrong password": await failure("val@zenops.local", "Not-The-Right-Password-1"),
            "unknown email": await failure("nobody@zenops.local", "Not-The-Right-Password-1"),
            "disabled (right password)": await failure("gone@zenops.local", STAFF_PASSWORD),
            "staff on the portal": await failure("val@zenops.local", STAFF_PASSWORD, "portal"),
            "portal user on the web": await failure("partner@zenops.local", STAFF_PASSWORD, "web"),
        }
        observed = {name: _answer(exc) for name, exc in answers.items()}
        first = observed["wrong password"]
        assert first[0] == grpc.StatusCode.UNAUTHENTICATED and first[1] == "invalid email or password"
        assert all(answer == first for answer in observed.values()), observed
        assert parse_rpc_error(answers["unknown email"]).reason == "INVALID_CREDENTIALS"

        # The cause is in the audit trail (only). Portal logins land in the external tenant,
        # where staff do not exist; web logins in the internal one, where partners do not.
        causes = [r.detail for r in await h.audit_rows(kind="login.failed")]
        for cause in ("wrong_password", "unknown_email", "disabled"):
            assert any(f'"cause": "{cause}"' in d for d in causes), cause
        external = [r.detail for r in await h.audit_rows(EXTERNAL, kind="login.failed")]
        assert any('"cause": "unknown_email"' in d for d in external)


def _from(address: str) -> tuple[tuple[str, str], ...]:
    return (("x-client-ip", address),)


async def _timed_login(h, email: str, password: str, address: str):
    """(seconds, tokens or the error detail) of one login from `address`."""
    started = time.perf_counter()
    try:
        result = await h.login(email, password, metadata=_from(address))
    except grpc.aio.AioRpcError as exc:
        result = parse_rpc_error(exc)
    return time.perf_counter() - started, result


async def test_twenty_wrong_passwords_from_many_clients_do_not_stop_the_real_user(identity):
    async with identity(login_delay_base=0.3, login_delay_max=0.6) as h:
        admin = await h.admin()
        await h.create_user(admin, "val@zenops.local")
        # The default admin's account too: nobody can lock anyone out any more.
        for email, password in (("val@zenops.local", STAFF_PASSWORD), (ADMIN_EMAIL, ADMIN_PASSWORD)):
            for burst in range(2):  # an attacker spread over 20 addresses: no client throttle applies
                answers = await asyncio.gather(
                    *(
                        _timed_login(h, email, f"Wrong-Password-{i:04}", f"198.51.100.{burst * 10 + i + 1}")
                        for i in range(10)
                    )
                )
                assert {err.reason for _, err in answers} == {"INVALID_CREDENTIALS"}
            (row,) = await h.sql("SELECT failures FROM login_failures WHERE email = :e", {"e": email})
            assert row.failures == 20
            elapsed, pair = await _timed_login(h, email, password, "203.0.113.77")
            assert pair.access_token, pair
            # Delayed (the attacker's last failure was just now), but by at most the maximum.
            assert 0.3 < elapsed < 0.6 + 1.5, elapsed
            # A success clears the count: the next login is not delayed.
            elapsed, pair = await _timed_login(h, email, password, "203.0.113.77")
            assert pair.access_token and elapsed < 0.3, elapsed
        delayed = await h.audit_rows(kind="account.delayed")
        assert len(delayed) == 2 and '"failed_count": "5"' in delayed[0].detail


async def test_failures_slow_an_unknown_email_exactly_like_a_real_one(identity):
    async with identity(login_free_failures=2, login_delay_base=0.4, login_delay_max=0.4) as h:
        await h.admin()
        timings = {}
        for email in (ADMIN_EMAIL, "nobody@zenops.local"):
            for i in range(2):
                await _timed_login(h, email, "Wrong-Password-1234", f"198.51.100.{i + 1}")
            timings[email], err = await _timed_login(h, email, "Wrong-Password-1234", "198.51.100.9")
            assert err.reason == "INVALID_CREDENTIALS"
        assert all(t >= 0.35 for t in timings.values()), timings
        rows = await h.sql("SELECT email, failures FROM login_failures ORDER BY email")
        assert [(r.email, r.failures) for r in rows] == [(ADMIN_EMAIL, 3), ("nobody@zenops.local", 3)]


async def test_a_client_over_its_failure_allowance_is_throttled_whatever_the_account(identity):
    async with identity(login_client_max_failures=3, login_client_window=60) as h:
        await h.admin()
        for email in (ADMIN_EMAIL, "nobody@zenops.local", ADMIN_EMAIL):
            _, err = await _timed_login(h, email, "Wrong-Password-1234", "198.51.100.7")
            assert err.reason == "INVALID_CREDENTIALS"
        for email, password in ((ADMIN_EMAIL, ADMIN_PASSWORD), ("nobody@zenops.local", "Wrong-Password-1234")):
            elapsed, err = await _timed_login(h, email, password, "198.51.100.7")
            assert (err.code, err.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_LOGIN_ATTEMPTS")
            assert 0 < err.retry_after <= 60
        # Another address (IPv6 clients count per /64) is not affected.
        assert await h.login(ADMIN_EMAIL, ADMIN_PASSWORD, metadata=_from("2001:db8:1::5"))
        (throttled,) = await h.audit_rows(kind="login.client_throttled")
        assert throttled.ip == "198.51.100.7"


async def test_an_admin_unlock_ends_the_delay_at_once(identity):
    async with identity(login_free_failures=1, login_delay_base=2, login_delay_max=2) as h:
        admin = await h.admin()
        user = await h.create_user(admin, "val@zenops.local")
        await h.create_user(admin, "hr@zenops.local", ["hr"])
        hr = (await h.login("hr@zenops.local", STAFF_PASSWORD)).access_token
        for i in range(3):
            await _timed_login(h, "val@zenops.local", "Wrong-Password-1234", f"198.51.100.{i + 1}")
        shown = (await h.call("GetUser", pb.GetUserRequest(id=user.id), admin)).user
        assert shown.locked_until.seconds > 0  # admins see until when the account is delayed

        err = await h.fails("UnlockUser", pb.UnlockUserRequest(id=user.id), hr)
        assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_CAPABILITY")
        resp = await h.call("UnlockUser", pb.UnlockUserRequest(id=user.id), admin)
        assert resp.cleared_failures == 3 and not resp.user.HasField("locked_until")
        elapsed, pair = await _timed_login(h, "val@zenops.local", STAFF_PASSWORD, "203.0.113.77")
        assert pair.access_token and elapsed < 1.0, elapsed
        (unlocked,) = await h.audit_rows(kind="account.unlocked")
        assert unlocked.target == user.id and '"cleared_failures": "3"' in unlocked.detail
        err = await h.fails("UnlockUser", pb.UnlockUserRequest(id="not-a-uuid"), admin)
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.violations[0].field == "id"


async def test_unknown_email_and_wrong_password_take_comparable_time(identity):
    async with identity(login_free_failures=100) as h:
        await h.admin()

        async def timed(email):
            start = time.perf_counter()
            await h.fails("Login", pb.LoginRequest(email=email, password="Wrong-Password-1234", audience="web"))
            return time.perf_counter() - start

        await timed(ADMIN_EMAIL), await timed("nobody@zenops.local")  # warm-up
        wrong, unknown = [], []
        for _ in range(9):
            wrong.append(await timed(ADMIN_EMAIL))
            unknown.append(await timed("nobody@zenops.local"))
        w, u = statistics.median(wrong), statistics.median(unknown)
        # Both are dominated by one argon2id verification; a skipped hash would be ~10x faster.
        assert 0.6 < u / w < 1.6, (w, u)


@pytest.mark.parametrize(
    ("request_fields", "field", "reason"),
    [
        ({"email": "not-an-email"}, "email", "VALIDATION_FAILED"),
        ({"email": ""}, "email", "VALIDATION_FAILED"),
        ({"password": "x" * 129}, "password", "VALIDATION_FAILED"),
        ({"password": ""}, "password", "VALIDATION_FAILED"),
        ({"audience": "service"}, "audience", "VALIDATION_FAILED"),
        ({"audience": ""}, "audience", "VALIDATION_FAILED"),
        ({"tenant_id": "firm"}, "tenant_id", "VALIDATION_FAILED"),
    ],
)
async def test_bad_login_input_is_a_field_level_error(identity, request_fields, field, reason):
    async with identity() as h:
        fields = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "audience": "web", **request_fields}
        err = await h.fails("Login", pb.LoginRequest(**fields))
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.reason == reason
        assert [v.field for v in err.violations] == [field]


async def test_imported_bcrypt_hash_verifies_and_is_upgraded_to_argon2id(identity):
    async with identity() as h:
        admin = await h.admin()
        user = await h.create_user(admin, "legacy@zenops.local")
        legacy = bcrypt.hashpw(b"Legacy-Passphrase-2019", bcrypt.gensalt(rounds=4)).decode()
        await h.sql("UPDATE users SET password_hash = :h WHERE id = :id", {"h": legacy, "id": user.id})
        assert await h.login("legacy@zenops.local", "Legacy-Passphrase-2019")
        (row,) = await h.sql("SELECT password_hash FROM users WHERE id = :id", {"id": user.id})
        assert row.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert await h.login("legacy@zenops.local", "Legacy-Passphrase-2019")  # the new hash verifies
        assert '"rehashed": "True"' in (await h.audit_rows(kind="login.succeeded"))[-2].detail


async def test_hash_with_old_parameters_is_rehashed_on_login(identity):
    async with identity() as h:
        admin = await h.admin()
        user = await h.create_user(admin, "old@zenops.local")
        stronger = await PasswordHasher(memory_cost=19456, time_cost=3).hash(STAFF_PASSWORD)
        await h.sql("UPDATE users SET password_hash = :h WHERE id = :id", {"h": stronger, "id": user.id})
        await h.login("old@zenops.local", STAFF_PASSWORD)
        (row,) = await h.sql("SELECT password_hash FROM users WHERE id = :id", {"id": user.id})
        assert ",t=2," in row.password_hash


async def test_login_to_unknown_tenant_in_multi_tenant_mode_is_invalid_credentials(identity):
    async with identity(multi_tenant_enabled=True) as h:
        err = await h.fails(
            "Login",
            pb.LoginRequest(
                email=ADMIN_EMAIL,
                password=ADMIN_PASSWORD,
                audience="web",
                tenant_id="9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d",
            ),
        )
        assert err.reason == "INVALID_CREDENTIALS"
        assert '"cause": "unknown_tenant"' in (await h.audit_rows(kind="login.failed"))[-1].detail
        # A partner asking for a web session in the external tenant: right password, wrong audience.
        admin = await h.admin()
        await h.create_user(admin, "partner@zenops.local", ["portal_user"], channel_id=CHANNEL)
        err = await h.fails(
            "Login",
            pb.LoginRequest(email="partner@zenops.local", password=STAFF_PASSWORD, audience="web", tenant_id=EXTERNAL),
        )
        assert err.reason == "INVALID_CREDENTIALS"
        assert '"cause": "audience_not_allowed"' in (await h.audit_rows(EXTERNAL, kind="login.failed"))[-1].detail


async def test_last_login_and_session_deadlines_recorded(identity):
    async with identity() as h:
        pair = await h.login()
        (row,) = await h.sql(
            "SELECT created_at, expires_at, idle_expires_at FROM sessions WHERE id = :id", {"id": pair.session_id}
        )
        assert row.expires_at - row.created_at == timedelta(days=30)
        assert row.idle_expires_at - row.created_at == timedelta(days=7)
