"""Row-level security hides another tenant's rows from the service role."""

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from zenops_kit.db import system_tx, tenant_tx

A, B = str(uuid.uuid4()), str(uuid.uuid4())


async def test_role_is_neither_superuser_nor_bypassrls(engine):
    async with engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"))
        ).one()
    assert row == (False, False)


async def test_each_tenant_sees_only_its_rows(engine):
    async with tenant_tx(engine, A) as conn:
        await conn.execute(text("INSERT INTO notes (tenant_id, body) VALUES (:t, 'a1'), (:t, 'a2')"), {"t": A})
    async with tenant_tx(engine, B) as conn:
        await conn.execute(text("INSERT INTO notes (tenant_id, body) VALUES (:t, 'b1')"), {"t": B})

    async with tenant_tx(engine, A) as conn:
        a_rows = (await conn.execute(text("SELECT body FROM notes ORDER BY body"))).scalars().all()
        # even asking for B's rows explicitly returns nothing
        b_rows = (await conn.execute(text("SELECT body FROM notes WHERE tenant_id = :t"), {"t": B})).scalars().all()
        updated = (await conn.execute(text("UPDATE notes SET body = 'x' WHERE tenant_id = :t"), {"t": B})).rowcount
    assert a_rows == ["a1", "a2"]
    assert b_rows == []
    assert updated == 0

    async with tenant_tx(engine, B) as conn:
        assert (await conn.execute(text("SELECT body FROM notes"))).scalars().all() == ["b1"]


async def test_no_tenant_sees_nothing(engine):
    async with system_tx(engine) as conn:
        assert (await conn.execute(text("SELECT count(*) FROM notes"))).scalar() == 0


async def test_writing_a_row_for_another_tenant_is_refused(engine):
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_tx(engine, A) as conn:
            await conn.execute(text("INSERT INTO notes (tenant_id, body) VALUES (:t, 'sneaky')"), {"t": B})


async def test_tenant_setting_does_not_leak_to_the_next_transaction(engine):
    async with tenant_tx(engine, A) as conn:
        await conn.execute(text("SELECT 1"))
    # same pool, likely the same connection: the setting was transaction-local
    async with engine.connect() as conn:
        value = (await conn.execute(text("SELECT current_setting('app.tenant_id', true)"))).scalar()
    assert value in (None, "")
