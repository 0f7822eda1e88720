"""email digests: one row per (address, frequency, period), deliveries point to it

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_digests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("frequency", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.DateTime(), nullable=False),
        sa.Column("period_end", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["email_subscribers.id"],
            name=op.f("fk_email_digests_subscriber_id_email_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_digests")),
        sa.UniqueConstraint(
            "subscriber_id", "frequency", "period_end", name="uq_email_digests_period"
        ),
    )
    op.create_index("ix_email_digests_status_next", "email_digests", ["status", "next_attempt_at"])
    with op.batch_alter_table("email_deliveries") as batch:
        batch.add_column(sa.Column("digest_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_email_deliveries_digest_id_email_digests"),
            "email_digests",
            ["digest_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index("ix_email_deliveries_digest", ["digest_id"])


def downgrade() -> None:
    with op.batch_alter_table("email_deliveries") as batch:
        batch.drop_index("ix_email_deliveries_digest")
        batch.drop_constraint(
            op.f("fk_email_deliveries_digest_id_email_digests"), type_="foreignkey"
        )
        batch.drop_column("digest_id")
    op.drop_index("ix_email_digests_status_next", table_name="email_digests")
    op.drop_table("email_digests")
