"""Billing wallet: accounts, balance rows, the credit ledger, reservations, idempotency keys,
usage events and the account audit trail.

Every table but `billing_tenants` carries `tenant_id` under row-level security.
`billing_tenants` lists the tenant ids that have billing data (ids only), so background
sweeps know which tenants to visit: under RLS nothing else can tell them.

The database itself protects the money path:
- `credit_ledger` and `account_events` are append-only: a trigger refuses UPDATE, DELETE and
  TRUNCATE, for the service's own role too (it owns the tables; triggers bind owners).
- a reservation moves ACTIVE → CONSUMED | RELEASED | EXPIRED once; its amount, account
  and ref never change, and it is never deleted (trigger);
- one ACTIVE reservation per (tenant, account, ref_type, ref_id) (partial unique index);
- balance figures are never negative, and available (granted - consumed - reserved) never
  goes below minus the recorded override allowance (CHECK);
- ledger amounts are > 0, and each entry carries the balances after it (per-account `seq`,
  unique: two writers that skipped the row lock would collide here).

The credit operations themselves are database functions (billing_grant, billing_reserve,
billing_settle; see FUNCTIONS_UP, their source in migrations/sql/0002_*.sql): one call locks,
decides, writes and records the idempotency key's answer, so the credit RPCs cost one round trip each.

Reservations and ledger entries reference the balance row (wallets), not billing_accounts:
a foreign-key check takes a KEY SHARE lock on the referenced row, which on the account row
every concurrent operation would share (MultiXacts); the balance row is already locked FOR
UPDATE by the very transaction, so the check costs nothing more there.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from zenops_billing.migrations.sql import sql_file
from zenops_kit.events.schema import tenant_rls

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


TENANT_TABLES = (
    "billing_accounts",
    "wallets",
    "credit_ledger",
    "reservations",
    "idempotency_keys",
    "usage_events",
    "account_events",
)

GSTIN = "^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$"

UP = [
    """
    CREATE TABLE billing_tenants (
        tenant_id uuid PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    f"""
    CREATE TABLE billing_accounts (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        external_key text CHECK (length(external_key) BETWEEN 1 AND 200),   -- NULL: none
        display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
        policy text NOT NULL CHECK (policy IN ('CREDIT', 'POSTPAID')),
        status text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'SUSPENDED')),
        gstin text CHECK (gstin ~ '{GSTIN}'),                               -- NULL: none
        billing_address text NOT NULL DEFAULT '' CHECK (length(billing_address) <= 1000),
        currency text NOT NULL DEFAULT 'INR' CHECK (currency = 'INR'),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        version integer NOT NULL DEFAULT 1
    )
    """,
    "CREATE UNIQUE INDEX billing_accounts_external_key ON billing_accounts (tenant_id, external_key)",
    "CREATE INDEX billing_accounts_list ON billing_accounts (tenant_id, created_at, id)",
    # One balance row per account: the row every balance-changing operation locks.
    """
    CREATE TABLE wallets (
        account_id uuid PRIMARY KEY REFERENCES billing_accounts (id),
        tenant_id uuid NOT NULL,
        granted bigint NOT NULL DEFAULT 0 CHECK (granted >= 0),
        consumed bigint NOT NULL DEFAULT 0 CHECK (consumed >= 0),
        reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
        overdraft bigint NOT NULL DEFAULT 0 CHECK (overdraft >= 0),
        entries bigint NOT NULL DEFAULT 0 CHECK (entries >= 0),         -- ledger entries so far (= last seq)
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT wallets_available_floor CHECK (granted - consumed - reserved >= -overdraft)
    )
    """,
    """
    CREATE TABLE reservations (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        account_id uuid NOT NULL REFERENCES wallets (account_id),
        amount bigint NOT NULL CHECK (amount > 0),
        ref_type text NOT NULL CHECK (ref_type IN ('channel_request', 'work_order', 'assignment', 'manual')),
        ref_id text NOT NULL CHECK (length(ref_id) BETWEEN 1 AND 200),
        status text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'CONSUMED', 'RELEASED', 'EXPIRED')),
        consumed_amount bigint NOT NULL DEFAULT 0,
        shortfall bigint NOT NULL DEFAULT 0 CHECK (shortfall >= 0 AND shortfall <= amount),
        override_reason text NOT NULL DEFAULT '',
        expires_at timestamptz NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        settled_at timestamptz,
        actor text NOT NULL DEFAULT '',
        settled_by text NOT NULL DEFAULT '',
        settle_reason text NOT NULL DEFAULT '',
        idempotency_key text NOT NULL DEFAULT '',
        CHECK (consumed_amount >= 0 AND consumed_amount <= amount),
        CHECK ((status = 'CONSUMED') = (consumed_amount > 0)),
        CHECK ((status = 'ACTIVE') = (settled_at IS NULL)),
        CHECK ((shortfall > 0) = (override_reason <> ''))
    )
    """,
    """
    CREATE UNIQUE INDEX reservations_one_active ON reservations (tenant_id, account_id, ref_type, ref_id)
        WHERE status = 'ACTIVE'
    """,
    "CREATE INDEX reservations_due ON reservations (tenant_id, expires_at, id) WHERE status = 'ACTIVE'",
    "CREATE INDEX reservations_recent ON reservations (tenant_id, created_at DESC, id DESC)",
    "CREATE INDEX reservations_account ON reservations (account_id, created_at DESC, id DESC)",
    "CREATE INDEX reservations_ref ON reservations (tenant_id, ref_type, ref_id)",
    """
    CREATE TABLE credit_ledger (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        account_id uuid NOT NULL REFERENCES wallets (account_id),
        seq bigint NOT NULL CHECK (seq > 0),
        kind text NOT NULL CHECK (kind IN ('GRANT', 'TOPUP', 'REFILL', 'RESERVE', 'CONSUME', 'RELEASE', 'EXPIRE',
                                           'ADJUSTMENT')),
        amount bigint NOT NULL CHECK (amount > 0),
        reservation_id uuid REFERENCES reservations (id),
        business_ref text NOT NULL DEFAULT '',
        actor text NOT NULL,
        reason text NOT NULL DEFAULT '',
        idempotency_key text NOT NULL DEFAULT '',
        granted_after bigint NOT NULL CHECK (granted_after >= 0),
        consumed_after bigint NOT NULL CHECK (consumed_after >= 0),
        reserved_after bigint NOT NULL CHECK (reserved_after >= 0),
        overdraft_after bigint NOT NULL CHECK (overdraft_after >= 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT credit_ledger_account_seq UNIQUE (account_id, seq),
        CHECK ((kind IN ('RESERVE', 'CONSUME', 'RELEASE', 'EXPIRE')) <= (reservation_id IS NOT NULL)),
        CHECK ((kind IN ('GRANT', 'TOPUP', 'REFILL')) <= (reservation_id IS NULL))
    )
    """,
    "CREATE INDEX credit_ledger_timeline ON credit_ledger (account_id, created_at DESC, seq DESC)",
    "CREATE INDEX credit_ledger_reservation ON credit_ledger (reservation_id) WHERE reservation_id IS NOT NULL",
    """
    CREATE TABLE idempotency_keys (
        tenant_id uuid NOT NULL,
        key text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
        operation text NOT NULL,
        request_hash bytea NOT NULL CHECK (length(request_hash) = 32),   -- sha256 of operation + request
        request jsonb NOT NULL,                                         -- the compared fields, as sent
        response bytea,                                                 -- the serialized original response,
        ledger_entry_id uuid REFERENCES credit_ledger (id),             -- or the credit operation's last entry,
        error jsonb,                                                    -- or the original failure
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, key),
        CHECK (num_nonnulls(response, ledger_entry_id, error) <= 1)
    )
    """,
    """
    CREATE TABLE usage_events (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        event_id text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 200),
        account_id uuid REFERENCES billing_accounts (id),
        kind text NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
        quantity bigint NOT NULL CHECK (quantity >= 0),
        ref_type text NOT NULL DEFAULT '',
        ref_id text NOT NULL DEFAULT '',
        occurred_at timestamptz NOT NULL,
        source text NOT NULL DEFAULT '',
        recorded_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT usage_events_event UNIQUE (tenant_id, event_id)
    )
    """,
    "CREATE INDEX usage_events_account ON usage_events (account_id, occurred_at DESC, id DESC)",
    # Account changes that are not money: creation, policy/status changes, overrides (audit).
    """
    CREATE TABLE account_events (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        account_id uuid NOT NULL REFERENCES billing_accounts (id),
        kind text NOT NULL,
        actor text NOT NULL,
        reason text NOT NULL DEFAULT '',
        detail jsonb NOT NULL DEFAULT '{}'::jsonb,
        trace_id text NOT NULL DEFAULT '',
        occurred_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    "CREATE INDEX account_events_account ON account_events (account_id, occurred_at DESC, id DESC)",
    sql_file("0002_billing_append_only.sql"),
    """
    CREATE TRIGGER credit_ledger_append_only BEFORE UPDATE OR DELETE ON credit_ledger
        FOR EACH ROW EXECUTE FUNCTION billing_append_only()
    """,
    """
    CREATE TRIGGER credit_ledger_no_truncate BEFORE TRUNCATE ON credit_ledger
        FOR EACH STATEMENT EXECUTE FUNCTION billing_append_only()
    """,
    """
    CREATE TRIGGER account_events_append_only BEFORE UPDATE OR DELETE ON account_events
        FOR EACH ROW EXECUTE FUNCTION billing_append_only()
    """,
    """
    CREATE TRIGGER account_events_no_truncate BEFORE TRUNCATE ON account_events
        FOR EACH STATEMENT EXECUTE FUNCTION billing_append_only()
    """,
    # The state machine, enforced where no code path can skip it.
    sql_file("0002_reservations_transition.sql"),
    """
    CREATE TRIGGER reservations_transition BEFORE UPDATE OR DELETE ON reservations
        FOR EACH ROW EXECUTE FUNCTION reservations_transition()
    """,
    """
    CREATE TRIGGER reservations_no_truncate BEFORE TRUNCATE ON reservations
        FOR EACH STATEMENT EXECUTE FUNCTION reservations_transition()
    """,
]

# The credit operations, one function each, so that an operation is ONE round trip: called
# in autocommit (the credit RPCs) the lock on the balance row lasts from its SELECT ... FOR
# UPDATE to the commit inside the database, never across a client round trip; called inside
# a caller's transaction (event reactions, the release gate, refills) it behaves the same.
# Each statement of a plpgsql function takes a fresh snapshot, so every check after the lock
# sees every committed change. The decisions mirror domain/wallet.py's rules (the reason
# codes are the outcomes); the functions return one billing_op_result row per ledger entry
# written, or one row with the refusal.
FUNCTIONS_UP = [
    sql_file("0002_billing_op_result.sql"),
    sql_file("0002_billing_claim.sql"),
    sql_file("0002_billing_refused.sql"),
    sql_file("0002_billing_written.sql"),
    sql_file("0002_billing_grant.sql"),
    sql_file("0002_billing_reserve.sql"),
    sql_file("0002_billing_settle.sql"),
]

FUNCTIONS_DOWN = [
    "DROP FUNCTION billing_settle(uuid, uuid, text, bigint, text, text, text, text, text, boolean, uuid, uuid, text, "
    "bytea, jsonb)",
    "DROP FUNCTION billing_reserve(uuid, uuid, uuid, bigint, text, text, timestamptz, boolean, text, text, text, "
    "text, uuid, uuid, text, bytea, jsonb)",
    "DROP FUNCTION billing_grant(uuid, uuid, text, bigint, text, text, text, text, uuid, text, bytea, jsonb)",
    "DROP FUNCTION billing_written(text, boolean, uuid, uuid[])",
    "DROP FUNCTION billing_refused(text, boolean, text, jsonb)",
    "DROP FUNCTION billing_claim(text, text, bytea, jsonb)",
    "DROP TYPE billing_op_result",
]

DOWN = [
    *FUNCTIONS_DOWN,
    "DROP TABLE account_events",
    "DROP TABLE usage_events",
    "DROP TABLE idempotency_keys",
    "DROP TABLE credit_ledger",
    "DROP TABLE reservations",
    "DROP FUNCTION reservations_transition()",
    "DROP FUNCTION billing_append_only()",
    "DROP TABLE wallets",
    "DROP TABLE billing_accounts",
    "DROP TABLE billing_tenants",
]


def upgrade() -> None:
    for statement in UP + FUNCTIONS_UP:
        op.execute(statement)
    for table in TENANT_TABLES:
        for statement in tenant_rls(table):
            op.execute(statement)


def downgrade() -> None:
    for statement in DOWN:
        op.execute(statement)
