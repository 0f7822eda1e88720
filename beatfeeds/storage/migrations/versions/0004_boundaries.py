"""beat map editing and redirects

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "boundary_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("beat_set_id", sa.Integer(), nullable=False),
        sa.Column("previous_set_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("new_codes", sa.Text(), nullable=True),
        sa.Column("share", sa.Float(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["beat_set_id"],
            ["beat_sets.id"],
            name=op.f("fk_boundary_changes_beat_set_id_beat_sets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["previous_set_id"],
            ["beat_sets.id"],
            name=op.f("fk_boundary_changes_previous_set_id_beat_sets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_boundary_changes")),
    )
    op.create_index("ix_boundary_changes_code", "boundary_changes", ["code"])


def downgrade() -> None:
    op.drop_index("ix_boundary_changes_code", table_name="boundary_changes")
    op.drop_table("boundary_changes")
