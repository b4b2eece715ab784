"""Billing: plans, subscriptions, refills (the exactly-once guard) and release authorizations.

`refills` has one row per (subscription, period start), inserted in the same transaction
as the REFILL grant: a second scheduler, a rerun or a retry after a crash finds the row
and grants nothing. `release_authorizations` is append-only (trigger), one per work
order: the release gate's decisions, overrides included (who, why).

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from zenops_kit.events.schema import tenant_rls

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TENANT_TABLES = ("plans", "subscriptions", "refills", "release_authorizations")

UP = [
    """
    CREATE TABLE plans (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        code text NOT NULL,
        name text NOT NULL,
        credits_per_period bigint NOT NULL CHECK (credits_per_period > 0),
        period text NOT NULL CHECK (period IN ('monthly')),
        price_paise bigint NOT NULL CHECK (price_paise >= 0),
        active boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (tenant_id, code)
    )
    """,
    """
    CREATE TABLE subscriptions (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        account_id uuid NOT NULL REFERENCES billing_accounts (id),
        plan_id uuid NOT NULL REFERENCES plans (id),
        status text NOT NULL CHECK (status IN ('ACTIVE', 'PAUSED', 'CANCELLED')),
        -- periods are anchored here: period n starts n calendar months later (UTC)
        anchor_at timestamptz NOT NULL,
        -- the first period not granted yet
        next_period integer NOT NULL DEFAULT 0 CHECK (next_period >= 0),
        -- start of next_period while ACTIVE; NULL when paused or cancelled (nothing is due)
        next_refill_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        paused_at timestamptz,
        cancelled_at timestamptz,
        CHECK ((status = 'ACTIVE') = (next_refill_at IS NOT NULL))
    )
    """,
    # One live subscription per account and plan (a retried Subscribe without a key).
    "CREATE UNIQUE INDEX subscriptions_one_live ON subscriptions (tenant_id, account_id, plan_id) "
    "WHERE status <> 'CANCELLED'",
    # The scheduler's scan.
    "CREATE INDEX subscriptions_due ON subscriptions (next_refill_at) WHERE status = 'ACTIVE'",
    """
    CREATE TABLE refills (
        tenant_id uuid NOT NULL,
        subscription_id uuid NOT NULL REFERENCES subscriptions (id),
        period_start timestamptz NOT NULL,
        period_index integer NOT NULL,
        amount bigint NOT NULL CHECK (amount > 0),
        -- the REFILL ledger entry, set in the same transaction right after the grant
        ledger_entry_id uuid,
        granted_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (subscription_id, period_start)
    )
    """,
    """
    CREATE TABLE release_authorizations (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        work_order_id text NOT NULL,
        account_id uuid NOT NULL,
        channel_request_id text NOT NULL DEFAULT '',
        basis text NOT NULL CHECK (basis IN ('CREDITS_CONSUMED', 'INVOICE_PAID', 'OVERRIDDEN')),
        reservation_id uuid,
        override_reason text NOT NULL DEFAULT '',
        actor text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (tenant_id, work_order_id)
    )
    """,
    "CREATE INDEX release_authorizations_account ON release_authorizations (tenant_id, account_id, created_at)",
    # billing_append_only() is 0002's (the ledger's guard).
    "CREATE TRIGGER release_authorizations_append_only BEFORE UPDATE OR DELETE ON release_authorizations "
    "FOR EACH ROW EXECUTE FUNCTION billing_append_only()",
    "CREATE TRIGGER release_authorizations_no_truncate BEFORE TRUNCATE ON release_authorizations "
    "FOR EACH STATEMENT EXECUTE FUNCTION billing_append_only()",
]

DOWN = [
    "DROP TABLE release_authorizations",
    "DROP TABLE refills",
    "DROP TABLE subscriptions",
    "DROP TABLE plans",
]


def upgrade() -> None:
    for statement in UP:
        op.execute(statement)
    for table in TENANT_TABLES:
        for statement in tenant_rls(table):
            op.execute(statement)


def downgrade() -> None:
    for statement in DOWN:
        op.execute(statement)
