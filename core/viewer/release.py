"""Dropping a series' decoded frames off the calling (GUI) thread.

Switching series drops the previous one's frames: for a 400-slice CT that is 400 MB of numpy
buffers handed back to the operating system, 10-15 ms of ``munmap`` on whichever thread drops
the last reference (measured on the GUI thread inside ``ViewerState.set_series``). A list given
to ``release_later`` is emptied by one daemon thread instead, a few frames at a time, giving the
interpreter lock back between them so the GUI thread never waits more than a switch interval.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

SMALL = 16  # lists this short are dropped where they are (not worth a hand-over)
CHUNK = 8  # frames freed between two yields of the interpreter lock

_queue: queue.SimpleQueue[list[Any]] = queue.SimpleQueue()
_lock = threading.Lock()
_thread: threading.Thread | None = None


def _run() -> None:
    while True:
        items = _queue.get()
        while items:
            for _ in range(min(CHUNK, len(items))):
                items.pop()  # drops the last reference to a frame: its buffer is freed here
            time.sleep(0)  # let a waiting thread (the GUI) have the interpreter


def release_later(items: list[Any]) -> None:
    """Free ``items`` (a list nobody else uses any more) on the release thread."""
    global _thread
    if len(items) < SMALL:
        return
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="frame-release", daemon=True)
            _thread.start()
    _queue.put(items)
