"""The gateway's billing and control routes.

Part 1 (no billing running): request validation — bodies, queries, paths and the
`Idempotency-Key` header are 400s naming the field before any RPC; a valid request reaches
billing (here down: 503). A devstack TokenSigner key stands in for identity's JWKS.

Part 2 against the REAL identity and billing services (each with its own PostgreSQL
database, NATS JetStream): log in as the bootstrap super admin, then the full credit flow
(account → grant → reserve → partial consume → timeline), idempotent replays answering the
identical body (an original failure included), key reuse → 409 naming the fields, missing
keys, 403 for tokens without the capability (valuer, ops_manager, accounts, a portal user),
account changes, plans and subscriptions, usage events, reconciliation dry run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from gateway_testing import assert_problem, eventually, gateway_settings, running

from zenops_devstack.testing import TokenSigner
from zenops_gateway.app import USER_AUDIENCES, create_app
from zenops_kit.auth import JwtVerifier, RevocationList

ISSUER = "zenops-identity"
ADMIN_EMAIL = "admin@zenops.local"
ADMIN_PASSWORD = "violet-harbor-trumpet-93"
USER_PASSWORD = "quiet-meadow-lantern-58"
KEY_FIELD = "header.Idempotency-Key"


def fields(resp: httpx.Response, status: int = 400, code: str | None = "VALIDATION_FAILED") -> dict[str, str]:
    body = assert_problem(resp, status, code)
    return {e["field"]: e["message"] for e in body["errors"]}


def key() -> dict[str, str]:
    return {"idempotency-key": str(uuid.uuid4())}


# == part 1: validation, billing not running ==========================================================

AID, RID, SID = (str(uuid.uuid4()) for _ in range(3))


@pytest.fixture
async def local():
    """The gateway with identity and billing down; its verifier trusts the test's key."""
    app = create_app(gateway_settings())
    signer = TokenSigner()
    async with running(app) as client:
        app.state.runtime.verifier = JwtVerifier(
            signer.key_source(), issuer=ISSUER, audiences=USER_AUDIENCES, revocations=RevocationList()
        )
        client.headers["authorization"] = f"Bearer {signer.token(aud='web')}"
        yield client


PROTECTED = [
    ("POST", "/v1/billing/accounts"),
    ("GET", "/v1/billing/accounts"),
    ("GET", f"/v1/billing/accounts/{AID}"),
    ("PATCH", f"/v1/billing/accounts/{AID}"),
    ("GET", f"/v1/billing/accounts/{AID}/status"),
    ("GET", "/v1/billing/accounts/status?external_key=x"),
    ("POST", f"/v1/billing/accounts/{AID}/credits/grant"),
    ("POST", "/v1/billing/credits/reserve"),
    ("POST", f"/v1/billing/credits/reservations/{RID}/consume"),
    ("POST", f"/v1/billing/credits/reservations/{RID}/release"),
    ("GET", "/v1/billing/credits/reservations"),
    ("GET", f"/v1/billing/accounts/{AID}/timeline"),
    ("GET", "/v1/billing/credits/aggregate"),
    ("POST", "/v1/billing/plans"),
    ("GET", "/v1/billing/plans"),
    ("POST", "/v1/billing/subscriptions"),
    ("POST", f"/v1/billing/subscriptions/{SID}/pause"),
    ("POST", f"/v1/billing/subscriptions/{SID}/resume"),
    ("POST", f"/v1/billing/subscriptions/{SID}/cancel"),
    ("POST", "/v1/billing/events"),
    ("POST", "/v1/control/credits/reconcile"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
async def test_billing_routes_need_a_token(local, method, path):
    resp = await local.request(method, path, headers={"authorization": ""}, json={"nonsense": True})
    assert_problem(resp, 401, "TOKEN_MISSING")


async def test_credit_operations_require_an_idempotency_key(local):
    ops = [
        (f"/v1/billing/accounts/{AID}/credits/grant", {"amount": 5, "reason": "welcome"}),
        ("/v1/billing/credits/reserve", {"account_id": AID, "amount": 1, "ref_type": "manual", "ref_id": "r-1"}),
        (f"/v1/billing/credits/reservations/{RID}/consume", {"amount": 1}),
        (f"/v1/billing/credits/reservations/{RID}/release", {"reason": "cancelled"}),
    ]
    for path, body in ops:
        errors = fields(await local.post(path, json=body))
        assert set(errors) == {KEY_FIELD}, (path, errors)
        assert errors[KEY_FIELD] == "Field required"
        too_long = fields(await local.post(path, json=body, headers={"idempotency-key": "k" * 201}))
        assert too_long == {KEY_FIELD: "String should have at most 200 characters"}
        for bad in ("", "has space", "tab\tinside"):
            assert set(fields(await local.post(path, json=body, headers={"idempotency-key": bad}))) == {KEY_FIELD}
        # a valid request is forwarded: billing is down here, so 503 — not 400, not 500
        resp = await local.post(path, json=body, headers={"idempotency-key": "k" * 200})
        assert_problem(resp, 503, "UNAVAILABLE")
    # the key is optional where the operation is naturally idempotent or not a credit operation
    assert_problem(await local.post(f"/v1/billing/credits/reservations/{RID}/consume", headers=key()), 503)
    subscribe = {"account_id": AID, "plan_id": str(uuid.uuid4())}
    assert_problem(await local.post("/v1/billing/subscriptions", json=subscribe), 503)


async def test_credit_bodies_are_validated(local):
    grant = f"/v1/billing/accounts/{AID}/credits/grant"
    for amount in (0, -1, "5", 1.5, 10**13, None, True):
        errors = fields(await local.post(grant, json={"amount": amount, "reason": "r"}, headers=key()))
        assert set(errors) == {"amount"}, (amount, errors)
    errors = fields(await local.post(grant, json={"reason": "", "kind": "refill", "extra": 1}, headers=key()))
    assert set(errors) == {"amount", "reason", "kind", "extra"}, errors
    errors = fields(await local.post("/v1/billing/accounts/not-an-id/credits/grant", json={}, headers=key()))
    assert set(errors) == {"path.account_id", "amount", "reason"}, errors

    resp = await local.post(
        "/v1/billing/credits/reserve",
        json={
            "account_id": "acc-1",
            "amount": 0,
            "ref_type": "invoice",
            "ref_id": "",
            "expires_at": "2030-01-01T00:00:00",  # no offset: ambiguous, refused
            "override_reason": "x" * 501,
        },
        headers=key(),
    )
    errors = fields(resp)
    assert set(errors) == {"account_id", "amount", "ref_type", "ref_id", "expires_at", "override_reason"}, errors
    assert "x" * 50 not in resp.text  # values are not echoed
    errors = fields(await local.post("/v1/billing/credits/reserve", json={}, headers=key()))
    assert set(errors) == {"account_id", "amount", "ref_type", "ref_id"}

    consume = f"/v1/billing/credits/reservations/{RID}/consume"
    assert set(fields(await local.post(consume, json={"amount": 0}, headers=key()))) == {"amount"}
    assert set(fields(await local.post(consume, json={"amount": "all"}, headers=key()))) == {"amount"}
    errors = fields(await local.post("/v1/billing/credits/reservations/7/release", json={}, headers=key()))
    assert set(errors) == {"path.reservation_id", "reason"}


async def test_other_billing_bodies_and_queries_are_validated(local):
    errors = fields(await local.post("/v1/billing/accounts", json={"policy": "prepaid", "gstin": "27ABC"}))
    assert set(errors) == {"display_name", "policy", "gstin"}, errors
    errors = fields(
        await local.patch(f"/v1/billing/accounts/{AID}", json={"policy": None, "status": "closed", "currency": "USD"})
    )
    assert set(errors) == {"policy", "status", "currency"}, errors
    resp = await local.get("/v1/billing/accounts?status=deleted&policy=free&limit=0")
    assert set(fields(resp)) == {"query.status", "query.policy", "query.limit"}
    assert set(fields(await local.get("/v1/billing/accounts/status"))) == {"query.external_key"}
    resp = await local.get("/v1/billing/credits/reservations?account_id=x&status=pending&cursor=" + "c" * 2000)
    assert set(fields(resp)) == {"query.account_id", "query.status", "query.cursor"}
    assert set(fields(await local.get("/v1/billing/accounts/x/timeline"))) == {"path.account_id"}

    errors = fields(
        await local.post("/v1/billing/plans", json={"code": "", "credits_per_period": 0, "period": "weekly"})
    )
    assert set(errors) == {"code", "name", "credits_per_period", "period", "price_paise"}, errors
    errors = fields(
        await local.post(
            "/v1/billing/plans", json={"code": "p", "name": "P", "credits_per_period": 5, "price_paise": 9.5}
        )
    )
    assert set(errors) == {"price_paise"}
    errors = fields(await local.post("/v1/billing/subscriptions", json={"account_id": AID, "start_at": "tomorrow"}))
    assert set(errors) == {"plan_id", "start_at"}
    assert set(fields(await local.post("/v1/billing/subscriptions/nope/pause"))) == {"path.subscription_id"}

    errors = fields(
        await local.post("/v1/billing/events", json={"event_id": "", "account_id": AID, "kind": "Report Released"})
    )
    assert set(errors) == {"event_id", "kind", "quantity"}, errors

    errors = fields(await local.post("/v1/control/credits/reconcile", json={"limit": 5000}))
    assert set(errors) == {"dry_run", "limit"}
    assert set(fields(await local.post("/v1/control/credits/reconcile", json={"dry_run": "yes"}))) == {"dry_run"}


async def test_openapi_documents_the_billing_routes(local):
    spec = (await local.get("/v1/openapi.json")).json()
    paths = spec["paths"]
    documented = {(m.upper(), p) for p, item in paths.items() for m in item}
    for method, path in PROTECTED:
        template = path.split("?")[0].replace(AID, "{account_id}").replace(RID, "{reservation_id}")
        assert (method, template.replace(SID, "{subscription_id}")) in documented
    reserve = paths["/v1/billing/credits/reserve"]["post"]
    header = next(p for p in reserve["parameters"] if p["in"] == "header")
    assert header["name"] == "Idempotency-Key" and header["required"] is True
    assert header["schema"]["maxLength"] == 200
    assert "application/problem+json" in reserve["responses"]["409"]["content"]
    assert reserve["security"] == [{"bearer": []}]
    schemas = spec["components"]["schemas"]
    assert schemas["GrantBody"]["properties"]["amount"]["exclusiveMinimum"] == 0
    assert "metadata" in schemas["Problem"]["properties"]


# == part 2: the real identity and billing services ====================================================


@dataclass
class Billing:
    client: httpx.AsyncClient
    admin: str  # the bootstrap super admin's access token (every capability)

    async def call(self, method: str, path: str, token: str | None = None, **kwargs) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        headers["authorization"] = f"Bearer {token or self.admin}"
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def ok(self, method: str, path: str, status: int = 200, **kwargs) -> dict:
        resp = await self.call(method, path, **kwargs)
        assert resp.status_code == status, resp.text
        return resp.json()

    async def login(self, email: str, password: str, aud: str = "web") -> str:
        resp = await self.client.post("/v1/auth/login", json={"email": email, "password": password, "aud": aud})
        assert resp.status_code == 200, resp.text
        return resp.json()["access_token"]

    async def user_token(self, roles: list[str], aud: str = "web", **extra) -> str:
        email = f"u{uuid.uuid4().hex[:8]}@example.com"
        body = {"email": email, "display_name": "Test User", "password": USER_PASSWORD, "roles": roles, **extra}
        await self.ok("POST", "/v1/users", 201, json=body)
        return await self.login(email, USER_PASSWORD, aud)

    async def account(self, *, grant: int = 0, **fields) -> dict:
        body = {"display_name": "Acme Bank", "policy": "credit", **fields}
        account = await self.ok("POST", "/v1/billing/accounts", 201, json=body)
        if grant:
            await self.ok(
                "POST",
                f"/v1/billing/accounts/{account['id']}/credits/grant",
                json={"amount": grant, "reason": "seed"},
                headers=key(),
            )
        return account

    async def reserve(self, account_id: str, amount: int, **fields) -> httpx.Response:
        body = {"account_id": account_id, "amount": amount, "ref_type": "manual", "ref_id": uuid.uuid4().hex, **fields}
        return await self.call("POST", "/v1/billing/credits/reserve", json=body, headers=fields.pop("headers", key()))

    async def wallet(self, account_id: str) -> dict:
        return (await self.ok("GET", f"/v1/billing/accounts/{account_id}"))["wallet"]


@asynccontextmanager
async def billing_suite(start_service, nats_server, **billing_settings) -> AsyncIterator[Billing]:
    async with start_service("identity", bootstrap_admin_password=ADMIN_PASSWORD) as identity:
        identity_addr = f"127.0.0.1:{identity.port}"
        async with start_service("billing", identity_addr=identity_addr, **billing_settings) as billing:
            settings = gateway_settings(
                identity_addr=identity_addr, billing_addr=f"127.0.0.1:{billing.port}", nats_url=nats_server.url
            )
            async with running(create_app(settings)) as client:
                s = Billing(client, "")
                s.admin = await s.login(ADMIN_EMAIL, ADMIN_PASSWORD)
                yield s


def stable(problem: dict) -> dict:
    """A problem without what differs per request by design (request and trace ids)."""
    return {k: v for k, v in problem.items() if k not in ("request_id", "trace_id")}


async def test_credit_flow_account_grant_reserve_consume_timeline(start_service, nats_server):
    async with billing_suite(start_service, nats_server) as s:
        external_key = f"bank-{uuid.uuid4().hex[:6]}"
        resp = await s.call(
            "POST",
            "/v1/billing/accounts",
            json={"display_name": "Acme Bank", "policy": "credit", "external_key": external_key},
        )
        assert resp.status_code == 201, resp.text
        account = resp.json()
        aid = account["id"]
        assert resp.headers["location"] == f"/v1/billing/accounts/{aid}"
        assert account["policy"] == "credit" and account["status"] == "active" and account["currency"] == "INR"
        assert account["external_key"] == external_key and account["gstin"] is None
        assert account["wallet"] == {"granted": 0, "consumed": 0, "reserved": 0, "available": 0}
        assert account["created_at"].endswith("Z")
        assert await s.ok("GET", resp.headers["location"]) == account

        granted = await s.ok(
            "POST",
            f"/v1/billing/accounts/{aid}/credits/grant",
            json={"amount": 100, "reason": "welcome"},
            headers=key(),
        )
        assert granted["entry"]["kind"] == "grant" and granted["entry"]["amount"] == 100
        assert granted["entry"]["reason"] == "welcome" and granted["entry"]["account_id"] == aid
        assert granted["wallet"] == {"granted": 100, "consumed": 0, "reserved": 0, "available": 100}
        assert granted["entry"]["balance_after"] == granted["wallet"]

        ref = f"cr-{uuid.uuid4().hex[:8]}"
        resp = await s.reserve(aid, 30, ref_type="channel_request", ref_id=ref)
        assert resp.status_code == 201, resp.text
        reserved = resp.json()
        rid = reserved["reservation"]["id"]
        assert reserved["reservation"]["status"] == "active" and reserved["reservation"]["amount"] == 30
        assert reserved["reservation"]["ref_type"] == "channel_request" and reserved["reservation"]["ref_id"] == ref
        assert reserved["reservation"]["expires_at"].endswith("Z") and reserved["reservation"]["settled_at"] is None
        assert reserved["wallet"] == {"granted": 100, "consumed": 0, "reserved": 30, "available": 70}
        listed = await s.ok("GET", resp.headers["location"])  # the ref's reservations
        assert [r["id"] for r in listed["items"]] == [rid]

        # a second active reservation for the same ref is refused, naming the existing one
        problem = assert_problem(
            await s.reserve(aid, 5, ref_type="channel_request", ref_id=ref), 409, "RESERVATION_EXISTS"
        )
        assert problem["metadata"]["reservation_id"] == rid

        # partial consume: 20 of 30; the remainder goes back to available in the same step
        consumed = await s.ok(
            "POST", f"/v1/billing/credits/reservations/{rid}/consume", json={"amount": 20}, headers=key()
        )
        assert consumed["reservation"]["status"] == "consumed" and consumed["reservation"]["consumed_amount"] == 20
        assert consumed["reservation"]["settled_at"].endswith("Z")
        assert consumed["wallet"] == {"granted": 100, "consumed": 20, "reserved": 0, "available": 80}
        # consumed is final: release → 409 with the reason code
        resp = await s.call(
            "POST", f"/v1/billing/credits/reservations/{rid}/release", json={"reason": "late"}, headers=key()
        )
        assert_problem(resp, 409, "RESERVATION_ALREADY_CONSUMED")

        # a second reservation, released
        other = (await s.reserve(aid, 10)).json()["reservation"]
        released = await s.ok(
            "POST",
            f"/v1/billing/credits/reservations/{other['id']}/release",
            json={"reason": "cancelled"},
            headers=key(),
        )
        assert released["reservation"]["status"] == "released" and released["wallet"]["available"] == 80
        resp = await s.call("POST", f"/v1/billing/credits/reservations/{other['id']}/consume", headers=key())
        assert_problem(resp, 409, "RESERVATION_ALREADY_RELEASED")
        # more than available → 409 with the figures
        problem = assert_problem(await s.reserve(aid, 81), 409, "INSUFFICIENT_CREDITS")
        assert problem["metadata"]["requested"] == "81" and problem["metadata"]["available"] == "80"

        status = await s.ok("GET", f"/v1/billing/accounts/{aid}/status")
        assert status["open_reservations"] == 0 and status["unpaid_invoices"] == 0
        assert status["account"]["wallet"] == {"granted": 100, "consumed": 20, "reserved": 0, "available": 80}
        by_key = await s.ok("GET", "/v1/billing/accounts/status", params={"external_key": external_key})
        assert by_key == status
        resp = await s.call("GET", "/v1/billing/accounts/status", params={"external_key": "nobody"})
        assert_problem(resp, 404)

        timeline = await s.ok("GET", f"/v1/billing/accounts/{aid}/timeline")
        items = timeline["items"]
        assert all(i["at"].endswith("Z") for i in items)
        assert [i["at"] for i in items] == sorted((i["at"] for i in items), reverse=True)  # newest first
        for item in items:
            assert item[item["type"]] is not None  # the member its type names is set
        kinds = [i["ledger_entry"]["kind"] for i in items if i["type"] == "ledger_entry"]
        assert {"grant", "reserve", "consume", "release"} <= set(kinds), kinds
        assert {i["reservation"]["id"] for i in items if i["type"] == "reservation"} >= {rid, other["id"]}
        # paging: one item per page walks the same items
        seen, cursor = [], None
        while True:
            page = await s.ok(
                "GET",
                f"/v1/billing/accounts/{aid}/timeline",
                params={"limit": 1, **({"cursor": cursor} if cursor else {})},
            )
            assert len(page["items"]) <= 1
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == items

        consumed_list = await s.ok(
            "GET", "/v1/billing/credits/reservations", params={"account_id": aid, "status": "consumed"}
        )
        assert [r["id"] for r in consumed_list["items"]] == [rid]
        aggregate = await s.ok("GET", "/v1/billing/credits/aggregate")
        assert aggregate["total"] == {"granted": 100, "consumed": 20, "reserved": 0, "available": 80}
        assert aggregate["accounts"] == 1 and aggregate["active_reservations"] == 0
        assert aggregate["negative_accounts"] == 0

        listed = await s.ok("GET", "/v1/billing/accounts")
        assert [a["id"] for a in listed["items"]] == [aid] and listed["next_cursor"] is None
        assert_problem(await s.call("GET", f"/v1/billing/accounts/{uuid.uuid4()}"), 404)


async def test_idempotent_replays_and_key_reuse(start_service, nats_server):
    async with billing_suite(start_service, nats_server) as s:
        aid = (await s.account())["id"]
        grant_path = f"/v1/billing/accounts/{aid}/credits/grant"

        # same key + same request → the original answer, byte for byte, and no second effect
        k = key()
        first = await s.call("POST", grant_path, json={"amount": 50, "reason": "welcome"}, headers=k)
        again = await s.call("POST", grant_path, json={"amount": 50, "reason": "welcome"}, headers=k)
        assert first.status_code == again.status_code == 200, again.text
        assert again.content == first.content
        assert (await s.wallet(aid))["granted"] == 50

        # same key + another request → 409 naming every field that differs
        resp = await s.call("POST", grant_path, json={"amount": 60, "reason": "bonus"}, headers=k)
        problem = assert_problem(resp, 409, "IDEMPOTENCY_KEY_REUSED")
        assert {e["field"] for e in problem["errors"]} == {"amount", "reason"}, problem
        assert set(problem["metadata"]["fields"].split(",")) == {"amount", "reason"}
        # a key names the account it was first used on; on another account the path differs
        other = (await s.account())["id"]
        resp = await s.call(
            "POST", f"/v1/billing/accounts/{other}/credits/grant", json={"amount": 50, "reason": "welcome"}, headers=k
        )
        problem = assert_problem(resp, 409, "IDEMPOTENCY_KEY_REUSED")
        assert {e["field"] for e in problem["errors"]} == {"path.account_id"}, problem
        assert (await s.wallet(aid))["granted"] == 50 and (await s.wallet(other))["granted"] == 0

        # account creation takes an optional key (billing reads it from the call's metadata)
        ak = key()
        body = {"display_name": "Once Ltd", "policy": "postpaid", "external_key": "once"}
        a1 = await s.call("POST", "/v1/billing/accounts", json=body, headers=ak)
        a2 = await s.call("POST", "/v1/billing/accounts", json=body, headers=ak)
        assert a1.status_code == a2.status_code == 201 and a2.content == a1.content, a2.text
        resp = await s.call("POST", "/v1/billing/accounts", json={**body, "display_name": "Twice Ltd"}, headers=ak)
        assert {e["field"] for e in assert_problem(resp, 409, "IDEMPOTENCY_KEY_REUSED")["errors"]} == {"display_name"}
        listed = await s.ok("GET", "/v1/billing/accounts", params={"policy": "postpaid"})
        assert [a["id"] for a in listed["items"]] == [a1.json()["id"]]

        # reserve and consume replays: the same 201/200 body, one effect
        rk = key()
        body = {"account_id": aid, "amount": 20, "ref_type": "work_order", "ref_id": "wo-1"}
        r1 = await s.call("POST", "/v1/billing/credits/reserve", json=body, headers=rk)
        r2 = await s.call("POST", "/v1/billing/credits/reserve", json=body, headers=rk)
        assert r1.status_code == r2.status_code == 201 and r2.content == r1.content, r2.text
        assert r2.headers["location"] == r1.headers["location"]
        rid = r1.json()["reservation"]["id"]
        resp = await s.call("POST", "/v1/billing/credits/reserve", json={**body, "amount": 21}, headers=rk)
        assert {e["field"] for e in assert_problem(resp, 409, "IDEMPOTENCY_KEY_REUSED")["errors"]} == {"amount"}
        ck = key()
        c1 = await s.call("POST", f"/v1/billing/credits/reservations/{rid}/consume", json={"amount": 5}, headers=ck)
        c2 = await s.call("POST", f"/v1/billing/credits/reservations/{rid}/consume", json={"amount": 5}, headers=ck)
        assert c1.status_code == c2.status_code == 200 and c2.content == c1.content, c2.text
        assert (await s.wallet(aid)) == {"granted": 50, "consumed": 5, "reserved": 0, "available": 45}

        # an original failure is replayed as the same failure, even once it would succeed
        fk = key()
        big = {"account_id": aid, "amount": 60, "ref_type": "manual", "ref_id": "m-1"}
        f1 = await s.call("POST", "/v1/billing/credits/reserve", json=big, headers=fk)
        p1 = assert_problem(f1, 409, "INSUFFICIENT_CREDITS")
        await s.ok("POST", grant_path, json={"amount": 100, "reason": "top up"}, headers=key())
        f2 = await s.call("POST", "/v1/billing/credits/reserve", json=big, headers=fk)
        assert stable(assert_problem(f2, 409, "INSUFFICIENT_CREDITS")) == stable(p1)
        # with a fresh key the same reserve now succeeds
        assert (await s.call("POST", "/v1/billing/credits/reserve", json=big, headers=key())).status_code == 201
        assert (await s.wallet(aid)) == {"granted": 150, "consumed": 5, "reserved": 60, "available": 85}


async def test_missing_key_changes_nothing(start_service, nats_server):
    async with billing_suite(start_service, nats_server) as s:
        aid = (await s.account(grant=10))["id"]
        rid = (await s.reserve(aid, 4)).json()["reservation"]["id"]
        before = await s.wallet(aid)
        for path, body in [
            (f"/v1/billing/accounts/{aid}/credits/grant", {"amount": 5, "reason": "r"}),
            ("/v1/billing/credits/reserve", {"account_id": aid, "amount": 1, "ref_type": "manual", "ref_id": "x"}),
            (f"/v1/billing/credits/reservations/{rid}/consume", {"amount": 1}),
            (f"/v1/billing/credits/reservations/{rid}/release", {"reason": "r"}),
        ]:
            assert set(fields(await s.call("POST", path, json=body))) == {KEY_FIELD}
        assert await s.wallet(aid) == before == {"granted": 10, "consumed": 0, "reserved": 4, "available": 6}


async def test_tokens_without_the_capability_get_403(start_service, nats_server):
    async with billing_suite(start_service, nats_server) as s:
        aid = (await s.account(grant=10))["id"]
        rid = (await s.reserve(aid, 2)).json()["reservation"]["id"]
        reserve = {"account_id": aid, "amount": 1, "ref_type": "manual", "ref_id": "r-403"}
        writes = [
            ("POST", "/v1/billing/accounts", {"display_name": "X", "policy": "credit"}),
            ("POST", f"/v1/billing/accounts/{aid}/credits/grant", {"amount": 1, "reason": "r"}),
            ("POST", "/v1/billing/credits/reserve", reserve),
            ("POST", f"/v1/billing/credits/reservations/{rid}/consume", {}),
            ("POST", f"/v1/billing/credits/reservations/{rid}/release", {"reason": "r"}),
            ("POST", "/v1/control/credits/reconcile", {"dry_run": True}),
        ]
        reads = [
            ("GET", "/v1/billing/accounts", None),
            ("GET", f"/v1/billing/accounts/{aid}", None),
            ("GET", f"/v1/billing/accounts/{aid}/timeline", None),
            ("GET", "/v1/billing/credits/aggregate", None),
        ]
        # a valuer has no billing capability at all; a portal user neither (and is in another tenant)
        valuer = await s.user_token(["valuer"])
        portal = await s.user_token(["portal_user"], aud="portal", channel_id=str(uuid.uuid4()))
        for token in (valuer, portal):
            for method, path, body in writes + reads:
                resp = await s.call(method, path, token, json=body, headers=key())
                assert_problem(resp, 403)
        # an ops manager reads (billing.read) but moves no credits
        manager = await s.user_token(["ops_manager"])
        for method, path, _ in reads:
            assert (await s.call(method, path, manager)).status_code == 200
        for method, path, body in writes:
            problem = assert_problem(await s.call(method, path, manager, json=body, headers=key()), 403)
            assert problem["code"] == "MISSING_CAPABILITY", problem
        # accounts staff grant and reserve, but need billing.override to reserve beyond available
        # and billing.reconcile to reconcile
        accounts = await s.user_token(["accounts"])
        resp = await s.call("POST", "/v1/billing/credits/reserve", accounts, json=reserve, headers=key())
        assert resp.status_code == 201, resp.text
        over = {**reserve, "ref_id": "r-over", "amount": 1000, "override_reason": "urgent"}
        assert_problem(await s.call("POST", "/v1/billing/credits/reserve", accounts, json=over, headers=key()), 403)
        resp = await s.call("POST", "/v1/control/credits/reconcile", accounts, json={"dry_run": True})
        assert_problem(resp, 403)
        # nothing the refused calls asked for happened
        assert await s.wallet(aid) == {"granted": 10, "consumed": 0, "reserved": 3, "available": 7}


async def test_consume_beyond_reserved_and_expiry(start_service, nats_server):
    async with billing_suite(start_service, nats_server, expiry_sweep_interval=0.2) as s:
        aid = (await s.account(grant=10))["id"]
        rid = (await s.reserve(aid, 3)).json()["reservation"]["id"]
        resp = await s.call(
            "POST", f"/v1/billing/credits/reservations/{rid}/consume", json={"amount": 4}, headers=key()
        )
        assert_problem(resp, 409, "EXCEEDS_RESERVED_AMOUNT")
        assert (await s.wallet(aid))["reserved"] == 3  # nothing moved

        soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        short = (await s.reserve(aid, 2, expires_at=soon)).json()["reservation"]
        assert short["expires_at"].endswith("Z")

        async def expired() -> list:
            page = await s.ok("GET", "/v1/billing/credits/reservations", params={"status": "expired"})
            return page["items"]

        # billing's sweep expires it (poll the read side, with a deadline)
        items = await eventually(expired, lambda items: bool(items), within=20)
        assert [r["id"] for r in items] == [short["id"]] and items[0]["settled_at"].endswith("Z")
        resp = await s.call("POST", f"/v1/billing/credits/reservations/{short['id']}/consume", headers=key())
        assert_problem(resp, 409, "RESERVATION_EXPIRED")
        assert await s.wallet(aid) == {"granted": 10, "consumed": 0, "reserved": 3, "available": 7}
        timeline = await s.ok("GET", f"/v1/billing/accounts/{aid}/timeline")
        assert "expire" in {i["ledger_entry"]["kind"] for i in timeline["items"] if i["type"] == "ledger_entry"}


async def test_concurrent_reserves_through_http_never_overspend(start_service, nats_server):
    async with billing_suite(start_service, nats_server) as s:
        aid = (await s.account(grant=10))["id"]
        answers = await asyncio.gather(*(s.reserve(aid, 1) for _ in range(40)))
        codes = sorted(r.status_code for r in answers)
        assert codes == [201] * 10 + [409] * 30, codes
        assert {r.json()["code"] for r in answers if r.status_code == 409} == {"INSUFFICIENT_CREDITS"}
        assert await s.wallet(aid) == {"granted": 10, "consumed": 0, "reserved": 10, "available": 0}


async def test_odd_input_is_a_4xx_never_a_500(start_service, nats_server):
    async with billing_suite(start_service, nats_server) as s:
        aid = (await s.account(grant=10))["id"]
        nobody = str(uuid.uuid4())
        for path in (
            "/v1/billing/accounts",
            "/v1/billing/credits/reservations",
            f"/v1/billing/accounts/{aid}/timeline",
        ):
            assert set(fields(await s.call("GET", path, params={"cursor": "not-a-cursor"}))) == {"query.cursor"}, path
        # unknown ids are 404s with billing's reason
        for method, path, body in [
            ("GET", f"/v1/billing/accounts/{nobody}", None),
            ("GET", f"/v1/billing/accounts/{nobody}/status", None),
            ("GET", f"/v1/billing/accounts/{nobody}/timeline", None),
            ("POST", f"/v1/billing/accounts/{nobody}/credits/grant", {"amount": 1, "reason": "r"}),
            ("POST", f"/v1/billing/credits/reservations/{nobody}/consume", {}),
            ("POST", f"/v1/billing/credits/reservations/{nobody}/release", {"reason": "r"}),
            ("POST", "/v1/billing/subscriptions", {"account_id": aid, "plan_id": nobody}),
            ("POST", f"/v1/billing/subscriptions/{nobody}/pause", None),
        ]:
            assert_problem(await s.call(method, path, json=body, headers=key()), 404)
        assert_problem(await s.reserve(nobody, 1), 404, "ACCOUNT_NOT_FOUND")
        # values the gateway lets through and billing refuses, named as the request names them
        assert set(fields(await s.reserve(aid, 1, ref_id="ä/../x"))) == {"ref_id"}
        assert set(fields(await s.reserve(aid, 1, expires_at="2020-01-01T00:00:00Z"))) == {"expires_at"}
        resp = await s.reserve(aid, 1, expires_at="9999-12-31T23:59:59Z")  # far, but a time
        assert resp.status_code == 201 and resp.json()["reservation"]["expires_at"] == "9999-12-31T23:59:59Z"
        assert set(fields(await s.reserve(aid, 1, expires_at="0001-01-01T00:00:00+05:00"))) == {"expires_at"}
        event = {"event_id": "e-1", "account_id": aid, "kind": "api_call", "quantity": 1}
        resp = await s.call("POST", "/v1/billing/events", json={**event, "occurred_at": "0001-01-01T00:00:00Z"})
        assert resp.status_code < 500, resp.text  # whether year 1 is a plausible usage time is billing's call
        resp = await s.call("POST", "/v1/billing/events", json={**event, "event_id": "e-2", "ref_type": "x y"})
        assert set(fields(resp)) == {"ref_type", "ref_id"}


async def test_override_reserves_beyond_available(start_service, nats_server):
    async with billing_suite(start_service, nats_server) as s:
        aid = (await s.account(grant=5))["id"]
        resp = await s.reserve(aid, 8, override_reason="partner pays next week")
        assert resp.status_code == 201, resp.text
        assert resp.json()["reservation"]["override_reason"] == "partner pays next week"
        assert resp.json()["wallet"]["available"] == -3
        aggregate = await s.ok("GET", "/v1/billing/credits/aggregate")
        assert aggregate["negative_accounts"] == 1


async def test_account_changes(start_service, nats_server):
    async with billing_suite(start_service, nats_server) as s:
        account = await s.account(grant=10, gstin="27AAPFU0939F1ZV", billing_address="1 MG Road, Pune")
        aid = account["id"]
        assert account["gstin"] == "27AAPFU0939F1ZV"
        path = f"/v1/billing/accounts/{aid}"
        # {} and a reason alone change nothing
        assert await s.ok("PATCH", path, json={}) == await s.ok("GET", path)
        renamed = await s.ok(
            "PATCH",
            path,
            json={"display_name": "Acme Bank Ltd", "gstin": None},
            headers={"content-type": "application/merge-patch+json"},
        )
        assert renamed["display_name"] == "Acme Bank Ltd" and renamed["gstin"] is None
        assert renamed["billing_address"] == "1 MG Road, Pune"  # absent members are kept
        # a policy change needs a reason (billing names it)
        resp = await s.call("PATCH", path, json={"policy": "postpaid"})
        assert "reason" in fields(resp, code=None)
        changed = await s.ok("PATCH", path, json={"policy": "postpaid", "reason": "moved to monthly invoicing"})
        assert changed["policy"] == "postpaid"
        # suspended: reserving is refused with the reason code
        suspended = await s.ok("PATCH", path, json={"status": "suspended", "policy": "credit", "reason": "overdue"})
        assert suspended["status"] == "suspended"
        assert_problem(await s.reserve(aid, 1), 409, "ACCOUNT_SUSPENDED")
        listed = await s.ok("GET", "/v1/billing/accounts", params={"status": "suspended"})
        assert [a["id"] for a in listed["items"]] == [aid]
        assert (await s.ok("GET", "/v1/billing/accounts", params={"status": "active"}))["items"] == []
        # a taken external key is a conflict
        await s.account(external_key="taken")
        assert_problem(await s.call("PATCH", path, json={"external_key": "taken"}), 409)


async def test_plans_subscriptions_and_usage_events(start_service, nats_server):
    async with billing_suite(start_service, nats_server) as s:
        aid = (await s.account())["id"]
        plan = await s.ok(
            "POST",
            "/v1/billing/plans",
            201,
            json={"code": "starter-100", "name": "Starter", "credits_per_period": 100, "price_paise": 499900},
        )
        assert plan["period"] == "monthly" and plan["active"] is True and plan["price_paise"] == 499900
        assert plan in (await s.ok("GET", "/v1/billing/plans"))["items"]

        k = key()
        resp = await s.call(
            "POST", "/v1/billing/subscriptions", json={"account_id": aid, "plan_id": plan["id"]}, headers=k
        )
        assert resp.status_code == 201, resp.text
        sub = resp.json()
        assert sub["status"] == "active" and sub["account_id"] == aid and sub["next_refill_at"].endswith("Z")
        replay = await s.call(
            "POST", "/v1/billing/subscriptions", json={"account_id": aid, "plan_id": plan["id"]}, headers=k
        )
        assert replay.content == resp.content
        assert (await s.wallet(aid))["granted"] == 100  # the first period's refill, once

        sid = sub["id"]
        assert (await s.ok("POST", f"/v1/billing/subscriptions/{sid}/pause"))["status"] == "paused"
        assert (await s.ok("POST", f"/v1/billing/subscriptions/{sid}/resume"))["status"] == "active"
        assert (await s.ok("POST", f"/v1/billing/subscriptions/{sid}/cancel"))["status"] == "cancelled"
        assert_problem(await s.call("POST", f"/v1/billing/subscriptions/{sid}/resume"), 409)

        event = {
            "event_id": f"ext-{uuid.uuid4()}",
            "account_id": aid,
            "kind": "report_released",
            "quantity": 1,
            "ref_type": "work_order",
            "ref_id": "wo-9",
            "occurred_at": "2025-04-01T10:00:00+05:30",
        }
        first = await s.call("POST", "/v1/billing/events", json=event)
        assert first.status_code == 201, first.text
        assert first.json()["created"] is True
        assert first.json()["usage"]["occurred_at"] == "2025-04-01T04:30:00Z"  # UTC
        second = await s.call("POST", "/v1/billing/events", json=event)
        assert second.status_code == 200 and second.json()["created"] is False, second.text
        timeline = await s.ok("GET", f"/v1/billing/accounts/{aid}/timeline")
        assert any(i["type"] == "usage" and i["usage"]["event_id"] == event["event_id"] for i in timeline["items"])


async def test_reconcile_dry_run_changes_nothing(start_service, nats_server):
    # Every active reservation counts as stale at once; ops and repogen are not running, so
    # their refs are left alone (never released by guess).
    async with billing_suite(start_service, nats_server, reconcile_threshold_seconds=0) as s:
        aid = (await s.account(grant=10))["id"]
        rid = (await s.reserve(aid, 3, ref_type="channel_request", ref_id="cr-77")).json()["reservation"]["id"]
        before = await s.wallet(aid)
        result = await s.ok("POST", "/v1/control/credits/reconcile", json={"dry_run": True, "limit": 10})
        assert result["dry_run"] is True and result["violations"] == []
        planned = {a["reservation_id"]: a for a in result["actions"]}
        assert planned[rid]["action"] == "leave" and planned[rid]["ref_type"] == "channel_request"
        assert planned[rid]["reason"]
        assert await s.wallet(aid) == before
        active = await s.ok("GET", "/v1/billing/credits/reservations", params={"status": "active"})
        assert [r["id"] for r in active["items"]] == [rid]
        real = await s.ok("POST", "/v1/control/credits/reconcile", json={"dry_run": False})
        assert real["dry_run"] is False and real["violations"] == []
        assert await s.wallet(aid) == before  # left alone: the owner did not answer
