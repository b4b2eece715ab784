"""The server interceptor every service installs: request context in, errors out.

In: `x-request-id` and the caller's bearer token (verified by the service's TokenVerifier)
become the RequestContext. Out: a DomainError becomes its gRPC status with
google.rpc details; a lost database or broker becomes UNAVAILABLE; anything else becomes
INTERNAL with the trace id and no internals.

Unary, server-streaming and client-streaming handlers are wrapped alike (the suite has no
bidirectional RPCs).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid

import grpc
from opentelemetry import trace
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from .context import ANONYMOUS, RequestContext, TokenVerifier, reset_context, set_context
from .errors import DomainError, Unauthenticated, Unavailable, to_grpc_status
from .logging import request_id_var

log = logging.getLogger("zenops.grpc")

# Always callable without a token.
PUBLIC_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# Losing the database or the network is UNAVAILABLE (retry later); other OSErrors are bugs.
_CONNECTION_ERRORS = (ConnectionError, TimeoutError, InterfaceError, OperationalError, PoolTimeout)


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _CONNECTION_ERRORS)


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, service: str, *, verifier: TokenVerifier | None, public_methods: set[str]) -> None:
        self.service = service
        self.verifier = verifier
        self.public_methods = public_methods

    def _is_public(self, method: str) -> bool:
        return method in self.public_methods or method.startswith(PUBLIC_METHOD_PREFIXES)

    async def _context(self, method: str, metadata: dict[str, str], request_id: str) -> RequestContext:
        client = {"client_ip": metadata.get("x-client-ip"), "user_agent": metadata.get("x-client-user-agent")}
        if self._is_public(method):
            return RequestContext(request_id=request_id, **client)
        ctx = await self._verify(metadata.get("authorization", ""), request_id)
        return dataclasses.replace(ctx, request_id=request_id, **client)

    async def _verify(self, auth: str, request_id: str) -> RequestContext:
        if not auth:
            raise Unauthenticated("a bearer token is required", reason="TOKEN_MISSING")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization must be 'Bearer <token>'", reason="TOKEN_MALFORMED")
        if self.verifier is None:
            # Never trust claims we cannot verify.
            raise Unauthenticated("this service cannot verify tokens", reason="TOKEN_UNVERIFIABLE")
        return await self.verifier.verify(token.strip(), request_id)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or not (handler.unary_unary or handler.unary_stream or handler.stream_unary):
            return handler
        method = handler_call_details.method
        metadata = {k: v for k, v in (handler_call_details.invocation_metadata or ()) if isinstance(v, str)}

        async def enter(context) -> tuple:
            request_id = metadata.get("x-request-id") or str(uuid.uuid4())
            rid_token = request_id_var.set(request_id)
            ctx_token = set_context(ANONYMOUS)
            try:
                ctx = await self._context(method, metadata, request_id)
            except DomainError as err:
                await self._abort(context, err)
            reset_context(ctx_token)
            return rid_token, set_context(ctx)

        def leave(tokens) -> None:
            rid_token, ctx_token = tokens
            reset_context(ctx_token)
            request_id_var.reset(rid_token)

        if handler.unary_unary:
            behavior = handler.unary_unary

            async def unary_unary(request, context):
                tokens = await enter(context)
                try:
                    return await behavior(request, context)
                except Exception as exc:  # noqa: BLE001 - translated below
                    await self._translate(context, exc)
                finally:
                    leave(tokens)

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
                try:
                    return await behavior_client_stream(request_iterator, context)
                except Exception as exc:  # noqa: BLE001 - translated below
                    await self._translate(context, exc)
                finally:
                    leave(tokens)

            return grpc.stream_unary_rpc_method_handler(
                stream_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        behavior_stream = handler.unary_stream

        async def unary_stream(request, context):
            tokens = await enter(context)
            try:
                async for item in behavior_stream(request, context):
                    yield item
            except Exception as exc:  # noqa: BLE001 - translated below
                await self._translate(context, exc)
            finally:
                leave(tokens)

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
        if _is_connection_error(exc):
            log.warning("dependency unavailable", extra={"error": repr(exc)})
            await self._abort(context, Unavailable("a dependency is unavailable; retry later"))
        log.exception("unhandled error in RPC")
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error (trace id {trace_id})")
