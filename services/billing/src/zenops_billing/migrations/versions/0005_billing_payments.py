"""Billing: checkouts (Razorpay orders, Stripe Checkout sessions), provider webhook events,
settlements (one per underlying provider payment), recoveries (refunds and lost disputes)
and the compensating debit.

- `checkouts` (tenant RLS): what was asked of a provider — purpose (topup | invoice), the
  target (credits or invoice), the amount charged, the provider's order/session id.
- `provider_refs` (global, no RLS, ids only): provider + ref (our checkout id, the provider's
  order/session id, and each settled payment id) → tenant and checkout. A webhook carries
  no tenant; this directory resolves it (nothing else is readable without one under RLS).
- `provider_event_receipts` (global, no RLS, ids and a body hash only): one row per
  (provider, event id) ever verified — the dedupe key across tenants, the same-id-different-
  body check, and where events with no resolvable tenant (unknown types) are acknowledged.
- `payment_events` (tenant RLS): every verified event of a tenant's checkout, stored once
  (unique provider + event id) with its raw body; `applied_at` NULL until settlement applied
  it (a crash between storing and applying is repaired from this row, on the provider's
  retry or by the sweep).
- `payment_settlements` (tenant RLS): one row per underlying provider payment (unique
  provider + payment ref), inserted in the transaction that grants the TOPUP credits or
  records the invoice payment: a payment.captured and an order.paid for the same payment,
  each delivered many times in any order, settle once.
- `payment_recoveries` (tenant RLS): one row per refunded or disputed payment, inserted in
  the transaction of its one compensating debit (`billing_debit`); status RECOVERY_DUE when
  the credits had been spent and the wallet went negative.
- `webhook_rejections` (global, no RLS, no bodies): the audit of every refused webhook (bad
  signature, stale or future timestamp, event id reused with another body).

`billing_debit` (a wallet function, like billing_grant in 0002): takes credits back from an
account in one call under the balance-row lock, as a reservation that is consumed at once
(RESERVE + CONSUME, ref manual:<ref>), so the ledger keeps its kinds and invariants; the part
not covered by a non-negative available is an ADJUSTMENT tied to it (the overdraft, as an
override's shortfall) and an account event RECOVERY_DUE.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

from zenops_billing.migrations.sql import sql_file
from zenops_kit.events.schema import tenant_rls

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


TENANT_TABLES = ("checkouts", "payment_events", "payment_settlements", "payment_recoveries")
PROVIDER = "CHECK (provider IN ('razorpay', 'stripe'))"

UP = [
    f"""
    CREATE TABLE checkouts (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        account_id uuid NOT NULL REFERENCES billing_accounts (id),
        provider text NOT NULL {PROVIDER},
        purpose text NOT NULL CHECK (purpose IN ('topup', 'invoice')),
        credits bigint NOT NULL DEFAULT 0 CHECK (credits >= 0),
        invoice_id uuid,
        amount_paise bigint NOT NULL CHECK (amount_paise > 0),
        currency text NOT NULL DEFAULT 'INR' CHECK (currency = 'INR'),
        provider_ref text NOT NULL CHECK (length(provider_ref) BETWEEN 1 AND 200),
        checkout_url text NOT NULL DEFAULT '',
        status text NOT NULL DEFAULT 'created' CHECK (status IN ('created', 'paid', 'failed', 'refunded')),
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT checkouts_provider_ref UNIQUE (provider, provider_ref),
        CONSTRAINT checkouts_invoice_fk FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id),
        CHECK ((purpose = 'topup') = (credits > 0 AND invoice_id IS NULL)),
        CHECK ((purpose = 'invoice') = (credits = 0 AND invoice_id IS NOT NULL))
    )
    """,
    "CREATE INDEX checkouts_account ON checkouts (tenant_id, account_id, created_at DESC)",
    f"""
    CREATE TABLE provider_refs (
        provider text NOT NULL {PROVIDER},
        ref text NOT NULL CHECK (length(ref) BETWEEN 1 AND 200),   -- checkout:<id>, order/session id, payment id
        tenant_id uuid NOT NULL,
        checkout_id uuid NOT NULL,
        PRIMARY KEY (provider, ref)
    )
    """,
    f"""
    CREATE TABLE provider_event_receipts (
        provider text NOT NULL {PROVIDER},
        event_id text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 200),
        body_sha256 bytea NOT NULL CHECK (length(body_sha256) = 32),
        event_type text NOT NULL DEFAULT '',
        tenant_id uuid,                                   -- NULL: no tenant's checkout (acknowledged, ignored)
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (provider, event_id)
    )
    """,
    f"""
    CREATE TABLE payment_events (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        provider text NOT NULL {PROVIDER},
        event_id text NOT NULL,
        event_type text NOT NULL,
        checkout_id uuid REFERENCES checkouts (id),
        payment_ref text NOT NULL DEFAULT '',
        body bytea NOT NULL,
        body_sha256 bytea NOT NULL CHECK (length(body_sha256) = 32),
        outcome text NOT NULL DEFAULT 'pending'
            CHECK (outcome IN ('pending', 'applied', 'duplicate', 'ignored')),
        received_at timestamptz NOT NULL DEFAULT now(),
        applied_at timestamptz,
        CONSTRAINT payment_events_event UNIQUE (provider, event_id),
        CHECK ((outcome = 'pending') = (applied_at IS NULL))
    )
    """,
    "CREATE INDEX payment_events_pending ON payment_events (tenant_id, received_at) WHERE applied_at IS NULL",
    "CREATE INDEX payment_events_checkout ON payment_events (checkout_id, received_at)",
    f"""
    CREATE TABLE payment_settlements (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        provider text NOT NULL {PROVIDER},
        payment_ref text NOT NULL CHECK (length(payment_ref) BETWEEN 1 AND 200),
        checkout_id uuid NOT NULL REFERENCES checkouts (id),
        account_id uuid NOT NULL REFERENCES billing_accounts (id),
        amount_paise bigint NOT NULL CHECK (amount_paise >= 0),
        credits bigint NOT NULL DEFAULT 0 CHECK (credits >= 0),
        ledger_entry_id uuid REFERENCES credit_ledger (id),
        invoice_payment_id uuid,
        event_id text NOT NULL,
        settled_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT payment_settlements_payment UNIQUE (provider, payment_ref)
    )
    """,
    f"""
    CREATE TABLE payment_recoveries (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        provider text NOT NULL {PROVIDER},
        payment_ref text NOT NULL,
        settlement_id uuid NOT NULL REFERENCES payment_settlements (id),
        account_id uuid NOT NULL REFERENCES billing_accounts (id),
        kind text NOT NULL CHECK (kind IN ('refund', 'dispute')),
        credits bigint NOT NULL CHECK (credits >= 0),
        shortfall bigint NOT NULL DEFAULT 0 CHECK (shortfall >= 0),
        reservation_id uuid REFERENCES reservations (id),
        status text NOT NULL CHECK (status IN ('SETTLED', 'RECOVERY_DUE', 'NOT_APPLICABLE')),
        event_id text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT payment_recoveries_payment UNIQUE (provider, payment_ref),
        CHECK ((status = 'RECOVERY_DUE') = (shortfall > 0))
    )
    """,
    "CREATE INDEX payment_recoveries_due ON payment_recoveries (tenant_id, account_id) WHERE status = 'RECOVERY_DUE'",
    """
    CREATE TABLE webhook_rejections (
        id uuid PRIMARY KEY,
        provider text NOT NULL CHECK (length(provider) <= 40),
        reason text NOT NULL,
        detail text NOT NULL DEFAULT '',
        event_id text NOT NULL DEFAULT '',
        body_sha256 bytea NOT NULL,
        body_bytes int NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX webhook_rejections_recent ON webhook_rejections (received_at DESC)",
    *(
        f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION "
        "billing_append_only()"
        for t in ("payment_settlements", "payment_recoveries", "webhook_rejections", "provider_event_receipts")
    ),
]

# One call: lock the balance row, take `p_amount` back as a reservation consumed at once, the
# uncovered part an ADJUSTMENT (overdraft) tied to it plus an account event RECOVERY_DUE.
# Returns billing_op_result rows like the other wallet functions (billing_written). Unlike a
# reserve it ignores the account's status: money already refunded is recovered regardless.
FUNCTIONS_UP = [sql_file("0005_billing_debit.sql")]

DOWN = [
    "DROP FUNCTION billing_debit(uuid, uuid, bigint, text, text, text, text, uuid, uuid, uuid)",
    "DROP TABLE webhook_rejections",
    "DROP TABLE payment_recoveries",
    "DROP TABLE payment_settlements",
    "DROP TABLE payment_events",
    "DROP TABLE provider_event_receipts",
    "DROP TABLE provider_refs",
    "DROP TABLE checkouts",
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
