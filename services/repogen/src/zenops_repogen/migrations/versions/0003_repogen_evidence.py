"""Evidence items (ops documents as evidence of a kind, in annexure order), field-evidence
links and typed comments.

Field-evidence links are audit-grade: a link is added, and may later be removed once
(removed_by/at/reason set); nothing else about it ever changes, and it is never deleted (a
trigger enforces both). Evidence is removed the same way (its own trigger also lets a live
item's annexure position move). Comments are append-only.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from zenops_kit.events.schema import tenant_rls

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TENANT_TABLES = ("evidence", "field_links", "comments")
KINDS = (
    "'SALE_DEED', 'INDEX_II', 'TAX_RECEIPT', 'ELECTRICITY_BILL', 'APPROVED_PLAN', 'SITE_PHOTO', "
    "'LOCATION_MAP', 'SOCIETY_NOC', 'OTHER'"
)

UP = [
    f"""
    CREATE TABLE evidence (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        work_order_id uuid NOT NULL,
        document_id uuid NOT NULL,
        kind text NOT NULL CHECK (kind IN ({KINDS})),
        caption text NOT NULL DEFAULT '' CHECK (length(caption) <= 500),
        annexure_order int NOT NULL DEFAULT 0 CHECK (annexure_order >= 0),
        captured_at timestamptz,
        filename text NOT NULL DEFAULT '',
        content_type text NOT NULL DEFAULT '',
        added_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        removed_by text,
        removed_at timestamptz,
        removal_reason text,
        CONSTRAINT evidence_tenant_id UNIQUE (tenant_id, id),
        CONSTRAINT evidence_work_order_fk FOREIGN KEY (tenant_id, work_order_id) REFERENCES work_orders (tenant_id, id),
        CHECK ((removed_at IS NULL) = (removed_by IS NULL))
    )
    """,
    # A document is evidence of a work order once (until removed).
    "CREATE UNIQUE INDEX evidence_document ON evidence (work_order_id, document_id) WHERE removed_at IS NULL",
    "CREATE INDEX evidence_of ON evidence (work_order_id, annexure_order, created_at)",
    """
    CREATE TABLE field_links (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        work_order_id uuid NOT NULL,
        field_key text NOT NULL CHECK (field_key ~ '^[a-z][a-z0-9_]*(\\.[a-z0-9_]+)*$'),
        evidence_id uuid NOT NULL,
        note text NOT NULL DEFAULT '' CHECK (length(note) <= 1000),
        linked_by text NOT NULL,
        linked_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        removed_by text,
        removed_at timestamptz,
        removal_reason text,
        CONSTRAINT field_links_work_order_fk FOREIGN KEY (tenant_id, work_order_id)
            REFERENCES work_orders (tenant_id, id),
        CONSTRAINT field_links_evidence_fk FOREIGN KEY (tenant_id, evidence_id) REFERENCES evidence (tenant_id, id),
        CHECK ((removed_at IS NULL) = (removed_by IS NULL))
    )
    """,
    "CREATE UNIQUE INDEX field_links_live ON field_links (work_order_id, field_key, evidence_id) "
    "WHERE removed_at IS NULL",
    """
    CREATE FUNCTION repogen_remove_once() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF OLD.removed_at IS NOT NULL
           OR (to_jsonb(NEW) - 'removed_by' - 'removed_at' - 'removal_reason')
              IS DISTINCT FROM (to_jsonb(OLD) - 'removed_by' - 'removed_at' - 'removal_reason') THEN
            RAISE EXCEPTION '% rows only change by being removed, once', TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END
    $$
    """,
    "CREATE TRIGGER field_links_remove_once BEFORE UPDATE OR DELETE ON field_links "
    "FOR EACH ROW EXECUTE FUNCTION repogen_remove_once()",
    """
    CREATE FUNCTION repogen_evidence_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'evidence rows are never deleted' USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF OLD.removed_at IS NOT NULL
           OR (to_jsonb(NEW) - 'removed_by' - 'removed_at' - 'removal_reason' - 'annexure_order')
              IS DISTINCT FROM (to_jsonb(OLD) - 'removed_by' - 'removed_at' - 'removal_reason' - 'annexure_order') THEN
            RAISE EXCEPTION 'evidence only changes by moving in the annexure order or being removed, once'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END
    $$
    """,
    "CREATE TRIGGER evidence_guard BEFORE UPDATE OR DELETE ON evidence "
    "FOR EACH ROW EXECUTE FUNCTION repogen_evidence_guard()",
    """
    CREATE TABLE comments (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        work_order_id uuid NOT NULL,
        kind text NOT NULL CHECK (kind IN ('justification', 'enclosures', 'checklist', 'notes')),
        body text NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
        author text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        CONSTRAINT comments_work_order_fk FOREIGN KEY (tenant_id, work_order_id) REFERENCES work_orders (tenant_id, id)
    )
    """,
    "CREATE INDEX comments_of ON comments (work_order_id, created_at)",
    "CREATE TRIGGER comments_immutable BEFORE UPDATE OR DELETE ON comments "
    "FOR EACH ROW EXECUTE FUNCTION repogen_immutable()",
]

DOWN = [
    "DROP TABLE IF EXISTS comments",
    "DROP TABLE IF EXISTS field_links",
    "DROP FUNCTION IF EXISTS repogen_remove_once()",
    "DROP TABLE IF EXISTS evidence",
    "DROP FUNCTION IF EXISTS repogen_evidence_guard()",
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
