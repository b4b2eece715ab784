"""Balance rows, the credit ledger and reservations.

Each write is ONE statement (data-modifying CTEs): the balance row update, the reservation
change and the ledger entries with the balances after them, so a write costs one round
trip while the balance row is locked. Callers lock first (`lock_account`, or
`lock_reservation` then the write's own UPDATE of the balance row); the UPDATE's RETURNING
gives the exact balances under that lock, and each ledger entry's `seq` comes from the
balance row's `entries` counter (unique per account).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.wallet import Account, LedgerEntry, LedgerSums, Reservation, Wallet
from .accounts import ACCOUNT_COLUMNS, account_of

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
        id=row.r_id, account_id=row.r_account_id, amount=row.r_amount, ref_type=row.r_ref_type, ref_id=row.r_ref_id,
        status=row.r_status, consumed_amount=row.r_consumed_amount, expires_at=row.r_expires_at,
        created_at=row.r_created_at, settled_at=row.r_settled_at, override_reason=row.r_override_reason,
        shortfall=row.r_shortfall, actor=row.r_actor, settle_reason=row.r_settle_reason,
        idempotency_key=row.r_idempotency_key, ledger=ledger,
    )


def entry_of(row) -> LedgerEntry:
    return LedgerEntry(
        id=row.l_id, account_id=row.l_account_id, kind=row.l_kind, amount=row.l_amount,
        reservation_id=row.l_reservation_id, business_ref=row.l_business_ref, actor=row.l_actor, reason=row.l_reason,
        idempotency_key=row.l_idempotency_key,
        balance_after=Wallet(row.l_granted, row.l_consumed, row.l_reserved, row.l_overdraft),
        created_at=row.l_created_at, seq=row.l_seq,
    )


def _wallet_of(row) -> Wallet:
    return Wallet(row.w_granted, row.w_consumed, row.w_reserved, row.w_overdraft)


@dataclass(frozen=True)
class Posting:
    """One ledger entry of a write, with its effect on the balance row."""

    kind: str
    amount: int
    reason: str = ""
    granted: int = 0
    consumed: int = 0
    reserved: int = 0
    overdraft: int = 0
    # Whether the entry refers to the write's reservation.
    with_reservation: bool = True


def _ledger_cte(postings: list[Posting], params: dict, reservation_param: str | None) -> str:
    """The `l` CTE inserting `postings` after the balance row update `w` (which added every
    posting's effect): entry i's balances are w's minus the effects of the entries after it."""
    n = len(postings)
    values = []
    later = [0, 0, 0, 0]
    undo: list[tuple[int, int, int, int]] = [(0, 0, 0, 0)] * n
    for i in reversed(range(n)):
        undo[i] = tuple(later)
        p = postings[i]
        later = [later[0] + p.granted, later[1] + p.consumed, later[2] + p.reserved, later[3] + p.overdraft]
    for i, p in enumerate(postings):
        rid = f"CAST(:{reservation_param} AS uuid)" if (reservation_param and p.with_reservation) else "NULL::uuid"
        params.update({f"l{i}_id": str(uuid.uuid4()), f"l{i}_kind": p.kind, f"l{i}_amount": p.amount,
                       f"l{i}_reason": p.reason, f"l{i}_ug": undo[i][0], f"l{i}_uc": undo[i][1],
                       f"l{i}_ur": undo[i][2], f"l{i}_uo": undo[i][3]})
        values.append(f"(CAST(:l{i}_id AS uuid), CAST(:l{i}_kind AS text), CAST(:l{i}_amount AS bigint), {rid}, "
                      f"CAST(:l{i}_reason AS text), {n - 1 - i}, CAST(:l{i}_ug AS bigint), CAST(:l{i}_uc AS bigint), "
                      f"CAST(:l{i}_ur AS bigint), CAST(:l{i}_uo AS bigint))")
    return f"""
    l AS (
        INSERT INTO credit_ledger (id, tenant_id, account_id, seq, kind, amount, reservation_id, business_ref, actor,
                                   reason, idempotency_key, granted_after, consumed_after, reserved_after,
                                   overdraft_after, created_at)
        SELECT v.id, w.tenant_id, w.account_id, w.entries - v.back, v.kind, v.amount, v.rid, :bref, :actor, v.reason,
               :ikey, w.granted - v.ug, w.consumed - v.uc, w.reserved - v.ur, w.overdraft - v.uo, now()
        FROM w CROSS JOIN (VALUES {", ".join(values)}) AS v(id, kind, amount, rid, reason, back, ug, uc, ur, uo)
        RETURNING *
    )"""


def _totals(postings: list[Posting]) -> dict:
    return {"dg": sum(p.granted for p in postings), "dc": sum(p.consumed for p in postings),
            "dr": sum(p.reserved for p in postings), "do": sum(p.overdraft for p in postings), "n": len(postings)}


_WALLET_SET = ("granted = w.granted + :dg, consumed = w.consumed + :dc, reserved = w.reserved + :dr, "
               "overdraft = w.overdraft + :do, entries = w.entries + :n, updated_at = now()")

# -- locks and reads ------------------------------------------------------------------------


async def lock_account(conn: AsyncConnection, account_id: str) -> Account | None:
    """The account with its balance row locked (FOR UPDATE) until the transaction ends."""
    row = (await conn.execute(
        text(f"SELECT {ACCOUNT_COLUMNS} FROM wallets w JOIN billing_accounts a ON a.id = w.account_id "
             "WHERE w.account_id = CAST(:id AS uuid) FOR UPDATE OF w"),
        {"id": account_id},
    )).first()
    return account_of(row) if row else None


async def lock_reservation(conn: AsyncConnection, reservation_id: str) -> tuple[Reservation, datetime] | None:
    """The reservation, locked (FOR UPDATE: its latest committed state), and the database's now()."""
    row = (await conn.execute(
        text(f"SELECT {_R}, now() AS db_now FROM reservations r WHERE r.id = CAST(:id AS uuid) FOR UPDATE"),
        {"id": reservation_id},
    )).first()
    return (reservation_of(row), row.db_now) if row else None


async def get_reservation(conn: AsyncConnection, reservation_id: str) -> Reservation | None:
    row = (await conn.execute(text(f"SELECT {_R} FROM reservations r WHERE r.id = CAST(:id AS uuid)"),
                              {"id": reservation_id})).first()
    return reservation_of(row) if row else None


async def active_reservation(conn: AsyncConnection, account_id: str, ref_type: str, ref_id: str) -> Reservation | None:
    row = (await conn.execute(
        text(f"SELECT {_R} FROM reservations r WHERE r.account_id = CAST(:aid AS uuid) AND r.ref_type = :rt "
             "AND r.ref_id = :ri AND r.status = 'ACTIVE'"),
        {"aid": account_id, "rt": ref_type, "ri": ref_id},
    )).first()
    return reservation_of(row) if row else None


async def reservation_ledger(conn: AsyncConnection, reservation_id: str) -> list[LedgerEntry]:
    rows = await conn.execute(
        text(f"SELECT {_L} FROM credit_ledger l WHERE l.reservation_id = CAST(:id AS uuid) ORDER BY l.seq"),
        {"id": reservation_id})
    return [entry_of(r) for r in rows]


async def page_reservations(
    conn: AsyncConnection, *, account_id: str, status: str, ref_type: str, ref_id: str, before: list[str] | None,
    limit: int,
) -> list[Reservation]:
    """Newest first; `before` = (created_at ISO, id) of the previous page's last reservation."""
    clauses: list[str] = []
    params: dict = {"limit": limit}
    for column, value, cast in (("account_id", account_id, "uuid"), ("status", status, None),
                                ("ref_type", ref_type, None), ("ref_id", ref_id, None)):
        if value:
            clauses.append(f"r.{column} = CAST(:{column} AS {cast})" if cast else f"r.{column} = :{column}")
            params[column] = value
    if before:
        clauses.append("(r.created_at, r.id) < (:before_at, CAST(:before_id AS uuid))")
        params.update(before_at=datetime.fromisoformat(before[0]), before_id=before[1])
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = await conn.execute(
        text(f"SELECT {_R} FROM reservations r {where} ORDER BY r.created_at DESC, r.id DESC LIMIT :limit"), params)
    return [reservation_of(r) for r in rows]


async def due_reservation(conn: AsyncConnection, now: datetime) -> tuple[Reservation, datetime] | None:
    """The ACTIVE reservation that expired first (at or before `now`), locked; one another
    transaction holds is skipped (it is being settled: whoever locked it decides)."""
    row = (await conn.execute(
        text(f"SELECT {_R}, now() AS db_now FROM reservations r WHERE r.status = 'ACTIVE' AND r.expires_at <= :now "
             "ORDER BY r.expires_at, r.id LIMIT 1 FOR UPDATE SKIP LOCKED"),
        {"now": now},
    )).first()
    return (reservation_of(row), row.db_now) if row else None


# -- writes ---------------------------------------------------------------------------------


async def write_grant(
    conn: AsyncConnection, *, account_id: str, kind: str, amount: int, reason: str, actor: str, business_ref: str,
    idempotency_key: str,
) -> tuple[LedgerEntry, Wallet] | None:
    """Adds credits (the UPDATE locks the balance row); None when the account does not exist."""
    postings = [Posting(kind, amount, reason, granted=amount, with_reservation=False)]
    params = {"aid": account_id, "bref": business_ref, "actor": actor, "ikey": idempotency_key, **_totals(postings)}
    ledger = _ledger_cte(postings, params, None)
    row = (await conn.execute(
        text(f"""
        WITH w AS (
            UPDATE wallets w SET {_WALLET_SET} WHERE w.account_id = CAST(:aid AS uuid) RETURNING w.*
        ), {ledger}
        SELECT {_L}, {_WALLET_OUT} FROM l CROSS JOIN w
        """),
        params,
    )).first()
    return (entry_of(row), _wallet_of(row)) if row else None


async def write_reserve(
    conn: AsyncConnection, *, tenant_id: str, account_id: str, reservation_id: str, amount: int, ref_type: str,
    ref_id: str, expires_at: datetime, shortfall: int, override_reason: str, actor: str, business_ref: str,
    idempotency_key: str,
) -> tuple[Reservation, Wallet] | None:
    """A new ACTIVE reservation, its RESERVE entry (after an ADJUSTMENT for an override's
    shortfall). None, writing nothing, when the ref already has an ACTIVE reservation (read
    under the caller's balance-row lock: no one else can be inserting one for this account)."""
    postings = []
    if shortfall:
        postings.append(Posting("ADJUSTMENT", shortfall, override_reason, overdraft=shortfall))
    postings.append(Posting("RESERVE", amount, "", reserved=amount))
    params = {"rid": reservation_id, "tid": tenant_id, "aid": account_id, "amount": amount, "rt": ref_type,
              "ri": ref_id, "exp": expires_at, "shortfall": shortfall, "oreason": override_reason, "bref": business_ref,
              "actor": actor, "ikey": idempotency_key, **_totals(postings)}
    ledger = _ledger_cte(postings, params, "rid")
    rows = (await conn.execute(
        text(f"""
        WITH existing AS (
            SELECT 1 FROM reservations WHERE account_id = CAST(:aid AS uuid) AND ref_type = :rt AND ref_id = :ri
                AND status = 'ACTIVE'
        ), r AS (
            INSERT INTO reservations (id, tenant_id, account_id, amount, ref_type, ref_id, shortfall, override_reason,
                                      expires_at, actor, idempotency_key)
            SELECT CAST(:rid AS uuid), CAST(:tid AS uuid), CAST(:aid AS uuid), :amount, :rt, :ri, :shortfall,
                   :oreason, :exp, :actor, :ikey
            WHERE NOT EXISTS (SELECT 1 FROM existing)
            RETURNING *
        ), w AS (
            UPDATE wallets w SET {_WALLET_SET}
            WHERE w.account_id = CAST(:aid AS uuid) AND EXISTS (SELECT 1 FROM r) RETURNING w.*
        ), {ledger}
        SELECT {_R}, {_L}, {_WALLET_OUT} FROM l CROSS JOIN w CROSS JOIN r ORDER BY l.seq
        """),
        params,
    )).all()
    if not rows:
        return None
    return reservation_of(rows[0], tuple(entry_of(r) for r in rows)), _wallet_of(rows[-1])


async def write_settle(
    conn: AsyncConnection, *, reservation: Reservation, status: str, consumed: int, returned_kind: str,
    returned: int, actor: str, reason: str, idempotency_key: str,
) -> tuple[Reservation, Wallet]:
    """ACTIVE → `status` for a reservation the caller locked: `consumed` credits move from
    reserved to consumed (a CONSUME entry), `returned` go back to available (a RELEASE or
    EXPIRE entry), in this order, with the balance row updated (and locked) in the same
    statement."""
    postings = []
    if consumed:
        postings.append(Posting("CONSUME", consumed, reason, consumed=consumed, reserved=-consumed))
    if returned:
        # The remainder of a partial consume says so; a release or expiry carries its reason.
        postings.append(Posting(returned_kind, returned, reason or ("remainder of a partial consume" if consumed else ""),
                                reserved=-returned))
    params = {"rid": reservation.id, "aid": reservation.account_id, "status": status, "consumed": consumed,
              "sreason": reason, "bref": f"{reservation.ref_type}:{reservation.ref_id}", "actor": actor,
              "ikey": idempotency_key, **_totals(postings)}
    ledger = _ledger_cte(postings, params, "rid")
    rows = (await conn.execute(
        text(f"""
        WITH r AS (
            UPDATE reservations SET status = :status, consumed_amount = :consumed, settled_at = now(),
                settled_by = :actor, settle_reason = :sreason
            WHERE id = CAST(:rid AS uuid) AND status = 'ACTIVE' RETURNING *
        ), w AS (
            UPDATE wallets w SET {_WALLET_SET}
            WHERE w.account_id = CAST(:aid AS uuid) AND EXISTS (SELECT 1 FROM r) RETURNING w.*
        ), {ledger}
        SELECT {_R}, {_L}, {_WALLET_OUT} FROM l CROSS JOIN w CROSS JOIN r ORDER BY l.seq
        """),
        params,
    )).all()
    if not rows:  # pragma: no cover - the caller holds the lock on an ACTIVE reservation
        raise RuntimeError(f"reservation {reservation.id} was not ACTIVE under its lock")
    return reservation_of(rows[0], tuple(entry_of(r) for r in rows)), _wallet_of(rows[-1])


# -- aggregates and invariants --------------------------------------------------------------


async def aggregate(conn: AsyncConnection) -> tuple[Wallet, int, int, int]:
    """(totals, accounts, ACTIVE reservations, accounts with available < 0) of the tenant."""
    row = (await conn.execute(text(
        "SELECT count(*) AS accounts, COALESCE(sum(granted), 0) AS g, COALESCE(sum(consumed), 0) AS c, "
        "COALESCE(sum(reserved), 0) AS r, COALESCE(sum(overdraft), 0) AS o, "
        "count(*) FILTER (WHERE granted - consumed - reserved < 0) AS negative, "
        "(SELECT count(*) FROM reservations WHERE status = 'ACTIVE') AS active FROM wallets"
    ))).one()
    return Wallet(int(row.g), int(row.c), int(row.r), int(row.o)), row.accounts, row.active, row.negative


def _accounts_filter(account_ids: list[str] | None, column: str) -> tuple[str, dict]:
    if account_ids is None:
        return "", {}
    return f" WHERE {column} = ANY(CAST(:ids AS uuid[]))", {"ids": account_ids}


async def invariant_rows(conn: AsyncConnection, account_ids: list[str] | None) -> list:
    """Per account: the balance row, the ledger folded by kind, the ACTIVE reservations' sum
    and the balances after its last entry."""
    where, params = _accounts_filter(account_ids, "w.account_id")
    return list(await conn.execute(text(f"""
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
    """), params))


async def reservation_ledger_rows(conn: AsyncConnection, account_ids: list[str] | None) -> list:
    """Per reservation: its state and the sums of its RESERVE/CONSUME/RELEASE/EXPIRE entries."""
    where, params = _accounts_filter(account_ids, "r.account_id")
    return list(await conn.execute(text(f"""
        SELECT r.id::text AS id, r.status, r.amount, r.consumed_amount, r.shortfall,
            COALESCE(sum(l.amount) FILTER (WHERE l.kind = 'RESERVE'), 0) AS reserve,
            COALESCE(sum(l.amount) FILTER (WHERE l.kind = 'CONSUME'), 0) AS consume,
            COALESCE(sum(l.amount) FILTER (WHERE l.kind = 'RELEASE'), 0) AS release,
            COALESCE(sum(l.amount) FILTER (WHERE l.kind = 'EXPIRE'), 0) AS expire,
            COALESCE(sum(l.amount) FILTER (WHERE l.kind = 'ADJUSTMENT'), 0) AS adjustment
        FROM reservations r LEFT JOIN credit_ledger l ON l.reservation_id = r.id
        {where}
        GROUP BY r.id
    """), params))


def sums_of(row) -> LedgerSums:
    return LedgerSums(int(row.s_granted), int(row.s_consumed), int(row.s_reserved), int(row.s_overdraft),
                      int(row.s_entries), int(row.s_last_seq))
