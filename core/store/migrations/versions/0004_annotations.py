"""Annotations and key images (issue 17): what the radiologist draws and marks, per author.

Rows are kept when taken back (``deleted``, ``removed_at``): the audit events that name them
still resolve. One active key-image mark per image, frame, author and purpose.

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
        "annotations",
        sa.Column("uid", sa.String(36), primary_key=True),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("series_uid", sa.String(64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(64), nullable=False, server_default=""),
        sa.Column("frame", sa.Integer, nullable=False, server_default="0"),
        sa.Column("image_ref", sa.Text, nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("geometry", sa.Text, nullable=False),
        sa.Column("label", sa.Text, nullable=False, server_default=""),
        sa.Column("state", sa.Text, nullable=False, server_default="{}"),
        sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("modified_at", sa.String(32), nullable=False),
        sa.Column("deleted", sa.Integer, nullable=False, server_default="0"),
        sa.Column("audit_idx", sa.Integer, sa.ForeignKey("audit_events.idx"), nullable=False),
    )
    op.create_index("ix_annotations_series", "annotations", ["study_uid", "series_uid", "deleted"])
    # the annotations of the image shown first, read before the rest of the series
    op.create_index("ix_annotations_image", "annotations", ["sop_instance_uid", "frame"])
    op.create_table(
        "key_images",
        sa.Column("uid", sa.String(36), primary_key=True),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("series_uid", sa.String(64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(64), nullable=False),
        sa.Column("frame", sa.Integer, nullable=False, server_default="0"),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("removed_at", sa.String(32)),
        sa.Column("audit_idx", sa.Integer, sa.ForeignKey("audit_events.idx"), nullable=False),
    )
    op.create_index("ix_key_images_study", "key_images", ["study_uid"])
    op.create_index(
        "ux_key_images_active",
        "key_images",
        ["sop_instance_uid", "frame", "author", "purpose"],
        unique=True,
        sqlite_where=sa.text("removed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ux_key_images_active", "key_images")
    op.drop_index("ix_key_images_study", "key_images")
    op.drop_table("key_images")
    op.drop_index("ix_annotations_image", "annotations")
    op.drop_index("ix_annotations_series", "annotations")
    op.drop_table("annotations")
