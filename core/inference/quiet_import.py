"""Importing a big framework (torch, transformers) in a worker thread without stalling the GUI
thread, which shares the GIL with it.

Measured on the 2-core test machine, a 2 ms ticker in one thread while another imports torch,
transformers and T5: worst gaps 330, 236, 236, 180 ms. Two causes, each removed here:

- the dynamic linker mapping and relocating libtorch_cpu.so (hundreds of MB) inside the
  extension import, which holds the GIL (~200 ms). The same ``dlopen`` called first as a ctypes
  foreign function - which releases the GIL - leaves the import only a lookup of a library
  already loaded. RTLD_LOCAL, as torch itself loads them: no symbol becomes global;
- full collections of the cyclic collector walking the hundreds of thousands of objects the
  import creates (core.heap): the collector is paused while the import (and the model load that
  follows, after which the manager freezes them, core.heap.freeze_long_lived) runs.

What the import made is then frozen (``gc.freeze``, no walk), so the collection the model
manager runs after a load walks only the model's objects. With all three, the worst gap was
12-40 ms over the same imports. Written here on purpose: no
library offers a GIL-free import; where ctypes or the files are missing, the import simply runs
as before (slower for the GUI, never wrong).
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import importlib.util
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

#: The shared libraries of a framework package's ``lib`` folder, in dependency order.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "torch": ("libgomp", "libc10.so", "libtorch_cpu.so", "libtorch.so", "libtorch_python.so"),
}

_lock = threading.Lock()
_paused = 0
_was_enabled = True


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off for the block (nested and concurrent blocks: off until the
    last one ends, then back to what it was before the first)."""
    global _paused, _was_enabled
    with _lock:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            if _paused == 0 and _was_enabled:
                gc.enable()


def _lib_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "lib"
    return folder if folder.is_dir() else None


def preload_libraries(package: str) -> list[str]:
    """``dlopen`` the package's big libraries with the GIL released; the names loaded."""
    folder = _lib_dir(package)
    if folder is None or not sys.platform.startswith("linux"):
        return []
    try:
        libc = ctypes.CDLL(None)
        dlopen = libc.dlopen
    except (OSError, AttributeError):
        return []
    dlopen.restype = ctypes.c_void_p
    dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    loaded = []
    names = sorted(p.name for p in folder.iterdir())
    for prefix in LIBRARIES.get(package, ()):
        for name in (n for n in names if n.startswith(prefix)):
            if dlopen(str(folder / name).encode(), os.RTLD_NOW | os.RTLD_LOCAL):
                loaded.append(name)
    return loaded


def quiet_import(modules: Sequence[str]) -> list[str]:
    """Import ``modules`` (those not imported yet) with the collector paused and their
    packages' libraries loaded first; returns the modules imported now. A module that cannot
    be imported is left to its user, whose own import names what is missing."""
    missing = [m for m in modules if m not in sys.modules]
    if not missing:
        return []
    done = []
    with collector_paused():
        for package in dict.fromkeys(m.split(".")[0] for m in missing):
            if package in LIBRARIES and package not in sys.modules:
                preload_libraries(package)
        for name in missing:
            try:
                importlib.import_module(name)
            except ImportError:
                continue
            done.append(name)
        # What an import makes lives as long as the process: out of every later walk, moved
        # now without one (gc.collect would walk all of it, as the collector was off: the
        # very pause avoided). A garbage cycle the import left stays, as freeze_long_lived's.
        gc.freeze()
    return done
