"""SQL of service invoices (migration 0004): settings, series, invoices, lines, adjustments,
credit notes, payments, payment proofs, documents, the audit trail and the channel directory.

Every function takes the caller's connection (a tenant transaction: RLS scopes each
statement); rows are returned as SQLAlchemy rows (attribute access)."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain import invoices as rules
from . import violated_constraint

# -- settings ---------------------------------------------------------------------------------

_SETTINGS = "legal_name, gstin, state, address, invoice_prefix, payment_terms_days, updated_at"


async def get_settings(conn: AsyncConnection):
    return (await conn.execute(text(f"SELECT {_SETTINGS} FROM billing_settings"))).first()


async def put_settings(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    legal_name: str,
    gstin: str,
    state: str,
    address: str,
    invoice_prefix: str,
    payment_terms_days: int,
):
    return (
        await conn.execute(
            text(f"""
        INSERT INTO billing_settings (tenant_id, legal_name, gstin, state, address, invoice_prefix, payment_terms_days)
        VALUES (CAST(:t AS uuid), :name, :gstin, :state, :address, :prefix, :terms)
        ON CONFLICT (tenant_id) DO UPDATE SET legal_name = EXCLUDED.legal_name, gstin = EXCLUDED.gstin,
            state = EXCLUDED.state, address = EXCLUDED.address, invoice_prefix = EXCLUDED.invoice_prefix,
            payment_terms_days = EXCLUDED.payment_terms_days, updated_at = now()
        RETURNING {_SETTINGS}"""),
            {
                "t": tenant_id,
                "name": legal_name,
                "gstin": gstin,
                "state": state,
                "address": address,
                "prefix": invoice_prefix,
                "terms": payment_terms_days,
            },
        )
    ).one()


# -- invoices ---------------------------------------------------------------------------------

INVOICE_COLUMNS = """
    i.id::text AS id, i.tenant_id::text AS tenant_id, i.account_id::text AS account_id, i.number, i.status,
    i.invoice_date, i.due_date, i.place_of_supply, i.place_override, i.supplier_gstin, i.recipient_gstin, i.taxable_paise,
    i.cgst_paise, i.sgst_paise, i.igst_paise, i.round_off_paise, i.total_paise, i.adjusted_paise, i.credited_paise,
    i.paid_paise, COALESCE(i.channel_id::text, '') AS channel_id, i.void_reason, i.created_by, i.created_at,
    i.issued_at, i.updated_at, i.version,
    EXISTS (SELECT 1 FROM invoice_documents d WHERE d.invoice_id = i.id) AS has_document
"""


async def insert_invoice(
    conn: AsyncConnection,
    *,
    invoice_id: str,
    tenant_id: str,
    account_id: str,
    place_of_supply: str,
    place_override: str,
    recipient_gstin: str,
    due_date: date | None,
    channel_id: str | None,
    created_by: str,
) -> None:
    await conn.execute(
        text("""
        INSERT INTO invoices (id, tenant_id, account_id, place_of_supply, place_override, recipient_gstin, due_date,
                              channel_id, created_by)
        VALUES (CAST(:id AS uuid), CAST(:t AS uuid), CAST(:a AS uuid), :pos, :po, :rg, :due, CAST(:ch AS uuid),
                :by)"""),
        {
            "id": invoice_id,
            "t": tenant_id,
            "a": account_id,
            "pos": place_of_supply,
            "po": place_override,
            "rg": recipient_gstin,
            "due": due_date,
            "ch": channel_id,
            "by": created_by,
        },
    )


async def get_invoice(
    conn: AsyncConnection, invoice_id: str, *, for_update: bool = False, channel_id: str | None = None
):
    """The invoice (None: unknown, another tenant's, or — with `channel_id` — another channel's)."""
    where = "i.id = CAST(:id AS uuid)"
    params: dict = {"id": invoice_id}
    if channel_id is not None:
        where += " AND i.channel_id = CAST(:ch AS uuid)"
        params["ch"] = channel_id
    lock = " FOR UPDATE OF i" if for_update else ""
    return (await conn.execute(text(f"SELECT {INVOICE_COLUMNS} FROM invoices i WHERE {where}{lock}"), params)).first()


_INVOICE_UPDATABLE = (
    "status",
    "number",
    "invoice_date",
    "due_date",
    "place_of_supply",
    "supplier_gstin",
    "recipient_gstin",
    "taxable_paise",
    "cgst_paise",
    "sgst_paise",
    "igst_paise",
    "round_off_paise",
    "total_paise",
    "adjusted_paise",
    "credited_paise",
    "paid_paise",
    "void_reason",
    "issued_at",
)


async def update_invoice(conn: AsyncConnection, invoice_id: str, **values) -> None:
    assert values and set(values) <= set(_INVOICE_UPDATABLE), values
    sets = ", ".join(f"{k} = :{k}" for k in values)
    await conn.execute(
        text(f"UPDATE invoices SET {sets}, updated_at = now(), version = version + 1 WHERE id = CAST(:id AS uuid)"),
        {**values, "id": invoice_id},
    )


async def page(
    conn: AsyncConnection,
    *,
    account_id: str | None,
    statuses: list[str],
    channel_id: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list:
    """Newest first; `after` = (created_at, id) of the previous page's last invoice."""
    clauses: list[str] = []
    params: dict = {"limit": limit}
    if account_id:
        clauses.append("i.account_id = CAST(:a AS uuid)")
        params["a"] = account_id
    if statuses:
        clauses.append("i.status = ANY(:statuses)")
        params["statuses"] = statuses
    if channel_id:
        clauses.append("i.channel_id = CAST(:ch AS uuid)")
        params["ch"] = channel_id
    if after is not None:
        clauses.append("(i.created_at, i.id) < (:after_at, CAST(:after_id AS uuid))")
        params.update(after_at=after[0], after_id=after[1])
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = await conn.execute(
        text(f"SELECT {INVOICE_COLUMNS} FROM invoices i {where} ORDER BY i.created_at DESC, i.id DESC LIMIT :limit"),
        params,
    )
    return list(rows)


async def open_draft(conn: AsyncConnection, account_id: str, channel_id: str | None):
    """The account's newest DRAFT invoice for the channel (or with none), locked, if any."""
    return (
        await conn.execute(
            text(
                f"SELECT {INVOICE_COLUMNS} FROM invoices i WHERE i.account_id = CAST(:a AS uuid) AND i.status = 'DRAFT' "
                "AND i.channel_id IS NOT DISTINCT FROM CAST(:ch AS uuid) "
                "ORDER BY i.created_at DESC, i.id DESC LIMIT 1 FOR UPDATE OF i"
            ),
            {"a": account_id, "ch": channel_id},
        )
    ).first()


async def lock_account_drafts(conn: AsyncConnection, tenant_id: str, account_id: str) -> None:
    """Serialise "find or create the account's draft" until the transaction ends."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"invoice_draft:{tenant_id}:{account_id}"}
    )


# -- lines ------------------------------------------------------------------------------------

_LINE_COLUMNS = """
    id::text AS id, invoice_id::text AS invoice_id, position, description, sac, quantity, unit_price_paise,
    discount_paise, taxable_paise, cgst_paise, sgst_paise, igst_paise, total_paise, place_of_supply, ref_type, ref_id,
    assignment_id, place_override, voided
"""


async def lines(conn: AsyncConnection, invoice_ids: list[str]) -> dict[str, list]:
    if not invoice_ids:
        return {}
    rows = await conn.execute(
        text(
            f"SELECT {_LINE_COLUMNS} FROM invoice_lines WHERE invoice_id = ANY(CAST(:ids AS "
            "uuid[])) ORDER BY invoice_id, position"
        ),
        {"ids": invoice_ids},
    )
    out: dict[str, list] = {i: [] for i in invoice_ids}
    for r in rows:
        out[r.invoice_id].append(r)
    return out


class RefTaken(Exception):
    def __init__(self, ref_type: str, ref_id: str) -> None:
        super().__init__(f"{ref_type}:{ref_id}")
        self.ref_type, self.ref_id = ref_type, ref_id


async def insert_lines(conn: AsyncConnection, *, tenant_id: str, invoice_id: str, lines_: list[dict]) -> None:
    """`lines_`: dicts of the line columns (position included). A ref already on a live line →
    RefTaken (the statement is in a savepoint: the caller's transaction goes on)."""
    for line in lines_:
        try:
            async with conn.begin_nested():
                await conn.execute(
                    text("""
                    INSERT INTO invoice_lines (id, tenant_id, invoice_id, position, description, sac, quantity,
                        unit_price_paise, discount_paise, taxable_paise, cgst_paise, sgst_paise, igst_paise,
                        total_paise, place_of_supply, ref_type, ref_id, assignment_id, place_override)
                    VALUES (CAST(:id AS uuid), CAST(:t AS uuid), CAST(:inv AS uuid), :position, :description, :sac,
                        :quantity, :unit_price_paise, :discount_paise, :taxable_paise, :cgst_paise, :sgst_paise,
                        :igst_paise, :total_paise, :place_of_supply, :ref_type, :ref_id, :assignment_id,
                        :place_override)"""),
                    {"id": str(uuid.uuid4()), "t": tenant_id, "inv": invoice_id, **line},
                )
        except IntegrityError as exc:
            if violated_constraint(exc) == "invoice_lines_ref":
                raise RefTaken(line["ref_type"], line["ref_id"]) from None
            raise


async def update_line_tax(
    conn: AsyncConnection,
    line_id: str,
    *,
    place_of_supply: str,
    taxable_paise: int,
    cgst_paise: int,
    sgst_paise: int,
    igst_paise: int,
    total_paise: int,
) -> None:
    await conn.execute(
        text(
            "UPDATE invoice_lines SET place_of_supply = :pos, taxable_paise = :tx, cgst_paise = :c, sgst_paise = :s, "
            "igst_paise = :ig, total_paise = :tot WHERE id = CAST(:id AS uuid)"
        ),
        {
            "id": line_id,
            "pos": place_of_supply,
            "tx": taxable_paise,
            "c": cgst_paise,
            "s": sgst_paise,
            "ig": igst_paise,
            "tot": total_paise,
        },
    )


async def void_lines(conn: AsyncConnection, invoice_id: str) -> None:
    await conn.execute(
        text("UPDATE invoice_lines SET voided = true WHERE invoice_id = CAST(:id AS uuid)"), {"id": invoice_id}
    )


async def line_for_ref(conn: AsyncConnection, ref_type: str, ref_id: str):
    return (
        await conn.execute(
            text(f"SELECT {_LINE_COLUMNS} FROM invoice_lines WHERE ref_type = :rt AND ref_id = :rid AND NOT voided"),
            {"rt": ref_type, "rid": ref_id},
        )
    ).first()


async def paid_for_refs(conn: AsyncConnection, refs: list[tuple[str, str]]) -> tuple[bool, list[str]]:
    """(whether an invoice holding a live line of one of `refs` is PAID, the ids of the
    invoices found)."""
    found: list[str] = []
    paid = False
    for ref_type, ref_id in refs:
        rows = await conn.execute(
            text(
                "SELECT i.id::text AS id, i.status FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id "
                "WHERE l.ref_type = :rt AND l.ref_id = :rid AND NOT l.voided"
            ),
            {"rt": ref_type, "rid": ref_id},
        )
        for r in rows:
            found.append(r.id)
            paid = paid or r.status == rules.PAID
    return paid, found


# -- numbering --------------------------------------------------------------------------------


async def take_number(conn: AsyncConnection, *, tenant_id: str, kind: str, fy: int, day: date) -> int | None:
    """The next value of the (tenant, kind, fy) series, in the caller's transaction: the row
    stays locked until it ends (concurrent issues wait, so values are consecutive), and a
    rollback gives the value back. None when `day` is before the series' last date."""
    row = (
        await conn.execute(
            text("""
        INSERT INTO invoice_series (tenant_id, kind, financial_year, last_value, last_date)
        VALUES (CAST(:t AS uuid), :kind, :fy, 1, :day)
        ON CONFLICT (tenant_id, kind, financial_year) DO UPDATE
            SET last_value = invoice_series.last_value + 1, last_date = EXCLUDED.last_date
            WHERE invoice_series.last_date <= EXCLUDED.last_date
        RETURNING last_value"""),
            {"t": tenant_id, "kind": kind, "fy": fy, "day": day},
        )
    ).first()
    return row.last_value if row else None


async def series_last_date(conn: AsyncConnection, kind: str, fy: int) -> date | None:
    return (
        await conn.execute(
            text("SELECT last_date FROM invoice_series WHERE kind = :k AND financial_year = :fy"), {"k": kind, "fy": fy}
        )
    ).scalar()


# -- adjustments, credit notes, payments --------------------------------------------------------


async def insert_adjustment(
    conn: AsyncConnection, *, tenant_id: str, invoice_id: str, kind: str, amount: int, reason: str, actor: str
) -> None:
    await conn.execute(
        text(
            "INSERT INTO invoice_adjustments (id, tenant_id, invoice_id, kind, amount_paise, reason, actor) "
            "VALUES (CAST(:id AS uuid), CAST(:t AS uuid), CAST(:inv AS uuid), :k, :amt, :why, :actor)"
        ),
        {
            "id": str(uuid.uuid4()),
            "t": tenant_id,
            "inv": invoice_id,
            "k": kind,
            "amt": amount,
            "why": reason,
            "actor": actor,
        },
    )


async def adjustments(conn: AsyncConnection, invoice_ids: list[str]) -> dict[str, list]:
    return await _children(
        conn,
        "invoice_adjustments",
        "id::text AS id, invoice_id::text AS invoice_id, kind, amount_paise, reason, actor, created_at",
        invoice_ids,
        "created_at, id",
    )


async def insert_credit_note(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    invoice_id: str,
    number: str,
    taxable: int,
    cgst: int,
    sgst: int,
    igst: int,
    total: int,
    reason: str,
    actor: str,
):
    return (
        await conn.execute(
            text(
                "INSERT INTO credit_notes (id, tenant_id, invoice_id, number, taxable_paise, cgst_paise, sgst_paise, "
                "igst_paise, total_paise, reason, actor) VALUES (CAST(:id AS uuid), CAST(:t AS uuid), CAST(:inv AS uuid), "
                ":num, :tx, :c, :s, :ig, :tot, :why, :actor) RETURNING id::text AS id, invoice_id::text AS invoice_id, "
                "number, taxable_paise, cgst_paise, sgst_paise, igst_paise, total_paise, reason, actor, issued_at"
            ),
            {
                "id": str(uuid.uuid4()),
                "t": tenant_id,
                "inv": invoice_id,
                "num": number,
                "tx": taxable,
                "c": cgst,
                "s": sgst,
                "ig": igst,
                "tot": total,
                "why": reason,
                "actor": actor,
            },
        )
    ).one()


async def credit_notes(conn: AsyncConnection, invoice_ids: list[str]) -> dict[str, list]:
    return await _children(
        conn,
        "credit_notes",
        "id::text AS id, invoice_id::text AS invoice_id, number, "
        "taxable_paise, cgst_paise, sgst_paise, igst_paise, total_paise, reason, actor, issued_at",
        invoice_ids,
        "issued_at, id",
    )


_PAYMENT_COLUMNS = (
    "id::text AS id, invoice_id::text AS invoice_id, amount_paise, method, reference, provider, "
    "received_at, recorded_by, created_at"
)


async def payment_by_reference(conn: AsyncConnection, *, method: str, provider: str, reference: str):
    return (
        await conn.execute(
            text(f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE method = :m AND provider = :p AND reference = :r"),
            {"m": method, "p": provider, "r": reference},
        )
    ).first()


async def insert_payment(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    invoice_id: str,
    amount: int,
    method: str,
    reference: str,
    provider: str,
    received_at: datetime,
    recorded_by: str,
):
    """The new payment, or None when (method, provider, reference) exists (a concurrent twin)."""
    return (
        await conn.execute(
            text(f"""
        INSERT INTO payments (id, tenant_id, invoice_id, amount_paise, method, reference, provider, received_at,
                              recorded_by)
        VALUES (CAST(:id AS uuid), CAST(:t AS uuid), CAST(:inv AS uuid), :amt, :m, :r, :p, :at, :by)
        ON CONFLICT ON CONSTRAINT payments_reference_unique DO NOTHING
        RETURNING {_PAYMENT_COLUMNS}"""),
            {
                "id": str(uuid.uuid4()),
                "t": tenant_id,
                "inv": invoice_id,
                "amt": amount,
                "m": method,
                "r": reference,
                "p": provider,
                "at": received_at,
                "by": recorded_by,
            },
        )
    ).first()


async def payments(conn: AsyncConnection, invoice_ids: list[str]) -> dict[str, list]:
    return await _children(conn, "payments", _PAYMENT_COLUMNS, invoice_ids, "created_at, id")


async def _children(
    conn: AsyncConnection, table: str, columns: str, invoice_ids: list[str], order: str
) -> dict[str, list]:
    if not invoice_ids:
        return {}
    rows = await conn.execute(
        text(f"SELECT {columns} FROM {table} WHERE invoice_id = ANY(CAST(:ids AS uuid[])) ORDER BY {order}"),
        {"ids": invoice_ids},
    )
    out: dict[str, list] = {i: [] for i in invoice_ids}
    for r in rows:
        out[r.invoice_id].append(r)
    return out


# -- payment proofs ---------------------------------------------------------------------------

_PROOF_COLUMNS = """
    p.id::text AS id, p.invoice_id::text AS invoice_id, p.document_id::text AS document_id, p.note, p.amount_paise,
    p.reference, p.status, p.submitted_by, COALESCE(p.reviewed_by, '') AS reviewed_by, p.review_reason,
    COALESCE(p.payment_id::text, '') AS payment_id, p.created_at, p.reviewed_at
"""


async def insert_proof(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    invoice_id: str,
    document_id: str,
    note: str,
    amount: int,
    reference: str,
    submitted_by: str,
):
    return (
        await conn.execute(
            text(f"""
        WITH p AS (
            INSERT INTO payment_proofs (id, tenant_id, invoice_id, document_id, note, amount_paise, reference,
                                        submitted_by)
            VALUES (CAST(:id AS uuid), CAST(:t AS uuid), CAST(:inv AS uuid), CAST(:doc AS uuid), :note, :amt, :ref,
                    :by)
            RETURNING *)
        SELECT {_PROOF_COLUMNS} FROM p"""),
            {
                "id": str(uuid.uuid4()),
                "t": tenant_id,
                "inv": invoice_id,
                "doc": document_id,
                "note": note,
                "amt": amount,
                "ref": reference,
                "by": submitted_by,
            },
        )
    ).one()


async def get_proof(conn: AsyncConnection, proof_id: str, *, for_update: bool = False, channel_id: str | None = None):
    where = "p.id = CAST(:id AS uuid)"
    params: dict = {"id": proof_id}
    if channel_id is not None:
        where += " AND i.channel_id = CAST(:ch AS uuid)"
        params["ch"] = channel_id
    lock = " FOR UPDATE OF p" if for_update else ""
    return (
        await conn.execute(
            text(
                f"SELECT {_PROOF_COLUMNS} FROM payment_proofs p JOIN invoices i "
                f"ON i.id = p.invoice_id WHERE {where}{lock}"
            ),
            params,
        )
    ).first()


async def review_proof(
    conn: AsyncConnection, proof_id: str, *, status: str, reviewed_by: str, reason: str, payment_id: str | None
) -> None:
    await conn.execute(
        text(
            "UPDATE payment_proofs SET status = :s, reviewed_by = :by, review_reason = :why, "
            "payment_id = CAST(:pay AS uuid), reviewed_at = now() WHERE id = CAST(:id AS uuid)"
        ),
        {"id": proof_id, "s": status, "by": reviewed_by, "why": reason, "pay": payment_id},
    )


async def proofs_page(
    conn: AsyncConnection,
    *,
    invoice_id: str | None,
    status: str | None,
    channel_id: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list:
    clauses: list[str] = []
    params: dict = {"limit": limit}
    if invoice_id:
        clauses.append("p.invoice_id = CAST(:inv AS uuid)")
        params["inv"] = invoice_id
    if status:
        clauses.append("p.status = :status")
        params["status"] = status
    if channel_id:
        clauses.append("i.channel_id = CAST(:ch AS uuid)")
        params["ch"] = channel_id
    if after is not None:
        clauses.append("(p.created_at, p.id) < (:after_at, CAST(:after_id AS uuid))")
        params.update(after_at=after[0], after_id=after[1])
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = await conn.execute(
        text(
            f"SELECT {_PROOF_COLUMNS} FROM payment_proofs p JOIN invoices i "
            f"ON i.id = p.invoice_id {where} ORDER BY p.created_at DESC, p.id DESC "
            "LIMIT :limit"
        ),
        params,
    )
    return list(rows)


# -- documents --------------------------------------------------------------------------------


async def put_document(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    invoice_id: str,
    content_type: str,
    filename: str,
    content: bytes,
    sha256: str,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO invoice_documents (tenant_id, invoice_id, content_type, filename, content, sha256) "
            "VALUES (CAST(:t AS uuid), CAST(:inv AS uuid), :ct, :fn, :body, :sha) ON CONFLICT (invoice_id) DO UPDATE "
            "SET content_type = EXCLUDED.content_type, filename = EXCLUDED.filename, content = EXCLUDED.content, "
            "sha256 = EXCLUDED.sha256, created_at = now()"
        ),
        {"t": tenant_id, "inv": invoice_id, "ct": content_type, "fn": filename, "body": content, "sha": sha256},
    )


async def get_document(conn: AsyncConnection, invoice_id: str):
    return (
        await conn.execute(
            text(
                "SELECT content_type, filename, content, sha256 FROM invoice_documents "
                "WHERE invoice_id = CAST(:inv AS uuid)"
            ),
            {"inv": invoice_id},
        )
    ).first()


# -- audit ------------------------------------------------------------------------------------


async def append_event(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    invoice_id: str,
    kind: str,
    actor: str,
    reason: str = "",
    detail: dict | None = None,
    trace_id: str = "",
) -> None:
    await conn.execute(
        text(
            "INSERT INTO invoice_events (id, tenant_id, invoice_id, kind, actor, reason, detail, trace_id) "
            "VALUES (CAST(:id AS uuid), CAST(:t AS uuid), CAST(:inv AS uuid), :kind, :actor, :why, "
            "CAST(:detail AS jsonb), :trace)"
        ),
        {
            "id": str(uuid.uuid4()),
            "t": tenant_id,
            "inv": invoice_id,
            "kind": kind,
            "actor": actor,
            "why": reason,
            "detail": json.dumps(detail or {}, default=str),
            "trace": trace_id,
        },
    )


async def events(conn: AsyncConnection, invoice_id: str) -> list:
    rows = await conn.execute(
        text(
            "SELECT kind, actor, reason, detail::text AS detail, trace_id, occurred_at FROM invoice_events "
            "WHERE invoice_id = CAST(:inv AS uuid) ORDER BY occurred_at, id"
        ),
        {"inv": invoice_id},
    )
    return list(rows)


# -- receivables and status -------------------------------------------------------------------


async def open_invoices(conn: AsyncConnection, account_id: str | None) -> list:
    """Issued, unsettled invoices with their account's display name."""
    where = "i.status = ANY(:open)"
    params: dict = {"open": list(rules.OPEN)}
    if account_id:
        where += " AND i.account_id = CAST(:a AS uuid)"
        params["a"] = account_id
    rows = await conn.execute(
        text(
            "SELECT i.id::text AS id, i.account_id::text AS account_id, a.display_name, i.invoice_date, i.due_date, "
            "i.total_paise - i.adjusted_paise - i.credited_paise - i.paid_paise AS balance_paise "
            f"FROM invoices i JOIN billing_accounts a ON a.id = i.account_id WHERE {where} "
            "ORDER BY a.display_name, i.account_id, i.invoice_date, i.id"
        ),
        params,
    )
    return list(rows)


async def unpaid_count(conn: AsyncConnection, account_id: str) -> int:
    return (
        await conn.execute(
            text("SELECT count(*) FROM invoices WHERE account_id = CAST(:a AS uuid) AND status = ANY(:open)"),
            {"a": account_id, "open": list(rules.OPEN)},
        )
    ).scalar()


# -- the channel directory (global) -------------------------------------------------------------


async def register_channel(conn: AsyncConnection, *, channel_id: str, tenant_id: str) -> None:
    await conn.execute(
        text(
            "INSERT INTO invoice_channels (channel_id, tenant_id) VALUES (CAST(:c AS uuid), "
            "CAST(:t AS uuid)) ON CONFLICT DO NOTHING"
        ),
        {"c": channel_id, "t": tenant_id},
    )


async def channel_tenant(conn: AsyncConnection, channel_id: str) -> str | None:
    return (
        await conn.execute(
            text("SELECT tenant_id::text FROM invoice_channels WHERE channel_id = CAST(:c AS uuid)"), {"c": channel_id}
        )
    ).scalar()
