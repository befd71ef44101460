"""What the sync engine needs from the outbox.

The outbox is a table in the workstation's encrypted database (``core.store.outbox``,
``StoreOutbox``), written in the same transaction as the result or audit event it carries.
The engine only knows this small protocol, and all sync state lives in that table: a
restarted workstation resumes from what is still unsent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class OutboxRow(Protocol):
    """One queued item: ``id`` is a uuid (the item's idempotency key); ``payload`` the wire item.

    ``payload`` is a JSON object (a dict, or its JSON text): a ``ResultItem`` for kind
    'result', an ``AuditEventItem`` for kind 'audit'.
    """

    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def payload(self) -> Mapping[str, Any] | str: ...


class Outbox(Protocol):
    """Rows come back oldest first, so audit events arrive in chain order."""

    def fetch_unsent(self, limit: int) -> Sequence[OutboxRow]: ...

    def mark_sent(self, ids: Sequence[str]) -> None: ...

    def mark_failed(self, ids: Sequence[str], error: str) -> None: ...

    def count_unsent(self) -> int: ...


def payload_dict(row: OutboxRow) -> dict[str, Any]:
    """The row's payload as a dict, whichever form the outbox stores it in."""
    raw = row.payload
    data = json.loads(raw) if isinstance(raw, str | bytes) else dict(raw)
    if not isinstance(data, dict):
        raise TypeError(f"outbox row {row.id!r}: payload is not a JSON object")
    return data
