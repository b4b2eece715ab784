"""The ops service starts on its own database, migrates both ways and serves."""

from zenops_devstack.testing import TokenSigner, check_migrations_round_trip, check_serving


def test_migrations_apply_and_revert(pg_server, make_database):
    check_migrations_round_trip("ops", pg_server, make_database("ops", migrate=False))


async def test_serves_health_reflection_and_service_info(start_service):
    # identity is not running here: a key of the test's own stands in for its JWKS
    signer = TokenSigner()
    async with start_service("ops", verifier=signer.verifier()) as app:
        info = await check_serving("ops", app.port, token=signer.token())
    assert info["name"] == "ops"
    assert info["environment"] == "test"
    assert info["schema_revision"] == "0005"
