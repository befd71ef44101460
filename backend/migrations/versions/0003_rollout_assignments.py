"""Rollouts analysed by assignment: arms (K >= 2), stored assignments, the rollout's events,
a design (guardrails, alpha) and a pause time, and an index on results.rollout_id.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rollouts", sa.Column("design", sa.JSON(), nullable=True))
    op.add_column("rollouts", sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "rollout_arms",
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollouts.id"]),
        sa.PrimaryKeyConstraint("rollout_id", "name"),
    )
    # rollouts made before arms had a table: their two arms, from the rollout's own columns
    op.execute(
        "INSERT INTO rollout_arms (rollout_id, name, version, weight, position) "
        "SELECT id, 'baseline', baseline_version, 1 - split, 0 FROM rollouts"
    )
    op.execute(
        "INSERT INTO rollout_arms (rollout_id, name, version, weight, position) "
        "SELECT id, 'candidate', candidate_version, split, 1 FROM rollouts"
    )
    op.create_table(
        "rollout_assignments",
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("arm", sa.String(length=32), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("rollout_id", "device_id"),
    )
    op.create_table(
        "rollout_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_rollout_events_rollout_id"), "rollout_events", ["rollout_id"], unique=False
    )
    op.create_index(op.f("ix_results_rollout_id"), "results", ["rollout_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_results_rollout_id"), table_name="results")
    op.drop_index(op.f("ix_rollout_events_rollout_id"), table_name="rollout_events")
    op.drop_table("rollout_events")
    op.drop_table("rollout_assignments")
    op.drop_table("rollout_arms")
    op.drop_column("rollouts", "paused_at")
    op.drop_column("rollouts", "design")
