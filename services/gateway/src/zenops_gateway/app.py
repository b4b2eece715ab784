"""`create_app(settings)`: the gateway's ASGI app.

Lifespan: telemetry → one typed gRPC client (one channel) per upstream → NATS in the
background → token verification (identity's JWKS, session revocations followed from NATS)
and the gateway's service token → ready. Shutdown: not ready → stop following
revocations → close the key source, the token provider and the channels → drain NATS.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from zenops_kit.auth import JwksKeySource, JwtVerifier, RevocationList, ServiceTokenProvider
from zenops_kit.events.bus import EventBus
from zenops_kit.telemetry import setup_telemetry

from .clients import Upstreams
from .errors import PROBLEM_MEDIA_TYPE, Problem, install_error_handlers
from .middleware import install_middleware
from .routes import ROUTERS
from .runtime import Runtime
from .settings import GatewaySettings

log = logging.getLogger("zenops.gateway")

SERVICE_NAME = "gateway"
OPENAPI_URL = "/v1/openapi.json"
DOCS_URL = "/v1/docs"
# Probes are polled every few seconds: no spans for them. Signed file URLs carry their
# authorisation in the path: a span would record the token.
UNTRACED_URLS = "/v1/livez,/v1/readyz,/v1/files/,/v1/artifact-files/"
# Tokens the gateway accepts from HTTP callers: users' tokens. `aud=service` tokens are for
# service-to-service calls and are refused here (TOKEN_AUDIENCE_INVALID).
USER_AUDIENCES = ("web", "studio", "portal")
# Pause before following revocations again after the follower failed.
FOLLOW_RETRY_SECONDS = 1.0


async def follow_revocations(revocations: RevocationList, bus: EventBus) -> None:
    """Keep the revocation list fed for the life of the process: a failure (NATS lost, the
    identity stream not created yet) must not silently stop revoked tokens being refused."""
    while True:
        try:
            await revocations.follow(bus)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - logged, retried
            log.warning("following session revocations failed; retrying", extra={"error": repr(exc)})
        await asyncio.sleep(FOLLOW_RETRY_SECONDS)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    runtime = Runtime(settings=settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_telemetry(SERVICE_NAME, settings.version)
        runtime.upstreams = Upstreams.from_settings(settings)
        runtime.bus = EventBus(settings.nats_url, name=f"zenops-{SERVICE_NAME}")
        runtime.bus.start()
        keys = JwksKeySource.from_identity(settings.identity_addr)
        revocations = RevocationList()
        runtime.verifier = JwtVerifier(
            keys, issuer=settings.jwt_issuer, audiences=USER_AUDIENCES, revocations=revocations
        )
        runtime.service_tokens = ServiceTokenProvider.from_identity(
            settings.identity_addr, SERVICE_NAME, settings.service_client_secret.get_secret_value()
        )
        follower = asyncio.create_task(follow_revocations(revocations, runtime.bus), name="follow-revocations")
        runtime.ready = True
        log.info("gateway started", extra={"environment": settings.environment})
        try:
            yield
        finally:
            runtime.ready = False
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            await asyncio.gather(keys.close(), runtime.service_tokens.close(), return_exceptions=True)
            runtime.verifier = runtime.service_tokens = None
            await runtime.upstreams.close()
            await runtime.bus.drain()
            log.info("gateway stopped")

    app = FastAPI(
        title="ZenOps API",
        version=settings.version,
        description="HTTP/JSON API of ZenOps. Errors are application/problem+json (RFC 9457).",
        openapi_url=OPENAPI_URL,
        docs_url=None,  # served below with its own CSP
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    for router in ROUTERS:
        app.include_router(router)
    install_error_handlers(app)
    install_middleware(app, settings)
    _install_docs(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    FastAPIInstrumentor.instrument_app(app, excluded_urls=UNTRACED_URLS)
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


# -- OpenAPI: error responses documented as problem+json --------------------------------------


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem_schema.pop("$defs", {}))
    schemas.setdefault("Problem", problem_schema)
    problem_ref = {"$ref": "#/components/schemas/Problem"}

    def problem_content(existing: dict[str, Any] | None) -> dict[str, Any]:
        found = (existing or {}).get("application/json", {}).get("schema")
        return {PROBLEM_MEDIA_TYPE: {"schema": found or problem_ref}}

    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            # Validation errors are answered 400 problem+json, not FastAPI's 422.
            if responses.pop("422", None) is not None:
                responses.setdefault("400", {"description": "Bad Request"})
            responses.setdefault("500", {"description": "Internal Server Error"})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = problem_content(response.get("content"))
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = schema
    return schema
