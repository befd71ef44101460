"""The rollout report reads an index, not the results table (issue 19: <= 1 s at 2M results).

``results.has_error`` (the summary's "error" is present and not null) is computed by the
database; ``ix_results_report`` holds (model, device, latency) and what the report filters and
counts on, so the report is an index-only scan per assigned device with latencies in order.

PostgreSQL: adding a STORED generated column rewrites ``results`` and the index build reads it
once, both under locks that hold back result inserts for the duration (about 10 s at 2M rows
here); workstations retry their batches, nothing is lost. SQLite cannot add a STORED column to
an existing table, so there it is VIRTUAL (computed when read; SQLite has no INCLUDE either).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# as this revision made them (a migration does not follow later edits of backend.db)
HAS_ERROR_SQL = "(summary ->> 'error') IS NOT NULL"
REPORT_INDEX_INCLUDE = (
    "created_at",
    "shadow",
    "decision",
    "model_version",
    "rollout_id",
    "has_error",
)


# Index-only scans skip the table only for pages autovacuum has marked all-visible. Its default
# for insert-only growth waits for 20% new rows (400,000 at 2M), and the report over pages not
# yet marked took 2.1 s instead of 0.7 s; at 2% the unmarked tail stays small. Vacuuming freshly
# inserted pages is cheap (no dead rows to remove).
INSERT_SCALE_FACTOR = 0.02


def upgrade() -> None:
    stored = op.get_bind().dialect.name == "postgresql"
    if stored:
        op.execute(
            "ALTER TABLE results SET (autovacuum_vacuum_insert_scale_factor = "
            f"{INSERT_SCALE_FACTOR})"
        )
    op.add_column(
        "results",
        sa.Column("has_error", sa.Boolean(), sa.Computed(HAS_ERROR_SQL, persisted=stored)),
    )
    op.create_index(
        "ix_results_report",
        "results",
        ["model_id", "device_id", "latency_ms"],
        postgresql_include=list(REPORT_INDEX_INCLUDE),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE results RESET (autovacuum_vacuum_insert_scale_factor)")
    op.drop_index("ix_results_report", table_name="results")
    with op.batch_alter_table("results") as batch:
        batch.drop_column("has_error")
