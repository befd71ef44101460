"""Errors that name the PACS node (quoted), what was attempted and why it failed."""

from __future__ import annotations


class PacsError(Exception):
    """A PACS operation failed; ``str()`` is a message fit for the user."""


class PacsConfigError(PacsError):
    """A node is unknown, misconfigured, or its secret is missing from the keyring."""


class PacsAuthError(PacsError):
    """The PACS refused the credentials (HTTP 401/403)."""


class AuditRefusedError(PacsError):
    """The audit trail could not record a retrieve before it started, so nothing was fetched or
    handed to the viewer (an unrecorded access to patient data is refused, not done)."""
