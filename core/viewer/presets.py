"""The viewer's window presets: per modality, keyed 1..9, plus the user's own; and 'auto'.

The preset *values* live in ``core.imaging.presets`` (one table, shared with the CLI); this
module adds what the viewer needs: a key per preset (1..9 in the order of the modality's list,
the user's presets after the built-in ones; 0 is 'auto'), the user's presets (``UserPreset``,
saved per user by ``core.app.window_presets``), and the rule that a preset applies only to its
modality. That rule is checked here, in the state, not in the widget: pressing 2 on an MR gives
the MR's second preset, never the CT's mediastinum window, and asking for the CT 'brain' window
on an MR by name raises ``PresetError`` (shown in the status bar).

'auto' is the file's first window, else a robust percentile window of the frame
(``core.imaging.presets.percentile_window``); colour frames ignore windows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from psygnal import Signal

from core.imaging.model import Frame
from core.imaging.presets import (
    GROUP_PRESETS,
    PresetError,
    PresetSpec,
    modality_group,
    percentile_window,
    presets_for_modality,
)

__all__ = [
    "AUTO",
    "CT_PRESETS",
    "REGION",
    "PresetBook",
    "PresetError",
    "UserPreset",
    "WindowPreset",
    "auto_window",
    "find_preset",
    "preset_for_key",
    "presets_for",
    "window_for",
]

AUTO = "auto"
REGION = "region"  # the preset name shown after a window was set from a region drawn
MAX_KEYS = 9
MAX_NAME = 40


@dataclass(frozen=True)
class UserPreset:
    """A window a user saved for a modality group (CT, MR, XR, US, PET, OTHER)."""

    name: str
    group: str
    center: float
    width: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "group": self.group, "center": self.center, "width": self.width}

    @classmethod
    def from_json(cls, data: Any) -> UserPreset:
        """One saved preset; PresetError names what is wrong with it."""
        try:
            preset = cls(
                str(data["name"]), str(data["group"]), float(data["center"]), float(data["width"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PresetError(f"a saved window preset is unreadable ({exc!r})") from None
        return preset.checked()

    def checked(self) -> UserPreset:
        """Self, if valid: a name of 1..40 characters, a known group, a width of at least 1."""
        name = self.name.strip()
        if not name or len(name) > MAX_NAME:
            raise PresetError(f"a preset name needs 1 to {MAX_NAME} characters, got {self.name!r}")
        if self.group not in GROUP_PRESETS:
            raise PresetError(f"unknown modality group '{self.group}' for preset '{name}'")
        if not (self.width >= 1.0 and abs(self.center) < 1e9 and self.width < 1e9):
            raise PresetError(
                f"preset '{name}' has an impossible window ({self.center}, {self.width})"
            )
        return UserPreset(name, self.group, self.center, self.width)


def user_presets_to_json(presets: tuple[UserPreset, ...]) -> str:
    return json.dumps([p.to_json() for p in presets])


def user_presets_from_json(text: str) -> tuple[UserPreset, ...]:
    data = json.loads(text)
    if not isinstance(data, list):
        raise PresetError("the saved window presets are not a list")
    return tuple(UserPreset.from_json(d) for d in data)


@dataclass(frozen=True)
class WindowPreset:
    """A preset as the viewer offers it: a name, a menu label, a key, and how to compute it."""

    name: str
    label: str
    spec: PresetSpec
    shortcut: str  # "1".."9", or "" beyond the ninth
    user: bool = False

    @property
    def center(self) -> float | None:
        return self.spec.a if self.spec.kind == "fixed" else None

    @property
    def width(self) -> float | None:
        return self.spec.b if self.spec.kind == "fixed" else None

    def window(self, frame: Frame | None) -> tuple[float, float]:
        return self.spec.window(frame.values if frame is not None else None)

    def menu_text(self) -> str:
        return f"{self.label}  ({self.spec.describe()})"


def _user_spec(p: UserPreset) -> PresetSpec:
    return PresetSpec(f"user:{p.name}", p.name, "fixed", p.center, p.width)


def presets_for(modality: str, user: tuple[UserPreset, ...] = ()) -> tuple[WindowPreset, ...]:
    """The presets offered for a modality, in key order: its own, then the user's for it."""
    group = modality_group(modality)
    specs = list(presets_for_modality(modality)) + [_user_spec(p) for p in user if p.group == group]
    return tuple(
        WindowPreset(
            s.name,
            s.label,
            s,
            str(i) if i <= MAX_KEYS else "",
            user=s.name.startswith("user:"),
        )
        for i, s in enumerate(specs, start=1)
    )


#: The CT presets as the viewer offers them (kept for callers that list them).
CT_PRESETS: tuple[WindowPreset, ...] = presets_for("CT")


def preset_for_key(
    modality: str, key: int, user: tuple[UserPreset, ...] = ()
) -> WindowPreset | None:
    """The preset on key ``key`` (1..9) for this modality, or None when it has fewer."""
    offered = presets_for(modality, user)
    return offered[key - 1] if 1 <= key <= min(len(offered), MAX_KEYS) else None


def find_preset(
    name: str, modality: str | None = None, user: tuple[UserPreset, ...] = ()
) -> WindowPreset:
    """A preset by name, among the modality's (any modality's when None); PresetError says
    whether it is unknown or belongs to another modality."""
    if modality is not None:
        for preset in presets_for(modality, user):
            if preset.name == name:
                return preset
    every = {
        p.name: (group, p)
        for group in GROUP_PRESETS
        for p in presets_for(group, tuple(u for u in user if u.group == group))
    }
    if name not in every:
        raise PresetError(f"unknown window preset '{name}'; known: {sorted(every)}")
    group, preset = every[name]
    if modality is not None:
        shown = modality or "an image without modality"
        raise PresetError(
            f"the {group} window preset '{preset.label}' does not apply to {shown} images "
            f"(their values are on another scale); use the {modality_group(modality)} presets"
        )
    return preset


def auto_window(frame: Frame) -> tuple[float, float]:
    """The 'auto' preset: the file's first window, else a robust percentile window."""
    if frame.windows:
        return frame.windows[0]
    if frame.is_color:
        return frame.default_window()
    return percentile_window(frame.values)


def window_for(
    name: str,
    frame: Frame | None,
    modality: str | None = None,
    user: tuple[UserPreset, ...] = (),
) -> tuple[float, float]:
    """(center, width) for a preset name on ``frame`` of a ``modality`` image ('auto' and the
    relative presets need the frame; a preset of another modality raises PresetError)."""
    if name == AUTO:
        if frame is None:
            raise PresetError("the 'auto' window needs a loaded frame")
        return auto_window(frame)
    return find_preset(name, modality, user).window(frame)


class PresetBook:
    """The signed-in user's own presets, shared by every viewport; ``changed`` on each edit.

    Loading from and saving to the encrypted store happen elsewhere (``core.app.window_presets``
    in a background job); this object only holds what was loaded."""

    changed = Signal()

    def __init__(self, presets: tuple[UserPreset, ...] = ()) -> None:
        self._presets = presets

    @property
    def presets(self) -> tuple[UserPreset, ...]:
        return self._presets

    def replace(self, presets: tuple[UserPreset, ...]) -> None:
        self._presets = tuple(presets)
        self.changed.emit()

    def with_preset(self, preset: UserPreset) -> tuple[UserPreset, ...]:
        """The presets with ``preset`` added (replacing one of the same name and group)."""
        preset = preset.checked()
        kept = [p for p in self._presets if (p.name, p.group) != (preset.name, preset.group)]
        return (*kept, preset)
