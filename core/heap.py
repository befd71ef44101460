"""Keeping the cyclic garbage collector's full collections short, so they never stall the GUI.

A full (generation 2) collection walks every tracked object while holding the GIL, in whichever
thread happened to allocate: the GUI thread stops for as long as it takes. Measured on the
2-core test machine: 58 ms over the heap of a started window (PySide6, core, SQLAlchemy;
~138,000 objects), 120-200 ms once torch and a model are loaded (~385,000 objects), and such a
collection landing in a sync pass stalled the window ~200 ms (tests/desktop/test_sync_gui.py).

Almost all of those objects live as long as the process (modules, classes, Qt wrappers) or as
long as a loaded model. So the application moves what is alive at two moments into the
collector's permanent generation (``gc.freeze``): once the window is up (desktop/app.py) and
after each model load (core.inference.manager). Full collections then walk only what was made
since, and the stall measured while a sync drains drops to a few ms. A closed model's objects
become collectable again through ``thaw`` (core.inference.manager.release_freed_memory and
``unload``), so evicting models still returns their memory.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Collect the young generations (cheap: only objects made since the last collections),
    then move everything still alive into the permanent generation, out of every later walk.

    Garbage cycles that already reached the oldest generation stay uncollected until ``thaw``;
    the older generation is not walked here because that walk is the very pause avoided."""
    gc.collect(1)
    gc.freeze()


def thaw() -> None:
    """Hand the frozen objects back to the collector (the oldest generation): after a model is
    closed, its reference cycles are found by the next full collection again."""
    gc.unfreeze()
