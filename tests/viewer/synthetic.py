"""Synthetic series with exact geometry for the reading-room tests (pixels where a test asks)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from core.imaging.model import Frame, Instance, Series
from core.imaging.pixels import gray_frame

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


def stack(
    uid: str,
    count: int,
    spacing: float,
    *,
    start: Sequence[float] = (-100.0, -100.0, 0.0),
    orientation: Sequence[float] = AXIAL,
    frame_of_reference: str = "1.2.3.FOR",
    size: tuple[int, int] = (64, 64),
    pixel_spacing: tuple[float, float] = (0.8, 0.8),
    modality: str = "CT",
    description: str = "",
    series_number: int | None = 1,
) -> Series:
    """``count`` parallel slices ``spacing`` mm apart along the normal, from ``start``."""
    o = np.asarray(orientation, dtype=np.float64)
    normal = np.cross(o[:3], o[3:])
    instances = []
    for k in range(count):
        p = np.asarray(start, dtype=np.float64) + k * spacing * normal
        instances.append(
            Instance(
                path=f"/synthetic/{uid}/{k}.dcm",
                sop_instance_uid=f"{uid}.{k}",
                instance_number=k + 1,
                rows=size[0],
                columns=size[1],
                image_position=(float(p[0]), float(p[1]), float(p[2])),
                image_orientation=tuple(float(v) for v in o),  # type: ignore[arg-type]
                pixel_spacing=pixel_spacing,
                series_instance_uid=uid,
                frame_of_reference_uid=frame_of_reference,
            )
        )
    return Series(
        uid,
        modality=modality,
        description=description,
        series_number=series_number,
        instances=instances,
    )


def at_positions(
    uid: str,
    positions: Sequence[Sequence[float]],
    *,
    orientation: Sequence[float] = AXIAL,
    size: tuple[int, int] = (64, 64),
    pixel_spacing: tuple[float, float] = (0.8, 0.8),
    modality: str = "CT",
) -> Series:
    """Slices at the given ImagePositionPatient values (irregular spacing, gantry tilt)."""
    base = stack(
        uid,
        len(positions),
        1.0,
        orientation=orientation,
        size=size,
        pixel_spacing=pixel_spacing,
        modality=modality,
    )
    for inst, p in zip(base.instances, positions, strict=True):
        inst.image_position = (float(p[0]), float(p[1]), float(p[2]))
    return base


def pixel_positions(inst: Instance) -> npt.NDArray[np.float64]:
    """(rows, cols, 3) patient mm of every pixel centre of one slice, straight from its
    ImagePositionPatient, ImageOrientationPatient and PixelSpacing (DICOM PS3.3 C.7.6.2.1.1),
    independent of ``core.imaging.geometry``."""
    assert inst.image_position is not None
    assert inst.image_orientation is not None
    assert inst.pixel_spacing is not None
    assert inst.rows is not None
    assert inst.columns is not None
    o = np.asarray(inst.image_orientation, dtype=np.float64)
    dr, dc = inst.pixel_spacing
    r = np.arange(inst.rows, dtype=np.float64)[:, None, None]
    c = np.arange(inst.columns, dtype=np.float64)[None, :, None]
    return np.asarray(inst.image_position) + c * dc * o[:3] + r * dr * o[3:]


def sphere_frames(
    series: Series, center: npt.ArrayLike, radius: float, edge_mm: float = 6.0
) -> list[Frame | None]:
    """Each slice of ``series`` through a sphere of 1000 inside, 0 outside, with a linear edge
    ``edge_mm`` wide centred on ``radius`` (500 exactly at the surface), sampled where each
    slice really is, so a reformat that misplaces slices draws it out of round."""
    frames: list[Frame | None] = []
    for inst in series.instances:
        distance = np.linalg.norm(pixel_positions(inst) - np.asarray(center), axis=-1)
        ramp = np.clip((radius - distance) / edge_mm + 0.5, 0.0, 1.0)
        values = (1000.0 * ramp).astype(np.float32)
        frames.append(
            gray_frame(values, invert=False, windows=(), units="HU", spacing=inst.pixel_spacing)
        )
    return frames
