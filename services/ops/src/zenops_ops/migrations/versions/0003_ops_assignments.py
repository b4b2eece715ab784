"""Assignments and their lifecycle, tasks, and the activity trail.

- `reference_counters`: one row per (tenant, year); an assignment's number is taken by
  incrementing it in the assignment's own transaction (the row lock orders concurrent
  creates; a rolled-back create gives its number back), so numbers are unique and gapless.
- `assignment_status_history`: every transition (from, to, actor, reason, time).
- `assignment_stages`: one row per stage the assignment entered, closed when it leaves
  (how long it spent in each stage).
- `activities`: what happened to an assignment or channel request, for people to read;
  append-only (a trigger refuses UPDATE and DELETE), as is the status history.

References to tenant tables that have a (tenant_id, id) key are tenant-qualified foreign
keys: PostgreSQL checks foreign keys without row-level security, so a plain `x_id → id`
key would accept another tenant's record. (The service also checks every reference under
RLS first and names the field.)

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from zenops_kit.events.schema import tenant_rls

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TENANT_TABLES = (
    "reference_counters",
    "assignments",
    "assignment_status_history",
    "assignment_stages",
    "activities",
    "tasks",
)
STATUSES = "'DRAFT', 'COLLECTING', 'SITE_VISIT', 'UNDER_REVIEW', 'DELIVERED', 'CANCELLED'"

UP = [
    """
    CREATE TABLE reference_counters (
        tenant_id uuid NOT NULL,
        year int NOT NULL CHECK (year BETWEEN 2000 AND 9999),
        last_value int NOT NULL CHECK (last_value BETWEEN 1 AND 999999),
        PRIMARY KEY (tenant_id, year)
    )
    """,
    f"""
    CREATE TABLE assignments (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        reference_number text NOT NULL CHECK (reference_number ~ '^ZA-[0-9]{{4}}-[0-9]{{6}}$'),
        source_type text NOT NULL CHECK (source_type IN ('BANK', 'CHANNEL', 'DIRECT')),
        status text NOT NULL DEFAULT 'DRAFT' CHECK (status IN ({STATUSES})),
        bank_id uuid,
        branch_id uuid,
        client_org_id uuid,
        property_id uuid,
        contact_id uuid,
        channel_id uuid,
        channel_request_id uuid,
        due_at timestamptz,
        priority text NOT NULL DEFAULT 'MEDIUM' CHECK (priority IN ('LOW', 'MEDIUM', 'HIGH')),
        assignee_ids uuid[] NOT NULL DEFAULT '{{}}',
        fee_paise bigint NOT NULL DEFAULT 0 CHECK (fee_paise >= 0),
        notes text NOT NULL DEFAULT '' CHECK (length(notes) <= 5000),
        borrower_name text NOT NULL DEFAULT '' CHECK (length(borrower_name) <= 200),
        completeness_score int NOT NULL DEFAULT 0 CHECK (completeness_score BETWEEN 0 AND 100),
        credits_short boolean NOT NULL DEFAULT false,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        version bigint NOT NULL DEFAULT 1,
        CONSTRAINT assignments_reference_unique UNIQUE (tenant_id, reference_number),
        CONSTRAINT assignments_tenant_id UNIQUE (tenant_id, id),
        CONSTRAINT assignments_bank_fk FOREIGN KEY (tenant_id, bank_id) REFERENCES banks (tenant_id, id),
        CONSTRAINT assignments_branch_fk FOREIGN KEY (tenant_id, branch_id) REFERENCES bank_branches (tenant_id, id),
        CONSTRAINT assignments_client_org_fk FOREIGN KEY (tenant_id, client_org_id)
            REFERENCES client_orgs (tenant_id, id),
        CONSTRAINT assignments_contact_fk FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id),
        CONSTRAINT assignments_property_id_fkey FOREIGN KEY (tenant_id, property_id)
            REFERENCES properties (tenant_id, id),
        CONSTRAINT assignments_channel_id_fkey FOREIGN KEY (tenant_id, channel_id) REFERENCES channels (tenant_id, id),
        CHECK (source_type <> 'CHANNEL' OR channel_id IS NOT NULL),
        CHECK (channel_request_id IS NULL OR source_type = 'CHANNEL')
    )
    """,
    "CREATE INDEX assignments_page ON assignments (tenant_id, created_at DESC, id DESC)",
    "CREATE INDEX assignments_status ON assignments (tenant_id, status)",
    "CREATE INDEX assignments_assignees ON assignments USING gin (assignee_ids)",
    "CREATE UNIQUE INDEX assignments_channel_request ON assignments (tenant_id, channel_request_id) "
    "WHERE channel_request_id IS NOT NULL",
    f"""
    CREATE TABLE assignment_status_history (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        assignment_id uuid NOT NULL,
        from_status text CHECK (from_status IN ({STATUSES})),    -- NULL: created
        to_status text NOT NULL CHECK (to_status IN ({STATUSES})),
        actor text NOT NULL,
        reason text NOT NULL DEFAULT '' CHECK (length(reason) <= 1000),
        trace_id text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        FOREIGN KEY (tenant_id, assignment_id) REFERENCES assignments (tenant_id, id)
    )
    """,
    "CREATE INDEX assignment_status_history_of ON assignment_status_history (assignment_id, created_at)",
    f"""
    CREATE TABLE assignment_stages (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        assignment_id uuid NOT NULL,
        stage text NOT NULL CHECK (stage IN ({STATUSES})),
        entered_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        exited_at timestamptz,
        CHECK (exited_at IS NULL OR exited_at >= entered_at),
        FOREIGN KEY (tenant_id, assignment_id) REFERENCES assignments (tenant_id, id)
    )
    """,
    # At most one open stage per assignment.
    "CREATE UNIQUE INDEX assignment_stages_open ON assignment_stages (assignment_id) WHERE exited_at IS NULL",
    """
    CREATE TABLE activities (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        assignment_id uuid,
        channel_request_id uuid,
        kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.]*$'),
        actor text NOT NULL,
        summary text NOT NULL DEFAULT '',
        detail jsonb NOT NULL DEFAULT '{}',
        trace_id text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        CHECK (num_nonnulls(assignment_id, channel_request_id) >= 1),
        FOREIGN KEY (tenant_id, assignment_id) REFERENCES assignments (tenant_id, id)
    )
    """,
    "CREATE INDEX activities_assignment ON activities (assignment_id, created_at DESC, id DESC)",
    "CREATE INDEX activities_channel_request ON activities (channel_request_id, created_at DESC, id DESC)",
    """
    CREATE FUNCTION ops_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    "CREATE TRIGGER activities_append_only BEFORE UPDATE OR DELETE ON activities "
    "FOR EACH ROW EXECUTE FUNCTION ops_append_only()",
    "CREATE TRIGGER assignment_status_history_append_only BEFORE UPDATE OR DELETE ON assignment_status_history "
    "FOR EACH ROW EXECUTE FUNCTION ops_append_only()",
    """
    CREATE TABLE tasks (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        title text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
        description text NOT NULL DEFAULT '' CHECK (length(description) <= 5000),
        assignment_id uuid,
        assignee_id text NOT NULL,
        created_by text NOT NULL,
        due_at timestamptz,
        priority text NOT NULL DEFAULT 'MEDIUM' CHECK (priority IN ('LOW', 'MEDIUM', 'HIGH')),
        status text NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'DONE', 'BLOCKED')),
        done_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        version bigint NOT NULL DEFAULT 1,
        CHECK ((status = 'DONE') = (done_at IS NOT NULL)),
        CONSTRAINT tasks_assignment_id_fkey FOREIGN KEY (tenant_id, assignment_id) REFERENCES assignments (tenant_id, id)
    )
    """,
    "CREATE INDEX tasks_page ON tasks (tenant_id, created_at DESC, id DESC)",
    "CREATE INDEX tasks_assignee ON tasks (tenant_id, assignee_id, status)",
    "CREATE INDEX tasks_due ON tasks (tenant_id, status, due_at)",
]

DOWN = [
    *(
        f"DROP TABLE IF EXISTS {t}"
        for t in (
            "tasks",
            "activities",
            "assignment_stages",
            "assignment_status_history",
            "assignments",
            "reference_counters",
        )
    ),
    "DROP FUNCTION IF EXISTS ops_append_only()",
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
