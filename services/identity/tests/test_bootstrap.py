"""Bootstrap: the two tenants, exactly one super admin, the first signing key — idempotent,
safe with two replicas, never a hard-coded password."""

import asyncio
import re

import pytest
from identity_harness import ADMIN_PASSWORD, EXTERNAL, INTERNAL, pb

from zenops_identity.bootstrap import BootstrapError, bootstrap
from zenops_identity.core import Identity
from zenops_identity.settings import IdentitySettings
from zenops_kit.db import create_engine


async def test_bootstrap_is_idempotent_across_restarts(identity, make_database):
    url = make_database("identity")
    async with identity(database_url=url) as h:
        admin = await h.admin()
        tenants = (await h.call("ListTenants", pb.ListTenantsRequest(), admin)).tenants
        assert {t.id for t in tenants} == {INTERNAL, EXTERNAL}
        (kid,) = await h.sql("SELECT kid FROM signing_keys", tenant=None)
        # Running it again changes nothing.
        assert await bootstrap(h.app.identity) is False
    async with identity(database_url=url, bootstrap_admin_password="Some-Other-Password-77") as h:
        users = (await h.call("ListUsers", pb.ListUsersRequest(), await h.admin())).users
        assert [(u.email, list(u.roles)) for u in users] == [("admin@zenops.local", ["super_admin"])]
        assert await h.sql("SELECT kid FROM signing_keys", tenant=None) == [kid]
        (created,) = await h.audit_rows(kind="bootstrap.admin_created")
        assert '"credentials": "environment"' in created.detail


async def test_local_run_without_a_password_generates_one_and_prints_it_once(identity, make_database, capsys):
    url = make_database("identity")
    async with identity(database_url=url, bootstrap_admin_password=None) as h:
        err = capsys.readouterr().err
        match = re.search(r"email\s+(\S+)\n\s+password\s+(\S+)", err)
        assert match, err
        email, password = match.groups()
        assert email == "admin@zenops.local" and len(password) >= 20 and password != ADMIN_PASSWORD
        assert await h.login(email, password)
    async with identity(database_url=url, bootstrap_admin_password=None):
        assert "password" not in capsys.readouterr().err  # once: the admin exists now


def production_settings(url: str, **overrides) -> IdentitySettings:
    return IdentitySettings(
        environment="production",
        database_url=url,
        key_encryption_secret="k" * 48,
        service_client_secrets='{"gateway": "prod-gateway-secret-xyz"}',
        **overrides,
    )


async def run_bootstrap(settings: IdentitySettings) -> bool:
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=2)
    try:
        return await bootstrap(Identity.create(settings, engine))
    finally:
        await engine.dispose()


async def test_production_refuses_to_bootstrap_without_a_password(make_database):
    url = make_database("identity")
    with pytest.raises(BootstrapError, match="ZENOPS_BOOTSTRAP_ADMIN_PASSWORD"):
        await run_bootstrap(production_settings(url))
    with pytest.raises(BootstrapError, match="ZENOPS_BOOTSTRAP_ADMIN_PASSWORD"):
        await run_bootstrap(production_settings(url, bootstrap_admin_password="password1234"))
    with pytest.raises(BootstrapError, match="ZENOPS_BOOTSTRAP_ADMIN_EMAIL"):
        await run_bootstrap(
            production_settings(url, bootstrap_admin_email="nope", bootstrap_admin_password="Granite-Willow-Falcon-31")
        )
    assert await run_bootstrap(production_settings(url, bootstrap_admin_password="Granite-Willow-Falcon-31"))
    # Once the admin exists, production starts without the password.
    assert await run_bootstrap(production_settings(url)) is False


async def test_two_replicas_bootstrapping_at_once_create_one_admin_and_one_key(make_database, pg_server):
    url = make_database("identity")
    settings = IdentitySettings(database_url=url, bootstrap_admin_password=ADMIN_PASSWORD)
    results = await asyncio.gather(run_bootstrap(settings), run_bootstrap(settings))
    assert sorted(results) == [False, True]
    database = url.rsplit("/", 1)[1]
    assert pg_server.psql("SELECT count(*) FROM users", database) == "1"
    assert pg_server.psql("SELECT count(*) FROM signing_keys", database) == "1"
    assert pg_server.psql("SELECT count(*) FROM tenants", database) == "2"
