"""`instrument_engine`: a CLIENT span per SQL statement under a recording span (the SQL, never
its parameters), nothing under an un-sampled call or outside any span."""

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from zenops_kit import telemetry
from zenops_kit.db import autocommit, create_engine, tenant_tx
from zenops_kit.telemetry import instrument_engine

TENANT = "5f0c9c6e-2b1e-4a57-9a43-6d1f0e3c2b10"


@pytest.fixture
def spans(monkeypatch):
    """A real SDK tracer local to this test (the process's global provider is not touched)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "_sql_tracer", provider.get_tracer("zenops.db"))
    return exporter, provider.get_tracer("test")


@pytest.fixture
async def traced(kit_db_url, spans):
    eng = create_engine(kit_db_url)
    instrument_engine(eng)
    yield eng
    await eng.dispose()


async def test_statements_of_a_recording_span_are_its_children(traced, spans):
    exporter, tracer = spans
    with tracer.start_as_current_span("rpc", kind=trace.SpanKind.SERVER) as rpc:
        async with autocommit(traced) as conn:
            # a parameter no port, host or database name can contain by chance (41 met port 47541)
            assert (await conn.execute(text("SELECT :n + 1"), {"n": 1736401928})).scalar() == 1736401929
        async with tenant_tx(traced, TENANT) as conn:
            await conn.execute(text("SELECT count(*) FROM notes"))
    *statements, server = exporter.get_finished_spans()
    assert server is not None and server.name == "rpc"
    database = traced.url.database
    assert [s.name for s in statements] == [f"SELECT {database}"] * 3  # the read, set_config, the count
    first = statements[0]
    assert first.kind == trace.SpanKind.CLIENT
    assert first.parent.span_id == rpc.get_span_context().span_id
    assert first.context.trace_id == rpc.get_span_context().trace_id
    assert first.attributes["db.system"] == "postgresql" and first.attributes["db.name"] == database
    assert first.attributes["db.statement"] == "SELECT $1 + 1"  # the SQL, not the parameter
    assert "1736401928" not in str(dict(first.attributes))
    assert "set_config" in statements[1].attributes["db.statement"]


async def test_no_span_outside_a_recording_span(traced, spans):
    exporter, _ = spans
    async with autocommit(traced) as conn:
        await conn.execute(text("SELECT 1"))
    unsampled = trace.NonRecordingSpan(trace.SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0xF067AA0BA902B7, False))
    token = otel_context.attach(trace.set_span_in_context(unsampled))
    try:
        async with autocommit(traced) as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        otel_context.detach(token)
    assert exporter.get_finished_spans() == ()


async def test_a_failed_statement_ends_its_span_as_an_error(traced, spans):
    exporter, tracer = spans
    with tracer.start_as_current_span("rpc"), pytest.raises(DBAPIError):
        async with autocommit(traced) as conn:
            await conn.execute(text("SELECT * FROM no_such_table"))
    failed, _ = exporter.get_finished_spans()
    assert failed.status.status_code == trace.StatusCode.ERROR
    assert failed.status.description == "ProgrammingError"  # the class, never the server's DETAIL
