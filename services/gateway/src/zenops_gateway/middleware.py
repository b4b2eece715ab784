"""The gateway's HTTP middleware: ONE pure-ASGI layer (no BaseHTTPMiddleware: no extra task,
context vars flow; one `send` wrapper per request instead of one per concern). In order:

    request context   request id in/out + `request_id_var`, the caller's address and user
                      agent (`client_info_var`, sent on to services), security headers
    CORS              only when ZENOPS_CORS_ORIGINS is set (Starlette's CORSMiddleware, here)
    body limit        413 on a declared or streamed body over the limit (1 MiB; the file
                      uploads under /v1/files/: the max upload, 25 MiB). FastAPI's own body
                      limit stays off: this is the one.
    catch-all         any unhandled exception → 500 problem+json (inside the request context
                      and CORS, so the 500 still gets request id and headers)
    (FastAPI: ExceptionMiddleware → routes; errors.py handlers run there)
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zenops_kit.logging import request_id_var

from .clients.base import client_info, client_info_var
from .edge import EdgeTrust, parse_networks
from .errors import ProblemHTTPException, internal_error_response, problem
from .settings import GatewaySettings

REQUEST_ID_HEADER = "x-request-id"
# The local storage driver's signed file URLs (routes/files.py): their own body limit.
FILES_PREFIX = "/v1/files/"
# Accept a caller's (Envoy's) request id only if it is short and harmless in logs/headers.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")

# API responses are JSON: nothing may be loaded, framed or submitted from them.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HSTS = "max-age=63072000; includeSubDomains"


def sane_request_id(value: str | None) -> str | None:
    return value if value and _SANE_REQUEST_ID.match(value) else None


def _header(scope: Scope, name: bytes) -> str | None:
    """One request header from the raw ASGI list (names are lower-case there), without
    building a Headers object."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def security_headers(production: bool) -> list[tuple[str, str]]:
    headers = [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("content-security-policy", API_CSP),
        ("cache-control", "no-store"),
    ]
    if production:
        headers.append(("strict-transport-security", HSTS))
    return headers


class GatewayMiddleware:
    """Request context, CORS, body limit and catch-all as one layer (see module doc).

    Request context: reuse a sane incoming `x-request-id`, else a UUID; echo it; expose it in
    `request_id_var` for logs, problem bodies and onward gRPC metadata; the caller's address
    and user agent in `client_info_var` (onward metadata `x-client-ip` / `x-client-user-agent`;
    the address is the edge's word only from the edge: edge.py); security headers (a route may
    set its own `content-security-policy` / `cache-control`, e.g. the docs page or the JWKS).

    Body limit: a declared Content-Length over the limit at once (the body is not read), a
    chunked/streamed body as soon as the running count passes it. The limit is `max_bytes`,
    except under a path prefix of `prefix_limits` (the first that matches): the local storage
    driver's file uploads (`/v1/files/`) have their own, larger limit (the ops max upload) —
    and are streamed on, never held in memory."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        production: bool,
        edge: EdgeTrust,
        max_bytes: int,
        prefix_limits: Sequence[tuple[str, int]] = (),
        cors: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.headers = security_headers(production)
        # Encoded once: appended to the raw response headers unless the route set its own.
        self.raw_headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in self.headers]
        self.edge = edge
        self.max_bytes = max_bytes
        self.prefix_limits = tuple(prefix_limits)
        # CORS sits between the request context and the rest, as a layer of its own would.
        self.cors = CORSMiddleware(self._cors_inner, **cors) if cors else None

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.prefix_limits:
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    @staticmethod
    def _too_large(limit: int) -> ProblemHTTPException:
        return ProblemHTTPException(413, "PAYLOAD_TOO_LARGE", f"The request body exceeds the limit of {limit} bytes.")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # One pass over the raw headers (names are lower-case in ASGI), no Headers object.
        request_id = user_agent = declared = None
        forwarded_for = []
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded_for.append(value.decode("latin-1"))
            elif name == b"x-request-id" and request_id is None:
                request_id = value.decode("latin-1")
            elif name == b"user-agent" and user_agent is None:
                user_agent = value.decode("latin-1")
            elif name == b"content-length" and declared is None:
                declared = value.decode("latin-1")
        rid = sane_request_id(request_id) or str(uuid.uuid4())
        token = request_id_var.set(rid)
        peer = scope.get("client")
        origin = self.edge.origin(peer[0] if peer else None, forwarded_for)
        client_token = client_info_var.set(client_info(origin.client_ip, user_agent))
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                raw = MutableHeaders(scope=message).raw  # the message's own list, edited in place
                present = {name.lower() for name, _ in raw}
                if b"x-request-id" in present:
                    raw[:] = [(n, v) for n, v in raw if n.lower() != b"x-request-id"]
                raw.append((b"x-request-id", rid.encode("latin-1")))
                raw.extend(pair for pair in self.raw_headers if pair[0] not in present)
            await send(message)

        try:
            if self.cors is None:
                await self._guarded(scope, receive, send_with_headers, declared, lambda: started)
            else:
                await self.cors(scope, receive, send_with_headers)
        finally:
            client_info_var.reset(client_token)
            request_id_var.reset(token)

    async def _cors_inner(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What CORS wraps: the body limit and the catch-all, tracking the response's start
        below CORS (CORS answers preflights itself)."""
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self._guarded(scope, receive, tracking_send, _header(scope, b"content-length"), lambda: started)

    async def _guarded(
        self, scope: Scope, receive: Receive, send: Send, declared: str | None, started: Callable[[], bool]
    ) -> None:
        """The body limit, then the app with the 500 of last resort."""
        limit = self.limit_for(scope.get("path", ""))
        if declared is not None:
            if not declared.strip().isdigit():
                await problem(400, "BAD_REQUEST", "Invalid Content-Length header.")(scope, receive, send)
                return
            if int(declared) > limit:
                exc = self._too_large(limit)
                await problem(413, exc.code, exc.detail, headers={"connection": "close"})(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException: FastAPI re-raises it from body parsing (and the file
                    # route from its body stream) and the central handler answers 413.
                    raise self._too_large(limit)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except Exception as exc:
            if started():
                raise  # too late to answer; the server closes the connection
            if isinstance(exc, ProblemHTTPException):  # raised outside FastAPI's handlers
                await problem(exc.status_code, exc.code, exc.detail)(scope, receive, send)
                return
            await internal_error_response(exc)(scope, receive, send)


def install_middleware(app: FastAPI, settings: GatewaySettings) -> None:
    cors = None
    if settings.cors_origins:
        cors = {
            "allow_origins": settings.cors_origins,
            "allow_methods": ["GET", "POST", "PUT", "PATCH", "DELETE"],
            "allow_headers": ["authorization", "content-type", "idempotency-key", REQUEST_ID_HEADER],
            "expose_headers": [REQUEST_ID_HEADER, "retry-after"],
            "allow_credentials": False,  # bearer tokens, no cookies
            "max_age": 600,
        }
    app.add_middleware(
        GatewayMiddleware,
        production=settings.is_production,
        edge=EdgeTrust(parse_networks(settings.trusted_proxies)),
        max_bytes=settings.max_body_bytes,
        prefix_limits=[(FILES_PREFIX, settings.max_upload_bytes)],
        cors=cors,
    )
