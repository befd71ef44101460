"""The audit chain's MAC key: HMAC-SHA-256 with a secret held in the OS keyring, apart from
the database key.

A plain SHA-256 chain proves only that the rows agree with each other: anyone who can open the
database (a leaked database key, a copy taken with it, a tool run as the user) could rewrite an
event and re-chain everything after it. With the chain keyed, re-chaining needs this key too.
The head record (core.audit.head_record) and the backend's anchoring stay as further lines.

The keyring value is ``1:<keyed_from>:<64 hex digits>``. ``keyed_from`` is the first index
chained with the key: 0 for a trail made since keyed chains exist, the next index for an older
trail (its first events keep their SHA-256 links; verify checks each part by its own rule).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from core.store.errors import KeyringUnavailableError
from core.store.keys import SERVICE, chain_key_entry

log = logging.getLogger(__name__)

_FORMAT = "1"


@dataclass(frozen=True)
class ChainKey:
    key: bytes = b""
    keyed_from: int = 0

    def __repr__(self) -> str:  # never print the secret
        return f"ChainKey(keyed_from={self.keyed_from})"


def _parse(db_path: Path, value: str) -> ChainKey:
    try:
        fmt, keyed_from, hex_key = value.split(":")
        key = bytes.fromhex(hex_key)
        start = int(keyed_from)
    except ValueError:
        fmt, key, start = "", b"", -1
    if fmt != _FORMAT or len(key) != 32 or start < 0:
        raise KeyringUnavailableError(
            db_path, f"keyring entry '{chain_key_entry(db_path)}' is not an audit chain key"
        )
    return ChainKey(key, start)


def _keyring_error(db_path: Path, exc: Exception) -> KeyringUnavailableError:
    return KeyringUnavailableError(
        db_path,
        f"the audit chain key could not be read from or stored in the OS keyring "
        f"({type(exc).__name__}: {exc})",
    )


def read_chain_key(db_path: Path) -> ChainKey | None:
    """The trail's chain key, or None when the keyring holds none. Fails closed: without the
    key no event could be chained, and chaining without it would quietly weaken the trail."""
    import keyring

    try:
        value = keyring.get_password(SERVICE, chain_key_entry(db_path))
    except Exception as exc:  # keyring raises backend-specific errors (locked, D-Bus, ...)
        raise _keyring_error(db_path, exc) from exc
    return None if value is None else _parse(db_path, value)


def create_chain_key(db_path: Path, keyed_from: int) -> ChainKey:
    """A new chain key keying the trail from ``keyed_from`` (the index of its next event) on.
    The caller holds the database's write lock, so that two processes opening a new trail at
    once cannot each make a key and chain with a different one."""
    import keyring

    value = f"{_FORMAT}:{keyed_from}:{secrets.token_hex(32)}"
    try:
        keyring.set_password(SERVICE, chain_key_entry(db_path), value)
    except Exception as exc:
        raise _keyring_error(db_path, exc) from exc
    if keyed_from > 0:
        log.info("audit chain keyed from #%d on (older events: SHA-256)", keyed_from)
    return _parse(db_path, value)


def forget_chain_key(db_path: Path) -> None:
    import keyring

    try:
        keyring.delete_password(SERVICE, chain_key_entry(db_path))
    except Exception as exc:  # noqa: BLE001 - nothing stored, or the keyring is away
        log.debug("no audit chain key to forget: %s", exc)
