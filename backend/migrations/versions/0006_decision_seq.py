"""Decisions made in one instant are two decisions (issue 19, defect 3): result_decisions gets
the workstation's decision sequence, and the uniqueness of a decision includes it.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# the baseline's unique constraint has no name of its own: PostgreSQL named it, SQLite did not
# (batch mode names the reflected one by this convention so it can be dropped)
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}
_OLD_COLUMNS = ["device_id", "client_id", "decided_at"]
_NEW = "uq_result_decisions_decision"


def _old_name() -> str:
    if op.get_bind().dialect.name == "postgresql":
        return "result_decisions_device_id_client_id_decided_at_key"
    return "uq_result_decisions_device_id_client_id_decided_at"


def upgrade() -> None:
    with op.batch_alter_table("result_decisions", naming_convention=_NAMING) as batch:
        batch.add_column(sa.Column("seq", sa.Integer(), server_default="0", nullable=False))
        batch.drop_constraint(_old_name(), type_="unique")
        batch.create_unique_constraint(_NEW, [*_OLD_COLUMNS, "seq"])


def downgrade() -> None:
    with op.batch_alter_table("result_decisions", naming_convention=_NAMING) as batch:
        batch.drop_constraint(_NEW, type_="unique")
        batch.drop_column("seq")
        batch.create_unique_constraint(_old_name(), _OLD_COLUMNS)
