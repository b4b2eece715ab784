"""The whole suite through Envoy: what `make run` gives a user."""

import json
import time

import httpx

SERVICES = {"identity", "ops", "billing", "repogen"}


def poll_status(suite, want: int, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        status, body = suite.health()
        if status == want:
            return body
        assert time.monotonic() < deadline, f"/v1/health stayed {status}: {body}"
        time.sleep(0.1)


def control_reader(suite) -> dict[str, str]:
    """The bootstrap super admin's authorization (control.read): /v1/meta and health's details."""
    email, password = suite.admin_credentials
    r = httpx.post(f"{suite.url}/v1/auth/login", json={"email": email, "password": password, "aud": "web"})
    assert r.status_code == 200, r.text
    return {"authorization": f"Bearer {r.json()['access_token']}"}


def test_health_through_envoy_reports_every_service_and_nats(suite):
    r = httpx.get(f"{suite.url}/v1/health")
    assert r.status_code == 200 and r.json() == {"status": "up"}  # anonymous: up or down only
    assert httpx.get(f"{suite.url}/v1/meta").status_code == 401
    r = httpx.get(f"{suite.url}/v1/health", headers=control_reader(suite))
    checks = r.json()["checks"]
    assert {name for name, c in checks.items() if c["status"] == "SERVING"} >= SERVICES | {"nats"}
    assert r.headers["x-request-id"]


def test_meta_lists_all_five_services(suite):
    body = httpx.get(f"{suite.url}/v1/meta", headers=control_reader(suite)).json()
    services = body["services"]
    assert set(services) == SERVICES | {"gateway"}
    for name in SERVICES:
        assert services[name]["name"] == name
        assert services[name]["git_sha"] and services[name]["build_time"]
        assert services[name]["environment"] == "local"


def test_openapi_is_served(suite):
    doc = httpx.get(f"{suite.url}/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert "/v1/health" in doc["paths"] and "/v1/meta" in doc["paths"]


def test_unknown_paths_get_problem_json(suite):
    outside = httpx.get(f"{suite.url}/not-an-api")  # Envoy answers: no route
    assert outside.status_code == 404
    inside = httpx.get(f"{suite.url}/v1/no-such-thing")  # the gateway answers
    assert inside.status_code == 404
    assert inside.headers["content-type"].startswith("application/problem+json")
    assert inside.json()["status"] == 404
    assert inside.headers["x-content-type-options"] == "nosniff"


def test_a_stopped_service_turns_health_503_and_recovers_alone(suite):
    admin = control_reader(suite)
    assert suite.stop_process("billing") == 0  # graceful SIGTERM exit
    poll_status(suite, 503)
    body = httpx.get(f"{suite.url}/v1/health", headers=admin).json()
    assert body["checks"]["billing"]["status"] != "SERVING"
    assert body["checks"]["ops"]["status"] == "SERVING"
    suite.start_process("billing")
    poll_status(suite, 200)


def test_service_logs_are_structured_json(suite):
    lines = [json.loads(line) for line in (suite.logs / "billing.log").read_text().splitlines() if line.startswith("{")]
    assert lines and all("ts" in entry and "level" in entry for entry in lines)


def test_one_service_meta_reads_its_schema_revision(suite):
    admin = control_reader(suite)
    r = httpx.get(f"{suite.url}/v1/meta/ops", headers=admin)
    assert r.status_code == 200
    assert r.json()["name"] == "ops" and r.json()["schema_revision"] == "0005"
    assert httpx.get(f"{suite.url}/v1/meta/nope", headers=admin).status_code == 400
