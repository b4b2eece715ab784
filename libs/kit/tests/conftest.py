"""Kit tests run against a scratch database that has the event tables and one tenant table."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from zenops_kit.db import create_engine
from zenops_kit.events import EventBus
from zenops_kit.events.schema import EVENT_TABLES_UP, tenant_rls

NOTES_DDL = [
    "CREATE TABLE notes (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, body text NOT NULL)",
    *tenant_rls("notes"),
    # what consumers in these tests apply: one row per handled event
    "CREATE TABLE effects (event_id uuid NOT NULL, consumer text NOT NULL, body text)",
]


@pytest.fixture(scope="module")
def kit_db_url(pg_server) -> str:
    """A fresh database owned by a non-superuser, non-BYPASSRLS role, with the kit's tables."""
    name = f"kit_{uuid.uuid4().hex[:10]}"
    url = pg_server.provision(name, uuid.uuid4().hex)
    for stmt in [*EVENT_TABLES_UP, *NOTES_DDL]:
        pg_server.psql(f"SET ROLE {name}; {stmt}", name)
    yield url
    pg_server.drop(name, name)


@pytest.fixture
async def engine(kit_db_url):
    eng = create_engine(kit_db_url)
    yield eng
    await eng.dispose()


@pytest.fixture
async def clean(engine):
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE outbox, inbox, dead_letters, effects"))


@pytest.fixture
async def bus(nats_server):
    b = EventBus(nats_server.url, "kit-tests")
    b.start()
    await asyncio.wait_for(b.ready(), 10)
    yield b
    await b.drain()
