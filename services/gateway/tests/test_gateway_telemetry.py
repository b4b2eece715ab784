"""The gateway's HTTP telemetry (telemetry.py) is FastAPI's: the same requests through the
gateway and through the gateway with FastAPI's built-in telemetry give the same spans (name,
kind, attributes, status, parent) and the same measurements; an unsampled request records
nothing yet carries the caller's trace on (problem bodies, onward gRPC metadata)."""

from __future__ import annotations

import uuid

import pytest
from fastapi import APIRouter
from gateway_testing import gateway_settings, running
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

from zenops_devstack.testing import TokenSigner
from zenops_gateway import app as gateway_app
from zenops_gateway.app import UNTRACED_PREFIXES, USER_AUDIENCES, create_app
from zenops_gateway.clients import outgoing_metadata

TRACE_ID = uuid.uuid4().hex
PARENT_ID = uuid.uuid4().hex[:16]

extra_router = APIRouter(prefix="/test")


@extra_router.get("/onward-metadata")
async def onward_metadata() -> dict:
    """What a gRPC call made while handling this request would carry."""
    return dict(outgoing_metadata(token="t"))


class Recording:
    """Providers of the test's own that keep every span and measurement."""

    def __init__(self, sampler=ALWAYS_ON) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(sampler=sampler)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])

    def finished(self) -> dict | None:
        finished = self.spans.get_finished_spans()
        self.spans.clear()
        assert len(finished) <= 1, finished
        if not finished:
            return None
        span = finished[0]
        parent = span.parent
        return {
            "name": span.name,
            "kind": span.kind,
            "attributes": dict(span.attributes),
            "status": span.status.status_code,
            "scope": (span.instrumentation_scope.name, span.instrumentation_scope.version),
            "parent": (format(parent.trace_id, "032x"), format(parent.span_id, "016x")) if parent else None,
        }

    def measured(self) -> dict:
        """instrument → (scope, unit, {attributes: count of durations or active value})."""
        out = {}
        data = self.metrics.get_metrics_data()  # None: nothing measured
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points = {
                        frozenset(p.attributes.items()): getattr(p, "count", None) or getattr(p, "value", None)
                        for p in metric.data.data_points
                    }
                    bounds = {
                        tuple(p.explicit_bounds) for p in metric.data.data_points if hasattr(p, "explicit_bounds")
                    }
                    out[metric.name] = (scope.scope.name, scope.scope.version, metric.unit, bounds, points)
        return out


async def observe(app, recording: Recording, signer: TokenSigner, requests) -> list[dict | None]:
    out = []
    async with running(app) as client:
        app.state.runtime.verifier = signer.verifier(audiences=USER_AUDIENCES)
        for method, path, headers in requests:
            await client.request(method, path, headers=headers)
            out.append(recording.finished())
    return out


async def test_spans_and_measurements_are_fastapis(monkeypatch):
    signer = TokenSigner()
    auth = {"authorization": f"Bearer {signer.token(aud='web')}"}
    traced = {**auth, "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    key = {**auth, "idempotency-key": "k-1", "content-type": "application/json"}
    requests = [
        ("GET", "/v1/livez", {}),  # untraced
        ("GET", "/v1/nope", {}),  # 404
        ("DELETE", "/v1/meta", {}),  # 405
        ("GET", "/v1/meta?a=1&sig=secret", {}),  # 401, query redacted
        ("GET", f"/v1/billing/accounts/{uuid.uuid4()}", traced),  # continues the caller's trace; 503
        ("GET", "/v1/billing/accounts/not-a-uuid", auth),  # 400
        ("POST", "/v1/billing/credits/reserve", key),  # 400 (no body)
        ("FOO", "/v1/meta", {}),  # unknown method
        ("GET", "/v1/openapi.json", {"host": "api.example:8443"}),
        ("GET", "/test/onward-metadata", traced),
    ]
    ours = Recording()
    app = create_app(gateway_settings())
    app.include_router(extra_router)
    app.telemetry.tracer_provider, app.telemetry.meter_provider = ours.tracer_provider, ours.meter_provider
    spans = await observe(app, ours, signer, requests)

    fastapis = Recording()
    native = {
        "tracing": True,
        "metrics": True,
        "tracer_provider": fastapis.tracer_provider,
        "meter_provider": fastapis.meter_provider,
        "exclude": lambda scope: scope.get("path", "").startswith(UNTRACED_PREFIXES),
    }
    monkeypatch.setattr(gateway_app, "TELEMETRY", {**gateway_app.TELEMETRY, **native})
    reference = create_app(gateway_settings())
    reference.include_router(extra_router)
    reference.telemetry.exclude = lambda scope: True  # FastAPI's telemetry only
    reference_spans = await observe(reference, fastapis, signer, requests)

    assert spans[0] is None and sum(s is None for s in spans) == 1
    assert spans[4]["parent"] == (TRACE_ID, PARENT_ID)
    assert spans[4]["name"] == "GET /v1/billing/accounts/{account_id}"
    assert spans[3]["attributes"]["url.query"] == "a=1&sig=REDACTED"
    for request, a, b in zip(requests, spans, reference_spans, strict=True):
        assert a == b, request
    measured = ours.measured()
    assert set(measured) == {"http.server.request.duration", "http.server.active_requests"}
    assert sum(measured["http.server.request.duration"][4].values()) == len(requests) - 1
    assert measured == fastapis.measured()


async def test_an_unsampled_request_records_nothing_and_carries_the_trace_on():
    recording = Recording(ParentBased(ALWAYS_OFF))
    app = create_app(gateway_settings())
    app.include_router(extra_router)
    app.telemetry.tracer_provider = recording.tracer_provider
    unsampled = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"}
    async with running(app) as client:
        onward = (await client.get("/test/onward-metadata", headers=unsampled)).json()
        problem = (await client.get("/v1/meta", headers=unsampled)).json()
        fresh = (await client.get("/test/onward-metadata")).json()
    assert recording.spans.get_finished_spans() == ()
    _, trace_id, span_id, flags = onward["traceparent"].split("-")
    assert (trace_id, flags) == (TRACE_ID, "00") and span_id != PARENT_ID  # the gateway's own span id
    assert problem["trace_id"] == TRACE_ID
    assert fresh["traceparent"].split("-")[1] != TRACE_ID  # no caller's trace: a trace of its own


@pytest.mark.parametrize("path", ["/v1/livez", "/v1/readyz"])
async def test_untraced_paths_have_no_span_nor_measurement(path):
    recording = Recording()
    app = create_app(gateway_settings())
    app.telemetry.tracer_provider, app.telemetry.meter_provider = recording.tracer_provider, recording.meter_provider
    async with running(app) as client:
        await client.get(path)
    assert recording.spans.get_finished_spans() == ()
    assert recording.measured() == {}
