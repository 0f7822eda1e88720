"""content_marks: the high-water "last changed" time of every public document

Last-Modified of feeds, pages and OPML lists was the newest entry change, which stays put (or
goes back) when an entry is retracted, suppressed or leaves by retention; readers revalidating
with If-Modified-Since kept withdrawn entries. Each document now keeps a fingerprint of its
content and the time that fingerprint last changed.

Revision ID: 0012
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "content_marks",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_content_marks"),
    )


def downgrade() -> None:
    op.drop_table("content_marks")
