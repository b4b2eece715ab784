"""System routes: aggregated health, meta, Kubernetes probes.

Anonymous callers learn only whether the API is up (`/v1/health`: up/down) and nothing of
its build: the per-dependency checks of /v1/health and every /v1/meta* answer need a token
with `control.read` (the gateway owns these aggregates, so it authorises them itself).
Whether the API is up is the services' readiness (their gRPC health `""`) and the
gateway's: NATS is reported but never makes it "down" — the outbox keeps writes going
while the broker is away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_serializer

from zenops_kit.context import RequestContext
from zenops_kit.errors import DomainError

from ..clients import HealthResult
from ..deps import CallerDep, RuntimeDep, get_caller
from ..errors import Problem, UpstreamError, problem, problem_responses
from ..handler import LeanRoute

router = APIRouter(prefix="/v1", tags=["system"], route_class=LeanRoute)
log = logging.getLogger("zenops.gateway.health")

APP_NAME = "zenops"
SERVICE_ORDER = ("identity", "ops", "billing", "repogen")


# -- models ------------------------------------------------------------------------------------


class Check(BaseModel):
    status: Literal["SERVING", "NOT_SERVING", "UNREACHABLE"]
    reason: str | None = Field(None, description="Why it is not serving (absent when SERVING).")

    @model_serializer(mode="wrap")
    def _omit_empty_reason(self, handler):
        data = handler(self)
        if data.get("reason") is None:
            data.pop("reason", None)
        return data


class Health(BaseModel):
    status: Literal["up"] = "up"
    checks: dict[str, Check] | None = Field(
        None, description="identity, ops, billing, repogen, nats, gateway — only for a `control.read` token."
    )

    @model_serializer(mode="wrap")
    def _omit_checks(self, handler):
        data = handler(self)
        if data.get("checks") is None:
            data.pop("checks", None)
        return data


class HealthProblem(Problem):
    """503 body of /v1/health (`status: down`); the checks only for a `control.read` token."""

    checks: dict[str, Check] | None = None

    @model_serializer(mode="wrap")
    def _omit_checks(self, handler):
        data = handler(self)
        if data.get("checks") is None:
            data.pop("checks", None)
        return data


class ServiceMeta(BaseModel):
    name: str
    status: Literal["OK", "UNAVAILABLE"]
    version: str | None = None
    git_sha: str | None = None
    build_time: datetime | None = Field(None, description="ISO-8601, UTC.")
    environment: str | None = None
    schema_revision: str | None = Field(None, description="Migration revision of the service's database.")
    code: str | None = Field(None, description="Why the service did not answer (when UNAVAILABLE).")


class Meta(BaseModel):
    app: str = APP_NAME
    environment: str
    version: str = Field(description="Gateway version.")
    git_sha: str = Field(description="Gateway git sha.")
    build_time: datetime = Field(description="Gateway build time (ISO-8601, UTC).")
    services: dict[str, ServiceMeta] = Field(description="identity, ops, billing, repogen, gateway.")


class Status(BaseModel):
    status: str


# -- routes ------------------------------------------------------------------------------------


async def _bounded(check: Awaitable[HealthResult], deadline: float) -> HealthResult:
    """A check can never hang /v1/health nor make it 500."""
    try:
        async with asyncio.timeout(deadline):
            return await check
    except TimeoutError:
        return HealthResult("UNREACHABLE", f"no answer within {deadline:g}s")
    except Exception as exc:  # noqa: BLE001
        return HealthResult("UNREACHABLE", type(exc).__name__)


# Whether the API is up: these must serve. NATS is reported, not required (see above).
REQUIRED_CHECKS = (*SERVICE_ORDER, "gateway")


async def _control_reader(request: Request) -> RequestContext | None:
    """The caller if it sent a valid token with control.read; None otherwise (health's
    anonymous answer never fails on a bad or missing token)."""
    if not request.headers.get("authorization"):
        return None
    try:
        caller = await get_caller(request, None)
    except DomainError:
        return None
    return caller if "control.read" in caller.capabilities else None


async def _control_read(caller: CallerDep) -> RequestContext:
    caller.require("control.read")
    return caller


ControlReadDep = Annotated[RequestContext, Depends(_control_read)]


@router.get(
    "/health",
    response_model=Health,
    response_model_exclude_none=True,
    summary="Up or down (public); every service's, NATS's and the gateway's check with a control.read token",
    responses={503: {"model": HealthProblem, "description": "A service or the gateway is not serving."}},
)
async def health(request: Request, rt: RuntimeDep):
    timeout = rt.settings.health_timeout
    names: list[str] = []
    checks: list[Awaitable[HealthResult]] = []
    if rt.upstreams is not None:
        for name, client in rt.upstreams.all().items():
            names.append(name)
            checks.append(_bounded(client.check_health(timeout), timeout + 0.5))
    names.append("nats")
    checks.append(_bounded(rt.check_nats(timeout), timeout + 0.5))
    results = dict(zip(names, await asyncio.gather(*checks), strict=True))
    results["gateway"] = HealthResult("SERVING") if rt.ready else HealthResult("NOT_SERVING", "not ready")
    for name in SERVICE_ORDER:  # before start-up the clients do not exist yet
        results.setdefault(name, HealthResult("UNREACHABLE", "gateway not started"))

    failing = [name for name in REQUIRED_CHECKS if results[name].status != "SERVING"]
    detailed = await _control_reader(request) is not None
    body = {name: Check(status=r.status, reason=r.reason) for name, r in results.items()} if detailed else None
    if not failing:
        return Health(checks=body)
    log.warning("not serving", extra={"checks": {n: results[n].status for n in results}})
    return problem(
        503,
        "UNHEALTHY",
        "Not serving: " + ", ".join(f"{n} ({results[n].status})" for n in failing) if detailed else "Down.",
        model=HealthProblem,
        checks=body,
    )


def _service_meta(name: str, i) -> ServiceMeta:
    built = i.build_time.ToDatetime(tzinfo=UTC) if i.HasField("build_time") else None
    return ServiceMeta(
        name=i.name or name,
        status="OK",
        version=i.version,
        git_sha=i.git_sha,
        build_time=built,
        environment=i.environment,
        schema_revision=i.schema_revision,
    )


def _failure_code(err: UpstreamError) -> str:
    return err.detail.reason or err.detail.code.name


@router.get(
    "/meta",
    response_model=Meta,
    summary="App, environment and every service's version (control.read)",
    responses=problem_responses(401, 403),
)
async def meta(rt: RuntimeDep, _caller: ControlReadDep) -> Meta:
    s = rt.settings
    # Services answer GetServiceInfo to authenticated callers only: the gateway asks with its
    # own service token. Without one (identity down) no service can be asked.
    token: str | None = None
    token_error: str | None = None
    try:
        token = await rt.service_token()
    except DomainError as err:  # Unavailable: SERVICE_TOKEN_UNAVAILABLE, SERVICE_CREDENTIALS_REJECTED
        token_error = err.reason

    async def info(name: str) -> ServiceMeta:
        if rt.upstreams is None:
            return ServiceMeta(name=name, status="UNAVAILABLE", code="NOT_STARTED")
        if token is None:
            return ServiceMeta(name=name, status="UNAVAILABLE", code=token_error)
        try:
            i = await rt.upstreams.all()[name].get_service_info(token=token, deadline=s.health_timeout)
        except UpstreamError as err:
            return ServiceMeta(name=name, status="UNAVAILABLE", code=_failure_code(err))
        return _service_meta(name, i)

    services = dict(zip(SERVICE_ORDER, await asyncio.gather(*(info(n) for n in SERVICE_ORDER)), strict=True))
    services["gateway"] = ServiceMeta(
        name="gateway",
        status="OK",
        version=s.version,
        git_sha=s.git_sha,
        build_time=rt.build_time,
        environment=s.environment,
    )
    return Meta(
        environment=s.environment,
        version=s.version,
        git_sha=s.git_sha,
        build_time=rt.build_time,
        services=services,
    )


@router.get(
    "/meta/{service}",
    response_model=ServiceMeta,
    summary="One service's version and schema revision (control.read; one gRPC call, one database round trip)",
    responses=problem_responses(400, 401, 403, 503, 504),
)
async def service_meta(
    service: Literal["identity", "ops", "billing", "repogen"], rt: RuntimeDep, _caller: ControlReadDep
) -> ServiceMeta:
    if rt.upstreams is None:
        return problem(503, "NOT_READY", "The gateway is starting or shutting down.")
    # A failure (no service token, an unanswered call) propagates: errors.py maps it (503/504).
    token = await rt.service_token()
    client = rt.upstreams.all()[service]
    return _service_meta(service, await client.get_service_info(token=token, deadline=rt.settings.rpc_timeout))


@router.get("/livez", response_model=Status, summary="Liveness: the process answers (no upstream calls)")
async def livez() -> Status:
    return Status(status="alive")


@router.get(
    "/readyz",
    response_model=Status,
    summary="Readiness: clients started and not shutting down (never NATS: the outbox holds events meanwhile)",
    responses=problem_responses(503),
)
async def readyz(rt: RuntimeDep) -> Status | JSONResponse:
    if not rt.ready:
        return problem(503, "NOT_READY", "The gateway is starting or shutting down.")
    return Status(status="ready")
