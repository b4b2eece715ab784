"""The billing service starts on its own database, migrates both ways and serves."""

from alembic.script import ScriptDirectory

from zenops_billing.app import MIGRATIONS
from zenops_devstack.testing import TokenSigner, check_migrations_round_trip, check_serving
from zenops_kit.migrations import alembic_config


def test_migrations_apply_and_revert(pg_server, make_database):
    check_migrations_round_trip("billing", pg_server, make_database("billing", migrate=False))


async def test_serves_health_reflection_and_service_info(start_service):
    # identity is not running here: a key of the test's own stands in for its JWKS
    signer = TokenSigner()
    async with start_service("billing", verifier=signer.verifier()) as app:
        info = await check_serving("billing", app.port, token=signer.token())
    assert info["name"] == "billing"
    assert info["environment"] == "test"
    # The head revision (whichever migration is the latest).
    assert info["schema_revision"] == ScriptDirectory.from_config(alembic_config(MIGRATIONS, "")).get_current_head()
