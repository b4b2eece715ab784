"""Work orders, their immutable contract snapshots, rules runs, readiness results, the work
order's audit trail, the portal's channel directory and the idempotency keys.

- `snapshots`: one row per contract version (0 = the empty contract of a new work order):
  the contract as entered (JSONB, decimals as strings), the rules outputs and the readiness
  evaluated with it. A trigger refuses UPDATE and DELETE: a snapshot is never changed.
- `rules_runs`: every rules-engine evaluation (which engine and registry version, what it
  said, how long it took).
- `readiness_results`: readiness of a snapshot when it was written and each time evidence
  changed (the latest row of a work order is its readiness now).
- `work_order_events`: the audit trail (created, transitions, template override, release),
  append-only.
- `channel_tenants`: channel id → the firm's tenant (global, ids only), learnt from the work
  orders born from channel requests: a portal user's token carries the external tenant.

Work orders are visible to the transaction's tenant and, when one is set, channel
(`app.channel_id`, as in ops): portal users see only their channel's work orders.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from zenops_kit.events.schema import tenant_rls
from zenops_kit.idempotency import IDEMPOTENCY_TABLE_DOWN, IDEMPOTENCY_TABLE_UP

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATUSES = "'DRAFT', 'DATA_PENDING', 'READY_FOR_RENDER', 'RENDERED', 'RELEASED', 'CANCELLED'"
TENANT_TABLES = ("snapshots", "rules_runs", "readiness_results", "work_order_events", "idempotency_keys")

_TENANT = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"
_CHANNEL = (
    "(NULLIF(current_setting('app.channel_id', true), '') IS NULL "
    "OR channel_id = NULLIF(current_setting('app.channel_id', true), '')::uuid)"
)

UP = [
    """
    CREATE TABLE channel_tenants (
        channel_id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL
    )
    """,
    f"""
    CREATE TABLE work_orders (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        assignment_id uuid NOT NULL,
        channel_request_id uuid,
        channel_id uuid,
        bank_code text NOT NULL DEFAULT '' CHECK (length(bank_code) <= 20),
        template_id text NOT NULL,
        template_overridden boolean NOT NULL DEFAULT false,
        template_override_reason text NOT NULL DEFAULT '' CHECK (length(template_override_reason) <= 1000),
        billing_account_id uuid,
        status text NOT NULL DEFAULT 'DRAFT' CHECK (status IN ({STATUSES})),
        snapshot_version bigint NOT NULL DEFAULT 0 CHECK (snapshot_version >= 0),
        evidence_profile text NOT NULL,
        credits bigint NOT NULL DEFAULT 0 CHECK (credits >= 0),
        last_error text NOT NULL DEFAULT '',
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        version bigint NOT NULL DEFAULT 1,
        CONSTRAINT work_orders_tenant_id UNIQUE (tenant_id, id),
        CHECK (template_overridden = (template_override_reason <> ''))
    )
    """,
    # One live work order per assignment, and one per channel request.
    "CREATE UNIQUE INDEX work_orders_assignment ON work_orders (tenant_id, assignment_id) WHERE status <> 'CANCELLED'",
    "CREATE UNIQUE INDEX work_orders_channel_request ON work_orders (tenant_id, channel_request_id) "
    "WHERE channel_request_id IS NOT NULL",
    "CREATE INDEX work_orders_page ON work_orders (tenant_id, created_at DESC, id DESC)",
    "CREATE INDEX work_orders_status ON work_orders (tenant_id, status)",
    """
    CREATE TABLE snapshots (
        tenant_id uuid NOT NULL,
        work_order_id uuid NOT NULL,
        version bigint NOT NULL CHECK (version >= 0),
        schema_version int NOT NULL,
        contract jsonb NOT NULL,
        outputs jsonb NOT NULL,
        readiness jsonb NOT NULL,
        actor text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (work_order_id, version),
        CONSTRAINT snapshots_work_order_fk FOREIGN KEY (tenant_id, work_order_id) REFERENCES work_orders (tenant_id, id)
    )
    """,
    """
    CREATE TABLE rules_runs (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        work_order_id uuid NOT NULL,
        snapshot_version bigint NOT NULL,
        rules_version text NOT NULL,
        registry_version text NOT NULL,
        messages jsonb NOT NULL DEFAULT '[]',
        duration_us bigint NOT NULL CHECK (duration_us >= 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT rules_runs_snapshot_fk FOREIGN KEY (work_order_id, snapshot_version)
            REFERENCES snapshots (work_order_id, version)
    )
    """,
    """
    CREATE TABLE readiness_results (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        work_order_id uuid NOT NULL,
        snapshot_version bigint NOT NULL,
        -- create | patch | template | evidence | transition
        trigger text NOT NULL,
        ready boolean NOT NULL,
        score int NOT NULL CHECK (score BETWEEN 0 AND 100),
        result jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        CONSTRAINT readiness_results_snapshot_fk FOREIGN KEY (work_order_id, snapshot_version)
            REFERENCES snapshots (work_order_id, version)
    )
    """,
    "CREATE INDEX readiness_results_latest ON readiness_results (work_order_id, created_at DESC, id DESC)",
    """
    CREATE TABLE work_order_events (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        work_order_id uuid NOT NULL,
        kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.]*$'),
        from_status text,
        to_status text,
        actor text NOT NULL,
        reason text NOT NULL DEFAULT '',
        detail jsonb NOT NULL DEFAULT '{}',
        trace_id text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        CONSTRAINT work_order_events_work_order_fk FOREIGN KEY (tenant_id, work_order_id)
            REFERENCES work_orders (tenant_id, id)
    )
    """,
    "CREATE INDEX work_order_events_of ON work_order_events (work_order_id, created_at)",
    """
    CREATE FUNCTION repogen_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    *(
        f"CREATE TRIGGER {t}_immutable BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION repogen_immutable()"
        for t in ("snapshots", "rules_runs", "readiness_results", "work_order_events")
    ),
    *(
        f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} FOR EACH STATEMENT EXECUTE FUNCTION repogen_immutable()"
        for t in ("snapshots", "work_order_events")
    ),
    IDEMPOTENCY_TABLE_UP,
]

DOWN = [
    IDEMPOTENCY_TABLE_DOWN,
    *(
        f"DROP TABLE IF EXISTS {t}"
        for t in ("work_order_events", "readiness_results", "rules_runs", "snapshots", "work_orders", "channel_tenants")
    ),
    "DROP FUNCTION IF EXISTS repogen_immutable()",
]


def upgrade() -> None:
    for statement in UP:
        op.execute(statement)
    for table in TENANT_TABLES:
        for statement in tenant_rls(table):
            op.execute(statement)
    predicate = f"{_TENANT} AND {_CHANNEL}"
    op.execute("ALTER TABLE work_orders ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE work_orders FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY work_orders_tenant_channel_isolation ON work_orders USING ({predicate}) "
        f"WITH CHECK ({predicate})"
    )


def downgrade() -> None:
    for statement in DOWN:
        op.execute(statement)
