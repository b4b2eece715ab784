"""SQL of checkouts, the provider-ref directory, webhook receipts and events, settlements,
recoveries, webhook rejections and the compensating debit (migration 0005)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.wallet import LedgerEntry, Reservation, Wallet
from . import wallet as wallet_store
from .sql import Statement, fetch


@dataclass(frozen=True)
class CheckoutRow:
    id: str
    tenant_id: str
    account_id: str
    provider: str
    purpose: str
    credits: int
    invoice_id: str
    amount_paise: int
    provider_ref: str
    checkout_url: str
    status: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class StoredEvent:
    id: str
    provider: str
    event_id: str
    event_type: str
    checkout_id: str
    body: bytes
    outcome: str


@dataclass(frozen=True)
class Receipt:
    body_sha256: bytes
    tenant_id: str | None


def sha256(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


_CHECKOUT = """id::text, tenant_id::text, account_id::text, provider, purpose, credits,
    COALESCE(invoice_id::text, '') AS invoice_id, amount_paise, provider_ref, checkout_url, status, created_by,
    created_at"""


def _checkout(r) -> CheckoutRow:
    return CheckoutRow(
        r.id,
        r.tenant_id,
        r.account_id,
        r.provider,
        r.purpose,
        r.credits,
        r.invoice_id,
        r.amount_paise,
        r.provider_ref,
        r.checkout_url,
        r.status,
        r.created_by,
        r.created_at,
    )


async def insert_checkout(
    conn: AsyncConnection,
    *,
    checkout_id: str,
    tenant_id: str,
    account_id: str,
    provider: str,
    purpose: str,
    credits: int,
    invoice_id: str,
    amount_paise: int,
    provider_ref: str,
    checkout_url: str,
    actor: str,
    refs: list[str],
) -> CheckoutRow:
    """The checkout and its directory entries (the checkout ref and the provider's object id)."""
    row = (
        await conn.execute(
            text(f"""
        INSERT INTO checkouts (id, tenant_id, account_id, provider, purpose, credits, invoice_id, amount_paise,
                               provider_ref, checkout_url, created_by)
        VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), CAST(:aid AS uuid), :provider, :purpose, :credits,
                CAST(NULLIF(:iid, '') AS uuid), :amount, :pref, :url, :actor)
        RETURNING {_CHECKOUT}"""),
            {
                "id": checkout_id,
                "tid": tenant_id,
                "aid": account_id,
                "provider": provider,
                "purpose": purpose,
                "credits": credits,
                "iid": invoice_id,
                "amount": amount_paise,
                "pref": provider_ref,
                "url": checkout_url,
                "actor": actor,
            },
        )
    ).one()
    for ref in refs:
        await add_ref(conn, provider=provider, ref=ref, tenant_id=tenant_id, checkout_id=checkout_id)
    return _checkout(row)


async def add_ref(conn: AsyncConnection, *, provider: str, ref: str, tenant_id: str, checkout_id: str) -> None:
    await conn.execute(
        text(
            "INSERT INTO provider_refs (provider, ref, tenant_id, checkout_id) "
            "VALUES (:p, :ref, CAST(:tid AS uuid), CAST(:cid AS uuid)) ON CONFLICT DO NOTHING"
        ),
        {"p": provider, "ref": ref[:200], "tid": tenant_id, "cid": checkout_id},
    )


async def resolve(conn: AsyncConnection, provider: str, refs: tuple[str, ...]) -> tuple[str, str] | None:
    """(tenant, checkout id) of the first ref the directory knows."""
    for ref in refs:
        row = (
            await conn.execute(
                text(
                    "SELECT tenant_id::text AS tid, checkout_id::text AS cid FROM provider_refs WHERE provider = :p "
                    "AND ref = :ref"
                ),
                {"p": provider, "ref": ref[:200]},
            )
        ).first()
        if row is not None:
            return row.tid, row.cid
    return None


async def get_checkout(conn: AsyncConnection, checkout_id: str, *, for_update: bool = False) -> CheckoutRow | None:
    lock = " FOR UPDATE" if for_update else ""
    row = (
        await conn.execute(
            text(f"SELECT {_CHECKOUT} FROM checkouts WHERE id = CAST(:id AS uuid){lock}"), {"id": checkout_id}
        )
    ).first()
    return _checkout(row) if row else None


async def set_checkout_status(conn: AsyncConnection, checkout_id: str, status: str) -> None:
    await conn.execute(
        text("UPDATE checkouts SET status = :s, updated_at = now() WHERE id = CAST(:id AS uuid)"),
        {"s": status, "id": checkout_id},
    )


async def invoice_due(conn: AsyncConnection, invoice_id: str) -> tuple[str, str, int] | None:
    """(account id, status, balance in paise) of an invoice (0004's columns)."""
    row = (
        await conn.execute(
            text(
                "SELECT account_id::text AS aid, status, total_paise - adjusted_paise - credited_paise - paid_paise AS due "
                "FROM invoices WHERE id = CAST(:id AS uuid)"
            ),
            {"id": invoice_id},
        )
    ).first()
    return (row.aid, row.status, int(row.due)) if row else None


# -- webhook receipts and events ---------------------------------------------------------------


async def claim_receipt(
    conn: AsyncConnection, *, provider: str, event_id: str, digest: bytes, event_type: str, tenant_id: str | None
) -> Receipt | None:
    """Records the (provider, event id) as received; None when new, else the earlier receipt
    (a concurrent twin is waited for on the primary key)."""
    row = (
        await conn.execute(
            text(
                "INSERT INTO provider_event_receipts (provider, event_id, body_sha256, event_type, tenant_id) "
                "VALUES (:p, :e, :h, :t, CAST(:tid AS uuid)) ON CONFLICT DO NOTHING RETURNING true"
            ),
            {"p": provider, "e": event_id, "h": digest, "t": event_type[:200], "tid": tenant_id},
        )
    ).first()
    if row is not None:
        return None
    found = (
        await conn.execute(
            text(
                "SELECT body_sha256, tenant_id::text AS tid FROM provider_event_receipts WHERE provider = :p "
                "AND event_id = :e"
            ),
            {"p": provider, "e": event_id},
        )
    ).one()
    return Receipt(bytes(found.body_sha256), found.tid)


async def insert_event(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    provider: str,
    event_id: str,
    event_type: str,
    checkout_id: str,
    payment_ref: str,
    body: bytes,
    digest: bytes,
) -> str:
    """Stores the event once (a second store of the same event does nothing)."""
    event_row_id = str(uuid.uuid4())
    await conn.execute(
        text(
            "INSERT INTO payment_events (id, tenant_id, provider, event_id, event_type, checkout_id, payment_ref, body, "
            "body_sha256) VALUES (CAST(:id AS uuid), CAST(:tid AS uuid), :p, :e, :t, CAST(:cid AS uuid), :pay, :body, "
            ":h) ON CONFLICT DO NOTHING"
        ),
        {
            "id": event_row_id,
            "tid": tenant_id,
            "p": provider,
            "e": event_id,
            "t": event_type[:200],
            "cid": checkout_id,
            "pay": payment_ref[:200],
            "body": body,
            "h": digest,
        },
    )
    return event_row_id


def _event(r) -> StoredEvent:
    return StoredEvent(r.id, r.provider, r.event_id, r.event_type, r.cid or "", bytes(r.body), r.outcome)


_EVENT = "id::text, provider, event_id, event_type, checkout_id::text AS cid, body, outcome"


async def lock_event(conn: AsyncConnection, provider: str, event_id: str) -> StoredEvent | None:
    row = (
        await conn.execute(
            text(f"SELECT {_EVENT} FROM payment_events WHERE provider = :p AND event_id = :e FOR UPDATE"),
            {"p": provider, "e": event_id},
        )
    ).first()
    return _event(row) if row else None


async def next_pending(conn: AsyncConnection) -> StoredEvent | None:
    """The oldest stored-but-unapplied event of the tenant, locked (one being applied now is
    skipped)."""
    row = (
        await conn.execute(
            text(
                f"SELECT {_EVENT} FROM payment_events WHERE applied_at IS NULL ORDER BY received_at, id LIMIT 1 "
                "FOR UPDATE SKIP LOCKED"
            )
        )
    ).first()
    return _event(row) if row else None


async def mark_event(conn: AsyncConnection, event_row_id: str, outcome: str) -> None:
    await conn.execute(
        text("UPDATE payment_events SET outcome = :o, applied_at = now() WHERE id = CAST(:id AS uuid)"),
        {"o": outcome, "id": event_row_id},
    )


# -- settlements and recoveries ----------------------------------------------------------------


@dataclass(frozen=True)
class Settlement:
    id: str
    checkout_id: str
    account_id: str
    amount_paise: int
    credits: int


async def settlement_for(conn: AsyncConnection, provider: str, payment_ref: str) -> Settlement | None:
    row = (
        await conn.execute(
            text(
                "SELECT id::text, checkout_id::text AS cid, account_id::text AS aid, amount_paise, credits "
                "FROM payment_settlements WHERE provider = :p AND payment_ref = :r"
            ),
            {"p": provider, "r": payment_ref},
        )
    ).first()
    return Settlement(row.id, row.cid, row.aid, row.amount_paise, row.credits) if row else None


async def insert_settlement(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    provider: str,
    payment_ref: str,
    checkout: CheckoutRow,
    amount_paise: int,
    credits: int,
    ledger_entry_id: str | None,
    invoice_payment_id: str | None,
    event_id: str,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO payment_settlements (id, tenant_id, provider, payment_ref, checkout_id, account_id, amount_paise, "
            "credits, ledger_entry_id, invoice_payment_id, event_id) VALUES (gen_random_uuid(), CAST(:tid AS uuid), :p, "
            ":r, CAST(:cid AS uuid), CAST(:aid AS uuid), :amount, :credits, CAST(:lid AS uuid), CAST(:pid AS uuid), :e)"
        ),
        {
            "tid": tenant_id,
            "p": provider,
            "r": payment_ref,
            "cid": checkout.id,
            "aid": checkout.account_id,
            "amount": amount_paise,
            "credits": credits,
            "lid": ledger_entry_id,
            "pid": invoice_payment_id,
            "e": event_id,
        },
    )


async def recovery_exists(conn: AsyncConnection, provider: str, payment_ref: str) -> bool:
    row = (
        await conn.execute(
            text("SELECT 1 FROM payment_recoveries WHERE provider = :p AND payment_ref = :r"),
            {"p": provider, "r": payment_ref},
        )
    ).first()
    return row is not None


async def insert_recovery(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    provider: str,
    payment_ref: str,
    settlement: Settlement,
    kind: str,
    credits: int,
    shortfall: int,
    reservation_id: str | None,
    status: str,
    event_id: str,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO payment_recoveries (id, tenant_id, provider, payment_ref, settlement_id, account_id, kind, "
            "credits, shortfall, reservation_id, status, event_id) VALUES (gen_random_uuid(), CAST(:tid AS uuid), :p, "
            ":r, CAST(:sid AS uuid), CAST(:aid AS uuid), :kind, :credits, :shortfall, CAST(:rid AS uuid), :status, :e)"
        ),
        {
            "tid": tenant_id,
            "p": provider,
            "r": payment_ref,
            "sid": settlement.id,
            "aid": settlement.account_id,
            "kind": kind,
            "credits": credits,
            "shortfall": shortfall,
            "rid": reservation_id,
            "status": status,
            "e": event_id,
        },
    )


async def recovery_due(conn: AsyncConnection, account_id: str) -> int:
    """Credits still to recover from the account: the shortfalls of its RECOVERY_DUE
    recoveries (0: nothing due)."""
    row = (
        await conn.execute(
            text(
                "SELECT COALESCE(sum(shortfall), 0) AS due FROM payment_recoveries WHERE account_id = CAST(:aid AS uuid) "
                "AND status = 'RECOVERY_DUE'"
            ),
            {"aid": account_id},
        )
    ).one()
    return int(row.due)


_DEBIT = Statement(
    "SELECT * FROM billing_debit(CAST(:aid AS uuid), CAST(:rid AS uuid), :amount, :ref, :actor, :reason, :ikey, "
    "CAST(:adj AS uuid), CAST(:res AS uuid), CAST(:con AS uuid))"
)


@dataclass(frozen=True)
class Debited:
    outcome: str
    reservation: Reservation | None
    entries: tuple[LedgerEntry, ...]
    wallet: Wallet | None


async def write_debit(
    conn: AsyncConnection, *, account_id: str, amount: int, ref_id: str, actor: str, reason: str, idempotency_key: str
) -> Debited:
    """The compensating debit (billing_debit, migration 0005) in the caller's transaction."""
    rows = await fetch(
        conn,
        _DEBIT,
        {
            "aid": account_id,
            "rid": str(uuid.uuid4()),
            "amount": amount,
            "ref": ref_id,
            "actor": actor,
            "reason": reason,
            "ikey": idempotency_key,
            "adj": str(uuid.uuid4()),
            "res": str(uuid.uuid4()),
            "con": str(uuid.uuid4()),
        },
    )
    if not rows or rows[0].outcome != "OK":
        return Debited(rows[0].outcome if rows else "ACCOUNT_NOT_FOUND", None, (), None)
    last = rows[-1]
    return Debited(
        "OK",
        wallet_store.reservation_of(last),
        tuple(wallet_store.entry_of(r) for r in rows),
        Wallet(last.w_granted, last.w_consumed, last.w_reserved, last.w_overdraft),
    )


# -- rejections (global audit) -----------------------------------------------------------------


async def insert_rejection(
    conn: AsyncConnection, *, provider: str, reason: str, detail: str, event_id: str, body: bytes
) -> None:
    await conn.execute(
        text(
            "INSERT INTO webhook_rejections (id, provider, reason, detail, event_id, body_sha256, body_bytes) "
            "VALUES (gen_random_uuid(), :p, :reason, :detail, :e, :h, :n)"
        ),
        {
            "p": provider[:40],
            "reason": reason,
            "detail": detail[:500],
            "e": event_id[:200],
            "h": sha256(body),
            "n": len(body),
        },
    )
