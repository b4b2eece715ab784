"""The reliability suite's drivers (shared/spec/quality.md, Reliability R2–R8), used by the fast
form in `make test` (tests/reliability/test_*.py) and by the full form (`make reliability`,
tests/reliability/run_reliability.py). Each driver runs against a live `Suite` (the same code as
`make run`), drives the real workflow through Envoy, and returns its figures.

The workflow events: a portal user's channel request accepted by ops (`ops.channel_request.
accepted`) → billing reserves the credits and repogen opens the work order; for some, the report
path: contract, evidence, `ready_for_render` (→ one render job) and the release (→ billing
consumes, ops delivers the assignment). Effects are counted in each service's database (as the
superuser, past row-level security): one reservation per request, one work order per request,
one render job per (work order, snapshot), one `delivered` per assignment.

Clients retry what the chaos makes fail (502/503/504, connection errors) with the same
Idempotency-Key, so a write whose answer was lost is asked again, never made twice.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from zenops_devstack.process import port_open

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from test_report_flow import EVIDENCE, FIELD_LINKS, JPEG, PDF, contract  # noqa: E402

PASSWORD = "steady-granite-orchard-47"
PROPERTY = {
    "address_line1": "12 MG Road",
    "city": "Pune",
    "state": "MH",
    "pin_code": "411001",
    "property_type": "residential_flat",
}
RETRYABLE = {502, 503, 504}
WORKFLOW_SERVICES = ("ops", "billing", "repogen")  # each runs its relay and its consumers in-process


class Refused(Exception):
    """An answer that retrying cannot change (4xx, or a 5xx that is not an outage)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(
            f"{response.request.method} {response.request.url.path} → {response.status_code}: {response.text[:500]}"
        )
        self.response = response


def poll(check: Callable[[], object], what: str, timeout: float = 60.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


class Api:
    """An HTTP client through Envoy that rides out outages: retryable answers and connection
    errors are asked again (same Idempotency-Key) until `patience` seconds have passed."""

    def __init__(self, url: str, token: str | None = None, patience: float = 120.0) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=30)
        self.url, self.token, self.patience = url, token, patience
        self.retries = 0

    def clone(self, patience: float | None = None) -> Api:
        """The same caller on its own connection, with its own retry count."""
        return Api(self.url, self.token, self.patience if patience is None else patience)

    def send(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        key: str | None = None,
        params: dict | None = None,
        headers: dict | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        extra = dict(headers or {})
        if key:
            extra["idempotency-key"] = key
        return self.http.request(
            method, path, json=body if content is None else None, content=content, params=params, headers=extra
        )

    def must(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        key: str | None = None,
        params: dict | None = None,
        ok: Iterable[int] = (200, 201),
        content: bytes | None = None,
        headers: dict | None = None,
    ) -> dict:
        if key is None and method in ("POST", "PATCH", "PUT") and content is None:
            key = str(uuid.uuid4())
        deadline = time.monotonic() + self.patience
        while True:
            try:
                r = self.send(method, path, body, key=key, params=params, headers=headers, content=content)
                if r.status_code in ok:
                    return r.json() if r.content and "json" in r.headers.get("content-type", "") else {}
                if r.status_code not in RETRYABLE:
                    raise Refused(r)
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{method} {path}: no answer within {self.patience}s")
            self.retries += 1
            time.sleep(0.2)

    def get(self, path: str, **params) -> dict:
        return self.must("GET", path, params=params or None)


def login(url: str, email: str, password: str, aud: str = "web", tenant_id: str | None = None) -> str:
    body = {"email": email, "password": password, "aud": aud, **({"tenant_id": tenant_id} if tenant_id else {})}
    got = Api(url).must("POST", "/v1/auth/login", body, ok=(200,), key="")
    return got["access_token"]


# -- the firm's data (tenant A) ---------------------------------------------------------------------


@dataclass
class Partner:
    account_id: str
    channel_id: str
    portal: Api
    portal_user_id: str


@dataclass
class World:
    url: str
    admin: Api
    manager: Api
    bank_id: str
    branch_id: str
    ifsc: str
    partner: Partner

    def user(self, roles: list[str], aud: str = "web", **extra) -> tuple[Api, str]:
        email = f"rel-{uuid.uuid4().hex[:10]}@example.com"
        made = self.admin.must(
            "POST",
            "/v1/users",
            {"email": email, "display_name": "Reliability", "roles": roles, "password": PASSWORD, **extra},
        )
        return Api(self.url, login(self.url, email, PASSWORD, aud)), made["id"]

    def new_partner(self, policy: str = "credit", credits: int = 0) -> Partner:
        account = self.admin.must(
            "POST", "/v1/billing/accounts", {"display_name": f"Partner {uuid.uuid4().hex[:6]}", "policy": policy}
        )
        if credits:
            self.admin.must(
                "POST",
                f"/v1/billing/accounts/{account['id']}/credits/grant",
                {"amount": credits, "reason": "reliability opening balance"},
            )
        channel = self.admin.must(
            "POST",
            "/v1/channels",
            {
                "name": f"Channel {uuid.uuid4().hex[:8]}",
                "channel_type": "agent",
                "commission_mode": "percent",
                "commission_value": 250,
                "billing_account_id": account["id"],
            },
        )
        portal, portal_id = self.user(["portal_user"], "portal", channel_id=channel["id"])
        return Partner(account["id"], channel["id"], portal, portal_id)


def make_world(suite, credits: int = 100_000) -> World:
    url = suite.url
    admin = Api(url, login(url, *suite.admin_credentials))
    code = "R" + uuid.uuid4().hex[:5].upper()
    bank = admin.must("POST", "/v1/banks", {"code": code, "name": f"Reliability Bank {code}"})
    ifsc = "SBIN0" + uuid.uuid4().hex[:6].upper()
    branch = admin.must(
        "POST", f"/v1/banks/{bank['id']}/branches", {"name": "Kothrud", "ifsc": ifsc, "city": "Pune", "state": "MH"}
    )
    world = World(url, admin, admin, bank["id"], branch["id"], ifsc, partner=None)  # type: ignore[arg-type]
    world.manager, _ = world.user(["ops_manager"])
    world.partner = world.new_partner("credit", credits)
    return world


def sbi_world(suite, credits: int = 100_000) -> World:
    """A world whose requests name an SBI branch: repogen's report templates are SBI's."""
    world = make_world(suite, credits)
    found = [b for b in world.admin.get("/v1/banks", q="SBI")["items"] if b["code"] == "SBI"]
    bank_id = (
        found[0]["id"]
        if found
        else world.admin.must("POST", "/v1/banks", {"code": "SBI", "name": "State Bank of India"})["id"]
    )
    ifsc = "SBIN0" + uuid.uuid4().hex[:6].upper()
    branch = world.admin.must(
        "POST", f"/v1/banks/{bank_id}/branches", {"name": "Kothrud", "ifsc": ifsc, "city": "Pune", "state": "MH"}
    )
    world.bank_id, world.branch_id, world.ifsc = bank_id, branch["id"], ifsc
    return world


# -- the workflow -----------------------------------------------------------------------------------


def submit_and_accept(world: World, credits: int = 1) -> tuple[str, str]:
    """One channel request submitted by the portal user and accepted by the manager:
    (request id, assignment id)."""
    request = world.partner.portal.must(
        "POST",
        "/v1/channel-requests",
        {
            "borrower_name": "Asha Patil",
            "property": PROPERTY,
            "bank_id": world.bank_id,
            "branch_id": world.branch_id,
            "requested_service": "valuation_report",
            "credits": credits,
        },
    )
    accepted = world.manager.must("POST", f"/v1/channel-requests/{request['id']}/accept", {})
    return request["id"], accepted["channel_request"]["assignment_id"]


def _upload(world: World, assignment_id: str, kind: str, classification: str) -> str:
    photo = classification == "site_photo"
    data = (JPEG if photo else PDF) + uuid.uuid4().bytes
    m = world.manager
    presigned = m.must(
        "POST",
        "/v1/documents/presign-upload",
        {
            "filename": f"{kind}.{'jpg' if photo else 'pdf'}",
            "content_type": "image/jpeg" if photo else "application/pdf",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "classification": classification,
            "source": "desktop_upload",
            "assignment_id": assignment_id,
        },
    )
    # a repeated PUT of the same bytes (its first answer lost) may be refused as already uploaded
    Api(world.url, patience=m.patience).must(
        "PUT", presigned["upload_url"], content=data, headers=presigned["upload_headers"], ok=(200, 409)
    )
    m.must("POST", f"/v1/documents/{presigned['document_id']}/confirm", {})
    return presigned["document_id"]


def render_and_release(world: World, assignment_id: str) -> str:
    """The report path of an accepted request, to the release: its work order id."""
    m = world.manager
    work_order = poll(
        lambda: (m.get("/v1/work-orders", assignment_id=assignment_id)["items"] or [None])[0],
        "the work order",
        timeout=m.patience,
    )
    base = f"/v1/work-orders/{work_order['id']}"
    current = m.get(base)
    if current["status"] == "data_pending":
        if current["snapshot_version"] == work_order["snapshot_version"]:
            try:
                m.must(
                    "PATCH",
                    f"{base}/contract",
                    {"expected_version": current["snapshot_version"], "patch": contract(world.ifsc)},
                )
            except Refused as refused:  # a retried patch whose first answer was lost: already applied
                if refused.response.status_code != 409:
                    raise
        evidence: dict[str, str] = {}
        have = m.get(f"{base}/evidence")["items"]
        for kind, (count, classification) in EVIDENCE.items():
            mine = [e for e in have if e["kind"] == kind]
            for _ in range(count - len(mine)):
                document_id = _upload(world, assignment_id, kind, classification)
                mine.append(m.must("POST", f"{base}/evidence", {"document_id": document_id, "kind": kind})["evidence"])
            evidence[kind] = mine[0]["id"]
        linked = {link["field_key"] for link in m.get(f"{base}/field-links")["items"]}
        for field_key, kind in FIELD_LINKS.items():
            if field_key not in linked:
                m.must("POST", f"{base}/field-links", {"field_key": field_key, "evidence_id": evidence[kind]})
        try:
            m.must("POST", f"{base}/transitions", {"to": "ready_for_render"})
        except Refused as refused:
            if refused.response.status_code != 409:
                raise
    poll(
        lambda: m.get(base)["status"] in ("rendered", "released"),
        f"work order {work_order['id']} rendered",
        timeout=m.patience,
    )
    if m.get(base)["status"] == "rendered":
        try:
            m.must("POST", f"{base}/release", {})
        except Refused as refused:  # RELEASE_EXISTS: a retried release whose first answer was lost
            if refused.response.status_code != 409:
                raise
    return work_order["id"]


# -- effects, counted in the databases ---------------------------------------------------------------


def _in(ids: Iterable[str]) -> str:
    return ",".join(f"'{i}'" for i in ids) or "NULL"


def _counts(suite, db: str, sql: str) -> Counter:
    out = suite.pg.psql(sql, db)
    counts: Counter = Counter()
    for line in out.splitlines():
        if "|" in line:
            key, n = line.rsplit("|", 1)
            counts[key] = int(n)
    return counts


@dataclass
class Effects:
    expected: dict[str, set[str]] = field(default_factory=dict)
    applied: dict[str, Counter] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return sum(len(keys - set(self.applied.get(kind, {}))) for kind, keys in self.expected.items())

    @property
    def duplicated(self) -> int:
        return sum(n - 1 for counts in self.applied.values() for n in counts.values() if n > 1)

    def by_kind(self) -> dict[str, dict[str, int]]:
        return {
            kind: {
                "expected": len(keys),
                "applied": len(set(self.applied.get(kind, {})) & keys),
                "duplicated": sum(n - 1 for n in self.applied.get(kind, {}).values() if n > 1),
            }
            for kind, keys in self.expected.items()
        }


def count_effects(
    suite, requests: Iterable[str], assignments: Iterable[str] = (), work_orders: Iterable[str] = ()
) -> Effects:
    requests, assignments, work_orders = set(requests), set(assignments), set(work_orders)
    effects = Effects()
    effects.expected["reservations"] = requests
    effects.applied["reservations"] = _counts(
        suite,
        "billing",
        (
            f"SELECT ref_id, count(*) FROM reservations WHERE ref_type = 'channel_request' AND ref_id IN ({_in(requests)}) "
            "GROUP BY ref_id"
        ),
    )
    effects.expected["work_orders"] = requests
    effects.applied["work_orders"] = _counts(
        suite,
        "repogen",
        (
            f"SELECT channel_request_id, count(*) FROM work_orders WHERE channel_request_id::text IN ({_in(requests)}) "
            "GROUP BY channel_request_id"
        ),
    )
    if work_orders:
        effects.expected["render_jobs"] = work_orders
        effects.applied["render_jobs"] = _counts(
            suite,
            "repogen",
            (
                f"SELECT work_order_id, count(*) FROM render_jobs WHERE work_order_id::text IN ({_in(work_orders)}) "
                "GROUP BY work_order_id"
            ),
        )
    if assignments:
        effects.expected["deliveries"] = assignments
        effects.applied["deliveries"] = _counts(
            suite,
            "ops",
            (
                "SELECT assignment_id, count(*) FROM assignment_status_history WHERE to_status = 'DELIVERED' "
                f"AND assignment_id::text IN ({_in(assignments)}) GROUP BY assignment_id"
            ),
        )
    return effects


def settle(suite, requests, assignments=(), work_orders=(), timeout: float = 180.0) -> Effects:
    """Wait until every expected effect is applied (or the time is up), then count."""
    deadline = time.monotonic() + timeout
    while True:
        effects = count_effects(suite, requests, assignments, work_orders)
        if effects.lost == 0 or time.monotonic() > deadline:
            return effects
        time.sleep(0.5)


def events_since(suite, since: str) -> int:
    """Workflow events written to the outboxes of ops, billing and repogen since `since` (UTC)."""
    return sum(
        int(suite.pg.psql(f"SELECT count(*) FROM outbox WHERE created_at >= '{since}'", db)) for db in WORKFLOW_SERVICES
    )


def db_now(suite) -> str:
    return suite.pg.psql("SELECT now()::text")


def unpublished(suite) -> int:
    return sum(
        int(suite.pg.psql("SELECT count(*) FROM outbox WHERE published_at IS NULL", db)) for db in WORKFLOW_SERVICES
    )


# -- chaos -------------------------------------------------------------------------------------------


class Chaos:
    """kill -9 a random workflow service (its gRPC server, relay and consumers die with it) at
    random moments, and start it again, until `done()` says the workload has finished.

    It runs in the calling (main) thread and the workload in others: a child process gets
    SIGTERM when the thread that spawned it exits (PR_SET_PDEATHSIG), so restarts must come
    from a thread that outlives them."""

    def __init__(
        self,
        suite,
        *,
        every: tuple[float, float] = (1.0, 3.0),
        down: tuple[float, float] = (0.0, 1.0),
        victims: tuple[str, ...] = WORKFLOW_SERVICES,
        seed: int | None = None,
    ) -> None:
        self.suite, self.every, self.down, self.victims = suite, every, down, victims
        self.rng = random.Random(seed)
        self.kills: Counter = Counter()

    def run_until(self, done: Callable[[], bool]) -> None:
        while True:
            deadline = time.monotonic() + self.rng.uniform(*self.every)
            while time.monotonic() < deadline:
                if done():
                    return
                time.sleep(0.05)
            victim = self.rng.choice(self.victims)
            self.suite.kill_process(victim)
            self.kills[victim] += 1
            time.sleep(self.rng.uniform(*self.down))
            restart(self.suite, victim)


def restart(suite, name: str, timeout: float = 60.0) -> None:
    suite.start_process(name)
    port = suite.ports.grpc.get(name, suite.ports.gateway if name == "gateway" else None)
    poll(lambda: port_open(port), f"{name} listening again", timeout=timeout, interval=0.05)


def run_concurrently(fn: Callable[[int], object], n: int, workers: int, chaos: Chaos | None = None) -> list:
    """fn(0..n-1) on `workers` threads; with `chaos`, the chaos runs in this thread meanwhile."""
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(fn, i) for i in range(n)]
        if chaos is not None:
            chaos.run_until(lambda: all(f.done() for f in futures))
        return [f.result() for f in futures]


def suite_env(providers) -> dict[str, str]:
    """Multi-tenant (the isolation sweep's second tenant); the payment providers' API is the
    fake that billing's tests own (checkout and webhooks answer as configured, not 503)."""
    return {
        "ZENOPS_MULTI_TENANT_ENABLED": "true",
        **{f"ZENOPS_{name.upper()}": str(value) for name, value in providers.settings().items()},
    }
