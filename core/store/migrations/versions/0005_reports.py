"""Reports (issue 17): one per study - its findings and impression, draft or signed, who wrote
and who signed it, the addenda after signing and the DICOM objects it was exported as.

A trigger keeps a signed report's signed text as it was signed: an UPDATE that changes the
findings, impression, signer or signing time of a signed row is aborted (an addendum is the
only change; it is appended to ``addenda``). A second guard behind core.reports.model's rule,
so that no later code path can edit what a radiologist signed.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SIGNED_IS_FINAL = """
CREATE TRIGGER reports_signed_is_final
BEFORE UPDATE OF findings, impression, signer, signed_at, state ON reports
WHEN OLD.state = 'signed' AND (
    NEW.findings IS NOT OLD.findings OR NEW.impression IS NOT OLD.impression
    OR NEW.signer IS NOT OLD.signer OR NEW.signed_at IS NOT OLD.signed_at
    OR NEW.state IS NOT OLD.state
)
BEGIN
    SELECT RAISE(ABORT, 'a signed report cannot be changed; add an addendum');
END
"""


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("study_uid", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.Text, nullable=False, server_default=""),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("template_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("findings", sa.Text, nullable=False, server_default=""),
        sa.Column("impression", sa.Text, nullable=False, server_default=""),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.Column("signer", sa.String(128), nullable=False, server_default=""),
        sa.Column("signed_at", sa.String(40)),
        sa.Column("addenda", sa.Text, nullable=False, server_default="[]"),
        sa.Column("exported", sa.Text, nullable=False, server_default="[]"),
        sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
        sa.Column("audit_idx", sa.Integer, sa.ForeignKey("audit_events.idx"), nullable=False),
    )
    op.create_index("ix_reports_state", "reports", ["state"])
    op.execute(SIGNED_IS_FINAL)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS reports_signed_is_final")
    op.drop_index("ix_reports_state", "reports")
    op.drop_table("reports")
