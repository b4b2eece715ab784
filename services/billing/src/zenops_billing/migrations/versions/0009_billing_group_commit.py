"""Billing: one statement for a batch of a hot account's settles and reserves (group commit).

`billing_write_batch(settles jsonb, reserves jsonb)` calls billing_settle and billing_reserve once
per item, in the caller's one transaction, and tags each returned row with its item's index.
Billing's group commit (`zenops_billing.store.group_commit`) sends the writes that queued behind
an account's transaction in flight as one batch: one statement and one commit for all of them.

Lock order is unchanged: the batch locks the rows of every reservation it settles (in id order)
before its first item takes the account's advisory lock, as a single settle locks its
reservation before the account.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

from zenops_billing.migrations.sql import sql_file

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sql_file("0009_billing_write_batch.sql"))


def downgrade() -> None:
    op.execute("DROP FUNCTION billing_write_batch(jsonb, jsonb)")
