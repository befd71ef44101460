"""The results' own tables beyond core.store.schema (on its metadata; migration 0006)."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, String, Table

from core.store.schema import metadata

# The reason code of a rejection (core.results.reasons), one row per rejecting decision; the
# free text stays in decisions.comment.
decision_reasons = Table(
    "decision_reasons",
    metadata,
    Column("decision_id", Integer, ForeignKey("decisions.id"), primary_key=True),
    Column("reason", String(32), nullable=False),
)
