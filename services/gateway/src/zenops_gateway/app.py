"""`create_app(settings)`: the gateway's ASGI app.

Lifespan: telemetry → one typed gRPC client (one channel) per upstream → NATS in the
background → token verification (identity's JWKS, session revocations followed from NATS)
and the gateway's service token → ready. Shutdown: not ready → stop following
revocations → close the key source, the token provider and the channels → drain NATS.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from zenops_kit.auth import JwksKeySource, JwtVerifier, RevocationList, ServiceTokenProvider
from zenops_kit.events.bus import EventBus
from zenops_kit.supervisor import Supervisor
from zenops_kit.telemetry import setup_telemetry
from zenops_kit.tls import nats_options

from .clients import Upstreams
from .edge import EdgeAwareFastAPI, EdgeTrust, parse_networks
from .errors import install_error_handlers
from .middleware import install_middleware
from .openapi import build_openapi
from .routes import ROUTERS
from .routing import skip_impossible_routers
from .runtime import Runtime
from .settings import GatewaySettings
from .telemetry import HttpTelemetry

log = logging.getLogger("zenops.gateway")

SERVICE_NAME = "gateway"
OPENAPI_URL = "/v1/openapi.json"
DOCS_URL = "/v1/docs"
# Probes are polled every few seconds: no spans for them. Signed file URLs carry their
# authorisation in the path: a span would record the token.
UNTRACED_PREFIXES = ("/v1/livez", "/v1/readyz", "/v1/files/", "/v1/artifact-files/")
# HTTP telemetry (telemetry.py): one SERVER span per request continuing the caller's
# traceparent, and the `http.server.request.duration` histogram (route template, method,
# status) — FastAPI's, with the attribute work only for sampled spans. FastAPI's own is off
# (it did that work for every request); so are its per-dependency spans and log records. Not
# the contrib ASGI middleware either: its per-message spans cost ~17% of the gateway's CPU.
TELEMETRY = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
# Tokens the gateway accepts from HTTP callers: users' tokens. `aud=service` tokens are for
# service-to-service calls and are refused here (TOKEN_AUDIENCE_INVALID).
USER_AUDIENCES = ("web", "studio", "portal")
# Pause before following revocations again after the follower failed (doubling up to 10 s).
FOLLOW_RETRY_SECONDS = 1.0


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    runtime = Runtime(settings=settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The typed clients put `traceparent` on their calls themselves (clients/base.py).
        setup_telemetry(SERVICE_NAME, settings.version, metrics_port=settings.metrics_port)
        runtime.upstreams = Upstreams.from_settings(settings)
        runtime.bus = EventBus(settings.nats_url, name=f"zenops-{SERVICE_NAME}", options=nats_options(settings))
        runtime.bus.start()
        keys = JwksKeySource.from_identity(settings.identity_addr)
        revocations = RevocationList()
        runtime.verifier = JwtVerifier(
            keys, issuer=settings.jwt_issuer, audiences=USER_AUDIENCES, revocations=revocations
        )
        runtime.service_tokens = ServiceTokenProvider.from_identity(
            settings.identity_addr, SERVICE_NAME, settings.service_client_secret.get_secret_value()
        )
        # Supervised: a failure (NATS lost, identity's stream not created yet) is logged, counted
        # and retried, never silently ending the refusal of revoked tokens.
        workers = Supervisor(SERVICE_NAME, min_backoff=FOLLOW_RETRY_SECONDS)
        workers.add("revocations", lambda: revocations.follow(runtime.bus))
        runtime.ready = True
        log.info("gateway started", extra={"environment": settings.environment})
        try:
            yield
        finally:
            runtime.ready = False
            await workers.stop()
            await asyncio.gather(keys.close(), runtime.service_tokens.close(), return_exceptions=True)
            runtime.verifier = runtime.service_tokens = None
            await runtime.upstreams.close()
            await runtime.bus.drain()
            log.info("gateway stopped")

    app = EdgeAwareFastAPI(
        title="ZenOps API",
        version=settings.version,
        description="HTTP/JSON API of ZenOps. Errors are application/problem+json (RFC 9457).",
        openapi_url=OPENAPI_URL,
        docs_url=None,  # served below with its own CSP
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        lifespan=lifespan,
        telemetry=TELEMETRY,
    )
    app.edge = EdgeTrust(parse_networks(settings.trusted_proxies))
    app.telemetry = HttpTelemetry(
        exclude=lambda scope: scope.get("path", "").startswith(UNTRACED_PREFIXES),
        # The OpenAPI document is served by a plain route, outside FastAPI's API routes.
        templates=lambda endpoint: next(
            (
                r.path_format
                for r in app.router.routes
                if endpoint is not None and getattr(r, "endpoint", None) is endpoint
            ),
            None,
        ),
    )
    app.state.runtime = runtime
    for router in ROUTERS:
        app.include_router(router)
    skip_impossible_routers(app)
    install_error_handlers(app)
    install_middleware(app, settings)
    _install_docs(app)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app


# -- docs: the only HTML page, with a CSP relaxed just enough for Swagger UI -------------------


def _install_docs(app: FastAPI) -> None:
    html = get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{app.title} — docs").body.decode()
    inline = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in inline)
    cdn = "https://cdn.jsdelivr.net"
    csp = (
        "default-src 'none'; "
        f"script-src {cdn} {hashes}; "
        f"style-src {cdn} 'unsafe-inline'; "  # Swagger UI sets inline styles
        "img-src 'self' data: https://fastapi.tiangolo.com; "
        "connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )

    @app.get(DOCS_URL, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(html, headers={"content-security-policy": csp, "cache-control": "no-cache"})
