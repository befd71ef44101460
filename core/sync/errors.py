"""Sync failures sorted by what the caller should do: retry later, stop and alert, or fix setup.

Every message is written for the person at the workstation (what happened, to what, and what
to do), because the status bar and the CLI show ``str(exc)`` as it is.
"""

from __future__ import annotations

from typing import Any


class SyncError(Exception):
    """Base of every sync failure."""


class SyncConfigError(SyncError):
    """Settings that cannot work: no server URL, plain http to a remote host, a missing CA file."""


class TransientError(SyncError):
    """Network trouble or a busy server: retry with backoff (``retry_after`` s if it said so)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RefusedError(SyncError):
    """The server refused the request itself (4xx); sending it again unchanged will not help."""

    def __init__(self, status: int, code: str, message: str, data: dict[str, Any]) -> None:
        super().__init__(message)
        self.status, self.code, self.data = status, code, data


class ChainAlertError(RefusedError):
    """409 audit_chain_*: the server's anchor says this audit history was replaced or rewritten."""


class ChainGapError(ChainAlertError, TransientError):
    """409 audit_chain_gap: the events before this batch have not reached the server yet (an
    earlier batch of this workstation still in flight on another server process). Retried like
    a busy server; a gap that outlasts the retries is raised as the alert it then is (events
    before it are missing from what this workstation sends)."""

    def __init__(
        self, status: int, code: str, message: str, data: dict[str, Any], retry_after: float | None
    ) -> None:
        SyncError.__init__(self, message)
        self.status, self.code, self.data = status, code, data
        self.retry_after = retry_after


class AuthFailedError(SyncError):
    """Not enrolled, credentials rejected, or the workstation was revoked: needs an admin.
    ``code`` is the server's (``device_revoked``, ``credentials_invalid``), so callers tell the
    cases apart without reading the message."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class TlsError(SyncConfigError):
    """The server's certificate could not be verified (TLS verification is never turned off)."""
