"""Reference implementation of the central backend (FastAPI), the other end of sync."""
