"""Identity: tenants, users, roles, sessions, refresh tokens, signing keys, audit trail.

`tenants` and `signing_keys` are global (the platform's, read before any tenant is known);
every other table carries `tenant_id` under row-level security. `audit_events` is
append-only: a trigger refuses UPDATE, DELETE and TRUNCATE, owner included.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from zenops_kit.events.schema import tenant_rls

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TENANT_TABLES = ("users", "user_roles", "sessions", "refresh_tokens", "audit_events")

UP = [
    """
    CREATE TABLE tenants (
        id uuid PRIMARY KEY,
        slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        kind text NOT NULL CHECK (kind IN ('INTERNAL', 'EXTERNAL', 'CUSTOMER')),
        status text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'SUSPENDED')),
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    # One firm, one portal lane.
    "CREATE UNIQUE INDEX tenants_one_internal_external ON tenants (kind) WHERE kind IN ('INTERNAL', 'EXTERNAL')",
    """
    CREATE TABLE users (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL REFERENCES tenants (id),
        email text NOT NULL,
        display_name text NOT NULL,
        password_hash text NOT NULL,
        status text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'DISABLED')),
        failed_login_count integer NOT NULL DEFAULT 0 CHECK (failed_login_count >= 0),
        locked_until timestamptz,
        last_login_at timestamptz,
        channel_id uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        version integer NOT NULL DEFAULT 1
    )
    """,
    # Emails are unique per tenant, case-insensitively; also the login lookup and list order.
    "CREATE UNIQUE INDEX users_tenant_email ON users (tenant_id, lower(email))",
    """
    CREATE TABLE user_roles (
        tenant_id uuid NOT NULL,
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        role text NOT NULL,
        PRIMARY KEY (user_id, role)
    )
    """,
    "CREATE INDEX user_roles_tenant_role ON user_roles (tenant_id, role)",
    """
    CREATE TABLE sessions (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        audience text NOT NULL CHECK (audience IN ('web', 'studio', 'portal')),
        ip text NOT NULL DEFAULT '',
        user_agent text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL,
        last_used_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        idle_expires_at timestamptz NOT NULL,
        revoked_at timestamptz,
        revoked_reason text,
        CHECK (idle_expires_at <= expires_at)
    )
    """,
    "CREATE INDEX sessions_user_active ON sessions (user_id) WHERE revoked_at IS NULL",
    """
    CREATE TABLE refresh_tokens (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),  -- sha256 of the token
        parent_id uuid REFERENCES refresh_tokens (id) ON DELETE SET NULL,  -- the token this one replaced
        created_at timestamptz NOT NULL,
        used_at timestamptz
    )
    """,
    "CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id)",
    """
    CREATE TABLE signing_keys (
        kid text PRIMARY KEY,
        alg text NOT NULL CHECK (alg IN ('EdDSA', 'ES256')),
        private_key bytea NOT NULL,          -- PKCS#8, encrypted (Fernet, key from HKDF of the secret)
        public_jwk jsonb NOT NULL,
        created_at timestamptz NOT NULL,
        retired_at timestamptz,
        publish_until timestamptz           -- NULL: published while active
    )
    """,
    # Exactly one key signs.
    "CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE retired_at IS NULL",
    """
    CREATE TABLE audit_events (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        kind text NOT NULL,
        actor text NOT NULL DEFAULT '',
        target text NOT NULL DEFAULT '',
        ip text NOT NULL DEFAULT '',
        user_agent text NOT NULL DEFAULT '',
        trace_id text NOT NULL DEFAULT '',
        detail jsonb NOT NULL DEFAULT '{}'::jsonb,
        occurred_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    "CREATE INDEX audit_events_recent ON audit_events (tenant_id, occurred_at DESC, id DESC)",
    "CREATE INDEX audit_events_kind ON audit_events (tenant_id, kind, occurred_at DESC)",
    """
    CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
    END $$
    """,
    """
    CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()
    """,
    """
    CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()
    """,
]

DOWN = [
    "DROP TABLE audit_events",
    "DROP FUNCTION audit_events_append_only()",
    "DROP TABLE signing_keys",
    "DROP TABLE refresh_tokens",
    "DROP TABLE sessions",
    "DROP TABLE user_roles",
    "DROP TABLE users",
    "DROP TABLE tenants",
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
