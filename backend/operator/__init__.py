"""The operator's web page served by the backend (routes, session, plot, templates, CSS)."""
