"""Documents and their tags.

A document row is created PENDING by presign-upload and becomes UPLOADED when the stored
object's size and SHA-256 are confirmed. It links to at least one of: assignment, channel
request, work order (repogen), invoice (billing), employee. `channel_id` is set when it
belongs to a channel's request or assignment: portal users' transactions see only their
channel's documents (zenops_kit.rls.channel_rls). Storage keys are deterministic:
`tenant/<tenant_id>/<yyyy>/<mm>/<document_id>/<safe-filename>`.

`document_audit` is the append-only audit trail of every document action (created,
confirmed, download signed, tags set): actor, parameters, trace id, time. It is scoped to
the tenant only, so a portal user's actions are recorded like staff's.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

from zenops_kit.events.schema import tenant_rls
from zenops_kit.rls import channel_rls

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UP = [
    """
    CREATE TABLE documents (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        channel_id uuid,
        filename text NOT NULL CHECK (length(filename) BETWEEN 1 AND 200),
        content_type text NOT NULL,
        size_bytes bigint NOT NULL CHECK (size_bytes > 0),
        sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
        status text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'UPLOADED')),
        source text NOT NULL CHECK (source IN ('MOBILE_CAMERA', 'MOBILE_GALLERY', 'DESKTOP_UPLOAD', 'EMAIL_INGEST',
                                               'PORTAL_UPLOAD')),
        classification text NOT NULL CHECK (classification IN ('BANK_KYC', 'SITE_PHOTO', 'APPROVAL_PLAN',
                                                               'TAX_RECEIPT', 'LEGAL', 'INVOICE', 'OTHER')),
        sensitivity text NOT NULL CHECK (sensitivity IN ('PUBLIC', 'INTERNAL', 'PII', 'CONFIDENTIAL')),
        captured_at timestamptz,
        captured_by_employee_id text NOT NULL DEFAULT '',
        metadata jsonb NOT NULL DEFAULT '{}',
        storage_driver text NOT NULL,
        storage_key text NOT NULL,
        assignment_id uuid,
        channel_request_id uuid,
        work_order_id uuid,
        invoice_id uuid,
        employee_id uuid,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        uploaded_at timestamptz,
        CHECK (num_nonnulls(assignment_id, channel_request_id, work_order_id, invoice_id, employee_id) >= 1),
        CHECK ((status = 'UPLOADED') = (uploaded_at IS NOT NULL)),
        CONSTRAINT documents_storage_key_unique UNIQUE (storage_key),
        -- a link never crosses tenants, whatever the application does
        CONSTRAINT documents_channel_fk FOREIGN KEY (tenant_id, channel_id) REFERENCES channels (tenant_id, id),
        CONSTRAINT documents_assignment_fk FOREIGN KEY (tenant_id, assignment_id)
            REFERENCES assignments (tenant_id, id),
        CONSTRAINT documents_channel_request_fk FOREIGN KEY (tenant_id, channel_request_id)
            REFERENCES channel_requests (tenant_id, id)
    )
    """,
    "CREATE INDEX documents_page ON documents (tenant_id, created_at DESC, id DESC)",
    "CREATE INDEX documents_assignment ON documents (assignment_id) WHERE assignment_id IS NOT NULL",
    "CREATE INDEX documents_channel_request ON documents (channel_request_id) WHERE channel_request_id IS NOT NULL",
    "CREATE INDEX documents_work_order ON documents (work_order_id) WHERE work_order_id IS NOT NULL",
    "CREATE INDEX documents_invoice ON documents (invoice_id) WHERE invoice_id IS NOT NULL",
    "CREATE INDEX documents_employee ON documents (employee_id) WHERE employee_id IS NOT NULL",
    """
    CREATE TABLE document_tags (
        tenant_id uuid NOT NULL,
        document_id uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
        key text NOT NULL CHECK (key ~ '^[a-z0-9][a-z0-9_.:-]{0,62}$'),
        value text NOT NULL CHECK (length(value) BETWEEN 1 AND 200),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (document_id, key)
    )
    """,
    "CREATE INDEX document_tags_key ON document_tags (tenant_id, key, value)",
    """
    CREATE TABLE document_audit (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        document_id uuid NOT NULL REFERENCES documents (id),
        action text NOT NULL CHECK (action ~ '^document[.][a-z_]+$'),
        actor text NOT NULL,
        detail jsonb NOT NULL DEFAULT '{}',
        trace_id text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    "CREATE INDEX document_audit_of ON document_audit (document_id, created_at)",
    "CREATE TRIGGER document_audit_append_only BEFORE UPDATE OR DELETE ON document_audit "
    "FOR EACH ROW EXECUTE FUNCTION ops_append_only()",
]

DOWN = ["DROP TABLE IF EXISTS document_audit", "DROP TABLE IF EXISTS document_tags", "DROP TABLE IF EXISTS documents"]


def upgrade() -> None:
    for statement in UP:
        op.execute(statement)
    for statement in channel_rls("documents"):
        op.execute(statement)
    for table in ("document_tags", "document_audit"):
        for statement in tenant_rls(table):
            op.execute(statement)


def downgrade() -> None:
    for statement in DOWN:
        op.execute(statement)
