"""The local copy of retrieved series: ``<profile>/pacs-cache/<study>/<series>/<sop>.dcm``.

Bounded in size, evicted least-recently-used by whole series (a half series is useless to the
viewer). Not encrypted (the profile is the user's), and purged on request. UIDs from the server
become path parts only after validation, so a hostile server cannot write outside the cache.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.paths import profile_dir

if TYPE_CHECKING:
    from core.config import Settings

DEFAULT_MAX_BYTES = 10 * 1024**3
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_USED, _COMPLETE = ".used", ".complete"


def check_uid(uid: str, what: str = "UID") -> str:
    if not (0 < len(uid) <= 64 and _UID.match(uid)):
        raise ValueError(f"invalid DICOM {what} '{uid[:80]}'")
    return uid


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

    def __init__(self, root: Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = root or profile_dir() / "pacs-cache"
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)

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
        tmp = folder / f".{uuid.uuid4().hex}.part"
        tmp.write_bytes(blob)
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
        """The profile's cache, bounded by ``pacs_cache_gb`` (IT or the user sets it)."""
        limit = settings.pacs_cache_gb if settings is not None else DEFAULT_MAX_BYTES / 1024**3
        return cls(max_bytes=int(limit * 1024**3))

    @staticmethod
    def _drop_empty(folder: Path) -> None:
        with contextlib.suppress(OSError):  # not empty: other series of the study stay
            folder.rmdir()
