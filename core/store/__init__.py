"""The workstation's one local database: SQLCipher-encrypted, key in the OS keyring."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.store.outbox import StoreOutbox


def open_outbox() -> StoreOutbox:
    """The outbox of the profile's database (what core.sync drains)."""
    from core.store.database import open_database
    from core.store.outbox import StoreOutbox

    return StoreOutbox(open_database())
