"""Credits through Envoy, as `make run` serves them: the bootstrap admin (a token from the real
identity) creates a billing account, grants, reserves and partially consumes; a replay with
the same Idempotency-Key answers the same body; a user without billing capabilities and a
portal user get 403 and change nothing."""

import uuid

import httpx


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(suite, email: str, password: str, aud: str = "web") -> str:
    r = httpx.post(f"{suite.url}/v1/auth/login", json={"email": email, "password": password, "aud": aud})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def post(suite, path: str, token: str, body: dict | None = None, key: str | None = None) -> httpx.Response:
    headers = bearer(token) | ({"Idempotency-Key": key} if key else {})
    return httpx.post(f"{suite.url}{path}", json=body, headers=headers)


def test_grant_reserve_consume_through_envoy(suite):
    admin = login(suite, *suite.admin_credentials)
    r = post(
        suite,
        "/v1/billing/accounts",
        admin,
        {"display_name": "E2E Bank", "policy": "credit", "external_key": f"e2e-{uuid.uuid4().hex[:8]}"},
    )
    assert r.status_code == 201, r.text
    account = r.json()
    aid = account["id"]
    assert r.headers["location"] == f"/v1/billing/accounts/{aid}"

    r = post(
        suite, f"/v1/billing/accounts/{aid}/credits/grant", admin, {"amount": 10, "reason": "e2e"}, str(uuid.uuid4())
    )
    assert r.status_code == 200, r.text
    assert r.json()["wallet"] == {"granted": 10, "consumed": 0, "reserved": 0, "available": 10}

    key = str(uuid.uuid4())
    body = {"account_id": aid, "amount": 4, "ref_type": "manual", "ref_id": f"e2e-{uuid.uuid4().hex[:8]}"}
    reserved = post(suite, "/v1/billing/credits/reserve", admin, body, key)
    assert reserved.status_code == 201, reserved.text
    replay = post(suite, "/v1/billing/credits/reserve", admin, body, key)
    assert replay.status_code == 201 and replay.content == reserved.content
    rid = reserved.json()["reservation"]["id"]
    assert reserved.json()["wallet"] == {"granted": 10, "consumed": 0, "reserved": 4, "available": 6}

    r = post(suite, f"/v1/billing/credits/reservations/{rid}/consume", admin, {"amount": 3}, str(uuid.uuid4()))
    assert r.status_code == 200, r.text
    assert r.json()["reservation"]["status"] == "consumed" and r.json()["reservation"]["consumed_amount"] == 3
    assert r.json()["wallet"] == {"granted": 10, "consumed": 3, "reserved": 0, "available": 7}

    status = httpx.get(
        f"{suite.url}/v1/billing/accounts/status",
        params={"external_key": account["external_key"]},
        headers=bearer(admin),
    )
    assert status.status_code == 200, status.text
    assert status.json()["account"]["wallet"]["available"] == 7

    # without the header the credit operation is refused before billing sees it
    r = post(suite, f"/v1/billing/accounts/{aid}/credits/grant", admin, {"amount": 1, "reason": "e2e"})
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in r.json()["errors"]] == ["header.Idempotency-Key"]


def test_unprivileged_and_portal_tokens_get_403(suite):
    admin = login(suite, *suite.admin_credentials)
    aid = post(suite, "/v1/billing/accounts", admin, {"display_name": "E2E 403", "policy": "credit"}).json()["id"]
    password = "quiet-meadow-lantern-58"
    tokens = []
    for roles, aud, extra in ((["valuer"], "web", {}), (["portal_user"], "portal", {"channel_id": str(uuid.uuid4())})):
        email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
        r = post(
            suite,
            "/v1/users",
            admin,
            {"email": email, "display_name": "E2E User", "password": password, "roles": roles, **extra},
        )
        assert r.status_code == 201, r.text
        tokens.append(login(suite, email, password, aud))
    for token in tokens:
        r = post(
            suite, f"/v1/billing/accounts/{aid}/credits/grant", token, {"amount": 5, "reason": "x"}, str(uuid.uuid4())
        )
        assert r.status_code == 403, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        r = httpx.get(f"{suite.url}/v1/billing/accounts/{aid}", headers=bearer(token))
        assert r.status_code == 403, r.text
    wallet = httpx.get(f"{suite.url}/v1/billing/accounts/{aid}", headers=bearer(admin)).json()["wallet"]
    assert wallet["granted"] == 0
