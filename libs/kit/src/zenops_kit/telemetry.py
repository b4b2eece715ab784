"""OpenTelemetry from the standard OTEL_* variables, W3C trace context only.

OTEL_SDK_DISABLED=true turns it off; OTEL_TRACES_EXPORTER picks the exporter (`otlp`, the
standard default, `console`, or `none`); OTEL_TRACES_SAMPLER/_ARG the sampler (the SDK
reads them). Instrumentation is always installed when the SDK is on: what is sampled and
exported is configuration, never a flag that skips instrumentation.
"""

from __future__ import annotations

import os

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_configured = False


def _exporter() -> SpanExporter | None:
    name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if name == "none":
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    raise ValueError(f"unsupported OTEL_TRACES_EXPORTER={name!r} (otlp, console, none)")


def setup_telemetry(service_name: str, version: str = "") -> TracerProvider | None:
    """Install the tracer provider, W3C propagation and the gRPC instrumentors (idempotent)."""
    global _configured
    propagate.set_global_textmap(TraceContextTextMapPropagator())
    if _configured or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    attributes = {"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)}
    if version:
        attributes["service.version"] = version
    provider = TracerProvider(resource=Resource.create(attributes))
    exporter = _exporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer

    GrpcAioInstrumentorServer().instrument()
    GrpcAioInstrumentorClient().instrument()
    _configured = True
    return provider


def instrument_engine(engine) -> None:
    """Database spans for an async SQLAlchemy engine (statements, not parameters)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, enable_commenter=False)
