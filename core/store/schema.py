"""Tables of the workstation database (the migrations in core/store/migrations create them)."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, Text

metadata = MetaData()

audit_events = Table(
    "audit_events",
    metadata,
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("created_at", String(32), nullable=False),
    Column("user", String(128), nullable=False),
    Column("role", String(32), nullable=False),
    Column("workstation", String(64), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("outcome", Integer, nullable=False),
    Column("objects", Text, nullable=False),
    Column("details", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("sent_at", String(32)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
)

results = Table(
    "results",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", String(32), nullable=False),
    Column("user", String(128), nullable=False),
    Column("model_id", String(64), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("study_uid", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("audit_idx", Integer, ForeignKey("audit_events.idx"), nullable=False),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("result_id", String(36), ForeignKey("results.id"), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("comment", Text, nullable=False),
    Column("user", String(128), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("audit_idx", Integer, ForeignKey("audit_events.idx"), nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(32), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", String(32)),
    Column("disabled", Integer, nullable=False, default=0),
    Column("must_change_password", Integer, nullable=False, default=0),
    Column("last_sign_in", String(32)),
    Column("password_changed_at", String(32)),
)

user_mfa = Table(
    "user_mfa",
    metadata,
    Column("username", String(64), ForeignKey("users.username"), primary_key=True),
    Column("totp_secret", Text, nullable=False),
    Column("confirmed", Integer, nullable=False, default=0),
    Column("recovery_hashes", Text, nullable=False, default="[]"),
    Column("last_used_step", Integer, nullable=False, default=-1),
    Column("created_at", String(32), nullable=False),
)

properties = Table(
    "properties",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# The local study database (migration 0003): every study opened or retrieved (core.studies).
studies = Table(
    "studies",
    metadata,
    Column("study_uid", String(64), primary_key=True),
    Column("patient_id", Text, nullable=False, default=""),
    Column("issuer_of_patient_id", Text, nullable=False, default=""),
    Column("patient_name", Text, nullable=False, default=""),
    Column("birth_date", String(16), nullable=False, default=""),
    Column("sex", String(16), nullable=False, default=""),
    Column("accession", Text, nullable=False, default=""),
    Column("study_date", String(16), nullable=False, default=""),
    Column("study_time", String(32), nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("modalities", Text, nullable=False, default=""),  # "CT\\SEG", sorted
    Column("n_series", Integer, nullable=False, default=0),
    Column("n_instances", Integer, nullable=False, default=0),
    Column("source", Text, nullable=False, default="file"),  # "file" or "pacs:<node>"
    Column("location", Text, nullable=False, default="[]"),  # JSON list of paths
    Column("first_seen", String(32), nullable=False),
    Column("last_opened", String(32)),
)

series = Table(
    "series",
    metadata,
    Column("uid", String(64), primary_key=True),
    Column("study_uid", String(64), ForeignKey("studies.study_uid"), nullable=False),
    Column("modality", String(16), nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("number", Integer),
    Column("n_instances", Integer, nullable=False, default=0),
    Column("body_part", Text, nullable=False, default=""),
    Column("frame_of_reference", String(64), nullable=False, default=""),
)

# Annotations and key images (migration 0004, issue 17): written by core.app.annotations, one
# transaction per change with its audit event. Rows are never deleted: ``deleted`` /
# ``removed_at`` keep what was taken back, for the audit trail's objects to resolve.
annotation_rows = Table(  # not "annotations": that name is the __future__ import
    "annotations",
    metadata,
    Column("uid", String(36), primary_key=True),
    Column("study_uid", String(64), nullable=False),
    Column("series_uid", String(64), nullable=False),
    Column("sop_instance_uid", String(64), nullable=False, default=""),  # "" on an MPR plane
    Column("frame", Integer, nullable=False, default=0),  # 0-based, as SliceRef.frame
    Column("image_ref", Text, nullable=False),  # JSON: the image or the reformatted plane
    Column("author", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("geometry", Text, nullable=False),  # JSON: {"points": [[row, col], ...]}
    Column("label", Text, nullable=False, default=""),
    Column("state", Text, nullable=False, default="{}"),  # JSON: {"label_pos": [row, col]}
    Column("revision", Integer, nullable=False, default=0),
    Column("created_at", String(32), nullable=False),
    Column("modified_at", String(32), nullable=False),
    Column("deleted", Integer, nullable=False, default=0),
    Column("audit_idx", Integer, ForeignKey("audit_events.idx"), nullable=False),
)

key_images = Table(
    "key_images",
    metadata,
    Column("uid", String(36), primary_key=True),
    Column("study_uid", String(64), nullable=False),
    Column("series_uid", String(64), nullable=False),
    Column("sop_instance_uid", String(64), nullable=False),
    Column("frame", Integer, nullable=False, default=0),
    Column("author", String(128), nullable=False),
    Column("purpose", String(16), nullable=False),  # "Of Interest" | "For Report" (KOS title)
    Column("created_at", String(32), nullable=False),
    Column("removed_at", String(32)),
    Column("audit_idx", Integer, ForeignKey("audit_events.idx"), nullable=False),
)
