"""Pillow's antialiased bilinear resize of float planes, and a faster equal one for big frames.

The model input of a radiograph is a 3.6-megapixel frame shrunk to a few hundred pixels, so
nearly all of a resize's cost is the first (horizontal) pass over every input row. Pillow runs
it as a scalar loop in double precision (3.9 ms on the 1955x1841 CR). Written here on purpose,
for frames of at least ``BIG_PIXELS``: the same separable filter with Pillow's own coefficients
(its triangle filter, support and normalisation, recomputed below), applied as small dense
matrix products over blocks of ``BLOCK`` output columns, where BLAS does the multiply-adds in
float32 (1.1 ms). The result differs from Pillow's only by float32 rounding: 2.3e-7 of the
frame's largest value on the CR (tests/models/test_preprocess_fast.py holds 1e-6). The rows are
split into two bands on two threads (numpy and BLAS release the GIL), each clipping its own rows
first when the caller fuses a window (``clip``). Smaller planes go through Pillow itself, handed
over as a view of the numpy buffer instead of a copy.
"""

from __future__ import annotations

import functools
import itertools
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

# Frames at least this large (H*W) take the matrix-product path in row bands on threads; below
# it Pillow is as fast and the hand-off costs more than it saves (a 320x260 MR slice resizes in
# well under 1 ms).
BIG_PIXELS = 1 << 20
BANDS = 2  # the development machines have two cores; the calling thread does one band
BLOCK = 8  # output columns per product: on the CR's first pass 8 took 1.1 ms, 16 1.3, 32 1.8

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


@functools.lru_cache(maxsize=64)
def _blocks(
    in_size: int, out_size: int, start: float, end: float
) -> tuple[tuple[int, int, int, F32], ...]:
    """Pillow's bilinear coefficients (libImaging/Resample.c, precompute_coeffs) mapping
    ``in_size`` samples, region [start, end), to ``out_size``, as blocks of BLOCK outputs:
    (first output, first input, end input, weights (inputs, outputs) float32)."""
    scale = (end - start) / out_size
    filterscale = max(scale, 1.0)
    support = filterscale * 1.0  # the triangle's support is 1 at scale 1
    weights = np.zeros((in_size, out_size), np.float64)
    for j in range(out_size):
        center = start + (j + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        k = np.clip(1.0 - np.abs((np.arange(lo, hi) - center + 0.5) / filterscale), 0.0, None)
        total = float(k.sum())
        weights[lo:hi, j] = k / total if total != 0.0 else k
    blocks = []
    for j0 in range(0, out_size, BLOCK):
        cols = weights[:, j0 : j0 + BLOCK]
        used = np.flatnonzero(cols.any(axis=1))
        a, b = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 1)
        blocks.append((j0, a, b, np.ascontiguousarray(cols[a:b], dtype=np.float32)))
    return tuple(blocks)


def _horizontal(
    src: F32,
    blocks: tuple[tuple[int, int, int, F32], ...],
    clip: tuple[float, float] | None,
    scratch: F32,
    out: F32,
) -> None:
    """The first pass over some rows: ``out`` = clip(``src``) x weights, block by block."""
    if clip is not None:
        src = np.clip(src, np.float32(clip[0]), np.float32(clip[1]), out=scratch)
    for j0, a, b, w in blocks:
        np.matmul(src[:, a:b], w, out=out[:, j0 : j0 + w.shape[1]])


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
    if rows * cols < BIG_PIXELS:
        if clip is not None:
            src = np.clip(src, np.float32(clip[0]), np.float32(clip[1]), out=out)
        bilinear = Image.Resampling.BILINEAR
        return np.asarray(_image(src).resize((width, height), bilinear, box), dtype=np.float32)
    across = _blocks(cols, width, float(x0), float(x1))
    down = _blocks(rows, height, float(y0), float(y1))
    middle = np.empty((rows, width), np.float32)
    cuts = [int(c) for c in np.linspace(0, rows, max(BANDS, 1) + 1)]
    jobs = [(src[a:b], across, clip, out[a:b], middle[a:b]) for a, b in itertools.pairwise(cuts)]
    others: list[Future[Any]] = [_helper().submit(_horizontal, *job) for job in jobs[1:]]
    _horizontal(*jobs[0])
    for job in others:
        job.result()
    result = np.empty((height, width), np.float32)
    for j0, a, b, w in down:
        np.matmul(w.T, middle[a:b], out=result[j0 : j0 + w.shape[1]])
    return result
