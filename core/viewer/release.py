"""Dropping a series' decoded frames off the calling (GUI) thread.

Switching series drops the previous one's frames: for a 400-slice CT that is 400 MB of numpy
buffers handed back to the operating system, 10-15 ms of ``munmap`` on whichever thread drops
the last reference (measured on the GUI thread inside ``ViewerState.set_series``). A list given
to ``release_later`` is emptied by one daemon thread instead, a few frames at a time, giving the
interpreter lock back between them so the GUI thread never waits more than a switch interval.

Freeing competes with a load that allocates at the same time (``munmap`` and the new buffers'
page faults serialise on the process's memory map: a 400-slice load took 400 ms instead of 210
while the previous series was freed beside it), so a loader calls ``wait_released`` before it
allocates in bulk.

The thread is started early (``start``, from ``ViewerState.__init__``), before any series has
loaded: glibc gives a thread its allocation arena on its first allocation, reusing an arena a
finished thread left free, and a release thread started at the first series switch took the
arena holding the freed frames, so the next load could not reuse that memory (page faults all
over again: 2x slower).
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
_pending = 0  # lists queued or being freed
_idle = threading.Condition(_lock)


def _run() -> None:
    global _pending
    while True:
        items = _queue.get()
        while items:
            for _ in range(min(CHUNK, len(items))):
                items.pop()  # drops the last reference to a frame: its buffer is freed here
            time.sleep(0)  # let a waiting thread (the GUI) have the interpreter
        with _idle:
            _pending -= 1
            _idle.notify_all()


def wait_released(timeout: float = 1.0) -> bool:
    """Block until every list handed over is freed (or ``timeout`` s); True when all are."""
    with _idle:
        return _idle.wait_for(lambda: _pending == 0, timeout)


def release_later(items: list[Any]) -> None:
    """Free ``items`` (a list nobody else uses any more) on the release thread."""
    global _pending
    if len(items) < SMALL:
        return
    start()
    with _lock:
        _pending += 1
    _queue.put(items)


def start() -> None:
    """Start the release thread if it is not running (see module docstring: start it early)."""
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="frame-release", daemon=True)
            _thread.start()
