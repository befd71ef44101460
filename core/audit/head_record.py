"""The chain head kept outside the database: a small file beside it, authenticated with a key
of its own held in the OS keyring.

The hash chain shows that what the database holds is consistent, not that nothing is missing:
deleting the last rows, losing the -wal file after a crash or restoring an older copy of the
file leave a shorter chain that is just as consistent. So each committed head (index and hash)
is also written to ``<database>.head`` with an HMAC under the head key, and ``compare`` tells a
missing tail, a rollback or a rewritten history from a database that is merely ahead of the
record (written just after each commit, the record may lag by the last commit, never lead).
Restoring an older database *and* an older head file together is not detectable here: the
backend's anchoring of the chain is the second line.

Why a file and not the keyring itself: file keyrings rewrite their whole store per write, and a
crash during one of the thousands of head writes could destroy the database key kept in the
same store (seen in the kill -9 test). The keyring is written once, for the head key.
Writes go through one coalescing writer thread (tmp file, fsync, rename), at most one per
``WRITE_INTERVAL_S``: the commit never waits for them, only the newest head matters, and a
crash can leave the record at most that far behind (a lag, never a false alarm).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from core.store.keys import SERVICE, head_key_entry

log = logging.getLogger(__name__)

#: Longest the record lags behind the committed head in normal running (one fsync per interval).
WRITE_INTERVAL_S = 0.25


def head_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".head")


def head_key(db_path: Path, *, create: bool) -> tuple[bytes | None, bool]:
    """The head file's HMAC key from the keyring (made once, with ``create``) and whether it
    was made just now."""
    import keyring

    entry = head_key_entry(db_path)
    made = False
    try:
        value = keyring.get_password(SERVICE, entry)
        if value is None and create:
            value, made = secrets.token_hex(32), True
            keyring.set_password(SERVICE, entry, value)
    except Exception as exc:  # noqa: BLE001 - no head record, said by compare
        log.warning("the audit head key is not available: %s", exc)
        return None, False
    return (bytes.fromhex(value) if value else None), made


def _mac(key: bytes, index: int, digest: str) -> str:
    return hmac.new(key, f"{index}:{digest}".encode(), hashlib.sha256).hexdigest()


def read_head(db_path: Path) -> tuple[int, str] | str | None:
    """The recorded (index, hash); None when none is recorded; a str saying why the record
    cannot be trusted (forged, damaged, or its key gone)."""
    path = head_path(db_path)
    if not path.exists():
        return None
    key, _made = head_key(db_path, create=False)
    if key is None:
        return f"'{path}' exists but its key is not in the keyring"
    try:
        index_s, digest, mac = path.read_text(encoding="ascii").strip().split(":")
        index = int(index_s)
    except (OSError, ValueError, UnicodeDecodeError):
        return f"'{path}' is unreadable"
    if not hmac.compare_digest(mac, _mac(key, index, digest)):
        return f"'{path}' does not carry a valid HMAC (written without the head key)"
    return index, digest


def forget_head(db_path: Path) -> None:
    import keyring

    head_path(db_path).unlink(missing_ok=True)
    try:
        keyring.delete_password(SERVICE, head_key_entry(db_path))
    except Exception as exc:  # noqa: BLE001 - nothing recorded, or the keyring is away
        log.debug("no audit head key to forget: %s", exc)


@dataclass(frozen=True)
class HeadComparison:
    ok: bool
    reason: str = ""


def compare(
    recorded: tuple[int, str] | str | None,
    head: tuple[int, str],
    hash_at: dict[int, str],
    *,
    expected: bool = False,
) -> HeadComparison:
    """The database's ``head`` against the ``recorded`` one; ``hash_at`` maps the recorded
    index to the hash the database holds there (empty when the database has no such event).
    ``expected``: a record should exist (the head key exists and the trail has events)."""
    if isinstance(recorded, str):
        return HeadComparison(False, recorded)
    if recorded is None:
        if expected:
            return HeadComparison(False, "the head record beside the database is missing")
        return HeadComparison(True, "no head recorded outside the database yet")
    r_index, r_hash = recorded
    d_index = head[0]
    if d_index < r_index:
        return HeadComparison(
            False,
            f"events {d_index + 1}..{r_index} missing: the database is older than the last "
            f"recorded head (#{r_index}); its last rows were deleted, its -wal file lost, or "
            "an older copy restored",
        )
    if hash_at.get(r_index) != r_hash:
        return HeadComparison(
            False,
            f"event #{r_index} is not the one recorded as the head: the history up to it was "
            "rewritten",
        )
    return HeadComparison(True, f"matches the recorded head #{r_index}")


class HeadRecorder:
    """Writes the newest committed head to the head file from one writer thread."""

    def __init__(self, db_path: Path, key: bytes | None) -> None:
        """``key``: the head key (``head_key``); None records nothing."""
        self.path = head_path(db_path)
        self.key = key
        self._lock = threading.Condition()
        self._pending: tuple[int, str] | None = None
        self._written: tuple[int, str] | None = None
        self._closed = False
        self._urgent = False
        self._idle = False  # the writer waits for a new head (not in its interval's sleep)
        self._thread: threading.Thread | None = None

    def start_at(self, index: int, digest: str) -> None:
        """A trail from before head records got its head key just now: record its head at
        once, so that no later check finds the key without its file."""
        if self.key is not None:
            self._write(index, digest)
            with self._lock:
                self._pending = self._written = (index, digest)

    def note(self, index: int, digest: str) -> None:
        """A commit made (index, digest) the head; recorded soon after."""
        if self.key is None:
            return
        with self._lock:
            if self._closed:
                return
            if self._pending is None or index > self._pending[0]:
                self._pending = (index, digest)
            if self._thread is None:
                # deliberately a plain thread: core has no Qt, and this one only coalesces
                self._thread = threading.Thread(target=self._run, name="audit-head", daemon=True)
                self._thread.start()
            if self._idle:  # otherwise the writer takes it after its interval: waking it on
                self._lock.notify_all()  # every commit only costs the committer the GIL

    def _write(self, index: int, digest: str) -> None:
        assert self.key is not None
        # a temporary file of its own per write (0600, as the database): two trails opened on
        # one database in one process (two openers, tests) write at the same moment
        fd, name = tempfile.mkstemp(
            prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(f"{index}:{digest}:{_mac(self.key, index, digest)}\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(name, self.path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._pending == self._written and not self._closed:
                    self._idle = True
                    self._lock.wait()
                    self._idle = False
                if self._pending == self._written and self._closed:
                    return
                head = self._pending
            assert head is not None
            try:
                self._write(*head)
            except OSError as exc:  # logged; the chain itself is intact
                log.warning("the audit head could not be recorded in '%s': %s", self.path, exc)
            with self._lock:
                self._written = head
                self._lock.notify_all()
                # at most one write (one fsync) per interval: the commits' own fsyncs come
                # first; a flush (verify, close) cuts the wait short
                self._lock.wait_for(lambda: self._urgent or self._closed, WRITE_INTERVAL_S)
                self._urgent = False

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the newest noted head is recorded."""
        with self._lock:
            self._urgent = True
            self._lock.notify_all()
            return self._lock.wait_for(lambda: self._pending == self._written, timeout)

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(10)
