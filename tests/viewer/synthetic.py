"""Synthetic series with exact geometry for the reading-room tests (no pixels needed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.imaging.model import Instance, Series

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
