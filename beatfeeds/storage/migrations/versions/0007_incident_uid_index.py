"""incidents.uid: a unique index instead of a unique constraint

SQLite cannot drop a table constraint, but it can drop an index: bulk imports drop this one
and rebuild it by sorting, in the same transaction, as they do the time indexes.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # On SQLite this copies the table (foreign keys are off while migrations run).
    with op.batch_alter_table("incidents") as batch:
        batch.drop_constraint("uq_incidents_uid", type_="unique")
        batch.create_index("ix_incidents_uid", ["uid"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_index("ix_incidents_uid")
        batch.create_unique_constraint("uq_incidents_uid", ["uid"])
