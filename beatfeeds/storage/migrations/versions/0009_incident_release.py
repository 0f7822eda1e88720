"""incidents.released_at, released_by, released_digest: `needs review` holds lifted by staff

Nullable columns added in place (no table copy on SQLite); existing incidents have none.

Revision ID: 0009
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("incidents", sa.Column("released_at", sa.DateTime(), nullable=True))
    op.add_column("incidents", sa.Column("released_by", sa.String(length=320), nullable=True))
    op.add_column("incidents", sa.Column("released_digest", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("released_digest")
        batch.drop_column("released_by")
        batch.drop_column("released_at")
