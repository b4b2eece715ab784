"""Route matching without walking every route of every router.

FastAPI tries the app's included routers in order, and an included router matches a request
by trying each of its routes (effective-route bookkeeping, a regex per route) — twice: once
to find the router, once more to pick its route. With ~150 routes that cost 50–430 µs per
request (bench/README.md, profile findings), more than the rest of FastAPI's work.

`skip_impossible_routers` gives each included router a cheap first test: the literal text
before the first `{` of each of its routes' paths. A request path that starts with none of
them cannot match any of its routes (Starlette compiles that text literally, anchored at the
start), so the router answers NONE without trying them; otherwise FastAPI matches as before.
Matching results, order and precedence are unchanged.

FastAPI then matches the chosen router's routes a second time to pick the route
(`_handle_selected` calls `_match` again on the same scope): `_match` remembers its answer
for the request's path and method in the scope, so the routes are tried once per request.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import _IncludedRouter
from starlette.routing import BaseRoute, Match
from starlette.types import Scope


def _literal_prefixes(included: _IncludedRouter) -> tuple[str, ...] | None:
    """The literal path prefixes of the router's routes; None if one has no usable prefix
    (then the router is always tried)."""
    prefixes: set[str] = set()
    for route in included.original_router.routes:
        path = getattr(route, "path", None)
        if not isinstance(path, str) or not path.startswith("/") or isinstance(route, _IncludedRouter):
            return None
        prefixes.add(path.split("{", 1)[0])
    return tuple(sorted(prefixes)) or None


def _prefiltered(route: BaseRoute, prefixes: tuple[str, ...]):
    matches = route.matches

    def prefiltered_matches(scope: Scope) -> tuple[Match, Scope]:
        if not scope.get("path", "").startswith(prefixes):
            return Match.NONE, {}
        return matches(scope)

    return prefiltered_matches


# Scope key of the last `_match` answer: (included router, path, method, answer).
_MATCH_MEMO = "zenops.route_match"


def _remembered(included: _IncludedRouter):
    match = included._match

    def remembered_match(scope: Scope):
        memo = scope.get(_MATCH_MEMO)
        if memo is not None and memo[0] is included and memo[1] == scope["path"] and memo[2] == scope.get("method"):
            return memo[3]
        answer = match(scope)
        scope[_MATCH_MEMO] = (included, scope["path"], scope.get("method"), answer)
        return answer

    return remembered_match


def skip_impossible_routers(app: FastAPI) -> None:
    """Call once, after every router is included."""
    for route in app.router.routes:
        if isinstance(route, _IncludedRouter):
            route._match = _remembered(route)  # type: ignore[method-assign]
            if prefixes := _literal_prefixes(route):
                route.matches = _prefiltered(route, prefixes)  # type: ignore[method-assign]
