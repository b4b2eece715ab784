"""OpenTelemetry from the standard OTEL_* variables, W3C trace context only.

OTEL_SDK_DISABLED=true turns it off. Traces: OTEL_TRACES_EXPORTER picks the exporter
(`otlp`, the standard default, `console`, or `none`); OTEL_TRACES_SAMPLER/_ARG the sampler
(the SDK reads them). Metrics: OTEL_METRICS_EXPORTER is a comma list of `otlp` (the
standard default; pushed every OTEL_METRIC_EXPORT_INTERVAL ms), `prometheus` (a scrape
endpoint serving /metrics on ZENOPS_METRICS_PORT, 9464 in Kubernetes), `console`, or `none`.
Instrumentation is always installed when the SDK is on: what is sampled and exported is
configuration, never a flag that skips instrumentation.

One MeterProvider per process: the kit's own instruments (`zenops_kit.metrics`) and the
interceptors' RPC and HTTP durations record through the global API.
"""

from __future__ import annotations

import logging
import os

from opentelemetry import metrics, propagate, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import event

log = logging.getLogger("zenops.telemetry")

_configured = False
# Where this process serves /metrics (OTEL_METRICS_EXPORTER=prometheus), once started.
serving_metrics_port: int | None = None


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


def _metric_readers(port: int) -> list[MetricReader]:
    names = [n.strip().lower() for n in os.environ.get("OTEL_METRICS_EXPORTER", "otlp").split(",") if n.strip()]
    readers: list[MetricReader] = []
    for name in names:
        if name == "none":
            continue
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        elif name == "console":
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
        elif name == "prometheus":
            readers.append(_prometheus(port))
        else:
            raise ValueError(f"unsupported OTEL_METRICS_EXPORTER={name!r} (otlp, prometheus, console, none)")
    return readers


def _prometheus(port: int) -> MetricReader:
    global serving_metrics_port
    if not port:
        raise ValueError("OTEL_METRICS_EXPORTER=prometheus needs ZENOPS_METRICS_PORT")
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    reader = PrometheusMetricReader()
    start_http_server(port)  # a daemon thread serving /metrics from the default registry
    serving_metrics_port = port
    log.info("serving metrics", extra={"port": port})
    return reader


def setup_telemetry(service_name: str, version: str = "", *, metrics_port: int = 0) -> TracerProvider | None:
    """Install the tracer and meter providers and W3C propagation (idempotent: the first call
    in a process decides). Server spans and `rpc.server.duration` come from the kit's
    ServiceInterceptor (one interceptor per call, not two). Outgoing calls carry the trace
    through their metadata (`zenops_kit.caller.onward_metadata`, the gateway's
    `outgoing_metadata`), not a client interceptor: an intercepted grpc.aio call costs ~70 µs
    of client CPU and an extra task per call."""
    global _configured
    propagate.set_global_textmap(TraceContextTextMapPropagator())
    if _configured or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    attributes = {"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)}
    if version:
        attributes["service.version"] = version
    resource = Resource.create(attributes)
    provider = TracerProvider(resource=resource)
    exporter = _exporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    readers = _metric_readers(metrics_port)
    if readers:
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    _configured = True
    return provider


# SQL statement spans (see instrument_engine); a module global so tests can swap the tracer.
_sql_tracer = trace.get_tracer("zenops.db")


def instrument_engine(engine) -> None:
    """Client spans for an async SQLAlchemy engine's statements (the SQL, never parameters),
    as children of a recording span only: a sampled RPC or consumed event shows its queries,
    an un-sampled call pays one `is_recording()` per statement. Pool connections are gauged
    by the app (`zenops.db.pool.*`), so no per-checkout work is done here."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    _StatementSpans(engine.sync_engine)


class _StatementSpans:
    """The listeners of one engine (attributes as the contrib SQLAlchemy instrumentation's
    default semantic conventions)."""

    def __init__(self, engine) -> None:
        url = engine.url
        self.database = url.database or "postgresql"
        attributes = {
            "db.system": "postgresql",
            "db.name": url.database,
            "db.user": url.username,
            "net.peer.name": url.host,
            "net.peer.port": url.port,
        }
        self.attributes = {k: v for k, v in attributes.items() if v is not None}
        event.listen(engine, "before_cursor_execute", self.start)
        event.listen(engine, "after_cursor_execute", self.end)
        event.listen(engine, "handle_error", self.failed)

    def start(self, conn, cursor, statement: str, parameters, context, executemany: bool) -> None:
        if not trace.get_current_span().is_recording():
            return
        operation = (statement.split(None, 1) or [""])[0]  # the SQL verb, as the contrib names spans
        context._zenops_span = _sql_tracer.start_span(
            f"{operation} {self.database}".lstrip(),
            kind=trace.SpanKind.CLIENT,
            attributes={**self.attributes, "db.statement": statement, "db.operation": operation},
        )

    @staticmethod
    def end(conn, cursor, statement, parameters, context, executemany) -> None:
        span = getattr(context, "_zenops_span", None)
        if span is not None:
            span.end()

    @staticmethod
    def failed(exception_context) -> None:
        span = getattr(exception_context.execution_context, "_zenops_span", None)
        if span is not None:
            # The exception's class, not its text: a constraint violation's DETAIL carries values.
            span.set_status(trace.StatusCode.ERROR, type(exception_context.original_exception).__name__)
            span.end()
