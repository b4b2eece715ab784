"""Least privilege in PostgreSQL: every service connects as a DML-only runtime role, so a
compromised service (or an SQL injection) cannot switch off row-level security or the
append-only triggers, nor change or drop the schema — only its owner role, which runs the
migrations, can."""

import asyncpg
import pytest
from sqlalchemy.engine import make_url

SERVICES = ("identity", "ops", "billing", "repogen")


async def _connect(url: str) -> asyncpg.Connection:
    u = make_url(url)
    return await asyncpg.connect(user=u.username, password=u.password, host=u.host, port=u.port, database=u.database)


@pytest.mark.parametrize("service", SERVICES)
async def test_the_runtime_role_can_use_the_data_but_not_change_the_schema(make_database, service):
    conn = await _connect(make_database(service))
    try:
        # Its own: reading and writing rows (the outbox is every service's).
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
        tables = await conn.fetch(
            "SELECT c.relname, EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal) "
            "AS has_triggers FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relforcerowsecurity ORDER BY c.relname"
        )
        assert tables, f"{service} has no table under forced row-level security"
        table = tables[0]["relname"]
        triggered = next((t["relname"] for t in tables if t["has_triggers"]), table)
        refused = [
            f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
            f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
            f"ALTER TABLE {triggered} DISABLE TRIGGER ALL",
            f"ALTER TABLE {table} ADD COLUMN intruder text",
            f"DROP POLICY {table}_tenant_isolation ON {table}",
            f"TRUNCATE {table}",
            f"DROP TABLE {table} CASCADE",
            "CREATE TABLE intruder (id int)",
            "SET session_replication_role = replica",  # would silence every trigger
        ]
        for statement in refused:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
        assert not await conn.fetchval("SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user")
        assert await conn.fetchval("SELECT relforcerowsecurity FROM pg_class WHERE relname = $1", table)
    finally:
        await conn.close()
