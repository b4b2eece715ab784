"""The server interceptor every service installs: request context in, errors out.

In: `x-request-id` and the caller's bearer token (verified by the service's TokenVerifier)
become the RequestContext. Out: a DomainError becomes its gRPC status with
google.rpc details; a lost database or broker becomes UNAVAILABLE; anything else becomes
INTERNAL with the trace id and no internals.

Every kind of handler (unary, server-, client- and bidirectional streaming) is wrapped alike,
and a failure while building the context (a refused token, a verifier whose session check
meets its database down) is translated like a handler's.

Telemetry lives here too, so a call pays for one interceptor, not two: the SERVER span
(continuing the caller's W3C `traceparent`; a caller's un-sampled trace gets the
non-recording span the SDK would give it, made here without the SDK's extract and sampler)
and the `rpc.server.duration` histogram (ms; rpc.system, rpc.service, rpc.method,
rpc.grpc.status_code) through the global OpenTelemetry API — a no-op until the process sets
providers. Instruments are created once, attribute dicts once per method and status.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid

import grpc
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

from .caller import servicer_context_var
from .context import ANONYMOUS, RequestContext, TokenVerifier, reset_context, set_context
from .errors import DomainError, InvalidArgument, Unauthenticated, Unavailable, to_grpc_status
from .infrastructure import is_infrastructure_error, is_unstorable_text
from .logging import request_id_var

log = logging.getLogger("zenops.grpc")

# Always callable without a token.
PUBLIC_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# Losing the database or the network is UNAVAILABLE (retry later); other OSErrors are bugs.


_tracer = trace.get_tracer("zenops.rpc")
_duration = metrics.get_meter("zenops.rpc").create_histogram(
    "rpc.server.duration", unit="ms", description="Duration of inbound RPCs, until the answer is sent."
)


class _Method:
    """Per-method constants: the span name and attributes, and the metric attributes per
    status code (built on first use, then shared by every call)."""

    __slots__ = ("attributes", "by_status", "name")

    def __init__(self, full_method: str) -> None:
        service, _, method = full_method.lstrip("/").partition("/")
        self.name = full_method.lstrip("/")
        self.attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        self.by_status: dict[int, dict] = {}

    def status_attributes(self, code: grpc.StatusCode) -> dict:
        value = code.value[0]
        found = self.by_status.get(value)
        if found is None:
            found = self.by_status[value] = {**self.attributes, "rpc.grpc.status_code": value}
        return found


# Server faults (semantic conventions for gRPC server spans): the span's status is ERROR only
# for these; a caller's mistake (NOT_FOUND, INVALID_ARGUMENT, ...) leaves it unset.
_SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def _status_of(context, exc: BaseException | None) -> grpc.StatusCode:
    """The call's status: what the handler or `_translate` aborted with, else OK (or UNKNOWN
    for an exception that escaped without one)."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.OK if exc is None else grpc.StatusCode.UNKNOWN


# A plain version-00 traceparent (anything else is left to the SDK's propagator).
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_UNSAMPLED_REMOTE_PARENT = trace.set_span_in_context(
    trace.NonRecordingSpan(trace.SpanContext(1, 1, is_remote=True)), otel_context.Context()
)
_drops_unsampled: tuple[object, bool] = (None, False)  # (sampler, its verdict), the last one asked


def _sampler_drops_unsampled(sampler) -> bool:
    """Whether `sampler` records no child of an un-sampled remote parent: true of every
    parentbased_* sampler (the SDK's default) and always_off; asked through the public
    sampler API with trace ids both ends of any ratio, once per sampler."""
    global _drops_unsampled
    if _drops_unsampled[0] is not sampler:
        verdict = not any(
            sampler.should_sample(_UNSAMPLED_REMOTE_PARENT, trace_id, "probe").decision.is_recording()
            for trace_id in (1, 2**128 - 1)
        )
        _drops_unsampled = (sampler, verdict)
    return _drops_unsampled[1]


def _unsampled_span(metadata: dict[str, str]) -> trace.NonRecordingSpan | None:
    """For a caller whose trace is not sampled, the span the SDK would start (a NonRecordingSpan
    in the caller's trace, a span id of its own, the caller's random-trace-id flag) without the
    SDK's work: extract, sampler, span. None when the SDK must decide: a sampled, absent or
    unusual traceparent, a tracestate or baggage to carry, or a sampler that may record it."""
    match = _TRACEPARENT.fullmatch(metadata["traceparent"])
    if match is None or "tracestate" in metadata or "baggage" in metadata:
        return None
    flags = int(match[3], 16)
    trace_id = int(match[1], 16)
    if flags & trace.TraceFlags.SAMPLED or not trace_id or not int(match[2], 16):
        return None
    # The module's tracer is the global proxy (its sampler is the global provider's) unless a
    # test put an SDK tracer in its place.
    tracer = _tracer
    sampler = getattr(trace.get_tracer_provider() if isinstance(tracer, trace.ProxyTracer) else tracer, "sampler", None)
    if sampler is None or not _sampler_drops_unsampled(sampler):
        return None
    span_id = random.getrandbits(64) or 1  # as the SDK's RandomIdGenerator: never the invalid 0
    context = trace.SpanContext(
        trace_id, span_id, is_remote=False, trace_flags=trace.TraceFlags(flags & trace.TraceFlags.RANDOM_TRACE_ID)
    )
    return trace.NonRecordingSpan(context)


class _Telemetry:
    """The span and the duration of one call."""

    __slots__ = ("method", "span", "started", "token")

    def __init__(self, method: _Method, metadata: dict[str, str]) -> None:
        self.method = method
        self.started = time.perf_counter()
        span = _unsampled_span(metadata) if "traceparent" in metadata else None
        if span is not None:
            # As propagate.extract would: the call's context holds the span and nothing else.
            context = trace.set_span_in_context(span, otel_context.Context())
        else:
            parent = propagate.extract(metadata) if "traceparent" in metadata else None
            span = _tracer.start_span(method.name, context=parent, kind=SpanKind.SERVER, attributes=method.attributes)
            context = trace.set_span_in_context(span, parent)
        self.span = span
        self.token = otel_context.attach(context)

    def end(self, context, exc: BaseException | None) -> None:
        code = _status_of(context, exc)
        attributes = self.method.status_attributes(code)
        _duration.record((time.perf_counter() - self.started) * 1e3, attributes)
        span = self.span
        if span.is_recording():
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code in _SERVER_FAULTS:
                span.set_status(StatusCode.ERROR, code.name)
            span.end()
        otel_context.detach(self.token)


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, service: str, *, verifier: TokenVerifier | None, public_methods: set[str]) -> None:
        self.service = service
        self.verifier = verifier
        self.public_methods = public_methods
        self._wrapped: dict[str, tuple] = {}  # method → (the servicer's handler, its wrapper)

    def _is_public(self, method: str) -> bool:
        return method in self.public_methods or method.startswith(PUBLIC_METHOD_PREFIXES)

    async def _context(self, method: str, metadata: dict[str, str], request_id: str) -> RequestContext:
        client = {"client_ip": metadata.get("x-client-ip"), "user_agent": metadata.get("x-client-user-agent")}
        if self._is_public(method):
            return RequestContext(request_id=request_id, **client)
        # One copy of the (cached) verified context, with this call's request id and client.
        ctx = await self._verify(metadata.get("authorization", ""))
        return ctx.for_call(request_id, **client)

    async def _verify(self, auth: str) -> RequestContext:
        if not auth:
            raise Unauthenticated("a bearer token is required", reason="TOKEN_MISSING")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization must be 'Bearer <token>'", reason="TOKEN_MALFORMED")
        if self.verifier is None:
            # Never trust claims we cannot verify.
            raise Unauthenticated("this service cannot verify tokens", reason="TOKEN_UNVERIFIABLE")
        return await self.verifier.verify(token.strip(), None)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        # Wrapped once per method (servicers hand out the same handler for every call), not per
        # call: the per-call work is only what the wrapper does with the call's own context.
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:
            cached = self._wrapped[method] = (handler, self._wrap(method, handler))
        return cached[1]

    def _wrap(self, method: str, handler):
        described = _Method(method)

        async def enter(context) -> tuple:
            metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
            telemetry = _Telemetry(described, metadata)
            request_id = metadata.get("x-request-id") or str(uuid.uuid4())
            rid_token = request_id_var.set(request_id)
            sc_token = servicer_context_var.set(context)
            ctx_token = set_context(ANONYMOUS)
            try:
                ctx = await self._context(method, metadata, request_id)
            except Exception as exc:  # noqa: BLE001 - translated like a handler's failure
                # e.g. a refused token, or a verifier whose session check met its database down
                reset_context(ctx_token)
                servicer_context_var.reset(sc_token)
                request_id_var.reset(rid_token)
                try:
                    await self._translate(context, exc)
                finally:
                    telemetry.end(context, exc)
            reset_context(ctx_token)
            return telemetry, rid_token, sc_token, set_context(ctx)

        def leave(tokens, context, exc: BaseException | None) -> None:
            telemetry, rid_token, sc_token, ctx_token = tokens
            reset_context(ctx_token)
            servicer_context_var.reset(sc_token)
            request_id_var.reset(rid_token)
            telemetry.end(context, exc)

        if handler.unary_unary:
            behavior = handler.unary_unary

            async def unary_unary(request, context):
                tokens = await enter(context)
                failed: BaseException | None = None
                try:
                    return await behavior(request, context)
                except Exception as exc:  # noqa: BLE001 - translated below
                    failed = exc
                    await self._translate(context, exc)
                finally:
                    leave(tokens, context, failed)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        if handler.stream_unary:
            behavior_client_stream = handler.stream_unary

            async def stream_unary(request_iterator, context):
                # The context is entered before the first request message is read: a
                # non-public method is refused before the client's stream is consumed.
                tokens = await enter(context)
                failed: BaseException | None = None
                try:
                    return await behavior_client_stream(request_iterator, context)
                except Exception as exc:  # noqa: BLE001 - translated below
                    failed = exc
                    await self._translate(context, exc)
                finally:
                    leave(tokens, context, failed)

            return grpc.stream_unary_rpc_method_handler(
                stream_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        if handler.stream_stream:
            behavior_bidi = handler.stream_stream

            async def stream_stream(request_iterator, context):
                tokens = await enter(context)
                failed: BaseException | None = None
                try:
                    async for item in behavior_bidi(request_iterator, context):
                        yield item
                except Exception as exc:  # noqa: BLE001 - translated below
                    failed = exc
                    await self._translate(context, exc)
                finally:
                    leave(tokens, context, failed)

            return grpc.stream_stream_rpc_method_handler(
                stream_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        behavior_stream = handler.unary_stream

        async def unary_stream(request, context):
            tokens = await enter(context)
            failed: BaseException | None = None
            try:
                async for item in behavior_stream(request, context):
                    yield item
            except Exception as exc:  # noqa: BLE001 - translated below
                failed = exc
                await self._translate(context, exc)
            finally:
                leave(tokens, context, failed)

        return grpc.unary_stream_rpc_method_handler(
            unary_stream,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def _abort(self, context, err: DomainError):
        status = to_grpc_status(err, self.service)
        await context.abort(status.code, status.details, status.trailing_metadata)

    async def _translate(self, context, exc: Exception):
        if isinstance(exc, DomainError):
            await self._abort(context, exc)
        if isinstance(exc, grpc.aio.AbortError):  # context.abort() inside the handler
            raise exc
        if isinstance(exc, NotImplementedError):  # a contract RPC the servicer does not implement yet
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this RPC is not implemented by this service")
        trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
        if is_infrastructure_error(exc):
            log.warning("dependency unavailable", extra={"error": repr(exc)})
            await self._abort(context, Unavailable("a dependency is unavailable; retry later"))
        if is_unstorable_text(exc):
            # A backstop: the request's own fault (400, not 500), but a field went unvalidated.
            log.warning("text the database cannot store reached it unvalidated", extra={"error": repr(exc)[:300]})
            await self._abort(
                context,
                InvalidArgument(
                    "a text value holds a character that cannot be stored (NUL)", reason="INVALID_CHARACTER"
                ),
            )
        log.exception("unhandled error in RPC")
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error (trace id {trace_id})")
