"""Device status for the fleet view (issue 19): what each workstation reported and when it was
last seen.

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
        "device_status",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("app_version", sa.String(length=64), nullable=False),
        sa.Column("os", sa.String(length=128), nullable=False),
        sa.Column("reported_sync_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("queue_length", sa.Integer(), nullable=True),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.device_id"]),
        sa.PrimaryKeyConstraint("device_id"),
    )
    op.create_index(
        op.f("ix_device_status_last_seen_at"), "device_status", ["last_seen_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_device_status_last_seen_at"), table_name="device_status")
    op.drop_table("device_status")
