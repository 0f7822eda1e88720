"""records workflow: import queue, saved presets, scheduled sources

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "import_presets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("columns", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_presets")),
        sa.UniqueConstraint("name", name=op.f("uq_import_presets_name")),
    )
    op.create_table(
        "import_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("location", sa.String(length=2000), nullable=False),
        sa.Column("preset", sa.String(length=100), nullable=True),
        sa.Column("interval_minutes", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_polled_at", sa.DateTime(), nullable=True),
        sa.Column("last_status", sa.String(length=16), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("etag", sa.String(length=500), nullable=True),
        sa.Column("last_modified", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_import_sources_name")),
    )
    op.create_table(
        "import_uploads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=500), nullable=False),
        sa.Column("stored_path", sa.String(length=1000), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("rows_estimate", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("preset", sa.String(length=100), nullable=True),
        sa.Column("mapping", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("uploaded_by", sa.String(length=320), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("import_source_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["import_runs.id"], name=op.f("fk_import_uploads_run_id_import_runs")
        ),
        sa.ForeignKeyConstraint(
            ["import_source_id"],
            ["import_sources.id"],
            name=op.f("fk_import_uploads_import_source_id_import_sources"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_uploads")),
    )
    with op.batch_alter_table("import_uploads", schema=None) as batch_op:
        batch_op.create_index("ix_import_uploads_status", ["status"], unique=False)

    op.create_table(
        "source_polls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("filename", sa.String(length=500), nullable=True),
        sa.Column("file_sha256", sa.String(length=64), nullable=True),
        sa.Column("upload_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["import_sources.id"],
            name=op.f("fk_source_polls_source_id_import_sources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["import_uploads.id"],
            name=op.f("fk_source_polls_upload_id_import_uploads"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_polls")),
    )
    with op.batch_alter_table("source_polls", schema=None) as batch_op:
        batch_op.create_index(
            "ix_source_polls_source_sha", ["source_id", "file_sha256"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("source_polls", schema=None) as batch_op:
        batch_op.drop_index("ix_source_polls_source_sha")
    op.drop_table("source_polls")
    with op.batch_alter_table("import_uploads", schema=None) as batch_op:
        batch_op.drop_index("ix_import_uploads_status")
    op.drop_table("import_uploads")
    op.drop_table("import_sources")
    op.drop_table("import_presets")
