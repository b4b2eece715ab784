"""`autocommit` shares the engine's pool: each statement commits on its own, and the pooled
connection is transactional again for the next user (the pool resets the isolation level)."""

import uuid

import pytest
from sqlalchemy import text

from zenops_kit.db import autocommit, create_engine, tenant_tx

EFFECT = text("INSERT INTO effects (event_id, consumer) VALUES (:id, 'autocommit-test')")
COUNT = text("SELECT count(*) FROM effects WHERE event_id = :id")


@pytest.fixture
async def one_connection(kit_db_url):
    """A pool of one: every checkout is the same PostgreSQL connection."""
    eng = create_engine(kit_db_url, pool_size=1)
    yield eng
    await eng.dispose()


async def test_autocommit_commits_each_statement_and_leaves_the_connection_transactional(one_connection, engine):
    written = uuid.uuid4()
    async with autocommit(one_connection) as conn:
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
        await conn.execute(EFFECT, {"id": written})
        # committed already: another connection sees it while this one is still checked out
        async with engine.connect() as other:
            assert (await other.execute(COUNT, {"id": written})).scalar() == 1

    rolled_back = uuid.uuid4()
    with pytest.raises(RuntimeError):
        async with one_connection.begin() as conn:
            assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar() == pid  # the same connection
            await conn.execute(EFFECT, {"id": rolled_back})
            raise RuntimeError("roll back")
    async with autocommit(one_connection) as conn:
        assert (await conn.execute(COUNT, {"id": rolled_back})).scalar() == 0


async def test_a_tenant_setting_never_reaches_an_autocommit_read(one_connection):
    async with tenant_tx(one_connection, str(uuid.uuid4())) as conn:
        await conn.execute(text("SELECT 1"))
    async with autocommit(one_connection) as conn:
        value = (await conn.execute(text("SELECT current_setting('app.tenant_id', true)"))).scalar()
    assert value in (None, "")
