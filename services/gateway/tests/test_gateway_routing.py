"""routing.skip_impossible_routers and LeanRoute.matches: the prefilters only skip routers
and routes that could not match — every route of the gateway resolves to the same endpoint
as with FastAPI's plain matching, and paths no route serves stay unmatched."""

import re
import uuid

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, _IncludedRouter
from starlette.routing import Match

from zenops_gateway.app import create_app
from zenops_gateway.routes import ROUTERS
from zenops_gateway.settings import GatewaySettings


def resolve(app: FastAPI, method: str, path: str):
    """The endpoint FastAPI's matching picks for (method, path) — FULL matches only — or None."""
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "query_string": b""}
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match != Match.FULL:
            continue
        while isinstance(route, _IncludedRouter):
            _, _, route, _ = route._match(scope)
        return getattr(route, "endpoint", route)
    return None


@pytest.fixture(scope="module")
def apps() -> tuple[FastAPI, FastAPI]:
    plain = FastAPI()
    for router in ROUTERS:
        plain.include_router(router)
    return create_app(GatewaySettings()), plain


def samples() -> list[tuple[str, str]]:
    out = []
    for route in (r for router in ROUTERS for r in router.routes):
        if isinstance(route, APIRoute):
            path = re.sub(r"\{[^}]+\}", str(uuid.UUID(int=7)), route.path)
            out += [(method, path) for method in sorted(route.methods)]
    return out


def test_every_route_resolves_as_without_the_prefilter(apps):
    fast, plain = apps
    routes = samples()
    assert len(routes) > 100  # the whole API, not a few
    skipped = [r for r in fast.router.routes if isinstance(r, _IncludedRouter) and "prefiltered" in repr(r.matches)]
    assert skipped, "the prefilter is installed"
    for method, path in routes:
        assert resolve(fast, method, path) is resolve(plain, method, path) is not None, (method, path)


def test_lean_routes_match_as_fastapis_routes():
    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    scopes = [
        {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "query_string": b""}
        for method, path in samples() + [("GET", "/v1/billing/accounts/x/y"), ("GET", "/prefix/v1/users")]
    ]
    for route in routes:
        for scope in scopes:
            assert route.matches(dict(scope))[0] == APIRoute.matches(route, dict(scope))[0], (route.path, scope)


@pytest.mark.parametrize("path", ["/v1/nothing-here", "/v1/billing", "/v1/billing/no-such", "/v2/tasks", "/v1"])
def test_unserved_paths_stay_unmatched(apps, path):
    fast, plain = apps
    assert resolve(fast, "GET", path) is resolve(plain, "GET", path) is None
