"""Give freed heap memory back to the operating system (glibc), written here on purpose.

glibc serves an allocation below its mmap threshold from the heap, and that threshold grows
(up to 32 MiB) each time a larger mmapped block is freed, so after the first few images a
viewer's 1 MiB slices and 3 MiB reformat temporaries live on the heap. Freeing them there does
not lower the process's memory until the heap's top is free: stacking a 400-slice series into
one volume (``core.viewer.reformat.volume_from_frames``) briefly held the volume AND the freed
slices, twice the volume (benchmarks/bench_mpr_memory.py). ``malloc_trim(0)`` returns every
free page of every arena (about a millisecond); elsewhere than glibc this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Callable


@functools.cache
def _trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others: no malloc_trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def give_back_freed_memory() -> bool:
    """Return the heap's free pages to the OS; True when something could be done."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True
