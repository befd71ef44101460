"""Pillow's antialiased bilinear resize of float planes, bit-identical and faster on big frames.

The model input of a radiograph is a 3.6-megapixel frame shrunk to a few hundred pixels, so
nearly all of a resize's cost is the first (horizontal) pass over every input row; the second
pass reads only the narrow result. Two things are written here on purpose, both keeping the
output identical to ``Image.fromarray(plane, "F").resize(size, BILINEAR)`` (the test compares
them bit for bit):

- the plane is handed to Pillow as a view of the numpy buffer instead of a copy (Pillow maps
  "F" buffers too, it only does not offer it through ``frombuffer``); a full-frame copy costs
  about a third of the resize itself;
- the horizontal pass runs in row bands on two threads (Pillow releases the GIL while it
  resamples; a horizontal pass computes each row on its own), then one vertical pass. Pillow
  itself does exactly these two passes in this order, into a float32 intermediate, so the
  split changes nothing but the wall time.
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

# Frames at least this large (H*W) have their horizontal pass split across threads; below it
# the hand-off costs more than it saves (a 320x260 MR slice resizes in well under 1 ms).
THREAD_MIN_PIXELS = 1 << 20
BANDS = 2  # the development machines have two cores; the calling thread does one band

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _helper() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(BANDS - 1, thread_name_prefix="doctorai-resize")
        return _pool


def _image(plane: F32) -> Any:
    """A Pillow "F" image over ``plane``'s memory (C-contiguous float32), else over a copy."""
    from PIL import Image
    from PIL.Image import core as imaging  # type: ignore[attr-defined]  # pillow's C core

    height, width = plane.shape
    try:
        core = imaging.map_buffer(plane, (width, height), "raw", 0, ("F", 0, 1))
        return Image.new("F", (0, 0))._new(core)
    except (AttributeError, TypeError, ValueError):  # a Pillow without the mapping: copy
        return Image.fromarray(plane, mode="F")


def _horizontal(
    plane: F32, width: int, x0: float, x1: float, clip: tuple[float, float] | None, out: F32
) -> Any:
    from PIL import Image

    if clip is not None:
        plane = np.clip(plane, np.float32(clip[0]), np.float32(clip[1]), out=out)
    rows = plane.shape[0]
    return _image(plane).resize((width, rows), Image.Resampling.BILINEAR, box=(x0, 0, x1, rows))


Box = tuple[float, float, float, float]


def resize_plane(
    plane: npt.NDArray[Any],
    size: tuple[int, int],
    box: Box | None = None,
    *,
    clip: tuple[float, float] | None = None,
    out: F32 | None = None,
) -> F32:
    """``plane`` (H, W) resized to ``size`` (rows, cols), antialiased bilinear, float32.

    ``box`` (left, top, right, bottom), Pillow's source region in pixel-edge coordinates, may
    be fractional: core.imaging.reduced's frames use it to place their samples where they lie.
    ``clip`` (low, high) clips the plane first, into ``out`` (a C-contiguous float32 scratch
    of the plane's shape) when given: the clip then runs in the bands' threads too.
    """
    from PIL import Image

    height, width = size
    src = np.ascontiguousarray(plane, dtype=np.float32)
    rows, cols = src.shape
    if out is None or out.shape != src.shape or not out.flags.c_contiguous:
        out = np.empty_like(src) if clip is not None else src
    x0, y0, x1, y1 = box if box is not None else (0.0, 0.0, float(cols), float(rows))
    if (rows, cols) == (height, width) and (x0, y0, x1, y1) == (0, 0, cols, rows):
        return src if clip is None else np.clip(src, clip[0], clip[1], out=out)
    bilinear = Image.Resampling.BILINEAR
    horizontal = cols != width or (x0, x1) != (0, cols)
    if rows * cols < THREAD_MIN_PIXELS or not horizontal or BANDS < 2:
        if clip is not None:
            src = np.clip(src, np.float32(clip[0]), np.float32(clip[1]), out=out)
        return np.asarray(_image(src).resize((width, height), bilinear, box), dtype=np.float32)
    cuts = [int(c) for c in np.linspace(0, rows, BANDS + 1)]
    jobs = [(src[a:b], width, x0, x1, clip, out[a:b]) for a, b in itertools.pairwise(cuts)]
    pool = _helper()
    others: list[Future[Any]] = [pool.submit(_horizontal, *job) for job in jobs[1:]]
    first = _horizontal(*jobs[0])
    middle = Image.new("F", (width, rows))
    middle.paste(first, (0, 0))
    for top, job in zip(cuts[1:-1], others, strict=True):
        middle.paste(job.result(), (0, top))
    if rows == height and (y0, y1) == (0, rows):
        return np.asarray(middle, dtype=np.float32)
    resized = middle.resize((width, height), bilinear, box=(0, y0, width, y1))
    return np.asarray(resized, dtype=np.float32)
