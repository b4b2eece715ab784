"""Failed logins per (tenant, email) — known emails and unknown ones alike — replacing the
account lock (progressive delay, domain/login_throttle.py).

users.failed_login_count and users.locked_until are no longer read or written; they stay
until every replica runs this code (a replica of the previous release still reads them
during a rolling update) and a later revision drops them.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from zenops_kit.events.schema import tenant_rls

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE login_failures (
            tenant_id uuid NOT NULL,
            email text NOT NULL CHECK (email = lower(email) AND length(email) <= 320),
            failures integer NOT NULL CHECK (failures > 0),
            last_failure_at timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, email)
        )
    """)
    for statement in tenant_rls("login_failures"):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE login_failures")
