"""Alembic environment: runs on the connection backend.migrate hands over (no alembic.ini).

``target_metadata`` is backend.db's metadata so that autogenerate (a developer writing a new
revision, and the test that compares a migrated database with db.py) sees the models."""

from alembic import context

from backend.db import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
