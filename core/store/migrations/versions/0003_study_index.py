"""The local study database: every study opened or retrieved, and its series.

Patient data (name, ID, birth date, accession) lives here, inside the SQLCipher file only; the
study list and the priors search read it (core.studies).

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
    op.create_table(
        "studies",
        sa.Column("study_uid", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.Text, nullable=False, server_default=""),
        sa.Column("issuer_of_patient_id", sa.Text, nullable=False, server_default=""),
        sa.Column("patient_name", sa.Text, nullable=False, server_default=""),
        sa.Column("birth_date", sa.String(16), nullable=False, server_default=""),
        sa.Column("sex", sa.String(16), nullable=False, server_default=""),
        sa.Column("accession", sa.Text, nullable=False, server_default=""),
        sa.Column("study_date", sa.String(16), nullable=False, server_default=""),
        sa.Column("study_time", sa.String(32), nullable=False, server_default=""),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("modalities", sa.Text, nullable=False, server_default=""),
        sa.Column("n_series", sa.Integer, nullable=False, server_default="0"),
        sa.Column("n_instances", sa.Integer, nullable=False, server_default="0"),
        sa.Column("source", sa.Text, nullable=False, server_default="file"),
        sa.Column("location", sa.Text, nullable=False, server_default="[]"),
        sa.Column("first_seen", sa.String(32), nullable=False),
        sa.Column("last_opened", sa.String(32)),
    )
    op.create_index("ix_studies_patient", "studies", ["patient_id", "issuer_of_patient_id"])
    op.create_index("ix_studies_last_opened", "studies", ["last_opened"])
    op.create_table(
        "series",
        sa.Column("uid", sa.String(64), primary_key=True),
        sa.Column("study_uid", sa.String(64), sa.ForeignKey("studies.study_uid"), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False, server_default=""),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("number", sa.Integer),
        sa.Column("n_instances", sa.Integer, nullable=False, server_default="0"),
        sa.Column("body_part", sa.Text, nullable=False, server_default=""),
        sa.Column("frame_of_reference", sa.String(64), nullable=False, server_default=""),
    )
    op.create_index("ix_series_study", "series", ["study_uid"])


def downgrade() -> None:
    op.drop_index("ix_series_study", "series")
    op.drop_table("series")
    op.drop_index("ix_studies_last_opened", "studies")
    op.drop_index("ix_studies_patient", "studies")
    op.drop_table("studies")
