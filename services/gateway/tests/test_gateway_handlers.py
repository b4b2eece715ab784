"""handler.LeanRoute: every route of the gateway runs the precompiled handler, and it answers
exactly as FastAPI's own handler does — the same status, headers and problem bodies for
missing and malformed tokens, paths, queries, headers and bodies, across the whole API."""

from __future__ import annotations

import re

import httpx
from fastapi.routing import APIRoute, _IncludedRouter
from gateway_testing import gateway_settings, running

from zenops_devstack.testing import TokenSigner
from zenops_gateway.app import USER_AUDIENCES, create_app
from zenops_gateway.handler import LeanRoute


def build_every_route(app) -> list[APIRoute]:
    """FastAPI builds an included route's handler on first use: build them all now."""
    contexts = [c for r in app.router.routes if isinstance(r, _IncludedRouter) for c in r.effective_route_contexts()]
    return [c for c in contexts if isinstance(c.original_route, APIRoute)]


def test_every_route_is_lean():
    app = create_app(gateway_settings())
    routes = build_every_route(app)
    names = {f"{m} {c.path}" for c in routes for m in c.methods}
    assert len(names) > 100
    assert all(isinstance(c.original_route, LeanRoute) for c in routes)
    assert names <= LeanRoute.lean and not names & LeanRoute.fallback


def requests_for(route) -> list[tuple[str, str, dict, bytes | None]]:
    """Requests that exercise a route's every failure before its upstream (down here)."""
    method = sorted(route.methods)[0]
    ids = {name: "7d5b1a8e-3f0c-4e2a-9b6d-1c2e3f4a5b6c" for name in re.findall(r"{(\w+)}", route.path)}
    path = route.path.format(**ids)
    bad_path = re.sub(r"{\w+}", "not-an-id", route.path)
    json_body = {"content-type": "application/json"}
    return [
        (method, path, {"authorization": ""}, b'{"x": 1}'),
        (method, path, {"authorization": "Bearer not-a-jwt"}, None),
        (method, path, {}, None),
        (method, bad_path + "?limit=abc&cursor=", {}, None),
        (method, path + "?limit=100000", {"idempotency-key": "has space"}, b"{}"),
        (method, path, {**json_body, "idempotency-key": "k-1"}, b'{"amount": '),
        (method, path, {**json_body, "idempotency-key": "k-2"}, b'[1, "two"]'),
        (method, path, {"content-type": "text/plain", "idempotency-key": "k-3"}, b'{"amount": 5}'),
        (method, path, {"content-type": "application/merge-patch+json"}, b'{"display_name": null, "nope": 1}'),
        (method, path, {**json_body, "idempotency-key": "k" * 201}, b'{"amount": 5, "reason": "x", "roles": []}'),
    ]


def comparable(resp: httpx.Response) -> tuple:
    headers = sorted((k, v) for k, v in resp.headers.items() if k not in ("x-request-id", "content-length"))
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("request_id", "trace_id")}
    return resp.status_code, headers, body


async def test_lean_handlers_answer_as_fastapis(monkeypatch):
    signer = TokenSigner()
    token = f"Bearer {signer.token(aud='web')}"
    lean_app = create_app(gateway_settings())
    routes = build_every_route(lean_app)
    with monkeypatch.context() as patch:  # the gateway with FastAPI's own handler on every route
        patch.setattr(LeanRoute, "get_route_handler", APIRoute.get_route_handler)
        stock_app = create_app(gateway_settings())
        build_every_route(stock_app)
    answers = {}
    for name, app in (("lean", lean_app), ("stock", stock_app)):
        async with running(app) as client:
            app.state.runtime.verifier = signer.verifier(audiences=USER_AUDIENCES)
            out = answers[name] = []
            for route in routes:
                for method, path, headers, body in requests_for(route):
                    headers = {"authorization": token, **headers}
                    out.append(comparable(await client.request(method, path, headers=headers, content=body)))
    statuses = {answer[0] for answer in answers["lean"]}
    assert {400, 401, 503} <= statuses  # the requests reach validation and the (down) upstreams
    for request, lean, stock in zip(
        [r for route in routes for r in requests_for(route)], answers["lean"], answers["stock"], strict=True
    ):
        assert lean == stock, request
