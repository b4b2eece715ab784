"""The ServiceInterceptor's own telemetry: one SERVER span per call continuing the caller's
W3C traceparent, and `rpc.server.duration` with the semantic-convention attributes and the
call's real status code (OK, a domain error's, a refusal before the handler)."""

import grpc
import pytest
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

from zenops_kit import interceptors
from zenops_kit.errors import NotFound
from zenops_kit.interceptors import ServiceInterceptor

SERVICE = "zenops.test.v1.Echo"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def telemetry(monkeypatch):
    """Real SDK providers local to this test (the process's global ones are not touched)."""
    reader = InMemoryMetricReader()
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    histogram = (
        MeterProvider(metric_readers=[reader])
        .get_meter("zenops.rpc")
        .create_histogram("rpc.server.duration", unit="ms")
    )
    monkeypatch.setattr(interceptors, "_duration", histogram)
    monkeypatch.setattr(interceptors, "_tracer", tracer_provider.get_tracer("zenops.rpc"))
    return reader, spans, tracer_provider


@pytest.fixture
async def port(telemetry):
    seen: list[str] = []
    onward: list[dict] = []  # what the handler's onward calls would carry, and its span

    async def echo(request: bytes, context) -> bytes:
        seen.append(format(trace.get_current_span().get_span_context().trace_id, "032x"))
        carrier: dict = {}
        propagate.inject(carrier)
        onward.append({**carrier, "span": trace.get_current_span()})
        if request == b"missing":
            raise NotFound("no such thing", reason="THING_NOT_FOUND")
        if request == b"bug":
            raise ZeroDivisionError("a bug")
        return request

    handlers = {"Say": grpc.unary_unary_rpc_method_handler(echo), "Guarded": grpc.unary_unary_rpc_method_handler(echo)}
    srv = grpc.aio.server(interceptors=[ServiceInterceptor("test", verifier=None, public_methods={f"/{SERVICE}/Say"})])
    srv.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    bound = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    yield bound, seen, onward
    await srv.stop(0)


async def call(
    port: int, method: str, payload: bytes, traceparent: str | None = None, tracestate: str | None = None
) -> bytes:
    """A call carrying `traceparent` (and `tracestate`), also made current here: where an
    earlier test installed the contrib client instrumentor, its client span continues the
    same trace."""
    metadata = (("traceparent", traceparent),) if traceparent else ()
    if tracestate:
        metadata += (("tracestate", tracestate),)
    token = otel_context.attach(propagate.extract(dict(metadata)))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            return await ch.unary_unary(f"/{SERVICE}/{method}")(payload, metadata=metadata, timeout=5)
    finally:
        otel_context.detach(token)


def durations(reader: InMemoryMetricReader) -> dict[tuple, int]:
    """(rpc.method, rpc.grpc.status_code) → number of recorded calls."""
    out: dict[tuple, int] = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                assert metric.name == "rpc.server.duration" and metric.unit == "ms"
                for point in metric.data.data_points:
                    a = point.attributes
                    assert (a["rpc.system"], a["rpc.service"]) == ("grpc", SERVICE)
                    out[(a["rpc.method"], a["rpc.grpc.status_code"])] = point.count
    return out


async def test_durations_carry_the_method_and_the_real_status_code(telemetry, port):
    reader, _, _ = telemetry
    bound, _, _ = port
    assert await call(bound, "Say", b"hi") == b"hi"
    assert await call(bound, "Say", b"again") == b"again"
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await call(bound, "Say", b"missing")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as refused:  # no token: refused before the handler
        await call(bound, "Guarded", b"x")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert durations(reader) == {
        ("Say", grpc.StatusCode.OK.value[0]): 2,
        ("Say", grpc.StatusCode.NOT_FOUND.value[0]): 1,
        ("Guarded", grpc.StatusCode.UNAUTHENTICATED.value[0]): 1,
    }


async def test_a_sampled_caller_gets_a_server_span_in_its_trace(telemetry, port):
    _, spans, _ = telemetry
    bound, seen, _ = port
    await call(bound, "Say", b"hi", f"00-{TRACE_ID}-00f067aa0ba902b7-01")
    for payload in (b"missing", b"bug"):
        with pytest.raises(grpc.aio.AioRpcError):
            await call(bound, "Say", payload, f"00-{TRACE_ID}-00f067aa0ba902b7-01")
    assert seen == [TRACE_ID] * 3  # the handler runs inside the caller's trace
    ok, missing, bug = spans.get_finished_spans()
    assert ok.name == f"{SERVICE}/Say" and ok.kind == trace.SpanKind.SERVER
    assert ok.parent.is_remote and format(ok.context.trace_id, "032x") == TRACE_ID
    assert ok.attributes["rpc.grpc.status_code"] == 0 and ok.status.is_ok
    # The caller's mistake leaves the status unset; a server fault is an ERROR.
    assert missing.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert missing.status.status_code == trace.StatusCode.UNSET
    assert bug.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INTERNAL.value[0]
    assert bug.status.status_code == trace.StatusCode.ERROR


async def test_an_unsampled_caller_keeps_its_trace_id_and_records_no_span(telemetry, port, monkeypatch):
    _, spans, _ = telemetry
    bound, seen, _ = port
    unsampled = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    unsampled.add_span_processor(SimpleSpanProcessor(spans))
    monkeypatch.setattr(interceptors, "_tracer", unsampled.get_tracer("zenops.rpc"))
    await call(bound, "Say", b"hi", f"00-{TRACE_ID}-00f067aa0ba902b7-00")
    assert seen == [TRACE_ID]  # audit rows and problem bodies still name the caller's trace
    assert spans.get_finished_spans() == ()


async def test_an_unsampled_caller_gets_the_span_the_sdk_would_start(telemetry, port, monkeypatch):
    """The interceptor's shortcut for an un-sampled trace: the same trace id, flags and
    state as the SDK's own non-recording span, a span id of its own; onward calls carry the
    trace, still un-sampled."""
    bound, seen, onward = port
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))
    shortcut = provider.get_tracer("zenops.rpc")

    def no_sdk_span(*args, **kwargs):
        raise AssertionError("an un-sampled call must not start an SDK span")

    monkeypatch.setattr(shortcut, "start_span", no_sdk_span)
    monkeypatch.setattr(interceptors, "_tracer", shortcut)
    reference = provider.get_tracer("reference")
    for flags in ("00", "02"):  # 02: W3C level 2's random-trace-id flag, kept like the SDK keeps it
        traceparent = f"00-{TRACE_ID}-00f067aa0ba902b7-{flags}"
        await call(bound, "Say", b"hi", traceparent)
        made = onward[-1]["span"]
        sdk = reference.start_span("x", context=propagate.extract({"traceparent": traceparent}))
        assert type(made) is type(sdk) is trace.NonRecordingSpan
        got, want = made.get_span_context(), sdk.get_span_context()
        assert (got.trace_id, got.trace_flags, got.is_remote, got.trace_state) == (
            want.trace_id,
            want.trace_flags,
            want.is_remote,
            want.trace_state,
        )
        assert got.span_id not in (0, 0x00F067AA0BA902B7)
        assert onward[-1]["traceparent"] == f"00-{TRACE_ID}-{got.span_id:016x}-{flags}"
    assert seen == [TRACE_ID] * 2


async def test_the_sdk_decides_when_the_shortcut_does_not_apply(telemetry, port, monkeypatch):
    """A tracestate to carry, or a sampler that records even an un-sampled caller's trace:
    the SDK's own path, as before."""
    _, spans, _ = telemetry
    bound, seen, onward = port
    unsampled = f"00-{TRACE_ID}-00f067aa0ba902b7-00"
    await call(bound, "Say", b"hi", unsampled, tracestate="vendor=x")
    assert onward[-1]["tracestate"] == "vendor=x" and not onward[-1]["span"].is_recording()
    assert spans.get_finished_spans() == ()

    recording = TracerProvider(sampler=ALWAYS_ON)  # not parent-based: samples every trace
    recording.add_span_processor(SimpleSpanProcessor(spans))
    monkeypatch.setattr(interceptors, "_tracer", recording.get_tracer("zenops.rpc"))
    await call(bound, "Say", b"hi", unsampled)
    [span] = spans.get_finished_spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID and span.context.trace_flags.sampled
    assert seen == [TRACE_ID] * 2
