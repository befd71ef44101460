"""Transfer-function presets for 3D volume rendering of CT: bone, vessels (angio), soft tissue.

A preset maps a voxel's value in Hounsfield units to a colour and an opacity, each a piecewise
linear function through the preset's points, held at the first and last point's value outside
them (as VTK's ``vtkColorTransferFunction`` and ``vtkPiecewiseFunction`` do with clamping on,
so ``colour_at``/``opacity_at`` here say what the renderer draws). Everything is in HU, so the
presets apply to CT only (``check_modality``); an MR has no fixed scale to put points on.

Values (typical CT ranges): air -1000, lung -900..-500, fat -120..-60, water 0, muscle and
organs 20..80, contrast-filled vessels 150..500 (arterial phase), cancellous bone 300..700,
cortical bone 700..2000, metal above 2000.

- ``bone``: transparent below 150 HU, opaque ivory from about 700 HU; skull, spine, ribs.
- ``angio``: transparent below 100 HU, red from 150 HU (contrast in vessels), whitish above
  700 HU. Without a segmentation bone is drawn too, white, so vessels stand out by colour.
- ``soft_tissue``: air and lung transparent (below -500 HU), fat faint yellow, muscle and organs
  translucent red, bone white and most opaque: the body's outline and its organs.

Nothing here imports Qt or VTK; ``desktop.volume_render`` turns a preset into VTK functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "HU_MODALITIES",
    "VOLUME_PRESETS",
    "VolumePreset",
    "VolumePresetError",
    "check_modality",
    "get_preset",
]

HU_MODALITIES = ("CT",)  # modalities whose values are Hounsfield units

ColourPoint = tuple[float, float, float, float]  # (HU, red, green, blue), colours 0..1
OpacityPoint = tuple[float, float]  # (HU, opacity 0..1)


class VolumePresetError(ValueError):
    """A preset that is malformed, unknown, or asked for a series it does not apply to."""


def _check_points(name: str, what: str, points: tuple[tuple[float, ...], ...]) -> None:
    if len(points) < 2:
        raise VolumePresetError(f"volume preset '{name}': {what} needs at least two points")
    last = -math.inf
    for point in points:
        hu, *values = point
        if not all(math.isfinite(v) for v in point):
            raise VolumePresetError(f"volume preset '{name}': {what} point {point} is not finite")
        if hu <= last:
            raise VolumePresetError(
                f"volume preset '{name}': {what} points must rise in HU; {hu} follows {last}"
            )
        if not all(0.0 <= v <= 1.0 for v in values):
            raise VolumePresetError(
                f"volume preset '{name}': {what} point {point} has a value outside 0..1"
            )
        last = hu


@dataclass(frozen=True)
class VolumePreset:
    """One transfer function: colour and opacity points in HU and the lighting to use."""

    name: str
    title: str  # what a menu shows
    colour: tuple[ColourPoint, ...]
    opacity: tuple[OpacityPoint, ...]
    shade: bool = True  # lit by the gradient (surfaces look solid); off for a foggy look
    ambient: float = 0.2
    diffuse: float = 0.9
    specular: float = 0.2

    def __post_init__(self) -> None:
        _check_points(self.name, "colour", self.colour)
        _check_points(self.name, "opacity", self.opacity)
        for label, value in (
            ("ambient", self.ambient),
            ("diffuse", self.diffuse),
            ("specular", self.specular),
        ):
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise VolumePresetError(
                    f"volume preset '{self.name}': {label} {value} is outside 0..1"
                )

    def opacity_at(self, hu: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Opacity of each value (piecewise linear, held beyond the end points)."""
        x, y = zip(*self.opacity, strict=True)
        return np.asarray(np.interp(np.asarray(hu, dtype=np.float64), x, y), dtype=np.float64)

    def colour_at(self, hu: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """RGB (0..1) of each value, shape (..., 3)."""
        hu_arr = np.asarray(hu, dtype=np.float64)
        x = [p[0] for p in self.colour]
        return np.stack([np.interp(hu_arr, x, [p[c] for p in self.colour]) for c in (1, 2, 3)], -1)


VOLUME_PRESETS: dict[str, VolumePreset] = {
    p.name: p
    for p in (
        VolumePreset(
            "bone",
            "Bone",
            colour=(
                (-1000.0, 0.0, 0.0, 0.0),
                (150.0, 0.55, 0.25, 0.15),
                (300.0, 0.88, 0.78, 0.60),
                (1000.0, 1.0, 0.98, 0.90),
                (3000.0, 1.0, 1.0, 1.0),
            ),
            opacity=((-1000.0, 0.0), (150.0, 0.0), (300.0, 0.15), (700.0, 0.6), (3000.0, 0.9)),
        ),
        VolumePreset(
            "angio",
            "Vessels (angio)",
            colour=(
                (-1000.0, 0.0, 0.0, 0.0),
                (100.0, 0.45, 0.0, 0.0),
                (180.0, 0.85, 0.10, 0.08),
                (400.0, 1.0, 0.55, 0.45),
                (1000.0, 1.0, 0.95, 0.90),
                (3000.0, 1.0, 1.0, 1.0),
            ),
            opacity=(
                (-1000.0, 0.0),
                (100.0, 0.0),
                (180.0, 0.35),
                (400.0, 0.7),
                (1000.0, 0.8),
                (3000.0, 0.85),
            ),
            specular=0.4,
        ),
        VolumePreset(
            "soft_tissue",
            "Soft tissue",
            colour=(
                (-1000.0, 0.0, 0.0, 0.0),
                (-500.0, 0.55, 0.35, 0.25),
                (-100.0, 0.90, 0.75, 0.50),
                (40.0, 0.80, 0.30, 0.25),
                (300.0, 0.95, 0.90, 0.80),
                (3000.0, 1.0, 1.0, 1.0),
            ),
            opacity=(
                (-1000.0, 0.0),
                (-500.0, 0.0),
                (-300.0, 0.03),
                (-100.0, 0.06),
                (40.0, 0.12),
                (300.0, 0.35),
                (1000.0, 0.6),
                (3000.0, 0.6),
            ),
            ambient=0.3,
            specular=0.1,
        ),
    )
}


def get_preset(name: str) -> VolumePreset:
    """The preset called ``name``; VolumePresetError lists the known ones."""
    try:
        return VOLUME_PRESETS[name]
    except KeyError:
        known = ", ".join(VOLUME_PRESETS)
        raise VolumePresetError(f"no volume preset '{name}' (known: {known})") from None


def check_modality(modality: str, series: str = "") -> None:
    """Refuse a series whose values are not HU: the presets' points would mean nothing there."""
    if modality.upper() not in HU_MODALITIES:
        label = f"series '{series}'" if series else "this series"
        raise VolumePresetError(
            f"3D presets are in Hounsfield units (CT only); {label} is "
            f"{modality or 'of unknown modality'}"
        )
