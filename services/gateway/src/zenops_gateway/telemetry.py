"""The gateway's HTTP telemetry: FastAPI's, without the work nothing uses.

FastAPI's built-in telemetry (0.165) gives one SERVER span per request, continuing the
caller's `traceparent`, and the `http.server.request.duration` / `http.server.active_requests`
instruments. Per request it builds the span's attributes (the Host header parsed, url.path,
url.query redacted) before the sampler has decided, its own bookkeeping objects and
`send`/`receive` wrappers, and walks the middleware stack: with 10% of traces sampled,
~35 µs a request spent on spans nobody records (and ~50 µs for the histogram alone).
`HttpTelemetry` produces the same span and the same measurements: the same propagator and
header getter, the span current while the request runs (so `traceparent` on every onward
gRPC call and the problem bodies' `trace_id` are as before), the same names, attributes,
route, status and end time — with the attribute work done only for a span that records, and
no wrapper at all for a request that neither records a span nor measures (no meter provider).
app.py turns FastAPI's own off.

The route template is the matched route's (`scope["route"]`, or the app-level route of the
endpoint): FastAPI's for every route here (routers are included without prefixes); a
trailing-slash redirect carries none (FastAPI names the route it redirects to).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from time import perf_counter
from typing import Any
from urllib.parse import parse_qsl, urlencode

import fastapi
from fastapi.telemetry._api import _HTTP_METHODS, _exception_type, _unconfigured
from fastapi.telemetry._asgi import (
    _DURATION_BUCKETS,
    _HEADERS_GETTER,
    _SCHEMA_URL,
    _SENSITIVE_QUERY_PARAMETERS,
    _server_attributes,
)
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.metrics import Histogram, UpDownCounter
from opentelemetry.trace import Span, SpanKind, StatusCode
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# FastAPI's instrumentation scope: dashboards and queries keep finding the same telemetry.
SCOPE = "fastapi"


class HttpTelemetry:
    def __init__(
        self,
        *,
        exclude: Callable[[Scope], bool] | None = None,
        templates: Callable[[Any], str | None] = lambda endpoint: None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        """`exclude(scope)`: no span and no measurement for this request; `templates(endpoint)`:
        the route template of an endpoint matched outside FastAPI's API routes (the OpenAPI
        document's); the providers: instead of the global ones."""
        self.exclude = exclude
        self.templates = templates
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        known = os.getenv("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "").strip()
        self.known_methods = frozenset(m.strip() for m in known.split(",") if m.strip()) if known else _HTTP_METHODS
        self._tracer_source: Any = None
        self._tracer: trace.Tracer | None = None
        self._meter_source: Any = None
        self._instruments: tuple[Histogram, UpDownCounter] | None = None

    def _current_tracer(self) -> trace.Tracer | None:
        """None while no SDK tracer provider is set (the lifespan sets it)."""
        provider = self.tracer_provider or trace.get_tracer_provider()
        if provider is not self._tracer_source:
            self._tracer_source = provider
            off = (self.tracer_provider is None and _unconfigured(provider)) or isinstance(
                provider, trace.NoOpTracerProvider
            )
            self._tracer = None if off else provider.get_tracer(SCOPE, fastapi.__version__, schema_url=_SCHEMA_URL)
        return self._tracer

    def _current_instruments(self) -> tuple[Histogram, UpDownCounter] | None:
        """FastAPI's two instruments; None while no SDK meter provider is set."""
        provider = self.meter_provider or metrics.get_meter_provider()
        if provider is not self._meter_source:
            self._meter_source = provider
            self._instruments = None
            if not (
                (self.meter_provider is None and _unconfigured(provider))
                or isinstance(provider, metrics.NoOpMeterProvider)
            ):
                meter = provider.get_meter(SCOPE, fastapi.__version__, schema_url=_SCHEMA_URL)
                self._instruments = (
                    meter.create_histogram(
                        "http.server.request.duration",
                        unit="s",
                        description="Duration of HTTP server requests.",
                        explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
                    ),
                    meter.create_up_down_counter(
                        "http.server.active_requests",
                        unit="{request}",
                        description="Number of active HTTP server requests.",
                    ),
                )
        return self._instruments

    async def __call__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exclude is not None and self.exclude(scope)):
            await app(scope, receive, send)
            return
        tracer = self._current_tracer()
        instruments = self._current_instruments()
        if tracer is None and instruments is None:
            await app(scope, receive, send)
            return
        original_method = scope.get("method", "")
        method = original_method if original_method in self.known_methods else "_OTHER"
        attributes: dict[str, Any] = {"url.scheme": scope.get("scheme", "http"), "http.request.method": method}
        if scope.get("http_version"):
            attributes["network.protocol.version"] = scope["http_version"]
        started = 0.0
        if instruments is not None:
            instruments[1].add(1, _active(attributes))
            started = perf_counter()
        span_method = "HTTP" if method == "_OTHER" else method
        span = context = None
        if tracer is not None:
            parent = propagate.extract(Headers(scope=scope), getter=_HEADERS_GETTER)
            span = tracer.start_span(span_method, context=parent, kind=SpanKind.SERVER)
            # The caller's context (baggage included) with this span current, as FastAPI has it.
            context = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            if span is not None and span.is_recording():
                start = {**attributes, **_server_attributes(scope), "url.path": scope["path"]}
                if scope.get("query_string"):
                    start["url.query"] = urlencode(
                        [
                            (key, "REDACTED" if key in _SENSITIVE_QUERY_PARAMETERS else value)
                            for key, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
                        ]
                    )
                if original_method != method:
                    start["http.request.method_original"] = original_method
                span.set_attributes(start)
            elif instruments is None:
                await app(scope, receive, send)  # an unsampled span, no measurement: nothing to wrap
                return
            else:
                span = None
            await self._observed(app, scope, receive, send, attributes, span, span_method, instruments, started)
        finally:
            if context is not None:
                otel_context.detach(context)

    async def _observed(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        attributes: dict[str, Any],
        span: Span | None,
        span_method: str,
        instruments: tuple[Histogram, UpDownCounter] | None,
        started: float,
    ) -> None:
        """FastAPI's route, status and error attributes, measurements and span end, once the
        response is sent (or the app fails)."""
        status: int | None = None
        finished = trailers = disconnected = False

        def finish(error: BaseException | None = None) -> None:
            nonlocal finished
            if finished:
                return
            finished = True
            route = scope.get("route")
            template = (
                getattr(route, "path_format", None) if route is not None else self.templates(scope.get("endpoint"))
            )
            if template is not None:
                attributes["http.route"] = template
            if status is not None:
                attributes["http.response.status_code"] = status
            failed = error is not None or status is None or status >= 500
            if failed:
                attributes["error.type"] = _exception_type(error) if error else str(status or "incomplete_response")
            if span is not None:
                if template is not None:
                    span.update_name(f"{span_method} {template}")
                span.set_attributes(attributes)
                if failed:
                    span.set_status(StatusCode.ERROR)
            if instruments is not None:
                instruments[0].record(max(0, perf_counter() - started), attributes)  # while the span is current
                instruments[1].add(-1, _active(attributes))
            if span is not None:
                span.end()

        async def observed_send(message: Message) -> None:
            nonlocal status, trailers
            if message["type"] == "http.response.start":
                status = message["status"]
                trailers = message.get("trailers", False)
            await send(message)
            if (
                (message["type"] == "http.response.body" and not message.get("more_body", False) and not trailers)
                or (message["type"] == "http.response.trailers" and not message.get("more_trailers", False))
                or message["type"] == "http.response.pathsend"
            ):
                finish()

        async def observed_receive() -> Message:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
            return message

        try:
            await app(scope, observed_receive, observed_send)
        except BaseException as exc:
            finish(exc)
            raise
        finally:
            if not finished:
                finish(
                    ConnectionError("Client disconnected") if disconnected else RuntimeError("Incomplete ASGI response")
                )


def _active(attributes: dict[str, Any]) -> dict[str, Any]:
    """`http.server.active_requests`' attributes: the request's, without the protocol version."""
    return {
        "url.scheme": attributes["url.scheme"],
        "http.request.method": attributes["http.request.method"],
    }
