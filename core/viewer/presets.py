"""Viewer window presets: named (center, width) pairs, and 'auto' (file window or full range).

Values are the usual radiology defaults in Hounsfield units; they apply to CT only. MR, CR and
everything else default to 'auto' because their pixel values have no fixed physical scale.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.imaging.model import Frame
from core.imaging.presets import CT_PRESETS as _CT_VALUES


@dataclass(frozen=True)
class WindowPreset:
    name: str
    label: str
    center: float
    width: float
    shortcut: str  # key in the viewer


AUTO = "auto"

# Values come from core.imaging.presets (one table); the viewer adds labels and keys.
CT_PRESETS: tuple[WindowPreset, ...] = tuple(
    WindowPreset(name, name.capitalize(), *_CT_VALUES[name], str(key))
    for key, name in enumerate(("lung", "mediastinum", "bone", "brain", "abdomen"), start=1)
)


def presets_for(modality: str) -> tuple[WindowPreset, ...]:
    """The fixed presets that make sense for a modality (none outside CT)."""
    return CT_PRESETS if modality.upper() == "CT" else ()


def find_preset(name: str) -> WindowPreset:
    for preset in CT_PRESETS:
        if preset.name == name:
            return preset
    raise KeyError(f"unknown window preset '{name}'; known: {[p.name for p in CT_PRESETS]}")


def auto_window(frame: Frame) -> tuple[float, float]:
    """The 'auto' preset: the file's first window, else the frame's full value range."""
    return frame.default_window()


def window_for(name: str, frame: Frame | None) -> tuple[float, float]:
    """(center, width) for a preset name; 'auto' needs the frame it applies to."""
    if name == AUTO:
        if frame is None:
            raise ValueError("the 'auto' window needs a loaded frame")
        return auto_window(frame)
    preset = find_preset(name)
    return preset.center, preset.width
