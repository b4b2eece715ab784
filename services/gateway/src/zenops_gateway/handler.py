"""`LeanRoute`: FastAPI's request handling with the per-request bookkeeping done once per route.

FastAPI's generic handler (`get_request_handler` + `solve_dependencies`) works out on every
request what never changes for a route: which dependencies are async, generators or cached,
their cache keys (security-scope walks included), which parameter lists are empty, each
parameter's aliases and shape, which serialiser applies. On the gateway that was a third of
the HTTP layer's CPU. `LeanRoute` compiles a plan once per route: the dependency calls
flattened in FastAPI's order (cached ones once), only the parameter kinds the route has,
validated by FastAPI's own fields and functions (`request_params_to_args` /
`request_body_to_args` for anything but a present, valid scalar: the same
`RequestValidationError`, the same `loc`s), and the response through the response model's
serialiser to bytes, as FastAPI does.

Request order is FastAPI's: body read and parsed (invalid JSON is a 400 before any
dependency runs), dependencies (the token check: 401 before body validation), then path,
query, header and body validation, then the endpoint.

A route using anything the plan does not cover (a dependency with `yield`, a plain `def`,
dependency parameters other than `Request`, forms, streaming, security scopes, a FastAPI
body limit) keeps FastAPI's handler, as does every request while `dependency_overrides`
are set; `LeanRoute.lean` / `LeanRoute.fallback` name them. Not done per request, unlike
FastAPI's handler: its operation spans (off in app.py) and `get_telemetry_data()` (unused).
"""

from __future__ import annotations

import email.message
import functools
import inspect
import json
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

from fastapi import params
from fastapi._compat import ModelField, Undefined, field_annotation_is_sequence
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import (
    _get_param_aliases,
    _get_param_model,
    request_body_to_args,
    request_params_to_args,
)
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import EndpointContext, RequestValidationError, ResponseValidationError
from fastapi.routing import APIRoute, _effective_route_context_var, _extract_endpoint_context
from fastapi.utils import is_body_allowed_for_status_code
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class _Unsupported(Exception):
    """The route uses something the lean plan does not cover: FastAPI's handler serves it."""


def _is_async_def(call: Any) -> bool:
    if inspect.isclass(call):
        return False
    target = call if inspect.isroutine(call) else getattr(call, "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(target)


@functools.lru_cache(maxsize=256)
def _is_json_content_type(value: str) -> bool:
    """FastAPI's test (`email.message` parsing: application/json or application/*+json),
    once per distinct header value."""
    message = email.message.Message()
    message["content-type"] = value
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def _param_reader(fields: list[ModelField]) -> Callable[[Any], tuple[dict[str, Any], list[Any]]]:
    """`request_params_to_args(fields, received)`, with FastAPI's per-field work (aliases,
    parameter models, sequence shapes) done once: when every field is a plain scalar with
    one request name, present and valid, each is validated directly (what FastAPI does for
    it); anything else — a missing value, an error — goes through FastAPI's function, so
    defaults and errors are exactly FastAPI's."""
    plain = []
    for field in fields:
        aliases = _get_param_aliases(field)
        if (
            _get_param_model(field) is not None
            or field_annotation_is_sequence(field.field_info.annotation)
            or len(aliases) != 1
        ):
            return functools.partial(request_params_to_args, fields)
        plain.append((field.name, field.validate, aliases[0][1]))

    def read(received: Any) -> tuple[dict[str, Any], list[Any]]:
        values: dict[str, Any] = {}
        for name, validate, alias in plain:
            value = received.get(alias)
            if value is None:
                return request_params_to_args(fields, received)
            value, errors = validate(value, values)  # errors are FastAPI's to report, below
            if errors:
                return request_params_to_args(fields, received)
            values[name] = value
        return values, []

    return read


class _Plan:
    """One route's dependency calls, in FastAPI's order: sub-dependencies first, each cached
    dependency once (by its callable, as FastAPI keys its cache when no scopes are involved)."""

    def __init__(self, dependant: Dependant) -> None:
        # (call, ((parameter name, index of the step whose result it takes), ...), request parameter name)
        self.steps: list[tuple[Callable[..., Any], tuple[tuple[str, int], ...], str | None]] = []
        self._index: dict[Any, int] = {}
        args = [(sub.name, self._add(sub)) for sub in dependant.dependencies]
        self.endpoint_args = tuple((name, i) for name, i in args if name is not None)

    def _add(self, dep: Dependant) -> int:
        if (
            not dep.use_cache
            or dep.scope is not None
            or dep.concurrency is not None
            or dep.own_oauth_scopes
            or dep.parent_oauth_scopes
            or not _is_async_def(dep.call)
            or dep.path_params
            or dep.query_params
            or dep.header_params
            or dep.cookie_params
            or dep.body_params
            or dep.websocket_param_name
            or dep.http_connection_param_name
            or dep.response_param_name
            or dep.background_tasks_param_name
            or dep.security_scopes_param_name
        ):
            raise _Unsupported(f"dependency {dep.call!r}")
        if dep.call in self._index:
            return self._index[dep.call]
        args = tuple((sub.name, self._add(sub)) for sub in dep.dependencies)
        self.steps.append((dep.call, tuple((n, i) for n, i in args if n is not None), dep.request_param_name))
        self._index[dep.call] = len(self.steps) - 1
        return len(self.steps) - 1


def _lean_handler(route: Any, fallback: Handler) -> Handler:
    """The plan of `route` (an APIRoute or the effective route of an included router)."""
    dependant: Dependant = route.dependant
    call = dependant.call
    body_field: ModelField | None = route.body_field
    response_class = route.response_class
    strict_content_type = route.strict_content_type
    if isinstance(strict_content_type, DefaultPlaceholder):
        strict_content_type = strict_content_type.value
    if (
        not _is_async_def(call)
        or inspect.isasyncgenfunction(call)
        or route.is_sse_stream
        or route.is_json_stream
        or route.stream_item_field is not None
        or route.max_body_size is not None
        or (body_field is not None and isinstance(body_field.field_info, params.Form))
        or dependant.cookie_params
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
        or dependant.own_oauth_scopes
    ):
        raise _Unsupported("endpoint")
    plan = _Plan(dependant)
    steps = plan.steps
    endpoint_args = plan.endpoint_args
    read_path = _param_reader(dependant.path_params) if dependant.path_params else None
    read_query = _param_reader(dependant.query_params) if dependant.query_params else None
    read_headers = _param_reader(dependant.header_params) if dependant.header_params else None
    body_params, embed_body_fields = dependant.body_params, route._embed_body_fields
    request_param, response_param = dependant.request_param_name, dependant.response_param_name
    overrides = route.dependency_overrides_provider
    status_code = route.status_code
    response_field: ModelField | None = route.response_field
    dump_json = response_field is not None and isinstance(response_class, DefaultPlaceholder)
    if isinstance(response_class, DefaultPlaceholder):
        response_class = response_class.value
    serialize_options = {
        "include": route.response_model_include,
        "exclude": route.response_model_exclude,
        "by_alias": route.response_model_by_alias,
        "exclude_unset": route.response_model_exclude_unset,
        "exclude_defaults": route.response_model_exclude_defaults,
        "exclude_none": route.response_model_exclude_none,
    }
    route_path = dependant.path

    def endpoint_context(request: Request) -> EndpointContext:
        """FastAPI's context for error messages; built only when there is an error."""
        ctx = EndpointContext(**_extract_endpoint_context(call))
        if route_path:
            mount_path = request.scope.get("root_path", "").rstrip("/")
            ctx["path"] = f"{request.method} {mount_path}{route_path}"
        return ctx

    async def read_body(request: Request) -> Any:
        """FastAPI's body handling for a JSON body: parsed when the content type is JSON,
        the raw bytes otherwise (validation then names the problem), Undefined when empty."""
        try:
            body_bytes = await request.body()
            if not body_bytes:
                return Undefined
            content_type = request.headers.get("content-type")
            if (not content_type and not strict_content_type) or (content_type and _is_json_content_type(content_type)):
                return await request.json()
            return body_bytes
        except json.JSONDecodeError as e:
            error = {
                "type": "json_invalid",
                "loc": ("body", e.pos),
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": e.msg},
            }
            raise RequestValidationError([error], body=e.doc, endpoint_ctx=endpoint_context(request)) from e
        except HTTPException:
            raise  # e.g. the body limit's 413, raised from receive
        except Exception as e:
            raise HTTPException(status_code=400, detail="There was an error parsing the body") from e

    async def handler(request: Request) -> Response:
        if overrides is not None and overrides.dependency_overrides:
            return await fallback(request)
        body = await read_body(request) if body_field is not None else Undefined
        results: list[Any] = []
        for dep_call, args, request_name in steps:
            kwargs = {name: results[i] for name, i in args}
            if request_name:
                kwargs[request_name] = request
            results.append(await dep_call(**kwargs))
        values = {name: results[i] for name, i in endpoint_args}
        errors: list[Any] = []
        if read_path:
            found, errs = read_path(request.path_params)
            values.update(found)
            errors += errs
        if read_query:
            found, errs = read_query(request.query_params)
            values.update(found)
            errors += errs
        if read_headers:
            found, errs = read_headers(request.headers)
            values.update(found)
            errors += errs
        if body_params:
            found, errs = await request_body_to_args(
                body_fields=body_params, received_body=body, embed_body_fields=embed_body_fields
            )
            values.update(found)
            errors += errs
        if errors:
            raise RequestValidationError(
                errors, body=None if body is Undefined else body, endpoint_ctx=endpoint_context(request)
            )
        if request_param:
            values[request_param] = request
        sub_response: Response | None = None
        if response_param:
            sub_response = Response()
            del sub_response.headers["content-length"]
            sub_response.status_code = None  # type: ignore[assignment]
            values[response_param] = sub_response
        raw = await call(**values)
        if isinstance(raw, Response):
            return raw
        status = status_code
        if sub_response is not None and sub_response.status_code:
            status = sub_response.status_code
        kwargs = {} if status is None else {"status_code": status}
        if response_field is not None:
            value, errs = response_field.validate(raw, {}, loc=("response",))
            if errs:
                raise ResponseValidationError(errors=errs, body=raw, endpoint_ctx=endpoint_context(request))
            if dump_json:
                response = Response(
                    response_field.serialize_json(value, **serialize_options), media_type="application/json", **kwargs
                )
            else:
                response = response_class(response_field.serialize(value, **serialize_options), **kwargs)
        else:
            response = response_class(jsonable_encoder(raw), **kwargs)
        if not is_body_allowed_for_status_code(response.status_code):
            response.body = b""
        if sub_response is not None:
            response.headers.raw.extend(sub_response.headers.raw)
        return response

    return handler


class LeanRoute(APIRoute):
    """An APIRoute whose handler is compiled once per route (and per inclusion); see module doc."""

    # "METHOD path" of the routes built each way (tests keep the hot ones lean).
    lean: ClassVar[set[str]] = set()
    fallback: ClassVar[set[str]] = set()

    @functools.cached_property
    def _literal(self) -> str:
        return self.path.split("{", 1)[0]

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # FastAPI tries an included router's routes one by one, each a regex: the literal text
        # before the route's first `{` (wherever the inclusion put the route, a path it
        # matches contains that text) rules most of them out with a substring test.
        if self._literal not in scope.get("path", ""):
            return Match.NONE, {}
        return super().matches(scope)

    def get_route_handler(self) -> Handler:
        fallback = super().get_route_handler()
        # An included router's routes are built against their effective route (prefixes and
        # dependencies of the inclusion); FastAPI exposes it to this hook through this variable.
        effective = _effective_route_context_var.get()
        route = effective if effective is not None and effective.original_route is self else self
        names = {f"{method} {route.path}" for method in route.methods}
        try:
            handler = _lean_handler(route, fallback)
        except _Unsupported:
            LeanRoute.fallback |= names
            return fallback
        LeanRoute.lean |= names
        return handler
