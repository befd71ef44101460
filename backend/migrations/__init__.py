"""Alembic migrations of the backend's database (run by backend.migrate, not by an alembic.ini)."""
