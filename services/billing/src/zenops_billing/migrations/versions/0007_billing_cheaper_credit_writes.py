"""Billing: cheaper credit writes (reserve, consume/release/expiry, grant) — less work while an
account's balance row is locked, which on a hot account every other writer waits for.

Measured (pg_stat_statements with track = all, auto_explain) inside 0002's functions: after the
lock, `billing_written` (a nested call that updated the idempotency key with its answer, then
read the entries, the balance row and the reservation back) was the dearest statement; the
"ACTIVE reservation for this ref?" lookup got whichever partial index the planner fancied
(~40 buffers a call on a busy account); the reservation insert maintained seven indexes. Now:

- the idempotency key is claimed with its answer already (the entry the operation writes last;
  a refusal replaces it with the error): no second write of the key row. Its foreign key to
  credit_ledger is checked at commit (DEFERRABLE INITIALLY DEFERRED), when the entry exists;
- the rows returned are built from what the function wrote (billing_op_result as before), not
  read back; billing_claim, inlined into each function, is dropped;
- billing_reserve reads the account's status with the balance-row lock (one statement), and
  its insert finds an ACTIVE reservation for the ref through the unique index (ON CONFLICT DO
  NOTHING: an index probe, no plan); the lookup is left to refusals;
- that index, `reservations_one_active`, is on (account_id, ref_type, ref_id): the same rule
  (an account belongs to one tenant), and it serves the lookups 0006's `reservations_active_ref`
  was made for, which goes: one index less to maintain per reservation.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

from zenops_billing.migrations.sql import sql_file

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


KEY_FK = "ALTER TABLE idempotency_keys ALTER CONSTRAINT idempotency_keys_ledger_entry_id_fkey"
ONE_ACTIVE = "reservations_one_active ON reservations ({}) WHERE status = 'ACTIVE'"

GRANT = "billing_grant(uuid, uuid, text, bigint, text, text, text, text, uuid, text, bytea, jsonb)"
RESERVE = (
    "billing_reserve(uuid, uuid, uuid, bigint, text, text, timestamptz, boolean, text, text, text, text, uuid, uuid, "
    "text, bytea, jsonb)"
)
SETTLE = (
    "billing_settle(uuid, uuid, text, bigint, text, text, text, text, text, boolean, uuid, uuid, text, bytea, jsonb)"
)
REFUSED = "billing_refused(text, boolean, text, jsonb)"

UP = [
    f"{KEY_FK} DEFERRABLE INITIALLY DEFERRED",
    "DROP INDEX reservations_active_ref",
    "DROP INDEX reservations_one_active",
    "CREATE UNIQUE INDEX " + ONE_ACTIVE.format("account_id, ref_type, ref_id"),
    sql_file("0007_billing_refused.sql"),
    sql_file("0007_billing_grant.sql"),
    sql_file("0007_billing_reserve.sql"),
    sql_file("0007_billing_settle.sql"),
    "DROP FUNCTION billing_claim(text, text, bytea, jsonb)",
]

# 0002's functions back (their files create them: the new ones are dropped first).
DOWN = [
    sql_file("0002_billing_claim.sql"),
    *(f"DROP FUNCTION {signature}" for signature in (SETTLE, RESERVE, GRANT, REFUSED)),
    sql_file("0002_billing_refused.sql"),
    sql_file("0002_billing_grant.sql"),
    sql_file("0002_billing_reserve.sql"),
    sql_file("0002_billing_settle.sql"),
    "DROP INDEX reservations_one_active",
    "CREATE UNIQUE INDEX " + ONE_ACTIVE.format("tenant_id, account_id, ref_type, ref_id"),
    "CREATE INDEX reservations_active_ref ON reservations (account_id, ref_type, ref_id) WHERE status = 'ACTIVE'",
    f"{KEY_FK} NOT DEFERRABLE",
]


def upgrade() -> None:
    for statement in UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWN:
        op.execute(statement)
