"""Users, roles and the audit trail: capability enforcement, field errors, CRUD, paging,
disable, role changes, the last super admin, append-only audit."""

import grpc
import pytest
from google.protobuf import field_mask_pb2
from identity_harness import STAFF_PASSWORD, pb
from sqlalchemy.exc import DBAPIError

from zenops.common.v1 import common_pb2
from zenops.events.v1 import envelope_pb2
from zenops.events.v1 import identity_pb2 as events_pb2
from zenops_kit.events import unpack_payload

CHANNEL = "5f0c6a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"


async def test_capabilities_are_enforced_per_rpc(identity):
    async with identity() as h:
        admin = await h.admin()
        valuer = await h.create_user(admin, "val@zenops.local", ["valuer"])
        await h.create_user(admin, "hr@zenops.local", ["hr"])
        v = (await h.login("val@zenops.local", STAFF_PASSWORD)).access_token
        hr = (await h.login("hr@zenops.local", STAFF_PASSWORD)).access_token
        admin_id = (await h.call("GetMe", pb.GetMeRequest(), admin)).user.id

        err = await h.fails("ListUsers", pb.ListUsersRequest(), v)
        assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_CAPABILITY")
        assert err.metadata == {"missing": "users.read"}
        for method, request in (
            ("CreateUser", pb.CreateUserRequest(email="x@zenops.local")),
            ("DisableUser", pb.DisableUserRequest(id=admin_id)),
            ("SetUserRoles", pb.SetUserRolesRequest(id=admin_id, roles=["valuer"])),
            ("ListAuditEvents", pb.ListAuditEventsRequest()),
            ("GetUser", pb.GetUserRequest(id=admin_id)),
            ("CreateTenant", pb.CreateTenantRequest(slug="x", name="x")),
        ):
            err = await h.fails(method, request, v)
            assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_CAPABILITY"), method
        # Oneself is always readable.
        assert (await h.call("GetUser", pb.GetUserRequest(id=valuer.id), v)).user.email == "val@zenops.local"
        # hr reads users but does not write them.
        assert len((await h.call("ListUsers", pb.ListUsersRequest(), hr)).users) == 3
        err = await h.fails("CreateUser", pb.CreateUserRequest(email="y@zenops.local"), hr)
        assert err.reason == "MISSING_CAPABILITY"
        templates = await h.call("ListRoleTemplates", pb.ListRoleTemplatesRequest(), v)
        assert templates.version == 1 and len(templates.roles) == 7
        assert {r.role for r in templates.roles} >= {"super_admin", "valuer", "portal_user", "studio_operator"}


@pytest.mark.parametrize(
    ("overrides", "reason", "fields"),
    [
        ({"email": "not an email"}, "VALIDATION_FAILED", ["email"]),
        ({"roles": ["valuer", "wizard"]}, "UNKNOWN_ROLE", ["roles[1]"]),
        ({"roles": []}, "VALIDATION_FAILED", ["roles"]),
        ({"roles": ["portal_user", "valuer"]}, "INVALID_ROLE_COMBINATION", ["roles"]),
        ({"password": "x" * 129}, "PASSWORD_POLICY", ["password"]),
        ({"password": "short"}, "PASSWORD_POLICY", ["password"]),
        ({"password": "newhire-is-my-password"}, "PASSWORD_POLICY", ["password"]),  # contains the email's local part
        ({"password": "Priya-Sharma-2024!"}, "PASSWORD_POLICY", ["password"]),  # contains the name
        ({"display_name": "  "}, "VALIDATION_FAILED", ["display_name"]),
        ({"roles": ["portal_user"]}, "VALIDATION_FAILED", ["channel_id"]),
        ({"channel_id": CHANNEL}, "VALIDATION_FAILED", ["channel_id"]),
        ({"tenant_id": "acme"}, "VALIDATION_FAILED", ["tenant_id"]),
    ],
)
async def test_create_user_field_errors(identity, overrides, reason, fields):
    async with identity() as h:
        admin = await h.admin()
        request = {
            "email": "newhire@zenops.local",
            "display_name": "Priya Sharma",
            "password": STAFF_PASSWORD,
            "roles": ["valuer"],
            **overrides,
        }
        err = await h.fails("CreateUser", pb.CreateUserRequest(**request), admin)
        assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
        assert sorted({v.field for v in err.violations}) == fields


async def test_create_get_update_users(identity):
    async with identity() as h:
        admin = await h.admin()
        user = await h.create_user(
            admin, "Priya.Sharma@ZenOps.Local", ["valuer", "accounts"], display_name="  Priya   Sharma "
        )
        assert user.email == "priya.sharma@zenops.local" and user.display_name == "Priya Sharma"
        assert list(user.roles) == ["accounts", "valuer"] and user.status == pb.USER_STATUS_ACTIVE
        assert user.created_at.seconds and not user.last_login_at.seconds
        err = await h.fails(
            "CreateUser",
            pb.CreateUserRequest(
                email="PRIYA.sharma@zenops.local", display_name="Other", password=STAFF_PASSWORD, roles=["hr"]
            ),
            admin,
        )
        assert (err.code, err.reason) == (grpc.StatusCode.ALREADY_EXISTS, "EMAIL_TAKEN")
        created = await h.audit_rows(kind="user.created")
        assert created[-1].target == user.id and "accounts,valuer" in created[-1].detail

        def update(paths, **values):
            return pb.UpdateUserRequest(
                id=user.id, user=pb.User(**values), update_mask=field_mask_pb2.FieldMask(paths=paths)
            )

        updated = (
            await h.call(
                "UpdateUser",
                update(["display_name", "email"], display_name="Priya S.", email="priya@zenops.local"),
                admin,
            )
        ).user
        assert (updated.display_name, updated.email) == ("Priya S.", "priya@zenops.local")
        assert updated.updated_at.ToDatetime() >= user.updated_at.ToDatetime()
        assert await h.login("priya@zenops.local", STAFF_PASSWORD)
        (version,) = await h.sql("SELECT version FROM users WHERE id = :id", {"id": user.id})
        assert version.version == 2

        for request, field in (
            (update(["password"]), "update_mask"),
            (update([]), "update_mask"),
            (update(["email"], email="bad"), "user.email"),
            (update(["channel_id"], channel_id=CHANNEL), "user.channel_id"),
            (update(["display_name"], display_name=""), "user.display_name"),
        ):
            err = await h.fails("UpdateUser", request, admin)
            assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.violations[0].field == field
        err = await h.fails("UpdateUser", update(["email"], email="admin@zenops.local"), admin)
        assert err.reason == "EMAIL_TAKEN"
        err = await h.fails("GetUser", pb.GetUserRequest(id="9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"), admin)
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
        err = await h.fails("GetUser", pb.GetUserRequest(id="nope"), admin)
        assert err.violations[0].field == "id"


async def test_list_users_pages_with_an_opaque_cursor(identity):
    async with identity() as h:
        admin = await h.admin()
        for name in ("carol", "alice", "erin", "bob"):
            await h.create_user(admin, f"{name}@zenops.local", display_name=name.title() + " Test")
        seen, cursor, pages = [], "", 0
        while True:
            resp = await h.call(
                "ListUsers", pb.ListUsersRequest(page=common_pb2.PageRequest(limit=2, cursor=cursor)), admin
            )
            seen += [u.email for u in resp.users]
            pages += 1
            cursor = resp.page.next_cursor
            if not cursor:
                break
        assert pages == 3
        assert (
            seen
            == sorted(seen)
            == [
                "admin@zenops.local",
                "alice@zenops.local",
                "bob@zenops.local",
                "carol@zenops.local",
                "erin@zenops.local",
            ]
        )
        found = (await h.call("ListUsers", pb.ListUsersRequest(query="CAR"), admin)).users
        assert [u.email for u in found] == ["carol@zenops.local"]
        assert not (await h.call("ListUsers", pb.ListUsersRequest(query="%"), admin)).users
        assert not (await h.call("ListUsers", pb.ListUsersRequest(status=pb.USER_STATUS_DISABLED), admin)).users
        for page, field in (
            (common_pb2.PageRequest(cursor="bogus"), "page.cursor"),
            (common_pb2.PageRequest(limit=-1), "page.limit"),
        ):
            err = await h.fails("ListUsers", pb.ListUsersRequest(page=page), admin)
            assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.violations[0].field == field
        # a NUL (schemathesis' find: PostgreSQL cannot store one) is the query's fault, named
        err = await h.fails("ListUsers", pb.ListUsersRequest(query="ca\x00r"), admin)
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.violations[0].field == "query"


async def test_disable_user_revokes_sessions_and_announces_it(identity):
    async with identity() as h:
        admin = await h.admin()
        user = await h.create_user(admin, "val@zenops.local")
        pairs = [await h.login("val@zenops.local", STAFF_PASSWORD) for _ in range(2)]
        resp = await h.call("DisableUser", pb.DisableUserRequest(id=user.id), admin)
        assert resp.user.status == pb.USER_STATUS_DISABLED and resp.revoked_sessions == 2
        for pair in pairs:
            assert (await h.fails("GetMe", pb.GetMeRequest(), pair.access_token)).reason == "TOKEN_REVOKED"
        assert (
            await h.fails("Login", pb.LoginRequest(email="val@zenops.local", password=STAFF_PASSWORD, audience="web"))
        ).reason == "INVALID_CREDENTIALS"
        (disabled,) = await h.outbox("identity.user.disabled")
        env = envelope_pb2.EventEnvelope.FromString(disabled.envelope)
        payload = unpack_payload(env, events_pb2.UserDisabled)
        assert payload.user_id == user.id and set(payload.session_ids) == {p.session_id for p in pairs}
        assert env.aggregate_type == "user" and env.aggregate_id == user.id
        (revoked,) = await h.outbox("identity.session.revoked")
        payload = unpack_payload(envelope_pb2.EventEnvelope.FromString(revoked.envelope), events_pb2.SessionsRevoked)
        assert payload.reason == "user_disabled" and len(payload.session_ids) == 2
        assert len(await h.audit_rows(kind="user.disabled")) == 1
        # Idempotent; listed as disabled.
        again = await h.call("DisableUser", pb.DisableUserRequest(id=user.id), admin)
        assert again.revoked_sessions == 0
        listed = (await h.call("ListUsers", pb.ListUsersRequest(status=pb.USER_STATUS_DISABLED), admin)).users
        assert [u.id for u in listed] == [user.id]
        # Nobody disables themselves.
        admin_id = (await h.call("GetMe", pb.GetMeRequest(), admin)).user.id
        err = await h.fails("DisableUser", pb.DisableUserRequest(id=admin_id), admin)
        assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CANNOT_DISABLE_SELF")


async def test_role_changes_are_audited_and_keep_a_super_admin(identity):
    async with identity() as h:
        admin = await h.admin()
        me = (await h.call("GetMe", pb.GetMeRequest(), admin)).user
        user = await h.create_user(admin, "val@zenops.local")
        pair = await h.login("val@zenops.local", STAFF_PASSWORD)
        changed = (
            await h.call("SetUserRoles", pb.SetUserRolesRequest(id=user.id, roles=["ops_manager", "valuer"]), admin)
        ).user
        assert list(changed.roles) == ["ops_manager", "valuer"]
        (audit,) = await h.audit_rows(kind="user.roles_changed")
        assert '"before": "valuer"' in audit.detail and '"after": "ops_manager,valuer"' in audit.detail
        assert audit.actor == me.id and audit.target == user.id
        # The next access token carries the new roles and capabilities.
        renewed = (await h.call("Refresh", pb.RefreshRequest(refresh_token=pair.refresh_token))).tokens
        intro = await h.call("IntrospectToken", pb.IntrospectTokenRequest(token=renewed.access_token), admin)
        assert list(intro.roles) == ["ops_manager", "valuer"] and "masterdata.approve" in intro.capabilities

        err = await h.fails("SetUserRoles", pb.SetUserRolesRequest(id=me.id, roles=["valuer"]), admin)
        assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LAST_SUPER_ADMIN")
        err = await h.fails("SetUserRoles", pb.SetUserRolesRequest(id=user.id, roles=["ghost"]), admin)
        assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_ROLE")
        err = await h.fails("SetUserRoles", pb.SetUserRolesRequest(id=user.id, roles=["portal_user"]), admin)
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.violations[0].field == "roles"
        # With a second super admin, the first may step down.
        await h.call("SetUserRoles", pb.SetUserRolesRequest(id=user.id, roles=["super_admin"]), admin)
        stepped = (await h.call("SetUserRoles", pb.SetUserRolesRequest(id=me.id, roles=["valuer"]), admin)).user
        assert list(stepped.roles) == ["valuer"]


async def test_audit_trail_lists_newest_first_filters_pages_and_is_append_only(identity):
    async with identity() as h:
        admin = await h.admin()
        user = await h.create_user(admin, "val@zenops.local")
        await h.fails("Login", pb.LoginRequest(email="val@zenops.local", password="Wrong-Password-123", audience="web"))
        await h.login("val@zenops.local", STAFF_PASSWORD)
        events = (await h.call("ListAuditEvents", pb.ListAuditEventsRequest(), admin)).events
        kinds = [e.kind for e in events]
        assert kinds[:3] == ["login.succeeded", "login.failed", "user.created"]
        times = [e.occurred_at.ToDatetime() for e in events]
        assert times == sorted(times, reverse=True)
        failed = (await h.call("ListAuditEvents", pb.ListAuditEventsRequest(kind="login.failed"), admin)).events
        assert len(failed) == 1 and failed[0].detail["cause"] == "wrong_password" and failed[0].actor == ""
        about = (await h.call("ListAuditEvents", pb.ListAuditEventsRequest(subject=user.id), admin)).events
        assert {e.kind for e in about} == {"user.created", "login.failed", "login.succeeded"}

        paged, cursor = [], ""
        while True:
            resp = await h.call(
                "ListAuditEvents", pb.ListAuditEventsRequest(page=common_pb2.PageRequest(limit=2, cursor=cursor)), admin
            )
            paged += [e.id for e in resp.events]
            cursor = resp.page.next_cursor
            if not cursor:
                break
        all_ids = [e.id for e in (await h.call("ListAuditEvents", pb.ListAuditEventsRequest(), admin)).events]
        assert paged == all_ids

        # Append-only, even for the service's own database role (which may not even TRUNCATE).
        for statement, refusal in (
            ("UPDATE audit_events SET kind = 'x'", "append-only"),
            ("DELETE FROM audit_events", "append-only"),
            ("TRUNCATE audit_events", "permission denied"),
        ):
            with pytest.raises(DBAPIError, match=refusal):
                await h.sql(statement)
