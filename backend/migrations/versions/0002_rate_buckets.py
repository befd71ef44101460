"""Shared rate-limit buckets (issue 19, defect 4): one row per key for every process.

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
        "rate_buckets",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("stamp", sa.Float(), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index(op.f("ix_rate_buckets_stamp"), "rate_buckets", ["stamp"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_rate_buckets_stamp"), table_name="rate_buckets")
    op.drop_table("rate_buckets")
