"""Decode a JPEG 2000 frame at a lower resolution level for a model that needs few pixels.

A JPEG 2000 codestream holds its image as a wavelet pyramid: dropping the top ``r`` levels
gives the image at 1/2**r of the size per axis (a properly low-passed one) for a fraction of the
decoding work. A 224-pixel model fed a 1955x1841 chest radiograph decodes 489x461 pixels
(r = 2) instead of 3.6 million, then resizes those as usual. This is only for model input that
is resized to a small size anyway; the viewer keeps ``pixels.read_frame``'s full, bit-exact
decode. The stored values then take the same modality LUT / rescale, windows and photometric
handling as a full decode (``pixels.read_frame`` does them, with this module's decoder).

Written here on purpose: pydicom's JPEG 2000 plugins decode full resolution only, so the frame's
codestream is decoded with Pillow's OpenJPEG at the reduction level. Anything this cannot do
exactly as a full decode would (colour, more than 16 bits, a codestream whose precision or sign
disagrees with the DICOM header, an unreadable codestream) decodes in full instead; a reduced
decode at level 0 equals pydicom's decode bit for bit (tests/imaging/test_reduced_decode.py).
"""

from __future__ import annotations

import io
import logging
import math
import struct
from dataclasses import dataclass, fields
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from core.imaging import header
from core.imaging.model import Frame, Instance, PixelInfo
from core.imaging.pixels import FrameDecoder, read_frame

log = logging.getLogger(__name__)

JPEG2000_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless only
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
        # HTJ2K (.201-.203) would decode the same way, but no greyscale HTJ2K file exists here
        # to check it against a full decode: it decodes in full until one does
    }
)
# The decoded image stays at least this many times the model's input per axis, so the usual
# antialiased resize still does the last step (the brief of issue 18: ">= 2x").
MIN_RATIO = 2.0
# Frames below this many pixels decode in full. Their full decode is cheap (a 512x512 CT slice in
# ~15 ms), and on a CT the wavelet low-pass rings at the edge of the -3024 HU padding, which
# moved auto_window's 0.5th percentile by 9% of the window (64-pixel input: mean |diff| 0.03 of
# the window, against 0.0007 on the 1955x1841 chest CR at 224).
MIN_PIXELS = 1 << 20


@dataclass
class ReducedFrame(Frame):
    """A Frame decoded at 1/2**``reduction`` of its size per axis, for a model only.

    ``full_shape`` is the frame's real (rows, cols): a heatmap for the viewer is resized to
    it, not to ``shape``. ``pixel_spacing`` is that of the reduced pixels.
    """

    full_shape: tuple[int, int] = (0, 0)
    reduction: int = 0

    @property
    def resize_box(self) -> tuple[float, float, float, float]:
        """Where the full frame lies in ``values``, in Pillow's pixel-edge coordinates.

        A sample at ``reduction`` levels stands for the pixels around full-resolution pixel
        ``i * 2**reduction`` (the wavelet's low-pass is centred on even samples), not for the
        centre of its block: read as a box of blocks, the image would shift by
        (2**reduction - 1) / 2 pixels. Clamped to the reduced image at the far edges.
        """
        q = 2**self.reduction
        rows, cols = self.full_shape
        height, width = self.shape
        start = 0.5 - 0.5 / q
        return (
            start,
            start,
            min(width, (cols - 0.5) / q + 0.5),
            min(height, (rows - 0.5) / q + 0.5),
        )


@dataclass(frozen=True)
class Codestream:
    """What the main header (SIZ, COD) of a JPEG 2000 codestream says about its image."""

    width: int
    height: int
    x0: int
    y0: int
    components: int
    precision: int
    signed: bool
    subsampled: bool
    levels: int  # wavelet decomposition levels: the most resolution levels one may drop


def codestream_info(data: bytes) -> Codestream | None:
    """Parse SIZ and COD of the main header; None if ``data`` is not a plain codestream."""
    if data[:4] != b"\xff\x4f\xff\x51":  # SOC then SIZ
        return None
    try:
        (lsiz, _caps, xsiz, ysiz, xo, yo, _t1, _t2, _t3, _t4, csiz) = struct.unpack_from(
            ">HHIIIIIIIIH", data, 4
        )
        comps = [struct.unpack_from(">BBB", data, 42 + 3 * i) for i in range(csiz)]
        pos = 4 + lsiz  # SIZ marker at 2, its length counts itself, not the marker
        levels = None
        while pos + 4 <= len(data) and levels is None:
            marker, length = struct.unpack_from(">HH", data, pos)
            if marker == 0xFF52:  # COD: Scod, SGcod (4 bytes), then the decomposition levels
                levels = data[pos + 9]
            elif marker == 0xFF90:  # SOT: the main header ended without a COD
                return None
            pos += 2 + length
    except struct.error:
        return None
    if levels is None or csiz < 1:
        return None
    ssiz = comps[0][0]
    return Codestream(
        width=xsiz - xo,
        height=ysiz - yo,
        x0=xo,
        y0=yo,
        components=csiz,
        precision=(ssiz & 0x7F) + 1,
        signed=bool(ssiz & 0x80),
        subsampled=any(c[1:] != (1, 1) for c in comps),
        levels=levels,
    )


def reduction_for(
    shape: tuple[int, int], target: tuple[int, int], levels: int, min_ratio: float = MIN_RATIO
) -> int:
    """The most levels (<= ``levels``) one can drop keeping ``shape`` >= ``min_ratio`` x
    ``target`` per axis."""
    r = 0
    while r < levels and all(
        math.ceil(n / 2 ** (r + 1)) >= min_ratio * t for n, t in zip(shape, target, strict=True)
    ):
        r += 1
    return r


def decode_codestream(data: bytes, reduction: int, info: Codestream) -> npt.NDArray[np.int32]:
    """The codestream's single component at ``reduction`` levels down, as stored values.

    Pillow scales what it decodes to its mode's bit depth (16 bits for "I;16", 8 for "L") and
    offsets signed samples by half their range; both are undone here exactly.
    """
    from PIL import Image, ImageFile

    image: Any = Image.open(io.BytesIO(data), formats=["JPEG2000"])
    depth = {"I;16": 16, "L": 8}.get(image.mode)
    if depth is None or info.precision > depth:
        raise ValueError(f"unexpected Pillow mode {image.mode} for {info.precision} bits")
    if reduction:
        # Pillow's own ``reduce`` rounds the size to nearest where OpenJPEG takes the ceiling
        # (1841 columns at r = 2: 460 vs 461, and the decode fails), so the tile is set here
        p = 1 << reduction
        size = (
            -(-(info.x0 + info.width) // p) - -(-info.x0 // p),
            -(-(info.y0 + info.height) // p) - -(-info.y0 // p),
        )
        tile = image.tile[0]
        codec, _reduce, layers, *rest = tile.args
        image._size = size
        image.tile = [
            ImageFile._Tile(
                tile.codec_name, (0, 0, *size), tile.offset, (codec, reduction, layers, *rest)
            )
        ]
    image.load()
    values = np.asarray(image, dtype=np.int32)
    values >>= depth - info.precision
    if info.signed:
        values -= 1 << (info.precision - 1)
    return values


def _frame_codestream(fp: BinaryIO, ds: Dataset, element: tuple[int, int], index: int) -> bytes:
    from pydicom.encaps import get_frame

    fp.seek(element[0])
    offsets = ds.get("ExtendedOffsetTable")
    lengths = ds.get("ExtendedOffsetTableLengths")
    extended = (offsets, lengths) if offsets is not None and lengths is not None else None
    frames = max(header.int_of(ds.get("NumberOfFrames"), 1) or 1, 1)
    return get_frame(fp, index, extended_offsets=extended, number_of_frames=frames)


def _reduced_decoder(target: tuple[int, int], min_ratio: float, used: list[int]) -> FrameDecoder:
    def decode(
        fp: BinaryIO, ds: Dataset, info: PixelInfo, element: tuple[int, int], index: int
    ) -> npt.NDArray[Any] | None:
        if header.transfer_syntax(ds) not in JPEG2000_SYNTAXES or element[1] != 0xFFFFFFFF:
            return None
        photometric = header.str_of(ds, "PhotometricInterpretation").upper()
        if info.samples_per_pixel != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
            return None
        try:
            data = _frame_codestream(fp, ds, element, index)
        except Exception as exc:  # noqa: BLE001 - pydicom's full decode says what is wrong
            log.debug("reduced decode: no codestream for frame %d (%s)", index, exc)
            return None
        cs = codestream_info(data)
        if (
            cs is None
            or (cs.x0, cs.y0) != (0, 0)  # resize_box assumes the image starts at the grid origin
            or cs.components != 1
            or cs.subsampled
            or cs.precision != info.bits_stored
            or cs.precision > 16
            or cs.signed != (info.pixel_representation == 1)
        ):
            return None
        if cs.height * cs.width < MIN_PIXELS:
            return None
        reduction = reduction_for((cs.height, cs.width), target, cs.levels, min_ratio)
        if reduction == 0:
            return None
        try:
            values = decode_codestream(data, reduction, cs)
        except Exception as exc:  # noqa: BLE001 - fall back to the full decode
            log.debug("reduced decode failed at level %d (%s); decoding in full", reduction, exc)
            return None
        used.append(reduction)
        return values

    return decode


def read_frame_for_model(
    instance: Instance,
    frame: int = 0,
    target: tuple[int, int] | None = None,
    min_ratio: float = MIN_RATIO,
) -> Frame:
    """One frame for a model whose preprocessing resizes it to ``target`` (rows, cols).

    A greyscale JPEG 2000 frame of at least ``MIN_PIXELS`` pixels and ``2 * min_ratio`` times
    ``target`` per axis is decoded at the lowest resolution level still ``min_ratio`` times
    ``target`` (a ``ReducedFrame``); anything else, or ``target`` None (the model needs every
    pixel), is ``pixels.read_frame``'s full decode. Raises ``PixelDecodeError`` as
    ``read_frame`` does.
    """
    if target is None:
        return read_frame(instance, frame)
    used: list[int] = []
    result = read_frame(instance, frame, decoder=_reduced_decoder(target, min_ratio, used))
    if not used:
        return result
    reduction = used[0]
    rows = instance.rows or result.shape[0] << reduction
    cols = instance.columns or result.shape[1] << reduction
    spacing = result.pixel_spacing
    kept = {f.name: getattr(result, f.name) for f in fields(Frame)}
    kept["pixel_spacing"] = (
        None if spacing is None else (spacing[0] * 2**reduction, spacing[1] * 2**reduction)
    )
    return ReducedFrame(**kept, full_shape=(rows, cols), reduction=reduction)
