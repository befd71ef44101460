"""Image <-> screen coordinates for zoom, pan, rotation and flips, as pure functions.

Conventions: image coordinates are continuous pixel units with (0, 0) at the top-left corner
of the first pixel, x along columns and y along rows, so pixel (col, row) has its centre at
(col + 0.5, row + 0.5). Screen coordinates are widget pixels, y down. The image is flipped in
its own frame first, then rotated clockwise, scaled by ``zoom`` and centred in the widget
offset by ``pan``. The widget paints with the matrix from ``view_matrix`` so what is drawn and
what a mouse position maps to come from one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Point = tuple[float, float]

_ROTATIONS: dict[int, tuple[tuple[int, int], tuple[int, int]]] = {
    0: ((1, 0), (0, 1)),
    90: ((0, -1), (1, 0)),  # clockwise on a y-down screen: (u, v) -> (-v, u)
    180: ((-1, 0), (0, -1)),
    270: ((0, 1), (-1, 0)),
}


@dataclass(frozen=True)
class ViewGeometry:
    image_size: tuple[int, int]  # (width = columns, height = rows)
    view_size: tuple[int, int]  # (width, height) of the widget
    zoom: float = 1.0
    pan: Point = (0.0, 0.0)
    rotation: int = 0
    flip_h: bool = False
    flip_v: bool = False


def view_matrix(g: ViewGeometry) -> npt.NDArray[np.float64]:
    """The 3x3 affine matrix taking image coordinates to screen coordinates."""
    if g.rotation not in _ROTATIONS:
        raise ValueError(f"rotation must be 0, 90, 180 or 270, got {g.rotation}")
    w, h = g.image_size
    vw, vh = g.view_size
    centre = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]], dtype=np.float64)
    flip = np.diag([-1.0 if g.flip_h else 1.0, -1.0 if g.flip_v else 1.0, 1.0])
    (a, b), (c, d) = _ROTATIONS[g.rotation]
    rot = np.array([[a, b, 0], [c, d, 0], [0, 0, 1]], dtype=np.float64)
    scale = np.diag([g.zoom, g.zoom, 1.0])
    shift = np.array(
        [[1, 0, vw / 2 + g.pan[0]], [0, 1, vh / 2 + g.pan[1]], [0, 0, 1]], dtype=np.float64
    )
    result: npt.NDArray[np.float64] = shift @ scale @ rot @ flip @ centre
    return result


def image_to_screen(g: ViewGeometry, point: Point) -> Point:
    m = view_matrix(g)
    x, y = point
    return (float(m[0, 0] * x + m[0, 1] * y + m[0, 2]), float(m[1, 0] * x + m[1, 1] * y + m[1, 2]))


def screen_to_image(g: ViewGeometry, point: Point) -> Point:
    m = np.linalg.inv(view_matrix(g))
    x, y = point
    return (float(m[0, 0] * x + m[0, 1] * y + m[0, 2]), float(m[1, 0] * x + m[1, 1] * y + m[1, 2]))


def fit_zoom(image_size: tuple[int, int], view_size: tuple[int, int], rotation: int = 0) -> float:
    """The zoom at which the (rotated) image fills the widget without cropping."""
    w, h = image_size
    if rotation in (90, 270):
        w, h = h, w
    vw, vh = view_size
    if w <= 0 or h <= 0 or vw <= 0 or vh <= 0:
        return 1.0
    return min(vw / w, vh / h)


def pixel_at(g: ViewGeometry, point: Point) -> tuple[int, int] | None:
    """The (col, row) of the image pixel under a screen point, or None outside the image."""
    x, y = screen_to_image(g, point)
    col, row = int(np.floor(x)), int(np.floor(y))
    w, h = g.image_size
    if 0 <= col < w and 0 <= row < h:
        return col, row
    return None
