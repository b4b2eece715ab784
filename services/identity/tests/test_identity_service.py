"""The identity service starts on its own database, migrates both ways and serves."""

from zenops_devstack.testing import check_migrations_round_trip, check_serving


def test_migrations_apply_and_revert(pg_server, make_database):
    check_migrations_round_trip("identity", pg_server, make_database("identity", migrate=False))


async def test_serves_health_reflection_and_service_info(identity):
    async with identity() as h:
        info = await check_serving("identity", h.app.port, token=await h.admin())
    assert info["name"] == "identity"
    assert info["environment"] == "test"
    assert info["schema_revision"] == "0003"
