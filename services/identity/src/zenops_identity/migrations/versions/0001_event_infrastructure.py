"""Event infrastructure: outbox, inbox, dead letters.

Revision ID: 0001
Revises:
"""

from alembic import op

from zenops_kit.events.schema import EVENT_TABLES_DOWN, EVENT_TABLES_UP

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in EVENT_TABLES_UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in EVENT_TABLES_DOWN:
        op.execute(statement)
