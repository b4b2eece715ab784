"""Balance rows, the credit ledger and reservations.

A write is ONE call of a database function (see the writes section): one round trip, and in
autocommit the balance row is locked only inside the database. Each ledger entry carries
the balances after it and a per-account `seq` from the balance row's `entries` counter
(unique per account: two writers that skipped the lock would collide).

Why: measured on one hot account, every client round trip made while its row is locked
(and every SQLAlchemy statement, ~0.25 ms of CPU) capped reserve+consume; ten statements per
pair gave ~110 pairs/s.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..domain.wallet import LedgerEntry, LedgerSums, Reservation, Wallet
from .group_commit import GroupCommit
from .sql import Statement, fetch, first

RESERVATION_COLUMNS = """
    {r}.id::text AS r_id, {r}.account_id::text AS r_account_id, {r}.amount AS r_amount, {r}.ref_type AS r_ref_type,
    {r}.ref_id AS r_ref_id, {r}.status AS r_status, {r}.consumed_amount AS r_consumed_amount,
    {r}.expires_at AS r_expires_at, {r}.created_at AS r_created_at, {r}.settled_at AS r_settled_at,
    {r}.override_reason AS r_override_reason, {r}.shortfall AS r_shortfall, {r}.actor AS r_actor,
    {r}.settle_reason AS r_settle_reason, {r}.idempotency_key AS r_idempotency_key
"""
LEDGER_COLUMNS = """
    {l}.id::text AS l_id, {l}.account_id::text AS l_account_id, {l}.kind AS l_kind, {l}.amount AS l_amount,
    COALESCE({l}.reservation_id::text, '') AS l_reservation_id, {l}.business_ref AS l_business_ref,
    {l}.actor AS l_actor, {l}.reason AS l_reason, {l}.idempotency_key AS l_idempotency_key,
    {l}.granted_after AS l_granted, {l}.consumed_after AS l_consumed, {l}.reserved_after AS l_reserved,
    {l}.overdraft_after AS l_overdraft, {l}.created_at AS l_created_at, {l}.seq AS l_seq
"""
_WALLET_OUT = "w.granted AS w_granted, w.consumed AS w_consumed, w.reserved AS w_reserved, w.overdraft AS w_overdraft"
_R = RESERVATION_COLUMNS.format(r="r")
_L = LEDGER_COLUMNS.format(l="l")


def reservation_of(row, ledger: tuple[LedgerEntry, ...] = ()) -> Reservation:
    return Reservation(
        id=row.r_id,
        account_id=row.r_account_id,
        amount=row.r_amount,
        ref_type=row.r_ref_type,
        ref_id=row.r_ref_id,
        status=row.r_status,
        consumed_amount=row.r_consumed_amount,
        expires_at=row.r_expires_at,
        created_at=row.r_created_at,
        settled_at=row.r_settled_at,
        override_reason=row.r_override_reason,
        shortfall=row.r_shortfall,
        actor=row.r_actor,
        settle_reason=row.r_settle_reason,
        idempotency_key=row.r_idempotency_key,
        ledger=ledger,
    )


def entry_of(row) -> LedgerEntry:
    return LedgerEntry(
        id=row.l_id,
        account_id=row.l_account_id,
        kind=row.l_kind,
        amount=row.l_amount,
        reservation_id=row.l_reservation_id,
        business_ref=row.l_business_ref,
        actor=row.l_actor,
        reason=row.l_reason,
        idempotency_key=row.l_idempotency_key,
        balance_after=Wallet(row.l_granted, row.l_consumed, row.l_reserved, row.l_overdraft),
        created_at=row.l_created_at,
        seq=row.l_seq,
    )


def _wallet_of(row) -> Wallet:
    return Wallet(row.w_granted, row.w_consumed, row.w_reserved, row.w_overdraft)


# -- locks and reads ------------------------------------------------------------------------


_GET_RESERVATION = Statement(f"SELECT {_R} FROM reservations r WHERE r.id = CAST(:id AS uuid)")
_ACTIVE_RESERVATION = Statement(
    f"SELECT {_R} FROM reservations r WHERE r.account_id = CAST(:aid AS uuid) AND r.ref_type = :rt "
    "AND r.ref_id = :ri AND r.status = 'ACTIVE'"
)


async def get_reservation(conn, reservation_id: str) -> Reservation | None:
    row = await first(conn, _GET_RESERVATION, {"id": reservation_id})
    return reservation_of(row) if row else None


async def active_reservation(conn, account_id: str, ref_type: str, ref_id: str) -> Reservation | None:
    row = await first(conn, _ACTIVE_RESERVATION, {"aid": account_id, "rt": ref_type, "ri": ref_id})
    return reservation_of(row) if row else None


async def reservation_ledger(conn: AsyncConnection, reservation_id: str) -> list[LedgerEntry]:
    rows = await conn.execute(
        text(f"SELECT {_L} FROM credit_ledger l WHERE l.reservation_id = CAST(:id AS uuid) ORDER BY l.seq"),
        {"id": reservation_id},
    )
    return [entry_of(r) for r in rows]


async def page_reservations(
    conn: AsyncConnection,
    *,
    account_id: str,
    status: str,
    ref_type: str,
    ref_id: str,
    before: list[str] | None,
    limit: int,
) -> list[Reservation]:
    """Newest first; `before` = (created_at ISO, id) of the previous page's last reservation."""
    clauses: list[str] = []
    params: dict = {"limit": limit}
    for column, value, cast in (
        ("account_id", account_id, "uuid"),
        ("status", status, None),
        ("ref_type", ref_type, None),
        ("ref_id", ref_id, None),
    ):
        if value:
            clauses.append(f"r.{column} = CAST(:{column} AS {cast})" if cast else f"r.{column} = :{column}")
            params[column] = value
    if before:
        clauses.append("(r.created_at, r.id) < (:before_at, CAST(:before_id AS uuid))")
        params.update(before_at=datetime.fromisoformat(before[0]), before_id=before[1])
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = await conn.execute(
        text(f"SELECT {_R} FROM reservations r {where} ORDER BY r.created_at DESC, r.id DESC LIMIT :limit"), params
    )
    return [reservation_of(r) for r in rows]


async def due_reservation(conn: AsyncConnection, now: datetime) -> tuple[Reservation, datetime] | None:
    """The ACTIVE reservation that expired first (at or before `now`), locked; one another
    transaction holds is skipped (it is being settled: whoever locked it decides)."""
    row = (
        await conn.execute(
            text(
                f"SELECT {_R}, now() AS db_now FROM reservations r WHERE r.status = 'ACTIVE' AND r.expires_at <= :now "
                "ORDER BY r.expires_at, r.id LIMIT 1 FOR UPDATE SKIP LOCKED"
            ),
            {"now": now},
        )
    ).first()
    return (reservation_of(row), row.db_now) if row else None


# -- writes ---------------------------------------------------------------------------------
#
# Each operation is one call of its database function (billing_grant, billing_reserve,
# billing_settle: migrations 0002, 0007): lock, decide, write the reservation, the balance row and
# the ledger entries, optionally claim the idempotency key and record the answer — one round
# trip. Called through CreditWrites (the credit RPCs: autocommit) the account is locked only
# while the function runs inside the database, and a hot account's concurrent reserves and
# settles commit together (billing_write_batch, migration 0009); called in a caller's
# transaction the locks last to that transaction's end. A refused operation writes nothing but
# the key's refusal, and says why (`outcome`, `detail`).


@dataclass(frozen=True)
class Claim:
    """An idempotency key for the operation to claim, and to answer retries with."""

    key: str
    operation: str
    request_hash: bytes
    request_json: str


@dataclass(frozen=True)
class Written:
    """What an operation did: `outcome` 'OK' (then reservation/entries/wallet), 'KEY_TAKEN'
    (the claim's key exists: nothing done), or a reason code with its `detail` figures."""

    outcome: str
    reservation: Reservation | None = None
    entries: tuple[LedgerEntry, ...] = ()
    wallet: Wallet | None = None
    detail: dict | None = None


def _claim_params(params: dict, claim: Claim | None) -> dict:
    params.update(
        cop=claim.operation if claim else None,
        chash=claim.request_hash if claim else None,
        creq=claim.request_json if claim else None,
    )
    return params


def _written(rows: list) -> Written:
    first = rows[0]
    if first.outcome != "OK":
        detail = first.detail
        return Written(first.outcome, detail=json.loads(detail) if isinstance(detail, str) else detail)
    entries = tuple(entry_of(r) for r in rows)
    reservation = reservation_of(first, entries) if first.r_id is not None else None
    return Written("OK", reservation=reservation, entries=entries, wallet=_wallet_of(rows[-1]))


_GRANT = Statement(
    "SELECT * FROM billing_grant(CAST(:tenant AS uuid), CAST(:aid AS uuid), :kind, CAST(:amount AS bigint), "
    ":reason, :actor, :bref, :ikey, CAST(:lid AS uuid), :cop, CAST(:chash AS bytea), CAST(:creq AS jsonb))"
)

_RESERVE = Statement(
    "SELECT * FROM billing_reserve(CAST(:tenant AS uuid), CAST(:aid AS uuid), CAST(:rid AS uuid), "
    "CAST(:amount AS bigint), :rt, :ri, CAST(:exp AS timestamptz), CAST(:may_override AS boolean), :oreason, "
    ":actor, :bref, :ikey, CAST(:adj_id AS uuid), CAST(:res_id AS uuid), :cop, CAST(:chash AS bytea), "
    "CAST(:creq AS jsonb))"
)

_SETTLE = Statement(
    "SELECT * FROM billing_settle(CAST(:tenant AS uuid), CAST(:rid AS uuid), :new_status, CAST(:take AS bigint), "
    ":x_kind, :actor, :reason, :x_reason, :ikey, CAST(:expiring AS boolean), CAST(:c_id AS uuid), "
    "CAST(:x_id AS uuid), :cop, CAST(:chash AS bytea), CAST(:creq AS jsonb))"
)


_SINGLE = {"grant": _GRANT, "reserve": _RESERVE, "settle": _SETTLE}
_BATCH = Statement(
    "SELECT b.item, (b.result).* FROM billing_write_batch(CAST(:settles AS jsonb), CAST(:reserves AS jsonb)) b"
)


def _json_value(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()  # the batch function decodes it
    return value


async def _write_one(conn, kind: str, params: dict) -> list:
    return await fetch(conn, _SINGLE[kind], params)


async def _write_batch(conn, items: list[tuple[str, dict]]) -> list[list]:
    """Settles and reserves in one statement (billing_write_batch): each item's rows, in order."""
    settles: list[dict] = []
    reserves: list[dict] = []
    for index, (kind, params) in enumerate(items):
        (settles if kind == "settle" else reserves).append(
            {"i": index, **{name: _json_value(value) for name, value in params.items()}}
        )
    rows = await fetch(conn, _BATCH, {"settles": json.dumps(settles), "reserves": json.dumps(reserves)})
    answers: list[list] = [[] for _ in items]
    for row in rows:
        answers[row.item].append(row)
    return answers


class CreditWrites:
    """Where the credit RPCs write: each write one database function call in autocommit, an
    account's concurrent reserves and settles committed together (store.group_commit, one lane
    per account). A settle names only its reservation: the reservations this process reserved
    are remembered with their account (at most `remembered`, oldest forgotten first), so their
    settles join that account's lane; any other settle runs on its own. The account a lane is
    named after is a grouping only: the database function locks the reservation's real account."""

    def __init__(self, engine: AsyncEngine, *, remembered: int = 100_000) -> None:
        self.engine = engine
        self.group = GroupCommit(engine, _write_one, _write_batch)
        self._account_of: dict[str, str] = {}
        self._remembered = remembered

    def _lane(self, kind: str, params: dict) -> str | None:
        """A reserve's account; a settle's, when this process made its reservation; else none."""
        if kind == "reserve":
            return params["aid"]
        if kind == "settle":
            return self._account_of.get(params["rid"])
        return None  # a grant: rare, on its own

    async def write(self, kind: str, params: dict) -> list:
        rows = await self.group.write(self._lane(kind, params), kind, params)
        first = rows[0] if rows else None
        if first is not None and first.outcome == "OK" and first.r_id is not None:
            if kind == "reserve":
                if len(self._account_of) >= self._remembered:
                    del self._account_of[next(iter(self._account_of))]
                self._account_of[first.r_id] = first.r_account_id
            elif kind == "settle":
                self._account_of.pop(first.r_id, None)  # settled for good: no settle of it follows
        return rows


async def _call(conn, kind: str, params: dict) -> list:
    if isinstance(conn, CreditWrites):
        return await conn.write(kind, params)
    return await _write_one(conn, kind, params)


async def write_grant(
    conn,
    *,
    tenant_id: str | None,
    account_id: str,
    kind: str,
    amount: int,
    reason: str,
    actor: str,
    business_ref: str,
    idempotency_key: str,
    claim: Claim | None = None,
) -> Written:
    """Adds credits. Outcomes: OK, ACCOUNT_NOT_FOUND (KEY_TAKEN with a claim). `tenant_id`
    None: the caller's transaction is scoped already."""
    params = {
        "tenant": tenant_id,
        "aid": account_id,
        "lid": str(uuid.uuid4()),
        "kind": kind,
        "amount": amount,
        "bref": business_ref,
        "actor": actor,
        "reason": reason,
        "ikey": idempotency_key,
    }
    return _written(await _call(conn, "grant", _claim_params(params, claim)))


async def write_reserve(
    conn,
    *,
    tenant_id: str | None,
    account_id: str,
    reservation_id: str,
    amount: int,
    ref_type: str,
    ref_id: str,
    expires_at: datetime,
    may_override: bool,
    override_reason: str,
    actor: str,
    business_ref: str,
    idempotency_key: str,
    claim: Claim | None = None,
) -> Written:
    """A new ACTIVE reservation, decided under the balance-row lock. Outcomes: OK,
    ACCOUNT_NOT_FOUND, RESERVATION_EXISTS (detail reservation_id), ACCOUNT_SUSPENDED,
    INSUFFICIENT_CREDITS (detail requested/available); with `may_override` a shortfall is let
    through as an ADJUSTMENT entry (and a CREDITS_OVERRIDE account event) before the RESERVE."""
    params = {
        "tenant": tenant_id,
        "aid": account_id,
        "rid": reservation_id,
        "amount": amount,
        "rt": ref_type,
        "ri": ref_id,
        "exp": expires_at,
        "may_override": may_override,
        "oreason": override_reason,
        "actor": actor,
        "bref": business_ref,
        "ikey": idempotency_key,
        "adj_id": str(uuid.uuid4()) if may_override else None,  # only an override's shortfall needs one
        "res_id": str(uuid.uuid4()),
    }
    return _written(await _call(conn, "reserve", _claim_params(params, claim)))


async def write_settle(
    conn,
    *,
    tenant_id: str | None,
    reservation_id: str,
    new_status: str,
    take: int,
    returned_kind: str,
    actor: str,
    reason: str,
    returned_reason: str,
    idempotency_key: str,
    expiring: bool = False,
    claim: Claim | None = None,
) -> Written:
    """ACTIVE → `new_status`, decided under the reservation's row lock (then its balance row's).
    `take` credits move to consumed (-1: all of them; 0: none), the rest goes back to available
    as `returned_kind` (RELEASE or EXPIRE). Outcomes: OK, RESERVATION_NOT_FOUND,
    RESERVATION_ALREADY_CONSUMED, RESERVATION_ALREADY_RELEASED, RESERVATION_EXPIRED (also an
    ACTIVE one past expires_at unless `expiring`), EXCEEDS_RESERVED_AMOUNT (detail requested/reserved)."""
    params = {
        "tenant": tenant_id,
        "rid": reservation_id,
        "new_status": new_status,
        "take": take,
        "x_kind": returned_kind,
        "actor": actor,
        "reason": reason,
        "x_reason": returned_reason,
        "ikey": idempotency_key,
        "expiring": expiring,
        # ids of the entries it can write: a CONSUME unless it takes nothing, the returned part's
        # unless it takes all
        "c_id": str(uuid.uuid4()) if take != 0 else None,
        "x_id": str(uuid.uuid4()) if take >= 0 else None,
    }
    return _written(await _call(conn, "settle", _claim_params(params, claim)))


_ENTRY = Statement(f"SELECT {_L} FROM credit_ledger l WHERE l.id = CAST(:id AS uuid)")


async def entry_by_id(conn, entry_id: str) -> LedgerEntry | None:
    row = await first(conn, _ENTRY, {"id": entry_id})
    return entry_of(row) if row else None


# -- aggregates and invariants --------------------------------------------------------------


async def aggregate(conn: AsyncConnection) -> tuple[Wallet, int, int, int]:
    """(totals, accounts, ACTIVE reservations, accounts with available < 0) of the tenant."""
    row = (
        await conn.execute(
            text(
                "SELECT count(*) AS accounts, COALESCE(sum(granted), 0) AS g, COALESCE(sum(consumed), 0) AS c, "
                "COALESCE(sum(reserved), 0) AS r, COALESCE(sum(overdraft), 0) AS o, "
                "count(*) FILTER (WHERE granted - consumed - reserved < 0) AS negative, "
                "(SELECT count(*) FROM reservations WHERE status = 'ACTIVE') AS active FROM wallets"
            )
        )
    ).one()
    return Wallet(int(row.g), int(row.c), int(row.r), int(row.o)), row.accounts, row.active, row.negative


def _accounts_filter(account_ids: list[str] | None, column: str) -> tuple[str, dict]:
    if account_ids is None:
        return "", {}
    return f" WHERE {column} = ANY(CAST(:ids AS uuid[]))", {"ids": account_ids}


async def invariant_rows(conn: AsyncConnection, account_ids: list[str] | None) -> list:
    """Per account: the balance row, the ledger folded by kind, the ACTIVE reservations' sum
    and the balances after its last entry."""
    where, params = _accounts_filter(account_ids, "w.account_id")
    return list(
        await conn.execute(
            text(f"""
        SELECT w.account_id::text AS account_id, w.granted, w.consumed, w.reserved, w.overdraft, w.entries,
            COALESCE(s.granted, 0) AS s_granted, COALESCE(s.consumed, 0) AS s_consumed,
            COALESCE(s.reserved, 0) AS s_reserved, COALESCE(s.overdraft, 0) AS s_overdraft,
            COALESCE(s.n, 0) AS s_entries, COALESCE(s.last_seq, 0) AS s_last_seq,
            COALESCE(a.active, 0) AS active,
            last.granted_after AS l_granted, last.consumed_after AS l_consumed, last.reserved_after AS l_reserved,
            last.overdraft_after AS l_overdraft
        FROM wallets w
        LEFT JOIN LATERAL (
            SELECT sum(amount) FILTER (WHERE kind IN ('GRANT', 'TOPUP', 'REFILL')
                                          OR (kind = 'ADJUSTMENT' AND reservation_id IS NULL)) AS granted,
                   sum(amount) FILTER (WHERE kind = 'CONSUME') AS consumed,
                   sum(CASE WHEN kind = 'RESERVE' THEN amount
                            WHEN kind IN ('CONSUME', 'RELEASE', 'EXPIRE') THEN -amount ELSE 0 END) AS reserved,
                   sum(amount) FILTER (WHERE kind = 'ADJUSTMENT' AND reservation_id IS NOT NULL) AS overdraft,
                   count(*) AS n, max(seq) AS last_seq
            FROM credit_ledger WHERE account_id = w.account_id
        ) s ON true
        LEFT JOIN LATERAL (
            SELECT sum(amount) AS active FROM reservations WHERE account_id = w.account_id AND status = 'ACTIVE'
        ) a ON true
        LEFT JOIN LATERAL (
            SELECT granted_after, consumed_after, reserved_after, overdraft_after FROM credit_ledger
            WHERE account_id = w.account_id ORDER BY seq DESC LIMIT 1
        ) last ON true
        {where}
        ORDER BY w.account_id
    """),
            params,
        )
    )


async def reservation_ledger_rows(conn: AsyncConnection, account_ids: list[str] | None) -> list:
    """Per reservation: its state and the sums of its RESERVE/CONSUME/RELEASE/EXPIRE entries."""
    where, params = _accounts_filter(account_ids, "r.account_id")
    return list(
        await conn.execute(
            text(f"""
        SELECT r.id::text AS id, r.status, r.amount, r.consumed_amount, r.shortfall,
            COALESCE(sum(l.amount) FILTER (WHERE l.kind = 'RESERVE'), 0) AS reserve,
            COALESCE(sum(l.amount) FILTER (WHERE l.kind = 'CONSUME'), 0) AS consume,
            COALESCE(sum(l.amount) FILTER (WHERE l.kind = 'RELEASE'), 0) AS release,
            COALESCE(sum(l.amount) FILTER (WHERE l.kind = 'EXPIRE'), 0) AS expire,
            COALESCE(sum(l.amount) FILTER (WHERE l.kind = 'ADJUSTMENT'), 0) AS adjustment
        FROM reservations r LEFT JOIN credit_ledger l ON l.reservation_id = r.id
        {where}
        GROUP BY r.id
    """),
            params,
        )
    )


def sums_of(row) -> LedgerSums:
    return LedgerSums(
        int(row.s_granted),
        int(row.s_consumed),
        int(row.s_reserved),
        int(row.s_overdraft),
        int(row.s_entries),
        int(row.s_last_seq),
    )
