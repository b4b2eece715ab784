"""Master data and channels: banks, bank branches, client orgs, contacts, properties, branch
contacts, channels (with `channel_directory`), their audit trail (`masterdata_audit`), and
the idempotency keys of ops' mutations.

Every table but `channel_directory` carries `tenant_id` under row-level security.
`channel_directory` maps a channel id to the tenant (the firm) that owns it: a portal user
acts in the external tenant, so ops must find the firm from the token's channel before any
tenant-scoped read. It holds ids only.

Formats the database itself refuses (the service validates first and names the field):
IFSC `AAAA0XXXXXX`, PIN code of 6 digits not starting with 0, state as a 2-letter code,
verification states, client org types and GSTINs, money and credits never negative.

References between master-data records are tenant-qualified foreign keys ((tenant_id, x_id)
→ (tenant_id, id)): PostgreSQL checks foreign keys without row-level security, so a plain
`x_id → id` key would accept another tenant's record; these refuse it, and the service maps
the violation to NOT_FOUND naming the field. Lists page newest first on
(tenant_id, created_at DESC, id DESC).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from zenops_kit.events.schema import tenant_rls
from zenops_kit.idempotency import IDEMPOTENCY_TABLE_UP

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TENANT_TABLES = (
    "banks",
    "bank_branches",
    "client_orgs",
    "contacts",
    "properties",
    "branch_contacts",
    "channels",
    "masterdata_audit",
    "idempotency_keys",
)
ORG_TYPES = "'bank', 'corporate', 'individual', 'builder', 'government', 'other'"
GSTIN = "^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$"

# Who made and verified a master-data record (RecordInfo).
_RECORD = """
        verification text NOT NULL DEFAULT 'UNVERIFIED' CHECK (verification IN ('UNVERIFIED', 'VERIFIED')),
        created_by text NOT NULL,
        verified_by text,
        verified_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CHECK ((verification = 'VERIFIED') = (verified_at IS NOT NULL))
"""

UP = [
    f"""
    CREATE TABLE banks (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        code text NOT NULL CHECK (code ~ '^[A-Z0-9]{{2,20}}$'),
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        {_RECORD},
        CONSTRAINT banks_code_unique UNIQUE (tenant_id, code),
        CONSTRAINT banks_tenant_id UNIQUE (tenant_id, id)
    )
    """,
    f"""
    CREATE TABLE bank_branches (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        bank_id uuid NOT NULL,
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        ifsc text NOT NULL CHECK (ifsc ~ '^[A-Z]{{4}}0[A-Z0-9]{{6}}$'),
        city text NOT NULL CHECK (length(city) BETWEEN 1 AND 100),
        state text NOT NULL CHECK (state ~ '^[A-Z]{{2}}$'),
        address text NOT NULL DEFAULT '' CHECK (length(address) <= 500),
        {_RECORD},
        CONSTRAINT bank_branches_ifsc_unique UNIQUE (tenant_id, ifsc),
        CONSTRAINT bank_branches_tenant_id UNIQUE (tenant_id, id),
        CONSTRAINT bank_branches_bank_fk FOREIGN KEY (tenant_id, bank_id) REFERENCES banks (tenant_id, id)
    )
    """,
    "CREATE INDEX bank_branches_bank ON bank_branches (tenant_id, bank_id, created_at, id)",
    f"""
    CREATE TABLE client_orgs (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        org_type text NOT NULL DEFAULT 'other' CHECK (org_type IN ({ORG_TYPES})),
        gstin text NOT NULL DEFAULT '' CHECK (gstin = '' OR gstin ~ '{GSTIN}'),
        city text NOT NULL DEFAULT '' CHECK (length(city) <= 100),
        state text NOT NULL DEFAULT '' CHECK (state = '' OR state ~ '^[A-Z]{{2}}$'),
        {_RECORD},
        CONSTRAINT client_orgs_tenant_id UNIQUE (tenant_id, id)
    )
    """,
    f"""
    CREATE TABLE contacts (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        phone text NOT NULL DEFAULT '' CHECK (phone = '' OR phone ~ '^\\+[1-9][0-9]{{7,14}}$'),
        email text NOT NULL DEFAULT '' CHECK (length(email) <= 320),
        client_org_id uuid,
        designation text NOT NULL DEFAULT '' CHECK (length(designation) <= 100),
        {_RECORD},
        CHECK (phone <> '' OR email <> ''),
        CONSTRAINT contacts_tenant_id UNIQUE (tenant_id, id),
        CONSTRAINT contacts_client_org_fk FOREIGN KEY (tenant_id, client_org_id) REFERENCES client_orgs (tenant_id, id)
    )
    """,
    f"""
    CREATE TABLE properties (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        address_line1 text NOT NULL CHECK (length(address_line1) BETWEEN 1 AND 200),
        address_line2 text NOT NULL DEFAULT '' CHECK (length(address_line2) <= 200),
        locality text NOT NULL DEFAULT '' CHECK (length(locality) <= 100),
        city text NOT NULL CHECK (length(city) BETWEEN 1 AND 100),
        state text NOT NULL CHECK (state ~ '^[A-Z]{{2}}$'),
        pin_code text NOT NULL CHECK (pin_code ~ '^[1-9][0-9]{{5}}$'),
        property_type text NOT NULL,
        latitude numeric(9, 6) CHECK (latitude BETWEEN -90 AND 90),
        longitude numeric(9, 6) CHECK (longitude BETWEEN -180 AND 180),
        {_RECORD},
        CHECK ((latitude IS NULL) = (longitude IS NULL)),
        CONSTRAINT properties_tenant_id UNIQUE (tenant_id, id)
    )
    """,
    f"""
    CREATE TABLE branch_contacts (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        branch_id uuid NOT NULL,
        contact_id uuid NOT NULL,
        role text NOT NULL CHECK (length(role) BETWEEN 1 AND 100),
        {_RECORD},
        CONSTRAINT branch_contacts_unique UNIQUE (tenant_id, branch_id, contact_id, role),
        CONSTRAINT branch_contacts_branch_fk FOREIGN KEY (tenant_id, branch_id)
            REFERENCES bank_branches (tenant_id, id),
        CONSTRAINT branch_contacts_contact_fk FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id)
    )
    """,
    "CREATE INDEX branch_contacts_contact ON branch_contacts (tenant_id, contact_id)",
    """
    CREATE TABLE channels (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        channel_type text NOT NULL CHECK (channel_type IN ('AGENT', 'ADVOCATE', 'BUILDER', 'OTHER')),
        commission_mode text NOT NULL CHECK (commission_mode IN ('PERCENT', 'FLAT')),
        commission_value bigint NOT NULL DEFAULT 0 CHECK (commission_value >= 0),
        is_active boolean NOT NULL DEFAULT true,
        billing_account_id uuid,
        default_credits bigint NOT NULL DEFAULT 1 CHECK (default_credits >= 0),
        portal_user_ids uuid[] NOT NULL DEFAULT '{}',
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        version bigint NOT NULL DEFAULT 1,
        CHECK (commission_mode <> 'PERCENT' OR commission_value <= 10000),
        CONSTRAINT channels_tenant_id UNIQUE (tenant_id, id)
    )
    """,
    "CREATE UNIQUE INDEX channels_name_unique ON channels (tenant_id, lower(name))",
    *(
        f"CREATE INDEX {t}_page ON {t} (tenant_id, created_at DESC, id DESC)"
        for t in ("banks", "bank_branches", "client_orgs", "contacts", "properties", "branch_contacts", "channels")
    ),
    "CREATE INDEX contacts_client_org ON contacts (tenant_id, client_org_id)",
    """
    CREATE TABLE channel_directory (
        channel_id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL
    )
    """,
    # Who created, verified or changed which record, with what (append-only).
    """
    CREATE TABLE masterdata_audit (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        resource_type text NOT NULL,
        resource_id uuid NOT NULL,
        action text NOT NULL CHECK (action IN ('created', 'verified', 'updated')),
        actor text NOT NULL,
        detail jsonb NOT NULL DEFAULT '{}',
        trace_id text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    "CREATE INDEX masterdata_audit_resource ON masterdata_audit (tenant_id, resource_type, resource_id, created_at)",
    """
    CREATE FUNCTION ops_masterdata_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'masterdata_audit is append-only' USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    "CREATE TRIGGER masterdata_audit_append_only BEFORE UPDATE OR DELETE ON masterdata_audit "
    "FOR EACH ROW EXECUTE FUNCTION ops_masterdata_audit_append_only()",
    IDEMPOTENCY_TABLE_UP,
]

DOWN = [
    *(
        f"DROP TABLE IF EXISTS {t}"
        for t in (
            "idempotency_keys",
            "masterdata_audit",
            "channel_directory",
            "channels",
            "branch_contacts",
            "properties",
            "contacts",
            "client_orgs",
            "bank_branches",
            "banks",
        )
    ),
    "DROP FUNCTION IF EXISTS ops_masterdata_audit_append_only()",
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
