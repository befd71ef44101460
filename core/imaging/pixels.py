"""Decode one frame and apply the modality LUT: stored values -> modality units (HU on CT).

Decoding is pydicom's (with the pylibjpeg / openjpeg / gdcm plugins); only the requested frame
is decoded where the codec allows. Presentation (window, invert) is ``core.imaging.display``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID

from core.imaging import header, plain, sources
from core.imaging.model import Frame, Instance, PixelInfo
from core.imaging.rawtags import RawTags

# A decoder that may stand in for pydicom's on one frame (core.imaging.reduced decodes JPEG 2000
# at a lower resolution level for a model): called with the open file, the parsed header, its
# PixelInfo, the Pixel Data element's (value offset, length) and the frame index, it returns the
# frame's stored values, or None to let pydicom decode the frame as usual.
FrameDecoder = Callable[
    [BinaryIO, Dataset, PixelInfo, tuple[int, int], int], npt.NDArray[Any] | None
]

_COLOR = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR"})


class PixelDecodeError(ValueError):
    """A frame that cannot be shown; the message names the file, the transfer syntax and why."""

    def __init__(self, path: str, reason: str, transfer_syntax: str = "") -> None:
        self.path = path
        self.reason = reason
        self.transfer_syntax = transfer_syntax
        ts = f" (transfer syntax {_ts_name(transfer_syntax)})" if transfer_syntax else ""
        super().__init__(f"cannot decode '{path}'{ts}: {reason}")


def _ts_name(uid: str) -> str:
    name = UID(uid).name
    return f"'{name}' {uid}" if name and name != uid else uid


def _unsupported_reason(ts: str, exc: Exception) -> str:
    if isinstance(exc, NotImplementedError):
        retired = " (a retired JPEG process)" if UID(ts).is_retired else ""
        return (
            f"no installed decoder supports this transfer syntax{retired}; pydicom's plugins "
            "(pylibjpeg, openjpeg, gdcm, pillow) have none for it: convert the file (e.g. "
            "with DCMTK dcmdjpeg or gdcmconv --raw) to view it"
        )
    text = str(exc)
    if "exceptions were raised by all available plugins" in text:
        # pydicom lists every plugin's exception; a reader needs the verdict and one cause
        causes = [line.strip() for line in text.splitlines()[1:] if ":" in line]
        useful = [c for c in causes if not c.startswith("gdcm:")] or causes
        detail = f" ({useful[0][:160]})" if useful else ""
        return (
            "the compressed pixel data is damaged or in a form no installed decoder reads" + detail
        )
    return f"{type(exc).__name__}: {exc}"


def _voi_lut(ds: Dataset) -> tuple[npt.NDArray[Any] | None, int, int]:
    """The first VOI LUT Sequence item as (table, first mapped value, output bits)."""
    seq = ds.get("VOILUTSequence")
    if not seq:
        return None, 0, 16
    item = seq[0]
    desc = item.get("LUTDescriptor")
    data = item.get("LUTData")
    if desc is None or data is None or len(desc) != 3:
        return None, 0, 16
    entries, first, bits = (int(v) for v in desc)
    entries = entries or 65536
    if isinstance(data, bytes | bytearray):
        table = np.frombuffer(data, dtype="<u2" if bits > 8 else "u1")
    else:
        table = np.asarray(list(data) if not isinstance(data, int) else [data])
    table = np.asarray(table[:entries], dtype=np.float32)
    if first >= 32768 and ds.get("PixelRepresentation", 0) == 1:
        first -= 65536  # a signed first-value stored as US
    if table.size and float(table.max()) >= 2**bits:
        bits = int(np.ceil(np.log2(float(table.max()) + 1)))
    return table, first, bits


def _spacing(ds: Dataset, frame: int, instance: Instance) -> tuple[float, float] | None:
    if instance.pixel_spacing is not None:
        return instance.pixel_spacing
    for source in (ds, header.functional_item(ds, frame, "PixelMeasuresSequence")):
        if source is not None and "PixelSpacing" in source:
            values = header.spacing_of(header.floats_of(source.PixelSpacing, 2))
            if values is not None:
                return values
    # Detector spacing (CR/DX without PixelSpacing): measurements are at the detector plane.
    return header.spacing_of(header.floats_of(ds.get("ImagerPixelSpacing"), 2))


def gray_frame(
    values: npt.NDArray[np.float32],
    *,
    invert: bool,
    windows: tuple[tuple[float, float], ...],
    units: str,
    spacing: tuple[float, float] | None,
    voi_function: str = "LINEAR",
    voi_lut: tuple[npt.NDArray[Any] | None, int, int] = (None, 0, 16),
) -> Frame:
    """A grayscale Frame with its value range (shared by read_frame and the volume loader)."""
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    return Frame(
        values=values,
        invert=invert,
        windows=list(windows),
        voi_lut=voi_lut[0],
        voi_lut_first=voi_lut[1],
        voi_lut_bits=voi_lut[2],
        pixel_spacing=spacing,
        units=units,
        value_range=(lo, hi),
        voi_function=voi_function,
    )


def rescale(
    raw: npt.NDArray[Any],
    slope: float,
    intercept: float,
    out: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]:
    """Stored values -> modality units as float32 (in place into ``out`` when given)."""
    result = np.asarray(raw, dtype=np.float32) if out is None else out
    if out is not None:
        np.copyto(out, raw, casting="unsafe")
    if slope != 1.0:
        np.multiply(result, np.float32(slope), out=result)
    if intercept != 0.0:
        np.add(result, np.float32(intercept), out=result)
    return result


def _color(
    arr: npt.NDArray[Any], ds: Dataset, photometric: str, bits_stored: int
) -> npt.NDArray[np.uint8]:
    if photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
        bits_stored = 16 if arr.dtype.itemsize > 1 else 8
    if arr.dtype != np.uint8:
        shift = max(bits_stored - 8, 0)
        arr = (np.asarray(arr, dtype=np.uint32) >> shift).clip(0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def _decode(
    path: str, frame: int, nframes: int, decoder: FrameDecoder | None = None
) -> tuple[Dataset, PixelInfo, npt.NDArray[Any]]:
    try:
        opened = sources.open_stream(path)
    except sources.SourceError as exc:  # a zip member refused before it is read
        raise PixelDecodeError(path, str(exc)) from exc
    with opened as fp:
        fp.seek(0, os.SEEK_END)
        size = fp.tell()
        fp.seek(0)
        try:
            # a deflated data set is inflated within the sizes its header declares, and only
            # then (below) in full: sources.read_dicom
            ds, inflated = header.parse_bounded(fp)
        except header.HeaderError as exc:
            raise PixelDecodeError(path, str(exc)) from exc
        ts = header.transfer_syntax(ds)
        if inflated is not None:
            element, size = inflated.pixel_element, inflated.size
        else:
            element = None if ts in header.DEFLATED else header.pixel_element(fp, ts)
        if element is None and (inflated is not None or ts not in header.DEFLATED):
            raise PixelDecodeError(path, "the file has no Pixel Data", ts)
        try:
            if element is not None and element[1] == 0xFFFFFFFF:
                header.check_fragments(path, element[0], ts)
            rows, cols = header.int_of(ds.get("Rows")), header.int_of(ds.get("Columns"))
            frames = max(header.int_of(ds.get("NumberOfFrames"), 1) or 1, 1)
            modality = header.str_of(ds, "Modality")
            info = header.pixel_info(
                RawTags(ds), ds, ts, element, size, rows, cols, frames, modality
            )
        except header.HeaderError as exc:
            raise PixelDecodeError(path, str(exc), ts) from exc
        if not 0 <= frame < frames:
            raise PixelDecodeError(path, f"frame {frame} out of range (0..{frames - 1})", ts)
        arr = None
        if decoder is not None and element is not None and inflated is None:
            arr = decoder(fp, ds, info, element, frame)
        if arr is not None:
            return ds, info, arr
        fp.seek(0)
        try:
            if inflated is not None or ts in header.DEFLATED:
                full, _ = sources.read_dicom(fp, stop_before_pixels=False)
                arr = pixel_array(full, index=frame)
            else:
                arr = pixel_array(fp, index=frame)
        except sources.SourceError as exc:
            raise PixelDecodeError(path, str(exc), ts) from exc
        except (NotImplementedError, RuntimeError) as exc:
            raise PixelDecodeError(path, _unsupported_reason(ts, exc), ts) from exc
        except Exception as exc:
            raise PixelDecodeError(
                path, f"corrupt pixel data: {type(exc).__name__}: {exc}", ts
            ) from exc
    return ds, info, arr


def read_frame(instance: Instance, frame: int = 0, *, decoder: FrameDecoder | None = None) -> Frame:
    """Decode one frame of an instance into modality units (see ``Frame``).

    ``decoder`` may decode the frame instead of pydicom (see ``FrameDecoder``); the modality
    LUT, windows and photometric handling that follow are the same.

    Raises PixelDecodeError (a ValueError) naming the file, its transfer syntax and the reason.
    """
    path = instance.path
    if instance.is_plain_image:
        if frame != 0:
            raise PixelDecodeError(path, f"frame {frame} out of range (plain image has one)")
        try:
            return plain.read_plain_frame(path)
        except ValueError as exc:
            raise PixelDecodeError(path, str(exc)) from exc
    if not instance.has_pixels:
        raise PixelDecodeError(path, "the instance has no image (no Pixel Data)")
    try:
        ds, info, arr = _decode(path, frame, instance.number_of_frames, decoder)
    except OSError as exc:
        raise PixelDecodeError(path, f"cannot read file: {exc}") from exc
    photometric = header.str_of(ds, "PhotometricInterpretation").upper()
    spacing = _spacing(ds, frame, instance)
    if photometric in _COLOR or info.samples_per_pixel > 1:
        rgb = _color(arr, ds, photometric, info.bits_stored)
        return Frame(values=rgb, is_color=True, pixel_spacing=spacing, value_range=(0.0, 255.0))
    if info.has_modality_lut_sequence:
        values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
    else:
        i = frame if len(info.slopes) > 1 else 0
        values = rescale(arr, info.slopes[i], info.intercepts[i])
    windows = header.frame_windows(ds, frame)
    return gray_frame(
        values,
        invert=photometric == "MONOCHROME1",
        windows=windows,
        units=info.units,
        spacing=spacing,
        voi_function=info.voi_function,
        voi_lut=_voi_lut(ds),
    )
