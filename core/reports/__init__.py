"""A study's report (findings, impression, templates, draft/signed state, addenda) and the
items a read inserts into it; Qt-free, persisted by ``core.app.reports``."""
