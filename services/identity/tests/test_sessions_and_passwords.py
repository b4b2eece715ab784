"""The caller's own account: sessions list and revoke, password change."""

import time

import grpc
from identity_harness import ADMIN_EMAIL, ADMIN_PASSWORD, STAFF_PASSWORD, pb

from zenops.events.v1 import envelope_pb2
from zenops.events.v1 import identity_pb2 as events_pb2
from zenops_kit.events import unpack_payload

NEW_PASSWORD = "Brisk-Meadow-Lighthouse-58"


async def test_list_and_revoke_own_sessions(identity):
    async with identity() as h:
        a = await h.login(metadata=(("x-client-ip", "192.0.2.1"), ("x-client-user-agent", "Firefox")))
        b = await h.login(audience="studio")
        listed = (await h.call("ListSessions", pb.ListSessionsRequest(), a.access_token)).sessions
        by_id = {s.id: s for s in listed}
        assert set(by_id) == {a.session_id, b.session_id}
        assert by_id[a.session_id].current and not by_id[b.session_id].current
        assert (by_id[a.session_id].ip, by_id[a.session_id].user_agent) == ("192.0.2.1", "Firefox")
        assert by_id[b.session_id].audience == "studio" and by_id[b.session_id].expires_at.seconds

        await h.call("RevokeSession", pb.RevokeSessionRequest(session_id=b.session_id), a.access_token)
        assert (await h.fails("GetMe", pb.GetMeRequest(), b.access_token)).reason == "TOKEN_REVOKED"
        listed = (await h.call("ListSessions", pb.ListSessionsRequest(), a.access_token)).sessions
        assert [s.id for s in listed] == [a.session_id]
        assert len(await h.audit_rows(kind="session.revoked")) == 1

        err = await h.fails("RevokeSession", pb.RevokeSessionRequest(session_id="nope"), a.access_token)
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.violations[0].field == "session_id"


async def test_other_users_sessions_need_users_write(identity):
    async with identity() as h:
        admin = await h.admin()
        await h.create_user(admin, "val@zenops.local")
        valuer = await h.login("val@zenops.local", STAFF_PASSWORD)
        admin_pair = await h.login()
        # A valuer cannot see, let alone revoke, someone else's session.
        err = await h.fails(
            "RevokeSession", pb.RevokeSessionRequest(session_id=admin_pair.session_id), valuer.access_token
        )
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND")
        # An admin (users.write) can revoke any session of the tenant.
        await h.call("RevokeSession", pb.RevokeSessionRequest(session_id=valuer.session_id), admin)
        assert (await h.fails("GetMe", pb.GetMeRequest(), valuer.access_token)).reason == "TOKEN_REVOKED"


async def test_password_change_requires_the_current_password_and_the_policy(identity):
    async with identity() as h:
        pair = await h.login()
        err = await h.fails(
            "ChangePassword",
            pb.ChangePasswordRequest(current_password="Not-My-Password-99", new_password=NEW_PASSWORD),
            pair.access_token,
        )
        assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CURRENT_PASSWORD_INVALID")
        assert [v.field for v in err.violations] == ["current_password"]
        assert len(await h.audit_rows(kind="password.change_failed")) == 1

        err = await h.fails(
            "ChangePassword",
            pb.ChangePasswordRequest(current_password="", new_password=NEW_PASSWORD),
            pair.access_token,
        )
        assert err.violations[0].field == "current_password"

        # Every failed rule is reported, on the new_password field.
        err = await h.fails(
            "ChangePassword",
            pb.ChangePasswordRequest(current_password=ADMIN_PASSWORD, new_password="admin"),
            pair.access_token,
        )
        assert err.reason == "PASSWORD_POLICY"
        assert {v.field for v in err.violations} == {"new_password"} and len(err.violations) >= 2
        for weak in ("password1234", "x" * 129, "Administrator-2024!"):
            err = await h.fails(
                "ChangePassword",
                pb.ChangePasswordRequest(current_password=ADMIN_PASSWORD, new_password=weak),
                pair.access_token,
            )
            assert err.reason == "PASSWORD_POLICY", weak
        assert await h.login()  # nothing changed


async def test_password_change_revokes_the_other_sessions_only(identity):
    async with identity() as h:
        current = await h.login()
        others = [await h.login(), await h.login(audience="studio")]
        resp = await h.call(
            "ChangePassword",
            pb.ChangePasswordRequest(current_password=ADMIN_PASSWORD, new_password=NEW_PASSWORD),
            current.access_token,
        )
        assert resp.revoked_sessions == 2
        assert await h.call("GetMe", pb.GetMeRequest(), current.access_token)
        assert await h.call("Refresh", pb.RefreshRequest(refresh_token=current.refresh_token))
        for other in others:
            assert (await h.fails("GetMe", pb.GetMeRequest(), other.access_token)).reason == "TOKEN_REVOKED"
            assert (
                await h.fails("Refresh", pb.RefreshRequest(refresh_token=other.refresh_token))
            ).reason == "REFRESH_TOKEN_INVALID"
        assert (
            await h.fails("Login", pb.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD, audience="web"))
        ).reason == "INVALID_CREDENTIALS"
        assert await h.login(password=NEW_PASSWORD)

        (row,) = await h.outbox("identity.session.revoked")
        payload = unpack_payload(envelope_pb2.EventEnvelope.FromString(row.envelope), events_pb2.SessionsRevoked)
        assert set(payload.session_ids) == {o.session_id for o in others} and payload.reason == "password_changed"
        (audit,) = await h.audit_rows(kind="password.changed")
        assert '"revoked_sessions": "2"' in audit.detail


async def test_wrong_current_passwords_count_towards_the_login_delay(identity):
    async with identity(login_free_failures=3, login_delay_base=0.4, login_delay_max=0.4) as h:
        pair = await h.login()
        for _ in range(3):
            await h.fails(
                "ChangePassword",
                pb.ChangePasswordRequest(current_password="Not-My-Password-99", new_password=NEW_PASSWORD),
                pair.access_token,
            )
        assert len(await h.audit_rows(kind="account.delayed")) == 1
        (row,) = await h.sql("SELECT failures FROM login_failures WHERE email = :e", {"e": ADMIN_EMAIL})
        assert row.failures == 3
        # Delayed, not locked: the right current password still works, after the delay.
        started = time.perf_counter()
        await h.call(
            "ChangePassword",
            pb.ChangePasswordRequest(current_password=ADMIN_PASSWORD, new_password=NEW_PASSWORD),
            pair.access_token,
        )
        assert time.perf_counter() - started >= 0.3
        assert not await h.sql("SELECT 1 FROM login_failures")  # a password change clears the count
        assert await h.login(ADMIN_EMAIL, NEW_PASSWORD)
