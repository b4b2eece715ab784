"""Billing: an index for billing_reserve's "is there an ACTIVE reservation for this ref"
lookup, made under the balance-row lock.

The lookup filters on (account_id, ref_type, ref_id, ACTIVE) without tenant_id, so the unique
`reservations_one_active` (tenant_id first) did not serve it: the planner walked
`reservations_account`, every reservation the account ever had, ~500 buffers per reserve
on a busy account (bench/profile.py, pg_stat_statements) — while every other writer of that
account waited on the lock. This partial index answers it in a few buffers.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX reservations_active_ref ON reservations (account_id, ref_type, ref_id) WHERE status = 'ACTIVE'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX reservations_active_ref")
