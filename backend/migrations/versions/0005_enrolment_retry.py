"""Enrolment safe to retry and codes for N machines (issue 19, defect 2 and fleet): each use of
a code is a row keyed by the workstation's nonce; codes count their uses up to max_uses.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("enrol_codes") as batch:
        batch.add_column(sa.Column("max_uses", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("uses", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(
            sa.Column("note", sa.String(length=128), server_default="", nullable=False)
        )
    # a code consumed before this revision has had its one use
    op.execute("UPDATE enrol_codes SET uses = 1 WHERE used_at IS NOT NULL")
    op.create_table(
        "enrolments",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("nonce_hash", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code_hash", "nonce_hash"),
    )
    op.create_index(op.f("ix_enrolments_device_id"), "enrolments", ["device_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_enrolments_device_id"), table_name="enrolments")
    op.drop_table("enrolments")
    with op.batch_alter_table("enrol_codes") as batch:
        batch.drop_column("note")
        batch.drop_column("uses")
        batch.drop_column("max_uses")
