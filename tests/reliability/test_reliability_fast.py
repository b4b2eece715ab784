"""The reliability suite's fast form (R2–R8 of shared/spec/quality.md), in `make test`: the same
drivers as `make reliability`, smaller. Ordered so that the sweeps run on an undisturbed suite
and the chaos after it; each test leaves the suite healthy for the next. The fuzzer comes last:
as a super admin it disables users and revokes sessions it finds (schemathesis infers links from
lists), the other tests' principals among them."""

from __future__ import annotations

import uuid

import httpx
import jsonschema
import pytest
from chaos_drivers import (
    r2_crash_safety,
    r3_broker_outage,
    r4_database_restart,
    r5_fuzzing,
    r7_isolation,
    r8_graceful_shutdown,
)
from chaos_harness import Api, _upload, login, submit_and_accept

pytestmark = pytest.mark.e2e


def test_r7_no_row_leaks_to_another_tenant_or_another_channel(rsuite, world, figures):
    admin = world.admin
    request_id, assignment_id = submit_and_accept(world)
    work_order = admin.get("/v1/work-orders", assignment_id=assignment_id)["items"] or [None]
    document_id = _upload(world, assignment_id, "sale_deed", "legal")
    task = admin.must("POST", "/v1/tasks", {"title": "R7 task", "assignment_id": assignment_id})
    owned = {
        "user_id": world.partner.portal_user_id,
        "account_id": world.partner.account_id,
        "channel_id": world.partner.channel_id,
        "channel_request_id": request_id,
        "assignment_id": assignment_id,
        "document_id": document_id,
        "bank_id": world.bank_id,
        "task_id": task["id"],
    }
    if work_order[0]:
        owned |= {"work_order_id": work_order[0]["id"], "version": "0"}
    channel_scoped = {
        owned[k]
        for k in (
            "user_id",
            "account_id",
            "channel_id",
            "channel_request_id",
            "assignment_id",
            "document_id",
            "work_order_id",
        )
        if k in owned
    }

    # another tenant's super admin, and the portal user of another channel of this firm
    slug = f"t{uuid.uuid4().hex[:8]}"
    tenant = admin.must("POST", "/v1/tenants", {"slug": slug, "name": "Another firm", "kind": "customer"})
    email, password = f"{slug}@example.com", "amber-lattice-harbour-62"
    admin.must(
        "POST",
        "/v1/users",
        {
            "email": email,
            "display_name": "Second firm admin",
            "password": password,
            "roles": ["super_admin"],
            "tenant_id": tenant["id"],
        },
    )
    other_tenant = Api(rsuite.url, login(rsuite.url, email, password, "web", tenant["id"]), patience=0)
    other_channel = world.new_partner("credit").portal.clone(patience=0)

    spec = httpx.get(f"{rsuite.url}/v1/openapi.json").json()
    secrets = {v for k, v in owned.items() if k != "version"}  # the ids
    got = r7_isolation(rsuite, world, spec, owned, secrets, {"other_tenant": other_tenant})
    channel = r7_isolation(rsuite, world, spec, owned, channel_scoped, {"other_channel": other_channel})
    # the owner does see them: the sweep looks where the rows are
    mine = r7_isolation(rsuite, world, spec, owned, secrets, {"owner": admin.clone(patience=0)})
    result = {
        "tried": got["tried"] + channel["tried"],
        "leaked": got["leaked"] + channel["leaked"],
        "leaks": got["leaks"] + channel["leaks"],
        "owner_sees": mine["leaked"],
        "principals": ["other_tenant", "other_channel"],
    }
    figures("r7", result)
    assert mine["leaked"] >= 10, mine
    assert result["leaked"] == 0, result["leaks"]


def test_r3_writes_go_on_while_nats_is_down_and_every_event_arrives(rsuite, world, figures):
    got = r3_broker_outage(rsuite, world, outage=5.0, workers=3)
    figures("r3", got)
    assert got["writes_during_outage"] > 0 and got["write_failures"] == 0, got
    assert (got["lost"], got["duplicated"]) == (0, 0), got


def test_r4_a_database_restart_answers_503_never_500_and_services_recover(rsuite, world, figures):
    got = r4_database_restart(rsuite, world, outage=3.0, workers=4)
    figures("r4", got)
    assert got["server_errors"] == 0 and got["restarted"] == [], (got["errors_by_route"], got["restarted"])
    assert got["failures_after_recovery"] == 0, got
    rsuite.wait_healthy()


def test_r8_sigterm_fails_no_request_in_flight(rsuite, world, figures):
    got = r8_graceful_shutdown(rsuite, world, workers=4, warmup=0.5)
    figures("r8", got)
    assert got["in_flight"] > 0, got
    assert got["failed_in_flight"] == 0 and got["server_errors"] == 0, got["services"]
    rsuite.wait_healthy()


def test_r2_kill_9_during_the_workflow_loses_and_duplicates_nothing(rsuite, world, figures):
    got = r2_crash_safety(rsuite, world, requests=60, reports=2, workers=4, every=(1.0, 2.5), seed=7)
    figures("r2", got)
    assert sum(got["kills"].values()) >= 3, got
    assert got["events"] >= 100, got
    assert (got["lost"], got["duplicated"]) == (0, 0), got


def test_r5_schemathesis_finds_no_server_error_and_no_answer_outside_the_schema(rsuite, world, figures):
    got = r5_fuzzing(rsuite, world, max_examples=3, max_time=60)
    figures("r5", got)
    if got["server_errors"] or got["schema_violations"]:
        # whole, in the captured output: pytest cuts the assertion's message short
        print(got.get("output_tail", ""), *got.get("service_warnings") or (), sep="\n")
    assert got["cases"] >= 1000, got
    assert (got["server_errors"], got["schema_violations"]) == (0, 0), (
        got.get("output_tail", got),
        got.get("service_warnings"),
    )


def test_r5_envoys_own_errors_are_problems_matching_the_schema(rsuite, world):
    spec = httpx.get(f"{rsuite.url}/v1/openapi.json").json()
    problem = {**spec["components"]["schemas"]["Problem"], "components": spec["components"]}
    problem = jsonschema.validators.validator_for(problem)(problem)
    answers = {
        "size": httpx.post(
            f"{rsuite.url}/v1/channel-requests",
            content=b"{" + b" " * (2 << 20) + b"}",
            headers={"content-type": "application/json"},
        ),
        "no route": httpx.get(f"{rsuite.url}/not-an-api"),
    }
    # the login route's per-client bucket (burst 20): the 429 comes from Envoy, not the gateway
    with httpx.Client(base_url=rsuite.url) as http:
        for _ in range(60):
            r = http.post("/v1/auth/login", json={"email": "nobody@example.com", "password": "x" * 12, "aud": "web"})
            if r.status_code == 429:
                answers["rate limit"] = r
                break
    assert set(answers) == {"size", "no route", "rate limit"}
    for what, r in answers.items():
        assert r.status_code in (404, 413, 429), (what, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json"), (what, r.headers)
        errors = [e.message for e in problem.iter_errors(r.json())]
        assert errors == [], (what, r.json(), errors)
