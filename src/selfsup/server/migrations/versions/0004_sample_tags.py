"""Tags of samples given in the web app (``sample_tags``), keyed by job and sample name.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``sample_tags``."""
    op.create_table(
        "sample_tags",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("scheduled_run_id", sa.String(length=24), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("name", sa.LargeBinary(), nullable=False),
        sa.Column("name_digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["scheduled_run_id"],
            ["scheduled_runs.id"],
            name=op.f("fk_sample_tags_scheduled_run_id_scheduled_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sample_tags")),
        sa.UniqueConstraint(
            "scheduled_run_id", "tag", "name_digest", name="uq_sample_tags_run_tag_name"
        ),
    )
    op.create_index(op.f("ix_sample_tags_scheduled_run_id"), "sample_tags", ["scheduled_run_id"])


def downgrade() -> None:
    """Drop ``sample_tags``."""
    op.drop_index(op.f("ix_sample_tags_scheduled_run_id"), table_name="sample_tags")
    op.drop_table("sample_tags")
