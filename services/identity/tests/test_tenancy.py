"""Tenants and the launch mode: single-tenant errors, the portal lane, multi-tenant isolation."""

import grpc
import jwt
from identity_harness import EXTERNAL, INTERNAL, STAFF_PASSWORD, pb

OTHER = "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"
CHANNEL = "5f0c6a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"


async def test_single_tenant_mode(identity):
    async with identity() as h:
        admin = await h.admin()
        err = await h.fails("CreateTenant", pb.CreateTenantRequest(slug="acme", name="Acme"), admin)
        assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MULTI_TENANT_DISABLED")
        for audience, tenant in (("web", OTHER), ("studio", EXTERNAL)):
            err = await h.fails(
                "Login",
                pb.LoginRequest(
                    email="admin@zenops.local", password="whatever-it-is-1", audience=audience, tenant_id=tenant
                ),
            )
            assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "TENANT_NOT_ENABLED")
        # Asking for the internal tenant explicitly is fine.
        assert await h.login(tenant_id=INTERNAL)
        tenants = (await h.call("ListTenants", pb.ListTenantsRequest(), admin)).tenants
        assert {(t.id, t.kind) for t in tenants} == {
            (INTERNAL, pb.TENANT_KIND_INTERNAL),
            (EXTERNAL, pb.TENANT_KIND_EXTERNAL),
        }


async def test_portal_users_live_in_the_external_tenant_and_carry_their_channel(identity):
    async with identity() as h:
        admin = await h.admin()
        partner = await h.create_user(admin, "partner@bank.test", ["portal_user"], channel_id=CHANNEL)
        assert partner.tenant_id == EXTERNAL and partner.channel_id == CHANNEL
        # Whatever tenant the caller asks for, a portal login lands in the external tenant.
        for requested in ("", INTERNAL, OTHER):
            pair = await h.login("partner@bank.test", STAFF_PASSWORD, audience="portal", tenant_id=requested)
            claims = jwt.decode(pair.access_token, options={"verify_signature": False})
            assert claims["tid"] == EXTERNAL and claims["aud"] == "portal" and claims["channel_id"] == CHANNEL
            assert claims["roles"] == ["portal_user"]
        me = await h.call("GetMe", pb.GetMeRequest(), pair.access_token)
        assert me.tenant.kind == pb.TENANT_KIND_EXTERNAL and me.user.channel_id == CHANNEL
        # The firm administers the portal lane: the admin finds the partner by id.
        found = await h.call("GetUser", pb.GetUserRequest(id=partner.id), admin)
        assert found.user.email == "partner@bank.test"

        err = await h.fails(
            "CreateUser",
            pb.CreateUserRequest(
                email="p2@bank.test",
                display_name="P Two",
                password=STAFF_PASSWORD,
                roles=["portal_user"],
                channel_id=CHANNEL,
                tenant_id=INTERNAL,
            ),
            admin,
        )
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.violations[0].field == "tenant_id"
        err = await h.fails(
            "CreateUser",
            pb.CreateUserRequest(
                email="v2@zenops.local",
                display_name="V Two",
                password=STAFF_PASSWORD,
                roles=["valuer"],
                tenant_id=EXTERNAL,
            ),
            admin,
        )
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.violations[0].field == "roles"


async def test_multi_tenant_mode_creates_isolated_tenants(identity):
    async with identity(multi_tenant_enabled=True) as h:
        admin = await h.admin()
        acme = (await h.call("CreateTenant", pb.CreateTenantRequest(slug="acme", name="Acme Valuers"), admin)).tenant
        assert acme.kind == pb.TENANT_KIND_CUSTOMER and acme.status == pb.TENANT_STATUS_ACTIVE and acme.id
        err = await h.fails("CreateTenant", pb.CreateTenantRequest(slug="acme", name="Again"), admin)
        assert (err.code, err.reason) == (grpc.StatusCode.ALREADY_EXISTS, "SLUG_TAKEN")
        for request, field in (
            (pb.CreateTenantRequest(slug="A!", name="x"), "slug"),
            (pb.CreateTenantRequest(slug="ok-slug", name=""), "name"),
            (pb.CreateTenantRequest(slug="ok-slug", name="x", kind=pb.TENANT_KIND_INTERNAL), "kind"),
        ):
            err = await h.fails("CreateTenant", request, admin)
            assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.violations[0].field == field

        # The firm's super admin creates Acme's first admin in Acme.
        acme_admin = await h.create_user(admin, "boss@acme.test", ["super_admin"], tenant_id=acme.id)
        assert acme_admin.tenant_id == acme.id
        await h.create_user(admin, "val@zenops.local")
        token = (await h.login("boss@acme.test", STAFF_PASSWORD, tenant_id=acme.id)).access_token
        assert jwt.decode(token, options={"verify_signature": False})["tid"] == acme.id
        # Same email in another tenant is a different account.
        await h.create_user(token, "val@zenops.local", display_name="Acme Valuer")

        # Isolation: each sees only its own tenant's users and tenant.
        acme_users = (await h.call("ListUsers", pb.ListUsersRequest(), token)).users
        assert {u.email for u in acme_users} == {"boss@acme.test", "val@zenops.local"}
        assert all(u.tenant_id == acme.id for u in acme_users)
        firm_users = (await h.call("ListUsers", pb.ListUsersRequest(), admin)).users
        assert {u.email for u in firm_users} == {"admin@zenops.local", "val@zenops.local"}
        firm_admin_id = [u.id for u in firm_users if u.email == "admin@zenops.local"][0]
        err = await h.fails("GetUser", pb.GetUserRequest(id=firm_admin_id), token)
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
        assert [t.slug for t in (await h.call("ListTenants", pb.ListTenantsRequest(), token)).tenants] == ["acme"]
        assert {t.slug for t in (await h.call("ListTenants", pb.ListTenantsRequest(), admin)).tenants} == {
            "internal",
            "external",
            "acme",
        }
        # A customer's super admin cannot create tenants, nor users elsewhere.
        err = await h.fails("CreateTenant", pb.CreateTenantRequest(slug="evil", name="Evil"), token)
        assert err.reason == "INTERNAL_TENANT_ONLY"
        err = await h.fails(
            "CreateUser",
            pb.CreateUserRequest(
                email="x@zenops.local", display_name="X", password=STAFF_PASSWORD, roles=["valuer"], tenant_id=INTERNAL
            ),
            token,
        )
        assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "TENANT_NOT_ALLOWED")
        err = await h.fails(
            "CreateUser",
            pb.CreateUserRequest(
                email="x@zenops.local", display_name="X", password=STAFF_PASSWORD, roles=["valuer"], tenant_id=OTHER
            ),
            admin,
        )
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "TENANT_NOT_FOUND")
        # Acme's audit trail holds Acme's events only.
        acme_kinds = {r.kind for r in await h.audit_rows(acme.id)}
        assert "login.succeeded" in acme_kinds and "tenant.created" not in acme_kinds
