"""Apply a manifest's declared preprocessing to images, giving the model's float32 input batch.

The same code runs in the training scripts and in the app, so a model sees at inference exactly
what it saw in training. A failing step is re-raised naming the step and the model (in the way
MONAI's Compose names the transform that broke).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from models.manifest import (
    AutoWindowStep,
    InputSpec,
    NormalizeStep,
    PreprocessStep,
    ResizeStep,
    ScaleStep,
    ToChannelsStep,
    WindowStep,
)
from models.resample import Box

F32 = npt.NDArray[np.float32]
_T = TypeVar("_T")


class PreprocessError(ValueError):
    """A preprocessing step failed; ``step`` is its op name, ``model_id`` the model."""

    def __init__(self, model_id: str, step: str, reason: str) -> None:
        self.model_id = model_id
        self.step = step
        self.reason = reason
        super().__init__(f"applying preprocessing step '{step}' of model '{model_id}': {reason}")


class FrameLike(Protocol):
    """core.imaging's Frame: ``values`` in modality units (or RGB uint8), ``invert`` MONOCHROME1.

    A frame decoded at a reduced resolution (core.imaging.reduced.ReducedFrame) also has a
    ``resize_box``: the region of ``values``, in Pillow's pixel-edge coordinates, that the full
    frame covers (its samples are not centred on the blocks they stand for). The first resize
    takes it, so the model sees the frame where the full decode would have put it.
    """

    values: npt.NDArray[Any]
    invert: bool


def _as_hwc(image: npt.NDArray[Any]) -> F32:
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 2:
        return arr[:, :, None]
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        return arr[:, :, :3] if arr.shape[2] == 4 else arr
    raise ValueError(f"expected a 2-D grey or (H, W, 3) RGB image, got shape {arr.shape}")


# Percentile statistics for auto_window are taken on a regular-grid subsample of at most this
# many pixels. Measured on the real 1955x1841 CR: np.percentile over all 3.6 M pixels took 33 ms
# (of a 63 ms preprocess, for a 0.9 ms forward pass); on a 1/8-strided view 0.5 ms, and the
# preprocessed model input moved by at most 0.005 (in the [0, 1] windowed range; the 320x260 MR:
# 0.002). tests/models/test_preprocess.py holds that bound on the real images. Images at or
# below this size (all training and validation data: MedMNIST 28 px, phantoms) use every pixel,
# so the shipped metrics are untouched.
STATS_MAX_PIXELS = 1 << 16


def stats_view(x: npt.NDArray[Any], max_pixels: int | None = None) -> npt.NDArray[Any]:
    """``x`` itself, or a strided view of it holding at most ``max_pixels`` pixels (H*W)
    (default :data:`STATS_MAX_PIXELS`, read at call time)."""
    max_pixels = STATS_MAX_PIXELS if max_pixels is None else max_pixels
    height, width = x.shape[:2]
    if height * width <= max_pixels:
        return x
    stride = math.ceil(math.sqrt(height * width / max_pixels))
    while math.ceil(height / stride) * math.ceil(width / stride) > max_pixels:
        stride += 1
    return x[::stride, ::stride]


def percentiles(x: npt.NDArray[Any], qs: Sequence[float]) -> list[float]:
    """np.percentile's default ("linear") estimate of ``qs`` over :func:`stats_view` of ``x``.

    Written out (one in-place ``partition`` on a private copy of the sample) rather than via
    ``np.percentile``, whose Python-level set-up cost as much as the partition itself on a
    320x260 MR slice (0.12 of 0.29 ms per image), which matters when a series streams through.
    """
    sample = np.array(stats_view(x), dtype=np.float32).reshape(-1)  # own copy: sorted in place
    n = sample.size
    if n == 0:
        raise ValueError("empty image")
    positions = [min(max(q, 0.0), 100.0) / 100.0 * (n - 1) for q in qs]
    below = [math.floor(p) for p in positions]
    sample.partition(sorted({*below, *(min(b + 1, n - 1) for b in below)}))
    out = []
    for pos, lo in zip(positions, below, strict=True):
        a, b = float(sample[lo]), float(sample[min(lo + 1, n - 1)])
        out.append(a + (b - a) * (pos - lo))
    return out


# Scratch for a window that a resize consumes at once, one per thread (the prefetch thread and
# the caller). A fresh frame-size array per image costs more than the windowing itself: a 14 MB
# allocation goes to mmap and every page faults in again (measured on the 1955x1841 CR: window
# + resize 24 ms with a fresh array, 14 ms reusing one). Only the last shape is kept.
_scratch = threading.local()


def _scratch_like(x: F32) -> F32:
    buf: F32 | None = getattr(_scratch, "buf", None)
    if buf is None or buf.shape != x.shape:
        buf = np.empty(x.shape, dtype=np.float32)
        _scratch.buf = buf
    return buf


def _window(x: F32, low: float, high: float, invert: bool, out: F32 | None = None) -> F32:
    # in place on one array: three passes instead of five temporaries on a 14 MB CR frame
    out = np.subtract(x, np.float32(low), dtype=np.float32, out=out)
    out *= np.float32(1.0 / max(high - low, 1e-6))
    np.clip(out, 0.0, 1.0, out=out)
    if invert:
        np.subtract(np.float32(1.0), out, out=out)
    return out


def _resize(x: F32, size: tuple[int, int], box: Box | None = None) -> F32:
    # pillow's antialiased bilinear on float planes ('F' mode); on big frames the same filter
    # as blocked matrix products, equal to float32 rounding: models.resample
    from models.resample import resize_plane

    if x.shape[:2] == tuple(size) and box is None:
        return x
    return np.stack([resize_plane(x[:, :, c], size, box) for c in range(x.shape[2])], axis=2)


# A window feeding a resize is computed as clip -> resize -> linear map (on the small result)
# instead of linear map + clip -> resize. The resize is linear with non-negative weights that
# sum to 1, so both give the same image in exact arithmetic; in float32 they agree to 1.2e-7 of
# the [0, 1] range on the real CR and MR (tests/models/test_preprocess_fast.py holds 1e-5).
# Two of the three full-frame passes go: on the 1955x1841 CR the window cost more than half the
# resize.
# Windows much narrower than their values' magnitude take the direct path (their rounding on
# the modality scale would show in [0, 1]); so do degenerate ones.
FUSE_WINDOW_RESIZE = True
_FUSE_MAX_MAGNITUDE = 16.0  # max(|low|, |high|) / (high - low) above which the direct path runs


def _window_resize(
    x: F32, low: float, high: float, invert: bool, size: tuple[int, int], box: Box | None = None
) -> F32:
    """``_resize(_window(x, low, high, invert), size)``, with the window's map done after."""
    span = high - low
    fuse = (
        FUSE_WINDOW_RESIZE
        and math.isfinite(span)
        and span >= 1e-6
        and max(abs(low), abs(high)) <= _FUSE_MAX_MAGNITUDE * span
    )
    if not fuse:
        return _resize(_window(x, low, high, invert, _scratch_like(x)), size, box)
    from models.resample import resize_plane

    scratch = _scratch_like(x)  # the clipped frame: each band clips its rows on its thread
    planes = [
        resize_plane(x[:, :, c], size, box, clip=(low, high), out=scratch[:, :, c])
        for c in range(x.shape[2])
    ]
    return _window(np.stack(planes, axis=2), low, high, invert)


def _per_channel(value: float | list[float], channels: int) -> F32:
    arr = np.asarray(value, dtype=np.float32).reshape(-1)
    if arr.size not in (1, channels):
        raise ValueError(f"{arr.size} values given for {channels} channel(s)")
    return arr


def _window_bounds(step: WindowStep | AutoWindowStep, x: F32) -> tuple[float, float]:
    if isinstance(step, WindowStep):
        return step.center - step.width / 2, step.center + step.width / 2
    low, high = percentiles(x, [step.low_percentile, step.high_percentile])
    return low, high


def _apply(step: PreprocessStep, x: F32, invert: bool, box: Box | None = None) -> F32:
    """One step (a window feeding a resize is fused with it by the caller instead); ``box``
    is the source region of a resize (see FrameLike)."""
    if isinstance(step, WindowStep | AutoWindowStep):
        return _window(x, *_window_bounds(step, x), invert)
    if isinstance(step, ScaleStep):
        return (x * step.factor + step.offset).astype(np.float32)
    if isinstance(step, ResizeStep):
        return _resize(x, step.size, box)
    if isinstance(step, NormalizeStep):
        mean = _per_channel(step.mean, x.shape[2])
        std = _per_channel(step.std, x.shape[2])
        if np.any(std == 0):
            raise ValueError("std must not be 0")
        return ((x - mean) / std).astype(np.float32)
    if isinstance(step, ToChannelsStep):
        if x.shape[2] == step.n:
            return x
        if step.n == 1:
            return np.asarray(x.mean(axis=2, keepdims=True), dtype=np.float32)
        if x.shape[2] == 1:
            return np.repeat(x, step.n, axis=2)
        raise ValueError(f"cannot make {step.n} channels from {x.shape[2]}")
    raise TypeError(f"unknown step {step!r}")


def _named(model_id: str, step: PreprocessStep, fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)``; a failure is re-raised naming the step and the model (cause chained)."""
    try:
        return fn(*args)
    except Exception as exc:
        raise PreprocessError(model_id, step.op, f"{type(exc).__name__}: {exc}") from exc


def preprocess_image(
    image: npt.NDArray[Any] | FrameLike, spec: InputSpec, model_id: str, *, invert: bool = False
) -> F32:
    """One image -> one model input (H, W, C) or (C, H, W) per the spec's layout.

    ``image`` is a 2-D float array in modality units, an RGB array, or a Frame (its ``invert``
    flag, MONOCHROME1, then flips the windowed intensities so the model sees MONOCHROME2).
    """
    box: Box | None = None
    if not isinstance(image, np.ndarray):
        invert = invert or bool(getattr(image, "invert", False))
        box = getattr(image, "resize_box", None)
        image = image.values
    try:
        x = _as_hwc(image)
    except ValueError as exc:
        raise PreprocessError(model_id, "input", str(exc)) from exc
    if spec.color == "rgb" and x.shape[2] == 1:
        raise PreprocessError(
            model_id, "input", "the model is made for colour (RGB) images; this one is greyscale"
        )
    steps = list(spec.preprocessing)
    i = 0
    while i < len(steps):
        step, nxt = steps[i], steps[i + 1] if i + 1 < len(steps) else None
        if (
            isinstance(step, WindowStep | AutoWindowStep)
            and isinstance(nxt, ResizeStep)
            and (tuple(nxt.size) != x.shape[:2] or box is not None)
        ):
            # a window straight into a resize: one fused step (exact, see _window_resize)
            low, high = _named(model_id, step, _window_bounds, step, x)
            size = tuple(nxt.size)
            x = _named(model_id, nxt, _window_resize, x, low, high, invert, size, box)
            i += 2
        else:
            x = _named(model_id, step, _apply, step, x, invert, box)
            i += 1
        if i > 0 and isinstance(steps[i - 1], ResizeStep):
            box = None  # the box locates the frame's own samples: the first resize only
    if spec.size is not None and x.shape[:2] != tuple(spec.size):
        raise PreprocessError(model_id, "output", f"size {x.shape[:2]} != declared {spec.size}")
    if spec.channels is not None and x.shape[2] != spec.channels:
        raise PreprocessError(
            model_id, "output", f"{x.shape[2]} channel(s) != declared {spec.channels}"
        )
    if not np.all(np.isfinite(x)):
        raise PreprocessError(model_id, "output", "non-finite values after preprocessing")
    return np.transpose(x, (2, 0, 1)).copy() if spec.layout == "NCHW" else x


def decode_size(spec: InputSpec) -> tuple[int, int] | None:
    """The (rows, cols) the preprocessing resizes a whole frame to, before anything that needs
    its full resolution; None when the model needs every pixel (no resize, or not an image).

    A decoder may hand such a model a frame at a lower resolution that is still well above this
    size (core.imaging.reduced): every step before the resize is per pixel, except auto_window's
    percentiles, which then come from the smaller image (tests/imaging/test_reduced_decode.py
    bounds the difference on real radiographs).
    """
    if spec.kind != "image":
        return None
    for step in spec.preprocessing:
        if isinstance(step, ResizeStep):
            return (int(step.size[0]), int(step.size[1]))
        if not isinstance(step, WindowStep | AutoWindowStep | ScaleStep | NormalizeStep):
            return None  # a step whose effect on a smaller image is not known here
    return None


def preprocess_batch(
    images: Sequence[npt.NDArray[Any] | FrameLike] | npt.NDArray[Any],
    spec: InputSpec,
    model_id: str,
) -> F32:
    """Images (or, for tabular models, rows) -> the model's (N, ...) float32 batch."""
    if spec.kind == "tabular":
        rows = np.asarray(images, dtype=np.float32)
        if rows.ndim == 1:
            rows = rows[None, :]
        n_features = len(spec.features or [])
        if rows.ndim != 2 or rows.shape[1] != n_features:
            raise PreprocessError(
                model_id, "input", f"expected (N, {n_features}) feature rows, got {rows.shape}"
            )
        return rows
    return np.stack([preprocess_image(img, spec, model_id) for img in images]).astype(np.float32)
