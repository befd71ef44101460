"""The local copy of retrieved series: ``<profile>/pacs-cache/<study>/<series>/<sop>.dcm``.

Bounded in size, evicted least-recently-used by whole series (a half series is useless to the
viewer), and purged on request. UIDs from the server become path parts only after validation,
so a hostile server cannot write outside the cache.

Encrypted at rest (``pacs_cache_encrypted``, on by default): each file is AES-256-GCM sealed
with a fresh 96-bit nonce, its cache path bound as associated data (a file moved to another
series or study fails), under a key kept in the OS keyring (``core.store.keys``), never in a
file. The viewer reads the files through ``core.imaging.sources``, which decrypts them into
memory, so no plaintext copy is left on disk. A file that fails authentication (tampered,
damaged, foreign, written under a lost key) is refused with a message naming its series, and
the series is evicted: the cache is re-fetchable, so its key stays out of backups.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.imaging.sources import SourceError, register_sealed_folder
from core.pacs.errors import PacsError
from core.paths import profile_dir

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from core.config import Settings

DEFAULT_MAX_BYTES = 10 * 1024**3
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_USED, _COMPLETE = ".used", ".complete"


def check_uid(uid: str, what: str = "UID") -> str:
    if not (0 < len(uid) <= 64 and _UID.match(uid)):
        raise ValueError(f"invalid DICOM {what} '{uid[:80]}'")
    return uid


MAGIC = b"DAIPACS1"  # 8 bytes: this format, version 1; then the nonce, then ciphertext + tag
_NONCE = 12


class CacheAuthError(SourceError):
    """A cached file failed authentication: refused, and its series evicted."""


class CacheKeyError(PacsError):
    """The cache's key cannot be read or stored in the OS keyring: nothing is cached."""


def keyring_key(profile: Path) -> bytes:
    """The profile's PACS cache key from the OS keyring, made (256 random bits) on first use."""
    import keyring

    from core.store.keys import SERVICE, _keyring, pacs_cache_key_entry

    entry = pacs_cache_key_entry(profile)
    try:
        _keyring()  # refuses keyring's silent fall-back to a plaintext key file
        value = keyring.get_password(SERVICE, entry)
        if value is None:
            value = secrets.token_hex(32)
            keyring.set_password(SERVICE, entry, value)
        key = bytes.fromhex(value)
    except Exception as exc:  # keyring raises backend-specific errors (locked, D-Bus, ...)
        raise CacheKeyError(
            f"the PACS cache cannot be encrypted: its key in the OS keyring is not available "
            f"({type(exc).__name__}: {exc}); nothing is retrieved until it is (or IT sets "
            "pacs_cache_encrypted = false)"
        ) from exc
    if len(key) != 32:
        raise CacheKeyError(f"keyring entry '{entry}' is not a 256-bit key")
    return key


class CacheCipher:
    """AES-256-GCM of one cache's files; the key is fetched on first use (``get_key``)."""

    def __init__(self, get_key: Callable[[], bytes]) -> None:
        self._get_key = get_key
        self._aead: AESGCM | None = None
        self._lock = threading.Lock()

    def _cipher(self) -> AESGCM:
        with self._lock:
            if self._aead is None:
                from cryptography.hazmat.primitives.ciphers.aead import AESGCM

                self._aead = AESGCM(self._get_key())
            return self._aead

    def ready(self) -> None:
        self._cipher()

    @staticmethod
    def _bound(name: str) -> bytes:
        return f"doctorai-pacs-cache/1/{name}".encode()

    def seal(self, name: str, plain: bytes) -> bytes:
        """``name``: the file's place in the cache (study/series/sop.dcm), authenticated."""
        nonce = os.urandom(_NONCE)
        return MAGIC + nonce + self._cipher().encrypt(nonce, plain, self._bound(name))

    def open(self, name: str, sealed: bytes) -> bytes | None:
        """The plaintext, or None when the file is not one this key sealed for ``name``."""
        from cryptography.exceptions import InvalidTag

        if len(sealed) < len(MAGIC) + _NONCE + 16 or not sealed.startswith(MAGIC):
            return None
        nonce, body = sealed[len(MAGIC) : len(MAGIC) + _NONCE], sealed[len(MAGIC) + _NONCE :]
        try:
            return self._cipher().decrypt(nonce, body, self._bound(name))
        except InvalidTag:
            return None


@dataclass(frozen=True)
class CachedSeries:
    study_uid: str
    series_uid: str
    path: Path
    size_bytes: int
    last_used: float
    complete: bool


class PacsCache:
    """Thread-safe for writes of distinct instances (each file is written then renamed)."""

    def __init__(
        self,
        root: Path | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        cipher: CacheCipher | None = None,
    ) -> None:
        self.root = root or profile_dir() / "pacs-cache"
        self.max_bytes = max_bytes
        self.cipher = cipher
        self.root.mkdir(parents=True, exist_ok=True)
        if cipher is not None:
            with contextlib.suppress(OSError):
                self.root.chmod(0o700)
            register_sealed_folder(self.root, self.read)

    @property
    def encrypted(self) -> bool:
        return self.cipher is not None

    def prepare(self) -> None:
        """Fetch the key now (CacheKeyError), before anything is asked of a PACS."""
        if self.cipher is not None:
            self.cipher.ready()

    def _name(self, path: Path) -> tuple[str, str]:
        """(study/series/file, series UID) of a path in the cache."""
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(self.root))
        if len(rel.parts) != 3:
            raise CacheAuthError(f"'{rel}' is not an instance of a cached PACS series")
        return "/".join(rel.parts), rel.parts[1]

    def read(self, path: str | Path) -> bytes:
        """A cached instance's content (decrypted in memory). A file that fails authentication
        is refused (CacheAuthError naming its series) and its series evicted."""
        data = Path(path).read_bytes()
        if self.cipher is None:
            return data
        name, series_uid = self._name(Path(path))
        try:
            plain = self.cipher.open(name, data)
        except CacheKeyError as exc:  # the readers report SourceError as an unreadable file
            raise SourceError(str(exc)) from exc
        if plain is None:
            self._evict_series(Path(path).parent)
            raise CacheAuthError(
                f"cached PACS series '{series_uid}' failed authentication (tampered, damaged or "
                "not written by this workstation): it was removed from the cache; retrieve it "
                "again"
            )
        return plain

    def _evict_series(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        self._drop_empty(folder.parent)

    def series_dir(self, study_uid: str, series_uid: str) -> Path:
        return (
            self.root
            / check_uid(study_uid, "Study Instance UID")
            / check_uid(series_uid, "Series Instance UID")
        )

    def put(self, study_uid: str, series_uid: str, sop_uid: str, blob: bytes) -> Path:
        """Store one instance atomically; returns its path."""
        folder = self.series_dir(study_uid, series_uid)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{check_uid(sop_uid, 'SOP Instance UID')}.dcm"
        if self.cipher is not None:
            blob = self.cipher.seal(self._name(path)[0], blob)
        tmp = folder / f".{uuid.uuid4().hex}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)
        return path

    def touch(self, study_uid: str, series_uid: str) -> None:
        folder = self.series_dir(study_uid, series_uid)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / _USED).write_text(str(time.time()))

    def mark_complete(self, study_uid: str, series_uid: str, count: int) -> None:
        folder = self.series_dir(study_uid, series_uid)
        (folder / _COMPLETE).write_text(json.dumps({"count": count}))

    def complete_paths(self, study_uid: str, series_uid: str) -> list[Path] | None:
        """The cached instances of a series retrieved in full earlier, else None."""
        folder = self.series_dir(study_uid, series_uid)
        try:
            count = int(json.loads((folder / _COMPLETE).read_text())["count"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        paths = sorted(folder.glob("*.dcm"))
        return paths if len(paths) == count else None

    def entries(self) -> list[CachedSeries]:
        out = []
        for study in self.root.iterdir() if self.root.exists() else []:
            if not study.is_dir():
                continue
            for series in study.iterdir():
                if not series.is_dir():
                    continue
                files = [f for f in series.iterdir() if f.is_file()]
                used = series / _USED
                out.append(
                    CachedSeries(
                        study.name,
                        series.name,
                        series,
                        sum(f.stat().st_size for f in files),
                        used.stat().st_mtime if used.exists() else series.stat().st_mtime,
                        (series / _COMPLETE).exists(),
                    )
                )
        return out

    def size_bytes(self) -> int:
        return sum(e.size_bytes for e in self.entries())

    def evict(self, keep: set[tuple[str, str]] | None = None) -> list[CachedSeries]:
        """Delete least-recently-used series until the cache fits ``max_bytes``."""
        keep = keep or set()
        entries = sorted(self.entries(), key=lambda e: e.last_used)
        total = sum(e.size_bytes for e in entries)
        removed = []
        for entry in entries:
            if total <= self.max_bytes:
                break
            if (entry.study_uid, entry.series_uid) in keep:
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            total -= entry.size_bytes
            removed.append(entry)
            self._drop_empty(entry.path.parent)
        return removed

    def purge(self) -> int:
        """Delete everything in the cache; returns the bytes freed."""
        freed = self.size_bytes()
        for child in self.root.iterdir():
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
        return freed

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> PacsCache:
        """The profile's cache, bounded by ``pacs_cache_gb`` (IT or the user sets it) and
        encrypted unless ``pacs_cache_encrypted`` is off."""
        limit = settings.pacs_cache_gb if settings is not None else DEFAULT_MAX_BYTES / 1024**3
        encrypted = settings.pacs_cache_encrypted if settings is not None else True
        profile = profile_dir()
        cipher = CacheCipher(lambda: keyring_key(profile)) if encrypted else None
        return cls(profile / "pacs-cache", max_bytes=int(limit * 1024**3), cipher=cipher)

    @staticmethod
    def _drop_empty(folder: Path) -> None:
        with contextlib.suppress(OSError):  # not empty: other series of the study stay
            folder.rmdir()
