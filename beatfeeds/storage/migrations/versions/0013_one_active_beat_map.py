"""beat_sets: the database itself keeps at most one beat map active

Publishing retires the active map and activates the new one in one transaction; a partial
unique index makes two maps active at once impossible even for two publishers racing (the
second is refused and told to try again). Should a database already hold two active maps
(such a race before this index), the most recently published one stays active and the
others are retired as of its publication.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status = 'active'")


def upgrade() -> None:
    conn = op.get_bind()
    active = conn.execute(
        sa.text(
            "SELECT id, published_at FROM beat_sets WHERE status = 'active' "
            "ORDER BY published_at DESC, id DESC"
        )
    ).all()
    if len(active) > 1:
        keep = active[0]
        conn.execute(
            sa.text(
                "UPDATE beat_sets SET status = 'retired', retired_at = :at "
                "WHERE status = 'active' AND id != :keep"
            ),
            {"at": keep.published_at, "keep": keep.id},
        )
    op.create_index(
        "ux_beat_sets_one_active",
        "beat_sets",
        ["status"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("ux_beat_sets_one_active", table_name="beat_sets")
