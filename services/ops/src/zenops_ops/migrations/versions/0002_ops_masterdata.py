"""Master data and channels: banks, bank branches, client orgs, contacts, properties, branch
contacts, channels (with `channel_directory`), and the idempotency keys of ops' mutations.

Every table but `channel_directory` carries `tenant_id` under row-level security.
`channel_directory` maps a channel id to the tenant (the firm) that owns it: a portal user
acts in the external tenant, so ops must find the firm from the token's channel before any
tenant-scoped read. It holds ids only.

Formats the database itself refuses (the service validates first and names the field):
IFSC `AAAA0XXXXXX`, PIN code of 6 digits not starting with 0, state as a 2-letter code,
verification states, money and credits never negative.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from zenops_kit.events.schema import tenant_rls

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TENANT_TABLES = ("banks", "bank_branches", "client_orgs", "contacts", "properties", "branch_contacts", "channels",
                 "idempotency_keys")

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
        CONSTRAINT banks_code_unique UNIQUE (tenant_id, code)
    )
    """,
    f"""
    CREATE TABLE bank_branches (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        bank_id uuid NOT NULL REFERENCES banks (id),
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        ifsc text NOT NULL CHECK (ifsc ~ '^[A-Z]{{4}}0[A-Z0-9]{{6}}$'),
        city text NOT NULL CHECK (length(city) BETWEEN 1 AND 100),
        state text NOT NULL CHECK (state ~ '^[A-Z]{{2}}$'),
        address text NOT NULL DEFAULT '' CHECK (length(address) <= 500),
        {_RECORD},
        CONSTRAINT bank_branches_ifsc_unique UNIQUE (tenant_id, ifsc)
    )
    """,
    "CREATE INDEX bank_branches_bank ON bank_branches (tenant_id, bank_id, created_at, id)",
    f"""
    CREATE TABLE client_orgs (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        org_type text NOT NULL DEFAULT 'other',
        gstin text NOT NULL DEFAULT '',
        city text NOT NULL DEFAULT '',
        state text NOT NULL DEFAULT '' CHECK (state = '' OR state ~ '^[A-Z]{{2}}$'),
        {_RECORD}
    )
    """,
    f"""
    CREATE TABLE contacts (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        phone text NOT NULL DEFAULT '' CHECK (phone = '' OR phone ~ '^\\+[1-9][0-9]{{7,14}}$'),
        email text NOT NULL DEFAULT '' CHECK (length(email) <= 320),
        client_org_id uuid REFERENCES client_orgs (id),
        designation text NOT NULL DEFAULT '' CHECK (length(designation) <= 100),
        {_RECORD},
        CHECK (phone <> '' OR email <> '')
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
        CHECK ((latitude IS NULL) = (longitude IS NULL))
    )
    """,
    f"""
    CREATE TABLE branch_contacts (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        branch_id uuid NOT NULL REFERENCES bank_branches (id),
        contact_id uuid NOT NULL REFERENCES contacts (id),
        role text NOT NULL CHECK (length(role) BETWEEN 1 AND 100),
        {_RECORD},
        CONSTRAINT branch_contacts_unique UNIQUE (tenant_id, branch_id, contact_id, role)
    )
    """,
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
        CHECK (commission_mode <> 'PERCENT' OR commission_value <= 10000)
    )
    """,
    "CREATE UNIQUE INDEX channels_name_unique ON channels (tenant_id, lower(name))",
    """
    CREATE TABLE channel_directory (
        channel_id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL
    )
    """,
    """
    CREATE TABLE idempotency_keys (
        tenant_id uuid NOT NULL,
        key text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
        operation text NOT NULL,
        request_hash bytea NOT NULL CHECK (length(request_hash) = 32),   -- sha256 of operation + request
        request bytea NOT NULL,                                         -- the request message, as sent
        response bytea,                                                 -- the serialized original response,
        error jsonb,                                                    -- or the original failure
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, key),
        CHECK (num_nonnulls(response, error) <= 1)
    )
    """,
]

DOWN = [f"DROP TABLE IF EXISTS {t}" for t in (
    "idempotency_keys", "channel_directory", "channels", "branch_contacts", "properties", "contacts", "client_orgs",
    "bank_branches", "banks")]


def upgrade() -> None:
    for statement in UP:
        op.execute(statement)
    for table in TENANT_TABLES:
        for statement in tenant_rls(table):
            op.execute(statement)


def downgrade() -> None:
    for statement in DOWN:
        op.execute(statement)
