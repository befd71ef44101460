"""3D transfer-function presets, checked on a real CT slice (decoded here with plain pydicom):
what each preset hides and shows, and the messages for a malformed preset or a non-CT series."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from core.imaging.model import Frame
from core.viewer.volume_presets import (
    VOLUME_PRESETS,
    VolumePreset,
    VolumePresetError,
    check_modality,
    get_preset,
)


@pytest.fixture
def hu(ct_frame: tuple[Frame, np.ndarray, pydicom.Dataset]) -> np.ndarray:
    """The middle slice of the shared CT in HU (air, lung, fat, muscle, bone and table)."""
    return ct_frame[1]


@pytest.mark.parametrize("name", list(VOLUME_PRESETS))
def test_every_preset_leaves_air_and_lung_transparent(name: str, hu: np.ndarray) -> None:
    """Otherwise the render is a block of fog: the air around the patient fills the box."""
    air = hu[hu < -700]
    assert air.size > 10_000  # the slice really has air and lung in it
    assert float(get_preset(name).opacity_at(air).max()) == 0.0


def test_bone_shows_bone_only(hu: np.ndarray) -> None:
    bone = get_preset("bone")
    cortical = hu[hu > 700]
    soft = hu[(hu > -150) & (hu < 100)]  # fat, water, muscle
    assert cortical.size > 100
    assert soft.size > 10_000
    assert float(bone.opacity_at(cortical).min()) >= 0.6
    assert float(bone.opacity_at(soft).max()) == 0.0
    # visible voxels of the slice are all denser than any soft tissue
    assert float(hu[bone.opacity_at(hu) > 0].min()) > 150


def test_angio_draws_contrast_red_and_bone_white() -> None:
    angio = get_preset("angio")
    vessel, muscle, cortical = 300.0, 40.0, 1500.0
    assert angio.opacity_at(vessel) > 0.5 > angio.opacity_at(muscle)
    r, g, b = angio.colour_at(vessel)
    assert r > g + 0.3
    assert r > b + 0.3
    assert min(angio.colour_at(cortical)) > 0.9  # white


def test_soft_tissue_shows_fat_and_muscle_translucent_and_bone_most_opaque(
    hu: np.ndarray,
) -> None:
    soft = get_preset("soft_tissue")
    fat, muscle = hu[(hu > -120) & (hu < -60)], hu[(hu > 20) & (hu < 80)]
    assert fat.size > 100
    assert muscle.size > 1000
    assert 0 < float(soft.opacity_at(fat).max()) < 0.2
    assert 0 < float(soft.opacity_at(muscle).min()) < 0.3
    assert soft.opacity_at(1200.0) > soft.opacity_at(muscle).max()
    # what the bone preset hides of this slice, the soft-tissue preset shows
    hidden_by_bone = (get_preset("bone").opacity_at(hu) == 0) & (hu > -300)
    assert float(soft.opacity_at(hu[hidden_by_bone]).min()) > 0


def test_colour_is_piecewise_linear_and_held_beyond_the_ends() -> None:
    bone = get_preset("bone")
    (h0, *c0), (h1, *c1) = bone.colour[1], bone.colour[2]
    mid = bone.colour_at((h0 + h1) / 2)
    np.testing.assert_allclose(mid, (np.array(c0) + np.array(c1)) / 2)
    np.testing.assert_allclose(bone.colour_at(-5000.0), bone.colour[0][1:])
    np.testing.assert_allclose(bone.colour_at(9000.0), bone.colour[-1][1:])
    assert bone.colour_at(np.zeros((2, 3))).shape == (2, 3, 3)


@pytest.mark.parametrize(
    ("colour", "opacity", "message"),
    [
        (((0, 0, 0, 0), (0, 1, 1, 1)), ((0, 0), (1, 1)), "must rise in HU; 0 follows 0"),
        (((0, 0, 0, 0), (1, 1.5, 1, 1)), ((0, 0), (1, 1)), "has a value outside 0..1"),
        (((0, 0, 0, 0), (1, 1, 1, 1)), ((0, 0),), "opacity needs at least two points"),
        (((0, 0, 0, 0), (float("nan"), 1, 1, 1)), ((0, 0), (1, 1)), "is not finite"),
    ],
)
def test_a_malformed_preset_is_refused_naming_it_and_the_point(
    colour: tuple[tuple[float, ...], ...], opacity: tuple[tuple[float, ...], ...], message: str
) -> None:
    with pytest.raises(VolumePresetError, match="volume preset 'mine'") as info:
        VolumePreset("mine", "Mine", colour=colour, opacity=opacity)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_unknown_preset_and_non_ct_series_say_why() -> None:
    with pytest.raises(VolumePresetError, match=r"no volume preset 'lung'.*bone, angio"):
        get_preset("lung")
    with pytest.raises(VolumePresetError, match=r"CT only.*series 'T1 AX' is MR"):
        check_modality("MR", "T1 AX")
    check_modality("ct")  # no error
