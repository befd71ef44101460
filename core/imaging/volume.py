"""Load a whole series: progressively (first slice first) or into one float32 volume.

Speed matters here (a 400-slice CT must feel instant), so uncompressed little-endian slices take
a deliberate fast path: the indexer already parsed each header and recorded where the Pixel
Data value starts, so we read those bytes with ``np.fromfile`` at that offset and rescale them
in place, instead of a second full ``dcmread`` + ``pixel_array`` per file. Both numpy calls
release the GIL, so a small thread pool overlaps I/O and arithmetic. Everything else (compressed,
colour, LUT sequences, zip members) goes through ``pixels.read_frame``; tests check that both
paths give identical values.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import numpy as np
import numpy.typing as npt

from core.imaging import sources
from core.imaging.index import Cancel, cancel_check
from core.imaging.model import (
    Frame,
    Instance,
    LoadError,
    PixelInfo,
    Series,
    SliceRef,
    display_frames,
)
from core.imaging.pixels import PixelDecodeError, gray_frame, read_frame, rescale

_COLOR = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR"})


class SeriesLoadError(ValueError):
    """Some slices of a series failed; the others were delivered. ``errors`` says which/why."""

    def __init__(self, errors: list[LoadError], indices: list[int] | None = None) -> None:
        self.errors = errors
        self.indices = indices or []  # the failed slices' positions, matching ``errors``
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(
            f"{len(errors)} slice(s) failed to load: '{first.path}': {first.reason}{more}"
        )


def slice_refs(series: Series) -> list[SliceRef]:
    """Slices in display order: each frame of each instance with pixels (the viewer's order)."""
    return [
        SliceRef(inst, f)
        for inst in series.instances
        if inst.has_pixels
        for f in display_frames(inst)
    ]


def first_slice(n: int) -> int:
    """The slice shown first (where the viewer starts): the middle one."""
    return n // 2 if n > 2 else 0


def default_workers() -> int:
    return min(4, (os.cpu_count() or 1) + 1)


def _fast_dtype(info: PixelInfo) -> np.dtype[Any] | None:
    signed = info.pixel_representation == 1
    kinds = {
        8: "i1" if signed else "u1",
        16: "<i2" if signed else "<u2",
        32: "<i4" if signed else "<u4",
    }
    return np.dtype(kinds[info.bits_allocated]) if info.bits_allocated in kinds else None


def fast_path_ok(inst: Instance) -> bool:
    """True when a slice can be read straight from its bytes (see module docstring)."""
    info = inst.pixel
    return (
        info is not None
        and info.pixel_data_offset is not None
        and not inst.is_plain_image
        and sources.split_zip_path(inst.path) is None
        and info.samples_per_pixel == 1
        and inst.photometric.upper() in ("MONOCHROME1", "MONOCHROME2")
        and not info.has_modality_lut_sequence
        and not info.has_voi_lut_sequence
        and _fast_dtype(info) is not None
        and (info.bits_stored == info.bits_allocated or info.high_bit == info.bits_stored - 1)
        and inst.rows is not None
        and inst.columns is not None
    )


def _read_fast(
    inst: Instance, frame: int, out: npt.NDArray[np.float32] | None
) -> npt.NDArray[np.float32]:
    info = inst.pixel
    assert info is not None
    assert info.pixel_data_offset is not None
    assert inst.rows is not None
    assert inst.columns is not None
    dtype = _fast_dtype(info)
    assert dtype is not None
    count = inst.rows * inst.columns
    offset = info.pixel_data_offset + frame * count * dtype.itemsize
    if sources.is_plain_file(inst.path):
        raw = np.fromfile(inst.path, dtype=dtype, count=count, offset=offset)
    else:  # a sealed file (the encrypted PACS cache): its plaintext, decrypted in memory
        data = sources.open_bytes(inst.path)
        available = max(0, (len(data) - offset) // dtype.itemsize)
        raw = (
            np.frombuffer(data, dtype=dtype, count=min(count, available), offset=offset)
            if available
            else np.empty(0, dtype=dtype)
        )
    if raw.size != count:
        raise PixelDecodeError(inst.path, f"pixel data ends early ({raw.size} of {count} values)")
    raw = raw.reshape(inst.rows, inst.columns)
    if info.bits_stored < info.bits_allocated:
        # Bits above Bits Stored are not pixel data (PS3.5 8.1.1): sign-extend or mask them,
        # as pydicom does, so both paths agree.
        if info.pixel_representation == 1:
            shift = info.bits_allocated - info.bits_stored
            raw = np.right_shift(np.left_shift(raw, shift), shift)
        else:
            raw = np.bitwise_and(raw, raw.dtype.type((1 << info.bits_stored) - 1))
    i = frame if len(info.slopes) > 1 else 0
    return rescale(raw, info.slopes[i], info.intercepts[i], out)


def _fast_frame(inst: Instance, frame: int, values: npt.NDArray[np.float32]) -> Frame:
    info = inst.pixel
    assert info is not None
    windows = info.windows
    if info.frame_windows is not None and frame < len(info.frame_windows):
        windows = info.frame_windows[frame]
    return gray_frame(
        values,
        invert=inst.photometric.upper() == "MONOCHROME1",
        windows=windows,
        units=info.units,
        spacing=inst.pixel_spacing,
        voi_function=info.voi_function,
    )


def load_slice(
    inst: Instance, frame: int, out: npt.NDArray[np.float32] | None = None, want_frame: bool = True
) -> Frame | None:
    """One slice as a Frame (values written into ``out`` when given)."""
    if fast_path_ok(inst):
        values = _read_fast(inst, frame, out)
        return _fast_frame(inst, frame, values) if want_frame else None
    result = read_frame(inst, frame)
    if out is not None:
        if result.is_color or result.values.shape != out.shape:
            raise PixelDecodeError(
                inst.path,
                f"slice of shape {result.values.shape} does not fit a {out.shape} grayscale volume",
            )
        np.copyto(out, result.values)
        result.values = out
    return result


def _iterate(
    refs: Sequence[SliceRef],
    order: Sequence[int],
    workers: int | None,
    cancel: Cancel | None,
    out: npt.NDArray[np.float32] | None,
    want_frames: bool,
) -> Iterator[tuple[int, Frame | None]]:
    """Load ``refs[i]`` for each i of ``order``; ``order[0]`` is yielded before any other."""
    if not refs or not order:
        return
    is_cancelled = cancel_check(cancel)
    errors: list[LoadError] = []
    failed: list[int] = []

    def task(i: int) -> Frame | None:
        if is_cancelled():
            return None
        inst, f = refs[i]
        return load_slice(inst, f, None if out is None else out[i], want_frames)

    def error_of(i: int, exc: Exception) -> LoadError:
        inst, f = refs[i]
        where = inst.path if inst.number_of_frames <= 1 else f"{inst.path} (frame {f})"
        reason = exc.reason if isinstance(exc, PixelDecodeError) else f"{type(exc).__name__}: {exc}"
        return LoadError(where, reason)

    n_workers = workers or default_workers()
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="series-load") as pool:
        futures: dict[Future[Frame | None], int] = {pool.submit(task, i): i for i in order}
        first_future = next(iter(futures))
        pending = set(futures)
        # The first slice is yielded before any other, whatever finishes first.
        ready: list[Future[Frame | None]] = []
        waiting_first = True
        try:
            while pending or ready:
                if is_cancelled():
                    return
                if waiting_first:
                    wait([first_future], timeout=0.1)
                    if not first_future.done():
                        continue
                    pending.discard(first_future)
                    ready.append(first_future)
                    waiting_first = False
                else:
                    done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                    ready.extend(done)
                while ready:
                    fut = ready.pop(0)
                    i = futures[fut]
                    try:
                        frame = fut.result()
                    except Exception as exc:  # noqa: BLE001 - one bad slice must not stop the rest
                        errors.append(error_of(i, exc))
                        failed.append(i)
                        continue
                    if is_cancelled():
                        return
                    yield i, frame
        finally:
            for fut in futures:
                fut.cancel()
    if errors:
        raise SeriesLoadError(errors, failed)


def iter_load(
    series: Series, workers: int | None = None, cancel: Cancel | None = None
) -> Iterator[tuple[int, Frame]]:
    """Yield ``(slice index, Frame)`` as slices decode, the middle slice first (see
    ``first_slice``); failed slices raise SeriesLoadError after all good ones; cancel stops."""
    refs = slice_refs(series)
    first = first_slice(len(refs))
    order = [first] + [i for i in range(len(refs)) if i != first]
    for i, frame in _iterate(refs, order, workers, cancel, None, True):
        assert frame is not None
        yield i, frame


def iter_load_slices(
    refs: Sequence[SliceRef],
    order: Sequence[int],
    workers: int | None = None,
    cancel: Cancel | None = None,
) -> Iterator[tuple[int, Frame]]:
    """Yield ``(i, Frame)`` for the slices ``refs[i]``, i in ``order`` (the first one first).

    For loading only the slices still missing after a series' slice list changed (indexing
    finished after a provisional first image); errors and cancel work as in ``iter_load``.
    """
    for i, frame in _iterate(refs, order, workers, cancel, None, True):
        assert frame is not None
        yield i, frame


def load_volume(
    series: Series,
    workers: int | None = None,
    cancel: Cancel | None = None,
    progress: Callable[[int, int], None] | None = None,
    refs: Sequence[SliceRef] | None = None,
) -> npt.NDArray[np.float32]:
    """The series as a float32 (slices, rows, cols) array in modality units; ``refs``: only
    those slices, in that order (default: all, ``slice_refs``), e.g. without its localizers.

    Raises ValueError for colour or mixed-size series, SeriesLoadError if slices fail, and
    InterruptedError if cancelled.
    """
    refs = slice_refs(series) if refs is None else list(refs)
    if not refs:
        raise ValueError(f"series '{series.series_instance_uid}' has no images")
    shapes = {(inst.rows, inst.columns) for inst, _ in refs}
    if len(shapes) != 1:
        raise ValueError(f"series '{series.series_instance_uid}' mixes image sizes {shapes}")
    if any(inst.photometric.upper() in _COLOR for inst, _ in refs):
        raise ValueError(f"series '{series.series_instance_uid}' is colour, not a volume")
    rows, cols = shapes.pop()
    if rows is None or cols is None:
        raise ValueError(f"series '{series.series_instance_uid}' has no image size")
    volume = np.empty((len(refs), rows, cols), dtype=np.float32)
    done = 0
    for _ in _iterate(refs, range(len(refs)), workers, cancel, volume, False):
        done += 1
        if progress:
            progress(done, len(refs))
    if done < len(refs):
        raise InterruptedError(f"loading series '{series.series_instance_uid}' was cancelled")
    return volume
