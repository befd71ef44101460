"""A size-bounded prediction cache keyed by (pixel-data hash, model id, package hash).

Re-running a model on the same pixels (scrolling back, re-opening a study) returns the stored
output instantly. Keys include the package hash (covering the version and the whole manifest),
so an updated or refitted model never serves an old answer.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

V = TypeVar("V")

CacheKey = tuple[str, str, str]


def pixel_hash(*arrays: npt.NDArray[Any]) -> str:
    """SHA-256 over the arrays' shapes, dtypes and bytes (C order)."""
    digest = hashlib.sha256()
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{contiguous.dtype.str}{contiguous.shape}".encode())
        digest.update(contiguous.data)
    return digest.hexdigest()


class PredictionCache(Generic[V]):
    """Thread-safe LRU with a bound on the number of entries (0 disables caching)."""

    def __init__(self, max_entries: int = 256) -> None:
        self._max = max_entries
        self._items: OrderedDict[CacheKey, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: CacheKey) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: CacheKey, value: V) -> None:
        if self._max <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
