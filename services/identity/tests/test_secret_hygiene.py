"""No password and no token appears in an audit row, an outbox event or a log record of a
full flow (logins good and bad, refreshes, reuse, password change, users, service tokens)."""

import logging

from google.protobuf import field_mask_pb2
from identity_harness import ADMIN_PASSWORD, EXTERNAL, INTERNAL, STAFF_PASSWORD, pb

from zenops_kit.settings import LOCAL_SERVICE_CLIENT_SECRET

NEW_PASSWORD = "Brisk-Meadow-Lighthouse-58"
WRONG = "Wrong-But-Plausible-Password-7"


async def test_no_secret_in_audit_rows_events_or_logs(identity, caplog):
    caplog.set_level(logging.DEBUG)
    used: set[str] = {ADMIN_PASSWORD, STAFF_PASSWORD, NEW_PASSWORD, WRONG, LOCAL_SERVICE_CLIENT_SECRET}
    async with identity() as h:

        def keep(pair):
            used.update({pair.access_token, pair.refresh_token})
            return pair

        admin = keep(await h.login()).access_token
        user = await h.create_user(admin, "val@zenops.local")
        await h.create_user(
            admin, "partner@bank.test", ["portal_user"], channel_id="5f0c6a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
        )
        for email in ("val@zenops.local", "nobody@zenops.local"):
            await h.fails("Login", pb.LoginRequest(email=email, password=WRONG, audience="web"))
        await h.fails("Login", pb.LoginRequest(email="val@zenops.local", password="x" * 129, audience="web"))
        pair = keep(await h.login("val@zenops.local", STAFF_PASSWORD))
        keep(await h.login("partner@bank.test", STAFF_PASSWORD, audience="portal"))
        renewed = keep((await h.call("Refresh", pb.RefreshRequest(refresh_token=pair.refresh_token))).tokens)
        await h.sql("UPDATE refresh_tokens SET used_at = used_at - interval '1 minute' WHERE used_at IS NOT NULL")
        await h.fails("Refresh", pb.RefreshRequest(refresh_token=pair.refresh_token))  # reuse
        second = keep(await h.login("val@zenops.local", STAFF_PASSWORD))
        await h.fails(
            "ChangePassword",
            pb.ChangePasswordRequest(current_password=WRONG, new_password=NEW_PASSWORD),
            second.access_token,
        )
        await h.call(
            "ChangePassword",
            pb.ChangePasswordRequest(current_password=STAFF_PASSWORD, new_password=NEW_PASSWORD),
            second.access_token,
        )
        await h.fails(
            "CreateUser",
            pb.CreateUserRequest(
                email="weak@zenops.local", display_name="Weak", password="weak@zenops.local-pw", roles=["valuer"]
            ),
            admin,
        )
        service = await h.call(
            "IssueServiceToken",
            pb.IssueServiceTokenRequest(client_id="gateway", client_secret=LOCAL_SERVICE_CLIENT_SECRET),
        )
        used.add(service.access_token)
        await h.fails("IssueServiceToken", pb.IssueServiceTokenRequest(client_id="ops", client_secret=WRONG))
        await h.call("IntrospectToken", pb.IntrospectTokenRequest(token=renewed.access_token), service.access_token)
        await h.call(
            "UpdateUser",
            pb.UpdateUserRequest(
                id=user.id,
                user=pb.User(display_name="Val Two"),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            ),
            admin,
        )
        await h.call("DisableUser", pb.DisableUserRequest(id=user.id), admin)
        await h.call("RotateSigningKey", pb.RotateSigningKeyRequest(), admin)
        await h.call("Logout", pb.LogoutRequest(), admin)

        rows = []
        for tenant in (INTERNAL, EXTERNAL):
            rows += await h.sql("SELECT row_to_json(a)::text AS j FROM audit_events a", tenant=tenant)
        audit_text = "\n".join(r.j for r in rows)
        events = b"".join(bytes(r.envelope) for r in await h.sql("SELECT envelope FROM outbox", tenant=None))
        assert len(rows) > 15 and events

    # Tokens are also checked by their signature-free parts, which would be what leaks.
    needles = used | {t.split(".")[2] for t in used if t.startswith("zr1.")}
    logs = "\n".join(f"{r.getMessage()} {vars(r)!r}" for r in caplog.records)
    assert logs
    for where, text in (("audit rows", audit_text), ("logs", logs)):
        leaked = sorted(s[:8] + "…" for s in needles if s in text)
        assert not leaked, f"secrets in {where}: {leaked}"
    assert not [s for s in needles if s.encode() in events]
