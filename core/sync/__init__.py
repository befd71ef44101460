"""Offline-first sync between the workstation and the central backend.

``core.sync.wire`` holds the wire schemas shared with ``backend/`` (the only module both import).
"""
