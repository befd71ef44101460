"""Alembic revisions of the backend schema, one file each, chained by ``down_revision``."""
