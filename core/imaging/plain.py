"""PNG/JPEG/TIFF files (through Pillow): each one a single-image study of its own.

A plain image has no patient or study; the index gets a synthetic patient/study/series keyed by
the file's path, so two images never merge and re-opening the same file finds the same series.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.imaging import sources
from core.imaging.model import Frame, Instance

_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")
PLAIN_MODALITY = "OT"


def looks_like_image(prefix: bytes) -> bool:
    """True for PNG, JPEG and TIFF signatures (checked before trying DICOM)."""
    return prefix.startswith(_MAGIC)


def _open(path: str) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(sources.open_bytes(path)))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ValueError(f"cannot read the image file '{path}': {exc}") from exc
    return img


def plain_instance(path: str) -> tuple[Instance, str]:
    """The instance for a plain image file and a display name (its file name)."""
    with Image.open(io.BytesIO(sources.open_bytes(path))) as img:
        width, height = img.size
        color = img.mode not in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F", "P", "LA")
        if img.mode == "P":
            color = True
    name = os.path.basename(path.split(sources.ZIP_SEP)[-1])
    inst = Instance(
        path=path,
        sop_instance_uid=path,
        rows=height,
        columns=width,
        photometric="RGB" if color else "MONOCHROME2",
        is_plain_image=True,
        series_instance_uid=path,
        study_instance_uid=path,
        patient_id=path,
    )
    return inst, name


def read_plain_frame(path: str) -> Frame:
    """Pixels of a plain image: RGB uint8 for colour, float32 gray values otherwise."""
    img = _open(path)
    if img.mode in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(img, dtype=np.float32)
        lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        # 8-bit gray shows as stored (this window maps 0..255 to itself); deeper data: auto.
        windows = [(128.0, 256.0)] if img.mode in ("1", "L") else []
        return Frame(values=values, windows=windows, value_range=(lo, hi))
    rgb = np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    return Frame(values=rgb, is_color=True, value_range=(0.0, 255.0))
