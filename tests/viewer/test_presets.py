"""Window presets per modality: keys reach only the current modality's presets, automatic
windows on real MR and CR (file window, else a robust percentile window that does not white or
black the image out), PET/US relative presets, padding left out, a window from a region."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.imaging.display import render
from core.imaging.header import read_header
from core.imaging.model import Frame, Instance, Patient, Series, Study, StudyIndex
from core.imaging.pixels import read_frame
from core.imaging.presets import (
    CT_PRESETS,
    PresetError,
    modality_group,
    percentile_window,
    region_window,
)
from core.viewer.presets import (
    PresetBook,
    UserPreset,
    find_preset,
    preset_for_key,
    presets_for,
    user_presets_from_json,
    user_presets_to_json,
    window_for,
)
from core.viewer.state import ViewerState

MR = ("plotly__dash-vtk", "demos", "data", "mri_brain")
CR = ("pydicom__pydicom-data", "data_store", "data", "RG1_J2KI.dcm")


def _real(dicom_data: Path, parts: tuple[str, ...], name: str = "") -> tuple[Series, Frame]:
    path = dicom_data.joinpath(*parts, name) if name else dicom_data.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"shared file missing: {path}")
    header = read_header(str(path))
    header.series.instances = [header.instance]
    frame = read_frame(header.instance, 0)
    assert frame is not None
    return header.series, frame


def _synthetic(uid: str, modality: str) -> Series:
    return Series(uid, modality=modality, instances=[Instance(f"{uid}.dcm", f"{uid}.1")])


def _state(series: Series) -> ViewerState:
    st = ViewerState()
    st.add_index(
        StudyIndex(
            patients={
                "p": Patient(
                    "p", studies={"s": Study("s", series={series.series_instance_uid: series})}
                )
            }
        )
    )
    st.set_series(series)
    return st


def _histogram_ok(img: np.ndarray, max_black: float = 0.5, max_white: float = 0.05) -> None:
    """A readable 8-bit image: not mostly white, not mostly black, with real contrast."""
    assert (img == 255).mean() < max_white, f"{(img == 255).mean():.0%} of the image is white"
    assert (img == 0).mean() < max_black, f"{(img == 0).mean():.0%} of the image is black"
    assert img.std() > 25
    assert len(np.unique(img)) > 100  # the grey levels are used, not a few bands


def test_keys_reach_only_the_current_modality(dicom_data: Path) -> None:
    series, frame = _real(dicom_data, MR, "1-12.dcm")
    assert series.modality == "MR"
    st = _state(series)
    st.set_frame(0, frame)
    auto = (st.viewport.window_center, st.viewport.window_width)
    for key in range(1, 10):
        if key > len(presets_for("MR")):
            with pytest.raises(PresetError, match=f"no window preset on key {key} for MR"):
                st.apply_preset_key(key)
            continue
        st.apply_preset_key(key)
        chosen = (st.viewport.window_center, st.viewport.window_width)
        assert st.viewport.preset.startswith("mr-")
        assert chosen not in CT_PRESETS.values()
        _histogram_ok(render(frame, window=chosen), max_black=0.8)  # 'bright' darkens half
    # key 4 is the CT brain window on a CT, never on an MR; asking by name is refused
    st.apply_preset_key(0)
    assert (st.viewport.window_center, st.viewport.window_width) == auto
    with pytest.raises(PresetError, match="CT window preset 'Brain' does not apply to MR"):
        st.apply_preset("brain")
    assert (st.viewport.window_center, st.viewport.window_width) == auto
    # what the refusal prevents: the CT brain window whites this MR out
    assert (render(frame, window=CT_PRESETS["brain"]) == 255).mean() > 0.5


def test_ct_keys_are_the_ct_presets() -> None:
    assert [p.name for p in presets_for("CT")] == list(CT_PRESETS)
    assert preset_for_key("CT", 4).name == "brain"  # type: ignore[union-attr]
    assert preset_for_key("MR", 4).name == "mr-bright"  # type: ignore[union-attr]
    assert preset_for_key("US", 3) is None
    assert window_for("lung", None, "CT") == (-600.0, 1500.0)
    assert window_for("lung", None) == (-600.0, 1500.0)  # no modality given: any preset
    with pytest.raises(PresetError, match="unknown window preset 'nope'"):
        find_preset("nope")
    with pytest.raises(PresetError, match="auto"):
        window_for("auto", None)
    groups = {m: modality_group(m) for m in ("CT", "mr", "CR", "DX", "MG", "US", "PT", "NM", "OT")}
    assert groups == {
        "CT": "CT", "mr": "MR", "CR": "XR", "DX": "XR", "MG": "XR",
        "US": "US", "PT": "PET", "NM": "PET", "OT": "OTHER",
    }  # fmt: skip


@pytest.mark.parametrize(("parts", "name"), [(MR, "1-12.dcm"), (CR, "")])
def test_automatic_window_on_real_mr_and_cr(dicom_data: Path, parts, name) -> None:  # type: ignore[no-untyped-def]
    series, frame = _real(dicom_data, parts, name)
    # the file's own window first
    st = _state(series)
    st.set_frame(0, frame)
    assert (st.viewport.window_center, st.viewport.window_width) == frame.windows[0]
    # without one, a robust percentile window that reads well
    bare = replace(frame, windows=[])
    st = _state(series)
    st.set_frame(0, bare)
    window = (st.viewport.window_center, st.viewport.window_width)
    assert st.viewport.preset == "auto"
    assert window == percentile_window(bare.values)
    img = render(bare, window=window, invert=bare.invert)
    _histogram_ok(img)
    # every preset of the modality reads too
    for preset in presets_for(series.modality):
        img = render(bare, window=preset.window(bare), invert=bare.invert)
        _histogram_ok(img, max_black=0.8, max_white=0.1)  # 'high contrast' clips 5 %


def test_pet_and_grayscale_us_get_relative_windows() -> None:
    rng = np.random.default_rng(0)
    # PET in Bq/ml: background ~ 0, a hot lesion 20x the liver; file has no window
    pet = rng.gamma(2.0, 500.0, (128, 128)).astype(np.float32)
    pet[60:68, 60:68] = 40_000.0
    frame = Frame(values=pet, value_range=(float(pet.min()), float(pet.max())))
    st = _state(_synthetic("pet", "PT"))
    st.set_frame(0, frame)
    assert st.viewport.window_width < 40_000  # the lesion does not flatten the rest
    st.apply_preset_key(2)  # 0-50 % of the maximum
    assert st.viewport.preset == "pet-half"
    hi = st.viewport.window_center + st.viewport.window_width / 2
    assert 19_000 < hi < 21_000
    with pytest.raises(PresetError, match="does not apply to PT"):
        st.apply_preset("lung")
    us = rng.integers(0, 256, (64, 64)).astype(np.float32)
    st = _state(_synthetic("us", "US"))
    st.set_frame(0, Frame(values=us, value_range=(0.0, 255.0)))
    assert 100 < st.viewport.window_center < 155
    assert 200 < st.viewport.window_width <= 256


def test_padding_is_left_out_of_the_automatic_window() -> None:
    ct = np.full((200, 200), -2048.0, dtype=np.float32)  # outside the field of view
    yy, xx = np.mgrid[:200, :200]
    inside = (yy - 100) ** 2 + (xx - 100) ** 2 < 80**2
    ct[inside] = np.linspace(-1000.0, 1000.0, int(inside.sum()))
    center, width = percentile_window(ct)
    assert -100 < center < 100
    assert 1800 < width < 2100
    with_padding = np.percentile(ct, [0.5, 99.5])
    assert with_padding[0] == -2048.0  # what a plain percentile would have used


def test_window_from_a_region() -> None:
    values = np.zeros((100, 100), dtype=np.float32)
    values[20:40, 30:60] = np.linspace(100.0, 300.0, 600).reshape(20, 30)
    center, width = region_window(values, (20, 40), (30, 60))
    assert center == pytest.approx(200.0, abs=3)
    assert width == pytest.approx(196.0, abs=4)
    # drawn from bottom-right to top-left and past the edge: the same pixels
    assert region_window(values, (40, 20), (60, 30)) == (center, width)
    with pytest.raises(PresetError, match="no pixel"):
        region_window(values, (200, 300), (0, 10))
    st = _state(_synthetic("ct", "CT"))
    with pytest.raises(PresetError, match="needs a loaded"):
        st.window_from_region((0, 1), (0, 1))
    st.set_frame(0, Frame(values=values, windows=[(40.0, 400.0)]))
    st.window_from_region((20, 40), (30, 60))
    assert (st.viewport.window_center, st.viewport.window_width, st.viewport.preset) == (
        center,
        width,
        "region",
    )


def test_user_presets_follow_the_modality_and_round_trip() -> None:
    mine = (UserPreset("Liver", "CT", 60.0, 160.0), UserPreset("Spine", "MR", 500.0, 900.0))
    assert user_presets_from_json(user_presets_to_json(mine)) == mine
    offered = presets_for("CT", mine)
    assert (offered[-1].label, offered[-1].shortcut, offered[-1].user) == ("Liver", "6", True)
    assert "Spine" not in [p.label for p in offered]
    book = PresetBook()
    seen: list[bool] = []
    book.changed.connect(lambda: seen.append(True))
    st = _state(_synthetic("ct", "CT"))
    st.presets = book
    book.replace(mine)
    assert seen == [True]
    st.set_frame(0, Frame(values=np.zeros((4, 4), np.float32), windows=[(40.0, 400.0)]))
    st.apply_preset_key(6)
    assert (st.viewport.window_center, st.viewport.window_width) == (60.0, 160.0)
    with pytest.raises(PresetError, match="MR window preset 'Spine' does not apply to CT"):
        st.apply_preset("user:Spine")
    for bad in (
        UserPreset("", "CT", 0, 10),
        UserPreset("x" * 41, "CT", 0, 10),
        UserPreset("a", "XX", 0, 10),
        UserPreset("a", "CT", 0, 0.5),
        UserPreset("a", "CT", float("nan"), 10),
    ):
        with pytest.raises(PresetError):
            bad.checked()
    with pytest.raises(PresetError, match="unreadable"):
        user_presets_from_json('[{"name": "a"}]')


def test_every_viewport_of_the_reading_room_shares_the_users_presets() -> None:
    from core.viewer.layout import Layout

    first = ViewerState()
    layout = Layout(first=first)
    layout.set_grid(2, 2)
    first.presets.replace((UserPreset("Liver", "CT", 60.0, 160.0),))
    assert all(cell.state.presets is first.presets for cell in layout.cells)
    other = _synthetic("ct2", "CT")
    st = layout.cells[3].state
    st.add_index(
        StudyIndex(patients={"p": Patient("p", studies={"s": Study("s", series={"ct2": other})})})
    )
    st.set_series(other)
    st.set_frame(0, Frame(values=np.zeros((4, 4), np.float32), windows=[(40.0, 400.0)]))
    st.apply_preset_key(6)
    assert (st.viewport.window_center, st.viewport.window_width) == (60.0, 160.0)
