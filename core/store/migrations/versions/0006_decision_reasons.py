"""Reject reasons (issue 18): the code a radiologist chose when rejecting an AI result
(core.results.reasons), one row per rejecting decision. The free text stays in
``decisions.comment``; earlier decisions simply have no reason row.

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
        "decision_reasons",
        sa.Column("decision_id", sa.Integer, sa.ForeignKey("decisions.id"), primary_key=True),
        sa.Column("reason", sa.String(32), nullable=False),
    )
    # re-runs look up earlier results of the same model on the same study
    op.create_index("ix_results_model_study", "results", ["model_id", "model_version", "study_uid"])


def downgrade() -> None:
    op.drop_index("ix_results_model_study", "results")
    op.drop_table("decision_reasons")
