"""The factory and release: report packs, render jobs, artifacts, releases.

- `packs`: one per (work order, snapshot version), made when the work order becomes
  READY_FOR_RENDER; `render_jobs`: one per pack, id `<work_order_id>:<snapshot_version>`
  (a duplicate trigger finds it and does nothing), QUEUED → RUNNING → SUCCEEDED | FAILED,
  DEAD after the last attempt.
- `artifacts`: what a job produced (export bundle, DOCX, PDF), each with its content hash,
  size, template version and the bundle hash it came from; one per (pack, kind); stored
  through the storage interface (storage_driver, storage_key).
- `releases`: one per work order (unique): who, when, the pack, the artifact hashes and
  billing's decision. Immutable (trigger).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

from zenops_kit.events.schema import tenant_rls

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TENANT_TABLES = ("packs", "render_jobs", "artifacts", "releases")

UP = [
    """
    CREATE TABLE packs (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        work_order_id uuid NOT NULL,
        snapshot_version bigint NOT NULL,
        template_id text NOT NULL,
        template_version int NOT NULL,
        bundle_sha256 text NOT NULL DEFAULT '' CHECK (bundle_sha256 = '' OR bundle_sha256 ~ '^[0-9a-f]{64}$'),
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT packs_tenant_id UNIQUE (tenant_id, id),
        CONSTRAINT packs_snapshot_unique UNIQUE (work_order_id, snapshot_version),
        CONSTRAINT packs_snapshot_fk FOREIGN KEY (work_order_id, snapshot_version)
            REFERENCES snapshots (work_order_id, version),
        CONSTRAINT packs_work_order_fk FOREIGN KEY (tenant_id, work_order_id) REFERENCES work_orders (tenant_id, id)
    )
    """,
    """
    CREATE TABLE render_jobs (
        id text PRIMARY KEY CHECK (id ~ '^[0-9a-f-]{36}:[0-9]+$'),
        tenant_id uuid NOT NULL,
        work_order_id uuid NOT NULL,
        snapshot_version bigint NOT NULL,
        pack_id uuid NOT NULL,
        status text NOT NULL DEFAULT 'QUEUED' CHECK (status IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'DEAD')),
        attempts int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        last_error text NOT NULL DEFAULT '',
        pdf_note text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz,
        CONSTRAINT render_jobs_pack_fk FOREIGN KEY (tenant_id, pack_id) REFERENCES packs (tenant_id, id),
        CONSTRAINT render_jobs_pack_unique UNIQUE (pack_id),
        CHECK (id = work_order_id::text || ':' || snapshot_version::text)
    )
    """,
    "CREATE INDEX render_jobs_of ON render_jobs (work_order_id, created_at DESC)",
    """
    CREATE TABLE artifacts (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        work_order_id uuid NOT NULL,
        pack_id uuid NOT NULL,
        snapshot_version bigint NOT NULL,
        kind text NOT NULL CHECK (kind IN ('export_bundle', 'docx', 'pdf')),
        content_type text NOT NULL,
        filename text NOT NULL,
        size_bytes bigint NOT NULL CHECK (size_bytes > 0),
        sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
        template_id text NOT NULL,
        template_version int NOT NULL,
        bundle_sha256 text NOT NULL CHECK (bundle_sha256 ~ '^[0-9a-f]{64}$'),
        storage_driver text NOT NULL,
        storage_key text NOT NULL UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT artifacts_pack_fk FOREIGN KEY (tenant_id, pack_id) REFERENCES packs (tenant_id, id),
        CONSTRAINT artifacts_kind_unique UNIQUE (pack_id, kind)
    )
    """,
    "CREATE INDEX artifacts_of ON artifacts (work_order_id, created_at)",
    """
    CREATE TABLE releases (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        work_order_id uuid NOT NULL UNIQUE,
        snapshot_version bigint NOT NULL,
        pack_id uuid NOT NULL,
        artifact_hashes jsonb NOT NULL,
        billing_basis text NOT NULL,
        billing_reservation_id text NOT NULL DEFAULT '',
        override_reason text NOT NULL DEFAULT '',
        released_by text NOT NULL,
        released_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT releases_pack_fk FOREIGN KEY (tenant_id, pack_id) REFERENCES packs (tenant_id, id),
        CONSTRAINT releases_work_order_fk FOREIGN KEY (tenant_id, work_order_id) REFERENCES work_orders (tenant_id, id)
    )
    """,
    "CREATE TRIGGER releases_immutable BEFORE UPDATE OR DELETE ON releases "
    "FOR EACH ROW EXECUTE FUNCTION repogen_immutable()",
]

DOWN = [f"DROP TABLE IF EXISTS {t}" for t in ("releases", "artifacts", "render_jobs", "packs")]


def upgrade() -> None:
    for statement in UP:
        op.execute(statement)
    for table in TENANT_TABLES:
        for statement in tenant_rls(table):
            op.execute(statement)


def downgrade() -> None:
    for statement in DOWN:
        op.execute(statement)
