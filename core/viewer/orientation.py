"""Orientation letters at the viewport edges (R/L, A/P, H/F) from ImageOrientationPatient.

DICOM patient axes: +x towards the patient's left, +y posterior, +z head. The right edge of
an unrotated image points along the row direction cosine, the bottom edge along the column
direction cosine; rotation and flips are applied through the same matrix the view paints with.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from core.viewer.transform import ViewGeometry, view_matrix

Vector = tuple[float, float, float] | npt.NDArray[np.float64]
_AXES = (("L", "R"), ("P", "A"), ("H", "F"))  # letter for the + and - direction of x, y, z


def direction_label(vector: Vector, min_share: float = 0.25) -> str:
    """Letters for a patient-space direction, strongest axis first (oblique: two or three)."""
    v = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(v))
    if norm == 0:
        return ""
    v = v / norm
    order = np.argsort(-np.abs(v))
    return "".join(_AXES[i][0 if v[i] > 0 else 1] for i in order if abs(v[i]) >= min_share)


def edge_labels(
    orientation: tuple[float, float, float, float, float, float] | None,
    geometry: ViewGeometry,
) -> dict[str, str]:
    """{'left', 'right', 'top', 'bottom'} letters for the screen edges ('' when unknown)."""
    if orientation is None:
        return {"left": "", "right": "", "top": "", "bottom": ""}
    row = np.array(orientation[:3])  # direction of increasing column (image +x)
    col = np.array(orientation[3:])  # direction of increasing row (image +y)
    inv = np.linalg.inv(view_matrix(geometry)[:2, :2])  # screen direction -> image direction

    def label(screen_dir: tuple[float, float]) -> str:
        ix, iy = inv @ np.array(screen_dir)
        return direction_label(ix * row + iy * col)

    return {
        "right": label((1, 0)),
        "left": label((-1, 0)),
        "bottom": label((0, 1)),
        "top": label((0, -1)),
    }
