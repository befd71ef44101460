"""CT window presets as (center, width) in Hounsfield units (the usual radiology defaults).

They make sense only on CT, whose values have a physical scale; other modalities use the
file's own window or the full value range ('auto', ``Frame.default_window``).
"""

from __future__ import annotations

CT_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "abdomen": (40.0, 400.0),
}


def ct_preset(name: str) -> tuple[float, float]:
    """(center, width) of a CT preset; KeyError names the known ones."""
    try:
        return CT_PRESETS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown CT window preset '{name}'; known: {sorted(CT_PRESETS)}") from None
