"""How one image is shown: window/level, zoom, pan, rotation, flips, slice and cine speed.

A pydantic ``EventedModel`` (psygnal): every field has a ``viewport.events.<field>`` signal and
assignments are validated, so a view can never put the model into an impossible state
(a rotation of 45 degrees, a zero window width).
"""

from __future__ import annotations

from typing import Literal, cast

from psygnal import EventedModel
from pydantic import ConfigDict, Field

Rotation = Literal[0, 90, 180, 270]


class Viewport(EventedModel):
    """Display parameters of the current series; the widget paints exactly this."""

    model_config = ConfigDict(validate_assignment=True)

    window_center: float = 40.0
    window_width: float = Field(default=400.0, gt=0)
    preset: str = "auto"  # name of the preset last applied ("custom" after a drag)
    zoom: float = Field(default=1.0, gt=0, le=64)  # screen pixels per image pixel
    fit: bool = True  # zoom follows the widget size until the user zooms
    pan: tuple[float, float] = (0.0, 0.0)  # image centre offset from widget centre, screen px
    rotation: Rotation = 0  # clockwise, degrees
    flip_h: bool = False
    flip_v: bool = False
    invert: bool = False
    slice_index: int = Field(default=0, ge=0)
    cine_fps: float = Field(default=10.0, gt=0, le=120)
    cine_playing: bool = False

    def set_window(self, center: float, width: float, preset: str = "custom") -> None:
        """Set center and width together (one repaint), clamping the width to >= 1."""
        self.update({"window_center": center, "window_width": max(width, 1.0), "preset": preset})

    def rotate(self, degrees: int) -> None:
        """Rotate by a multiple of 90 degrees (positive = clockwise)."""
        if degrees % 90:
            raise ValueError(f"rotation must be a multiple of 90 degrees, got {degrees}")
        self.rotation = cast(Rotation, (self.rotation + degrees) % 360)

    def zoom_by(self, factor: float) -> None:
        """Multiply the zoom (leaves 'fit' mode), clamped to [1/64, 64]."""
        self.update({"zoom": min(max(self.zoom * factor, 1 / 64), 64.0), "fit": False})

    def pan_by(self, dx: float, dy: float) -> None:
        self.pan = (self.pan[0] + dx, self.pan[1] + dy)

    def reset_geometry(self) -> None:
        """Back to 'fit', centred, unrotated, unflipped (the toolbar's Reset)."""
        self.update(
            {"fit": True, "pan": (0.0, 0.0), "rotation": 0, "flip_h": False, "flip_v": False}
        )
