"""The OpenAPI document (`/v1/openapi.json`): FastAPI's, completed so that tools can use it as is.

FastAPI generates the paths and schemas from the routes; this module adds what it cannot know:

- error answers are `application/problem+json` with the `Problem` schema (validation errors
  are 400, not FastAPI's 422), including the ones Envoy answers itself before the gateway
  sees the request: 429 (rate limits), 413 (body too large) and 503 (no healthy upstream);
- every operation states its security: public ones `security: []`, the others the bearer
  scheme (FastAPI writes it for routes that take the token);
- `servers`: the document is served by the API it describes, so the base is "/";
- OpenAPI `links` from the answers that create resources to the operations on one of them, so a client — and schemathesis' stateful phase — can follow real ids;
- `redocly lint` (recommended rules) reports no error on the result.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .errors import PROBLEM_MEDIA_TYPE, Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# Answered by Envoy for any route (rate limits, no healthy upstream) or any body (size limit).
EDGE_RESPONSES = {"429": "Too Many Requests", "503": "Service Unavailable"}
BODY_TOO_LARGE = {"413": "Content Too Large"}
_PARAM = re.compile(r"\{([^}]+)\}")
# Created or returned resources found inside a response rather than at its top level:
# (operation path, method) → JSON pointer of the id in the 2xx body, and the collection whose
# item operations take that id.
NESTED_IDS: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("/v1/channel-requests/{channel_request_id}/accept", "post"): [("/assignment/id", "/v1/assignments")],
    ("/v1/documents/presign-upload", "post"): [("/document_id", "/v1/documents")],
    ("/v1/billing/credits/reserve", "post"): [("/reservation/id", "/v1/billing/credits/reservations")],
    ("/v1/work-orders/{work_order_id}/evidence", "post"): [
        ("/evidence/id", "/v1/work-orders/{work_order_id}/evidence")
    ],
    ("/v1/billing/invoices/{invoice_id}/payment-proofs", "post"): [("/id", "/v1/billing/payment-proofs")],
    ("/v1/service-invoices/{invoice_id}/payment-proofs", "post"): [("/id", "/v1/billing/payment-proofs")],
}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The document for `app` (computed once, then cached on the app)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schema["servers"] = [{"url": "/", "description": "This server: Envoy in front of the gateway."}]
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem_schema.pop("$defs", {}))
    schemas.setdefault("Problem", problem_schema)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    _decimal_bounds(schemas)
    paths: dict[str, dict[str, Any]] = schema.get("paths", {})
    for path_item in paths.values():
        for operation in path_item.values():
            _problem_responses(operation)
            # FastAPI writes `security` only for routes that take the bearer token: the rest are public.
            operation.setdefault("security", [])
    _add_links(paths, schemas)
    app.openapi_schema = schema
    return schema


def _problem_responses(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    # Validation errors are answered 400 problem+json, not FastAPI's 422.
    if responses.pop("422", None) is not None:
        responses.setdefault("400", {"description": "Bad Request"})
    responses.setdefault("500", {"description": "Internal Server Error"})
    edge = EDGE_RESPONSES | (BODY_TOO_LARGE if "requestBody" in operation else {})
    for status, description in edge.items():
        responses.setdefault(status, {"description": description})
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400:
            found = (response.get("content") or {}).get("application/json", {}).get("schema")
            response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": found or PROBLEM_REF}}


def _decimal_bounds(schemas: dict[str, Any]) -> None:
    """pydantic leaves a Decimal field's `ge`/`le` as unknown keywords next to its
    number-or-string `anyOf`; OpenAPI says `minimum`/`maximum`, on the number."""

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            bounds = {k: node.pop(k) for k in ("ge", "le") if k in node}
            if bounds:
                for alternative in node.get("anyOf", []):
                    if alternative.get("type") == "number":
                        if "ge" in bounds:
                            alternative["minimum"] = bounds["ge"]
                        if "le" in bounds:
                            alternative["maximum"] = bounds["le"]
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schemas)


# -- links ------------------------------------------------------------------------------------


def _resolve(schema: dict[str, Any] | None, schemas: dict[str, Any]) -> dict[str, Any]:
    while schema and "$ref" in schema:
        schema = schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return schema or {}


def _ok_response(operation: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    for status in ("201", "200"):
        if status in operation.get("responses", {}):
            return status, operation["responses"][status]
    return None


def _json_schema(response: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    return _resolve((response.get("content") or {}).get("application/json", {}).get("schema"), schemas)


def _item_operations(paths: dict[str, dict[str, Any]], collection: str) -> list[tuple[str, str, str, dict]]:
    """(path, method, id parameter, operation) of every operation under `collection/{id}`."""
    found = []
    prefix = collection.rstrip("/") + "/{"
    for path, item in paths.items():
        if not path.startswith(prefix):
            continue
        param = path[len(prefix) :].split("}", 1)[0]
        rest_params = set(_PARAM.findall(path)) - set(_PARAM.findall(collection)) - {param}
        if rest_params:  # needs an id the answer does not give (e.g. a snapshot version)
            continue
        for method, operation in item.items():
            found.append((path, method, param, operation))
    return found


def _link_to(source_path: str, pointer: str, param: str, target_path: str, operation: dict) -> dict[str, Any]:
    parameters: dict[str, str] = {param: f"$response.body#{pointer}"}
    # ids of the source's own path (e.g. the work order of an evidence item) are passed along
    for shared in set(_PARAM.findall(source_path)) & set(_PARAM.findall(target_path)):
        if shared != param:
            parameters[shared] = f"$request.path.{shared}"
    return {
        "operationId": operation["operationId"],
        "parameters": parameters,
        "description": f"`{param}` from this answer",
    }


def _add_links(paths: dict[str, dict[str, Any]], schemas: dict[str, Any]) -> None:
    for source_path, item in paths.items():
        for method, operation in item.items():
            ok = _ok_response(operation)
            if ok is None:
                continue
            _, response = ok
            body = _json_schema(response, schemas)
            props = body.get("properties", {})
            targets: list[tuple[str, str]] = list(NESTED_IDS.get((source_path, method), []))
            # created: its own item operations (a list's first item is no link: a list may be empty)
            if not source_path.endswith("}") and method == "post" and "id" in props:
                targets.append(("/id", source_path))
            links: dict[str, Any] = {}
            for pointer, collection in targets:
                for target_path, _, param, target in _item_operations(paths, collection):
                    links[target["operationId"]] = _link_to(source_path, pointer, param, target_path, target)
            if links:
                response["links"] = links
