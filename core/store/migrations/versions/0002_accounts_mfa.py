"""Accounts: forced password change, last sign-in, password history date; second factor.

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
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("must_change_password", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("last_sign_in", sa.String(32)))
        batch.add_column(sa.Column("password_changed_at", sa.String(32)))
    # One row per account with a second factor: the TOTP secret (encrypted with the rest of the
    # database by SQLCipher) and the argon2 hashes of the unused one-time recovery codes.
    op.create_table(
        "user_mfa",
        sa.Column("username", sa.String(64), sa.ForeignKey("users.username"), primary_key=True),
        sa.Column("totp_secret", sa.Text, nullable=False),
        sa.Column("confirmed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("recovery_hashes", sa.Text, nullable=False, server_default="[]"),
        sa.Column("last_used_step", sa.Integer, nullable=False, server_default="-1"),
        sa.Column("created_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("user_mfa")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("password_changed_at")
        batch.drop_column("last_sign_in")
        batch.drop_column("must_change_password")
