"""Envoy edge: the canonical config validates, and a real Envoy running it behaves.

Envoy runs the config rendered from ``deploy/envoy/envoy.yaml`` (only addresses are
changed), in front of a tiny HTTP upstream standing in for the gateway.
"""

from __future__ import annotations

import copy
import math
import re
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from zenops_devstack import envoy as edge

ONE_MIB = 1024 * 1024
WEBHOOK_LIMIT = 256 * 1024
SAFE_RETRY_ON = "connect-failure,refused-stream,reset-before-request"
PROBLEM_JSON = "application/problem+json"


# --------------------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _render(**overrides: Any) -> str:
    args: dict[str, Any] = {
        "listen_port": _free_port(),
        "gateway_host": "127.0.0.1",
        "gateway_port": _free_port(),
        "admin_port": _free_port(),
    }
    args.update(overrides)
    return edge.render_envoy_config(**args)


def _hcm(config: dict[str, Any]) -> dict[str, Any]:
    listener = next(x for x in config["static_resources"]["listeners"] if x["name"] == "public")
    (chain,) = listener["filter_chains"]
    (hcm,) = [f for f in chain["filters"] if f["name"].endswith("http_connection_manager")]
    return hcm["typed_config"]


def _routes(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (vhost,) = _hcm(config)["route_config"]["virtual_hosts"]
    routes = {r["name"]: r for r in vhost["routes"]}
    assert len(routes) == len(vhost["routes"]), "route names must be unique"
    return routes


def _route_order(config: dict[str, Any]) -> list[dict[str, Any]]:
    (vhost,) = _hcm(config)["route_config"]["virtual_hosts"]
    return vhost["routes"]


def _header_matches(spec: dict[str, Any], headers: dict[str, str]) -> bool:
    """The subset of Envoy's HeaderMatcher semantics used by our routes."""
    if spec.get("invert_match"):
        return not _header_matches({k: v for k, v in spec.items() if k != "invert_match"}, headers)
    value = headers.get(spec["name"].lower())
    if spec.get("present_match"):
        return value is not None
    if "string_match" in spec:
        sm = spec["string_match"]
        if value is None:
            return False
        if "exact" in sm:
            return value == sm["exact"]
        if "safe_regex" in sm:
            return re.fullmatch(sm["safe_regex"]["regex"], value) is not None
    if "range_match" in spec:
        if value is None or not re.fullmatch(r"-?[0-9]+", value):
            return False  # Envoy: a value that is not an integer does not match
        return int(spec["range_match"]["start"]) <= int(value) < int(spec["range_match"]["end"])
    raise AssertionError(f"unsupported header matcher in test: {spec}")


def _match(config: dict[str, Any], method: str, path: str, headers: dict[str, str] | None = None):
    """First route matching (method, path, headers), as Envoy evaluates them."""
    hdrs = {":method": method, **{k.lower(): v for k, v in (headers or {}).items()}}
    for route in _route_order(config):
        m = route["match"]
        if "path" in m and path != m["path"]:
            continue
        if "prefix" in m and not path.startswith(m["prefix"]):
            continue
        if all(_header_matches(h, hdrs) for h in m.get("headers", [])):
            return route
    raise AssertionError(f"no route for {method} {path}")


def _assert_problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON)
    body = resp.json()
    assert body["status"] == status
    assert body["title"]
    assert body["code"] and body["type"].startswith("urn:zenops:problem:")  # the gateway's shape
    return body


# --------------------------------------------------------------------------- static checks


def test_canonical_config_passes_envoy_validate() -> None:
    assert edge.ENVOY_CONFIG.is_file(), edge.ENVOY_CONFIG
    edge.validate_canonical_config()  # as shipped, with a throwaway certificate for TLS


def test_rendered_local_config_passes_envoy_validate(tmp_path: Path) -> None:
    path = tmp_path / "envoy.yaml"
    path.write_text(_render())
    edge.validate_envoy_config(path)


def test_validate_reports_envoy_errors(tmp_path: Path) -> None:
    bad = yaml.safe_load(_render())
    bad["static_resources"]["clusters"][0]["connect_timeout"] = "not-a-duration"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(edge.EnvoyConfigError, match="rejected"):
        edge.validate_envoy_config(path)


def test_render_changes_only_addresses() -> None:
    canonical = yaml.safe_load(edge.ENVOY_CONFIG.read_text())
    rendered = yaml.safe_load(
        edge.render_envoy_config(
            listen_port=18080,
            gateway_host="10.1.2.3",
            gateway_port=18000,
            admin_port=19901,
            listen_address="0.0.0.0",
        )
    )
    listener = rendered["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert listener == {"address": "0.0.0.0", "port_value": 18080}
    cluster = next(c for c in rendered["static_resources"]["clusters"] if c["name"] == "gateway")
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": "10.1.2.3", "port_value": 18000}
    assert rendered["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 19901,
    }

    # `make run` is plain HTTP: the TLS listener is dropped.
    assert [x["name"] for x in rendered["static_resources"]["listeners"]] == ["public"]

    # Put the production addresses and the TLS listener back: everything else must be identical.
    restored = copy.deepcopy(rendered)
    restored["static_resources"]["listeners"].append(copy.deepcopy(canonical["static_resources"]["listeners"][1]))
    restored["static_resources"]["listeners"][0]["address"] = copy.deepcopy(
        canonical["static_resources"]["listeners"][0]["address"]
    )
    restored_cluster = next(c for c in restored["static_resources"]["clusters"] if c["name"] == "gateway")
    canonical_cluster = next(c for c in canonical["static_resources"]["clusters"] if c["name"] == "gateway")
    restored_cluster["load_assignment"] = copy.deepcopy(canonical_cluster["load_assignment"])
    restored["admin"] = copy.deepcopy(canonical["admin"])
    assert restored == canonical


def test_render_fails_clearly_without_expected_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = edge.ENVOY_CONFIG.read_text()
    broken = tmp_path / "envoy.yaml"
    monkeypatch.setattr(edge, "ENVOY_CONFIG", broken)

    config = yaml.safe_load(original)
    config["static_resources"]["listeners"][0]["name"] = "renamed"
    broken.write_text(yaml.safe_dump(config))
    with pytest.raises(edge.EnvoyConfigError, match="listener named 'public'"):
        _render()

    config = yaml.safe_load(original)
    config["static_resources"]["clusters"][0]["name"] = "other"
    broken.write_text(yaml.safe_dump(config))
    with pytest.raises(edge.EnvoyConfigError, match="cluster named 'gateway'"):
        _render()


def test_admin_bound_to_loopback_only() -> None:
    canonical = yaml.safe_load(edge.ENVOY_CONFIG.read_text())
    assert canonical["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    # Even when the public listener is opened to every interface, admin stays local.
    rendered = yaml.safe_load(_render(listen_address="0.0.0.0"))
    assert rendered["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    # Production listener and cluster as documented.
    listener = canonical["static_resources"]["listeners"][0]
    assert listener["name"] == "public"
    assert listener["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 8080}
    cluster = canonical["static_resources"]["clusters"][0]
    assert cluster["type"] == "STRICT_DNS"
    assert cluster["connect_timeout"] == "1s"
    (hc,) = cluster["health_checks"]
    assert hc["http_health_check"]["path"] == "/v1/livez"
    assert hc["interval"] == "5s"
    assert cluster["circuit_breakers"]["thresholds"]
    assert cluster["outlier_detection"]


def test_routes_timeouts_and_retry_policies() -> None:
    config = yaml.safe_load(_render())
    routes = _routes(config)

    # Only idempotent methods, or requests carrying an Idempotency-Key, are retried,
    # and only on failures where the request provably never reached the gateway.
    cases = [
        ("GET", "/v1/tasks", {}, "api-idempotent-method", True),
        ("HEAD", "/v1/tasks", {}, "api-idempotent-method", True),
        ("OPTIONS", "/v1/tasks", {}, "api-idempotent-method", True),
        ("POST", "/v1/tasks", {}, "api", False),
        ("PATCH", "/v1/tasks/1", {}, "api", False),
        ("DELETE", "/v1/tasks/1", {}, "api", False),
        ("PUT", "/v1/tasks/1", {}, "api", False),
        ("POST", "/v1/tasks", {"Idempotency-Key": "k1"}, "api-idempotency-key", True),
        ("POST", "/v1/auth/login", {}, "auth-login", False),
        ("POST", "/v1/client-logs", {}, "client-logs", False),
        ("POST", "/v1/webhooks/stripe", {}, "webhooks", False),
        ("POST", "/v1/webhooks/razorpay", {}, "webhooks", False),
        # a webhook is never retried by Envoy, even with an Idempotency-Key (the provider retries)
        ("POST", "/v1/webhooks/razorpay", {"Idempotency-Key": "k1"}, "webhooks", False),
        ("GET", "/.well-known/jwks.json", {}, "well-known-idempotent-method", True),
        ("POST", "/.well-known/anything", {}, "well-known", False),
        ("GET", "/not-v1", {}, "not-found", False),
        ("TRACE", "/v1/tasks", {}, "method-not-allowed", False),
        ("PROPFIND", "/", {}, "method-not-allowed", False),
        ("GET", "/v1", {}, "not-found", False),
        # file URLs: downloads retried like every GET, uploads never (they stream)
        ("GET", "/v1/files/tok.sig", {}, "files-download", True),
        ("PUT", "/v1/files/tok.sig", {"Content-Length": "1048577"}, "files-upload", False),
        ("PUT", "/v1/files/tok.sig", {"Content-Length": str(25 * ONE_MIB)}, "files-upload", False),
        ("PUT", "/v1/files/tok.sig", {"Content-Length": str(25 * ONE_MIB + 1)}, "files-too-large", False),
        ("PUT", "/v1/files/tok.sig", {"Idempotency-Key": "k1"}, "files-upload", False),
    ]
    for method, path, headers, expected_name, retried in cases:
        route = _match(config, method, path, headers)
        assert route["name"] == expected_name, (method, path, headers)
        policy = route.get("route", {}).get("retry_policy")
        if retried:
            assert policy is not None, expected_name
            assert policy["retry_on"] == SAFE_RETRY_ON
            assert policy["num_retries"] >= 1
        else:
            assert policy is None, expected_name

    # No route anywhere retries on anything broader.
    for route in routes.values():
        policy = route.get("route", {}).get("retry_policy")
        if policy is not None:
            assert policy["retry_on"] == SAFE_RETRY_ON, route["name"]

    # Timeouts: 30s for webhooks, 120s for file transfers (with a 30s idle limit), 15s for
    # every other proxied route.
    expected_timeouts = {"webhooks": "30s", "files-download": "120s", "files-upload": "120s"}
    for name, route in routes.items():
        if "route" in route:
            assert route["route"]["cluster"] == "gateway"
            assert route["route"]["timeout"] == expected_timeouts.get(name, "15s"), name
    for name in ("files-download", "files-upload"):
        assert routes[name]["route"]["idle_timeout"] == "30s"
    # Only the upload routes skip the 1 MiB buffer (streamed; their limit is 25 MiB, answered
    # from the declared length); the webhooks route has its own, smaller one (256 KiB).
    overridden = [n for n, r in routes.items() if "envoy.filters.http.buffer" in r.get("typed_per_filter_config", {})]
    assert overridden == ["webhooks", "files-too-large", "files-upload"]
    for name in ("files-too-large", "files-upload"):
        assert routes[name]["typed_per_filter_config"]["envoy.filters.http.buffer"]["disabled"] is True
    assert routes["webhooks"]["typed_per_filter_config"]["envoy.filters.http.buffer"]["buffer"] == {
        "max_request_bytes": WEBHOOK_LIMIT
    }
    assert routes["files-too-large"]["direct_response"]["status"] == 413
    not_found = routes["not-found"]
    assert not_found["match"] == {"prefix": "/"}
    assert not_found["direct_response"]["status"] == 404
    assert _route_order(config)[-1] is not_found


# --------------------------------------------------------------------------- live Envoy


def test_gateway_is_health_checked(envoy, upstream) -> None:
    # Envoy's startup waits for the first health check round, so one has happened.
    assert upstream.health_checks >= 1


def test_v1_is_proxied_with_generated_request_id(client: httpx.Client, upstream) -> None:
    before = upstream.count("/v1/anything")
    resp = client.get("/v1/anything", params={"q": "1"}, headers={"user-agent": "edge-test"})
    assert resp.status_code == 200, resp.text
    echo = resp.json()
    assert echo["method"] == "GET"
    assert echo["path"] == "/v1/anything?q=1"
    request_id = echo["headers"].get("x-request-id")
    assert request_id and uuid.UUID(request_id)
    assert resp.headers["x-request-id"] == request_id  # echoed to the client for support
    # Envoy appends the client address (for loopback clients, the host's own address).
    assert echo["headers"]["x-forwarded-for"]
    assert upstream.count("/v1/anything") == before + 1
    # No x-envoy-* internals leak to clients.
    assert not [h for h in resp.headers if h.lower().startswith("x-envoy-")]


def test_client_cannot_forge_request_id_or_envoy_controls(client: httpx.Client) -> None:
    forged = "00000000-0000-4000-8000-000000000000"
    resp = client.post(
        "/v1/things",
        json={"a": 1},
        headers={
            "x-request-id": forged,
            "x-envoy-retry-on": "5xx",
            "x-envoy-max-retries": "10",
            "x-envoy-upstream-rq-timeout-ms": "1",
        },
    )
    assert resp.status_code == 200, resp.text
    seen = resp.json()["headers"]
    assert seen["x-request-id"] != forged
    assert uuid.UUID(seen["x-request-id"])
    for header in ("x-envoy-retry-on", "x-envoy-max-retries", "x-envoy-upstream-rq-timeout-ms"):
        assert header not in seen


def test_well_known_is_proxied(client: httpx.Client, upstream) -> None:
    resp = client.get("/.well-known/jwks.json")
    assert resp.status_code == 200
    assert resp.json()["path"] == "/.well-known/jwks.json"


def test_unknown_paths_get_404_from_envoy(client: httpx.Client, upstream) -> None:
    before = len(upstream.hits)
    for path in ("/not-v1", "/", "/v1", "/admin", "/v2/x"):
        resp = client.get(path)
        body = _assert_problem(resp, 404)
        assert body["request_id"] == resp.headers["x-request-id"]
    assert len(upstream.hits) == before, "Envoy must answer unknown paths itself"


def _hammer(client: httpx.Client, path: str, n: int) -> tuple[list[httpx.Response], float]:
    started = time.monotonic()
    responses = [client.post(path, json={"n": i}) for i in range(n)]
    return responses, time.monotonic() - started


def _assert_limited(responses: list[httpx.Response], elapsed: float, *, burst: int, per_second: int) -> int:
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, statuses
    ok = statuses.count(200)
    limited = statuses.count(429)
    # A bucket of `burst` tokens refilled with `per_second` tokens every second.
    allowed_max = burst + per_second * (math.ceil(elapsed) + 1)
    assert 1 <= ok <= allowed_max, (ok, limited, elapsed)
    assert limited >= len(responses) - allowed_max, (ok, limited, elapsed)
    assert limited > 0
    first_429 = statuses.index(429)
    assert first_429 <= allowed_max
    rejected = responses[first_429]
    _assert_problem(rejected, 429)
    assert rejected.headers["retry-after"] == "1"
    assert "x-ratelimit-limit" in rejected.headers
    assert "x-ratelimit-remaining" in rejected.headers
    return ok


def test_login_is_rate_limited_per_client(client: httpx.Client, upstream, envoy) -> None:
    n = 80  # bounded: well below the global bucket (4000), far above login's (20)
    before = upstream.count("/v1/auth/login")
    responses, elapsed = _hammer(client, "/v1/auth/login", n)
    ok = _assert_limited(responses, elapsed, burst=20, per_second=10)
    assert upstream.count("/v1/auth/login") == before + ok  # 429s never reach the gateway

    # Other endpoints are unaffected by the login bucket (the general limit is far higher).
    for _ in range(30):
        assert client.get("/v1/tasks").status_code == 200

    # The login bucket is per client address: another client still gets through.
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    try:
        with httpx.Client(base_url=envoy.url, transport=transport, timeout=20, trust_env=False) as other:
            resp = other.post("/v1/auth/login", json={})
    except httpx.ConnectError as exc:  # pragma: no cover - no 127.0.0.2 on this host
        pytest.skip(f"cannot use 127.0.0.2 as a source address: {exc}")
    assert resp.status_code == 200, resp.text


def test_public_client_logs_are_rate_limited(client: httpx.Client, upstream) -> None:
    before = upstream.count("/v1/client-logs")
    responses, elapsed = _hammer(client, "/v1/client-logs", 60)
    ok = _assert_limited(responses, elapsed, burst=10, per_second=5)
    assert upstream.count("/v1/client-logs") == before + ok


def test_request_body_limit_is_1_mib(client: httpx.Client, upstream) -> None:
    before = upstream.count("/v1/uploads")
    at_limit = client.post("/v1/uploads", content=b"a" * ONE_MIB, headers={"content-type": "application/octet-stream"})
    assert at_limit.status_code == 200, at_limit.text
    assert at_limit.json()["body_length"] == ONE_MIB

    too_big = client.post(
        "/v1/uploads",
        content=b"a" * (ONE_MIB + 1),
        headers={"content-type": "application/octet-stream"},
    )
    _assert_problem(too_big, 413)
    assert upstream.count("/v1/uploads") == before + 1


def test_file_uploads_stream_past_the_api_body_limit(client: httpx.Client, upstream) -> None:
    # /v1/files/ streams to the gateway: the 1 MiB API cap does not apply, the upload limit does
    before = upstream.count("/v1/files/tok.sig", "PUT")
    body = b"f" * (3 * ONE_MIB + 7)
    resp = client.put("/v1/files/tok.sig", content=body, headers={"content-type": "application/pdf"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["body_length"] == len(body)
    assert upstream.count("/v1/files/tok.sig", "PUT") == before + 1
    # and so does a chunked upload (no Content-Length)
    chunked = client.put("/v1/files/tok.sig", content=iter([b"a" * ONE_MIB, b"b" * ONE_MIB]))
    assert chunked.status_code == 200, chunked.text
    assert chunked.json()["body_length"] == 2 * ONE_MIB  # every streamed byte reached the upstream
    # downloads are proxied too (no bearer token needed here: the gateway's business)
    assert client.get("/v1/files/tok.sig").json()["path"] == "/v1/files/tok.sig"
    # the API routes keep their 1 MiB cap
    _assert_problem(client.put("/v1/documents/d/tags", content=b"x" * (ONE_MIB + 1)), 413)


def test_file_upload_over_the_upload_limit_is_refused_at_the_edge(envoy, upstream) -> None:
    # Declared too long: Envoy answers 413 from the headers alone; not a byte reaches the gateway.
    before = upstream.count("/v1/files/tok.sig")
    with socket.create_connection(("127.0.0.1", envoy.listen_port), timeout=10) as sock:
        sock.sendall(
            b"PUT /v1/files/tok.sig HTTP/1.1\r\nHost: zenops\r\nContent-Type: application/pdf\r\n"
            + f"Content-Length: {25 * ONE_MIB + 1}\r\n\r\n".encode()
        )
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    head = received.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    assert head.startswith("http/1.1 413"), head
    assert "content-type: application/problem+json" in head
    assert upstream.count("/v1/files/tok.sig") == before


def test_access_log_is_json_without_query_strings(client: httpx.Client, envoy) -> None:
    secret = uuid.uuid4().hex
    resp = client.get(f"/v1/reset-password?token={secret}", headers={"user-agent": "log-test/1"})
    assert resp.status_code == 200
    request_id = resp.headers["x-request-id"]

    # Envoy flushes access logs periodically (about once a second): poll for the line.
    deadline = time.monotonic() + 15
    log = None
    while log is None:
        log = next((e for e in envoy.access_log() if e.get("request_id") == request_id), None)
        if log is None:
            assert time.monotonic() < deadline, "access log line never appeared"
            time.sleep(0.1)
    assert log["method"] == "GET"
    assert log["path"] == "/v1/reset-password"
    assert log["status"] == 200
    assert log["user_agent"] == "log-test/1"
    assert log["upstream_host"].startswith("127.0.0.1:")
    assert log["route"] == "api-idempotent-method"
    for key in ("duration_ms", "bytes_received", "bytes_sent", "response_flags"):
        assert key in log
    assert secret not in envoy.stdout_path.read_text()


def test_file_url_tokens_are_not_logged(client: httpx.Client, envoy) -> None:
    # The signed token in a file URL's path is a credential: the access log shows the template,
    # for ops' document files and for repogen's report artifacts alike.
    secret = f"{uuid.uuid4().hex}.{uuid.uuid4().hex}"
    artifact_secret = f"{uuid.uuid4().hex}.{uuid.uuid4().hex}"
    ids = []
    for resp in (
        client.get(f"/v1/files/{secret}"),
        client.put(f"/v1/files/{secret}", content=b"%PDF-1.7"),
        client.get(f"/v1/artifact-files/{artifact_secret}"),
    ):
        assert resp.status_code == 200, resp.text
        assert resp.json()["path"].endswith(("/" + secret, "/" + artifact_secret))  # the gateway gets the real path
        ids.append(resp.headers["x-request-id"])

    def logged() -> list[dict[str, Any]]:
        entries = [e for e in envoy.access_log() if e.get("request_id") in ids]
        return entries if {e["request_id"] for e in entries} == set(ids) else []

    entries = _wait(logged, "the three file requests in the access log")
    assert sorted(e["request_id"] for e in entries) == sorted(ids)  # one line each
    assert {(e["method"], e["path"]) for e in entries} == {
        ("GET", "/v1/files/{token}"),
        ("PUT", "/v1/files/{token}"),
        ("GET", "/v1/artifact-files/{token}"),
    }
    assert {e["route"] for e in entries} == {"files-download", "files-upload", "api-idempotent-method"}
    assert all(e["status"] == 200 for e in entries)
    logs = envoy.stdout_path.read_text()
    assert secret not in logs and artifact_secret not in logs


def _wait(probe, what: str, timeout: float = 15.0):
    # Envoy flushes access logs periodically: poll (not a sleep-as-synchronisation).
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_admin_answers_on_loopback(envoy) -> None:
    resp = httpx.get(f"{envoy.admin_url}/ready", timeout=5, trust_env=False)
    assert resp.status_code == 200
    assert resp.text.strip() == "LIVE"
    rendered = yaml.safe_load(envoy.config_text)
    assert rendered["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": envoy.admin_port,
    }


def test_only_idempotent_requests_are_retried_on_connect_failure(envoy_factory) -> None:
    # A bound but non-listening socket: connections to it are refused, and no other
    # process can take the port while we hold it.
    dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    dead.bind(("127.0.0.1", 0))
    try:
        proxy = envoy_factory(gateway_port=dead.getsockname()[1])
        retries = "cluster.gateway.upstream_rq_retry"
        with httpx.Client(base_url=proxy.url, timeout=20, trust_env=False) as c:

            def retried(method: str, path: str, **kwargs: Any) -> int:
                before = proxy.counter(retries)
                resp = c.request(method, path, **kwargs)
                _assert_problem(resp, 503)
                return proxy.counter(retries) - before

            assert retried("GET", "/v1/tasks") == 2
            assert retried("POST", "/v1/tasks", json={}) == 0
            assert retried("PATCH", "/v1/tasks/1", json={}) == 0
            assert retried("DELETE", "/v1/tasks/1") == 0
            assert retried("POST", "/v1/tasks", json={}, headers={"Idempotency-Key": "k"}) == 2
            assert retried("POST", "/v1/auth/login", json={}) == 0
            # a webhook is never retried by Envoy, key or not (the provider retries on its own)
            assert retried("POST", "/v1/webhooks/stripe", content=b"{}") == 0
            assert retried("POST", "/v1/webhooks/razorpay", content=b"{}", headers={"Idempotency-Key": "k"}) == 0
    finally:
        dead.close()


# --------------------------------------------------------------------------- provider webhooks


def test_webhook_route_has_its_own_rate_limit() -> None:
    routes = _routes(yaml.safe_load(_render()))
    webhooks = routes["webhooks"]
    assert webhooks["match"] == {"prefix": "/v1/webhooks/"}
    assert "retry_policy" not in webhooks["route"] and webhooks["route"]["timeout"] == "30s"
    limit = webhooks["typed_per_filter_config"]["local_ratelimit_route"]
    assert limit["token_bucket"] == {"max_tokens": 400, "tokens_per_fill": 200, "fill_interval": "1s"}
    [per_client] = limit["descriptors"]
    assert per_client["entries"] == [{"key": "remote_address"}]
    assert per_client["token_bucket"] == {"max_tokens": 100, "tokens_per_fill": 50, "fill_interval": "1s"}
    assert limit["rate_limits"] == [{"actions": [{"remote_address": {}}]}]
    for switch in ("filter_enabled", "filter_enforced"):
        assert limit[switch]["default_value"] == {"numerator": 100, "denominator": "HUNDRED"}
    # the route's bucket has its own stats, apart from login's and client logs'
    prefixes = [
        r["typed_per_filter_config"]["local_ratelimit_route"]["stat_prefix"]
        for r in routes.values()
        if "local_ratelimit_route" in r.get("typed_per_filter_config", {})
    ]
    assert len(prefixes) == len(set(prefixes)) and "route_webhooks" in prefixes


def test_webhook_body_passes_untouched_up_to_256_kib(client: httpx.Client, upstream) -> None:
    path = "/v1/webhooks/stripe"
    before = upstream.count(path)
    raw = b'{ "id": "evt_1",\n  "type": "checkout.session.completed" }' + b" " * 100
    signature = "t=1700000000,v1=" + "ab" * 32
    resp = client.post(path, content=raw, headers={"content-type": "application/json", "stripe-signature": signature})
    assert resp.status_code == 200, resp.text
    echo = resp.json()
    assert echo["body_length"] == len(raw)
    assert echo["headers"]["stripe-signature"] == signature  # signature headers reach the gateway as sent
    assert echo["headers"]["content-length"] == str(len(raw))
    at_limit = client.post(path, content=b"a" * WEBHOOK_LIMIT)
    assert at_limit.status_code == 200 and at_limit.json()["body_length"] == WEBHOOK_LIMIT
    # one byte more: 413 from Envoy, the gateway never sees it (the API's 1 MiB does not apply here)
    _assert_problem(client.post(path, content=b"a" * (WEBHOOK_LIMIT + 1)), 413)
    _assert_problem(client.post("/v1/webhooks/razorpay", content=iter([b"a" * WEBHOOK_LIMIT, b"b"])), 413)
    assert upstream.count(path) == before + 2


def test_webhooks_are_rate_limited_per_client(client: httpx.Client, upstream) -> None:
    path = "/v1/webhooks/razorpay"
    before = upstream.count(path)
    responses, elapsed = _hammer(client, path, 260)
    ok = _assert_limited(responses, elapsed, burst=100, per_second=50)
    assert upstream.count(path) == before + ok  # 429s never reach the gateway
    # the API is unaffected by the webhook bucket
    assert client.get("/v1/tasks").status_code == 200
