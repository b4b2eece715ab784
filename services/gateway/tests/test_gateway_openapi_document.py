"""The OpenAPI document as tools read it: security on every operation, servers, Envoy's own
error answers, links that carry real ids, and OpenAPI keywords only."""

from __future__ import annotations

import pytest

from zenops_gateway.app import create_app

PUBLIC = {
    ("/v1/health", "get"),
    ("/v1/auth/login", "post"),
    ("/v1/auth/refresh", "post"),
    ("/.well-known/jwks.json", "get"),
    ("/v1/webhooks/razorpay", "post"),
    ("/v1/files/{token}", "put"),
}


@pytest.fixture(scope="module")
def doc() -> dict:
    return create_app().openapi()


def operations(doc):
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_operation_states_its_security(doc):
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, method, operation in operations(doc):
        assert "security" in operation, (method, path)
        if (path, method) in PUBLIC:
            assert operation["security"] == [], (method, path)
    assert doc["paths"]["/v1/users"]["get"]["security"] == [{"bearer": []}]


def test_servers_and_edge_errors_are_documented(doc):
    assert doc["servers"] == [{"url": "/", "description": "This server: Envoy in front of the gateway."}]
    for path, method, operation in operations(doc):
        responses = operation["responses"]
        for status in ("429", "503", "500"):
            assert responses[status]["content"]["application/problem+json"]["schema"], (method, path, status)
        assert ("413" in responses) == ("requestBody" in operation), (method, path)
        assert "422" not in responses


def test_links_follow_created_ids(doc):
    created = doc["paths"]["/v1/work-orders"]["post"]["responses"]["201"]["links"]
    get_one = doc["paths"]["/v1/work-orders/{work_order_id}"]["get"]["operationId"]
    assert created[get_one]["parameters"] == {"work_order_id": "$response.body#/id"}
    get_assignment = doc["paths"]["/v1/assignments/{assignment_id}"]["get"]["operationId"]
    assert "links" not in doc["paths"]["/v1/assignments"]["get"]["responses"]["200"]  # a list may be empty
    # an id inside the answer, and the source's own path id passed along
    evidence = doc["paths"]["/v1/work-orders/{work_order_id}/evidence"]["post"]["responses"]["201"]["links"]
    remove = doc["paths"]["/v1/work-orders/{work_order_id}/evidence/{evidence_id}"]["delete"]["operationId"]
    assert evidence[remove]["parameters"] == {
        "evidence_id": "$response.body#/evidence/id",
        "work_order_id": "$request.path.work_order_id",
    }
    accepted = doc["paths"]["/v1/channel-requests/{channel_request_id}/accept"]["post"]["responses"]["200"]["links"]
    assert accepted[get_assignment]["parameters"] == {"assignment_id": "$response.body#/assignment/id"}
    # every link names an operation that exists, with parameters it has
    by_id = {op["operationId"]: op for _, _, op in operations(doc)}
    for _, _, operation in operations(doc):
        for response in operation["responses"].values():
            for link in response.get("links", {}).values():
                target = by_id[link["operationId"]]
                names = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
                assert set(link["parameters"]) <= names, link


def test_only_openapi_keywords_in_schemas(doc):
    """pydantic's Decimal bounds become minimum/maximum (redocly's `struct` rule)."""

    def walk(node):
        if isinstance(node, dict):
            assert not {"ge", "le"} & set(node), node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc["components"]["schemas"])
    latitude = doc["components"]["schemas"]["PropertyBody"]["properties"]["latitude"]["anyOf"][0]["anyOf"]
    assert {"type": "number", "minimum": -90, "maximum": 90} in latitude
