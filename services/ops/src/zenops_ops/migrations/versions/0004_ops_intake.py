"""Channel requests (partner intake).

A request lives in the tenant of the firm that owns its channel (found through
`channel_directory`), and its rows are also scoped to the transaction's channel when one is
set (zenops_kit.rls.channel_rls): a portal user's transaction sees only its own channel's
requests, whatever the query says.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

from zenops_kit.rls import channel_rls

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UP = [
    """
    CREATE TABLE channel_requests (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        channel_id uuid NOT NULL,
        status text NOT NULL DEFAULT 'SUBMITTED' CHECK (status IN ('SUBMITTED', 'ACCEPTED', 'REJECTED')),
        borrower_name text NOT NULL CHECK (length(borrower_name) BETWEEN 1 AND 200),
        borrower_phone text NOT NULL DEFAULT '',
        property jsonb NOT NULL,
        bank_id uuid,
        branch_id uuid,
        requested_service text NOT NULL,
        credits bigint NOT NULL CHECK (credits >= 0),
        notes text NOT NULL DEFAULT '' CHECK (length(notes) <= 5000),
        assignment_id uuid,
        submitted_by text NOT NULL,
        reviewed_by text,
        reviewed_at timestamptz,
        rejection_reason text NOT NULL DEFAULT '',
        credits_short boolean NOT NULL DEFAULT false,
        credits_short_reason text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        version bigint NOT NULL DEFAULT 1,
        CHECK ((status = 'ACCEPTED') = (assignment_id IS NOT NULL)),
        CHECK ((status = 'SUBMITTED') = (reviewed_at IS NULL)),
        CHECK (status <> 'REJECTED' OR length(rejection_reason) BETWEEN 1 AND 1000),
        CHECK (requested_service IN ('valuation_report', 'revaluation', 'site_inspection', 'desktop_valuation')),
        CHECK (length(credits_short_reason) <= 100),
        CONSTRAINT channel_requests_tenant_id UNIQUE (tenant_id, id),
        CONSTRAINT channel_requests_channel_id_fkey FOREIGN KEY (tenant_id, channel_id)
            REFERENCES channels (tenant_id, id),
        CONSTRAINT channel_requests_bank_fk FOREIGN KEY (tenant_id, bank_id) REFERENCES banks (tenant_id, id),
        CONSTRAINT channel_requests_branch_fk FOREIGN KEY (tenant_id, branch_id)
            REFERENCES bank_branches (tenant_id, id),
        CONSTRAINT channel_requests_assignment_fk FOREIGN KEY (tenant_id, assignment_id)
            REFERENCES assignments (tenant_id, id)
    )
    """,
    "CREATE INDEX channel_requests_page ON channel_requests (tenant_id, created_at DESC, id DESC)",
    "CREATE INDEX channel_requests_channel ON channel_requests (tenant_id, channel_id, created_at DESC, id DESC)",
    "ALTER TABLE assignments ADD CONSTRAINT assignments_channel_request_fk "
    "FOREIGN KEY (tenant_id, channel_request_id) REFERENCES channel_requests (tenant_id, id)",
    "ALTER TABLE activities ADD CONSTRAINT activities_channel_request_fk "
    "FOREIGN KEY (tenant_id, channel_request_id) REFERENCES channel_requests (tenant_id, id)",
]

DOWN = [
    "ALTER TABLE activities DROP CONSTRAINT IF EXISTS activities_channel_request_fk",
    "ALTER TABLE assignments DROP CONSTRAINT IF EXISTS assignments_channel_request_fk",
    "DROP TABLE IF EXISTS channel_requests",
]


def upgrade() -> None:
    for statement in UP:
        op.execute(statement)
    for statement in channel_rls("channel_requests"):
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWN:
        op.execute(statement)
