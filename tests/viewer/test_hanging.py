"""Hanging protocols on studies indexed from the shared DICOM data (CT, CR, MR brain), their
priors, IT's own file, and the messages for a malformed one."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from core.config import load_settings
from core.imaging.index import build_index
from core.imaging.model import Frame, Series, Study
from core.viewer.hanging import (
    DEFAULT_FILE,
    HangingError,
    apply,
    describe,
    hang,
    load_protocols,
    read_protocols,
)
from core.viewer.layout import Layout

CT = ("pyvista__vtk-data", "Data", "DICOM_Stack")
CR = ("pydicom__pydicom-data", "data_store", "data", "RG1_J2KI.dcm")
MR = ("plotly__dash-vtk", "demos", "data", "mri_brain")


def study_at(dicom_data: Path, parts: tuple[str, ...]) -> Study:
    path = dicom_data.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data '{path}' is missing")
    index = build_index([path])
    studies = [st for p in index.patients.values() for st in p.studies.values()]
    assert len(studies) == 1
    return studies[0]


def prior_of(study: Study, date: str, tag: str = "9") -> Study:
    """The same images as another study: new study/series UIDs, an earlier date."""
    prior = copy.deepcopy(study)
    prior.study_instance_uid = f"{study.study_instance_uid}.{tag}"
    prior.study_date = date
    prior.series = {}
    for uid, series in study.series.items():
        s = copy.deepcopy(series)
        s.series_instance_uid = f"{uid}.{tag}"
        prior.series[s.series_instance_uid] = s
    return prior


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Study]:
    from tests.conftest import DICOM_DATA

    return {
        "CT": study_at(DICOM_DATA, CT),
        "CR": study_at(DICOM_DATA, CR),
        "MR": study_at(DICOM_DATA, MR),
    }


def only(study: Study) -> Series:
    (series,) = study.series.values()
    return series


def test_ct_with_prior_hangs_mpr_and_the_most_recent_prior(shared: dict[str, Study]) -> None:
    ct = shared["CT"]
    old, recent = prior_of(ct, "20000101", "1"), prior_of(ct, "20100101", "2")
    hanging = hang(ct, [old, recent], load_protocols())
    assert hanging.protocol == "CT with prior: axial, coronal, sagittal + prior"
    stage = hanging.current
    assert (stage.rows, stage.cols) == (2, 2)
    assert [v.orientation for v in stage.viewports] == ["axial", "coronal", "sagittal", "axial"]
    assert [v.series for v in stage.viewports[:3]] == [only(ct)] * 3
    assert stage.viewports[3].study is recent
    assert stage.viewports[3].series is only(recent)
    second = hanging.next()
    assert (second.rows, second.cols) == (1, 2)
    assert hanging.next() is second  # the last stage stays
    assert hanging.previous() is stage


def test_ct_alone_hangs_three_planes_then_all_series(shared: dict[str, Study]) -> None:
    hanging = hang(shared["CT"], [], load_protocols())
    assert hanging.protocol == "CT: axial, coronal, sagittal"
    assert (hanging.current.rows, hanging.current.cols) == (1, 3)
    assert (hanging.next().rows, hanging.current.cols) == (1, 1)


def test_a_prior_under_another_issuer_of_patient_ids_is_not_hung(
    shared: dict[str, Study],
) -> None:
    """Same Patient ID, another issuer (another hospital's numbering): another patient."""
    import dataclasses

    ct = shared["CT"]
    foreign = prior_of(ct, "20100101", "3")
    for series in foreign.series.values():
        series.instances = [
            dataclasses.replace(i, issuer_of_patient_id="OTHER-HOSPITAL") for i in series.instances
        ]
    hanging = hang(ct, [foreign], load_protocols())
    assert hanging.protocol == "CT: axial, coronal, sagittal"
    same = prior_of(ct, "20100101", "4")
    assert hang(ct, [foreign, same], load_protocols()).current.viewports[3].study is same


def test_a_prior_of_another_modality_does_not_count(shared: dict[str, Study]) -> None:
    hanging = hang(shared["CT"], [shared["MR"]], load_protocols())
    assert hanging.protocol == "CT: axial, coronal, sagittal"


def test_radiograph_with_prior_side_by_side_and_alone(shared: dict[str, Study]) -> None:
    cr = shared["CR"]
    prior = prior_of(cr, "19990101")
    hanging = hang(cr, [prior], load_protocols())
    assert hanging.protocol == "Radiograph with prior: side by side"
    stage = hanging.current
    assert (stage.rows, stage.cols) == (1, 2)
    assert [v.series for v in stage.viewports] == [only(cr), only(prior)]
    assert [v.label for v in stage.viewports] == ["Current", "Prior"]
    alone = hang(cr, [], load_protocols())
    assert alone.protocol == "Radiograph"
    assert (alone.current.rows, alone.current.cols) == (1, 1)


def test_mr_brain_sequences_by_description(shared: dict[str, Study]) -> None:
    mr = copy.deepcopy(shared["MR"])
    t1 = only(mr)
    assert t1.description == "T1post"
    flair = copy.deepcopy(t1)
    flair.series_instance_uid, flair.description, flair.series_number = "9.1", "AX FLAIR", 5
    t2 = copy.deepcopy(t1)
    t2.series_instance_uid, t2.description, t2.series_number = "9.2", "AX T2 FSE", 4
    loc = copy.deepcopy(t1)
    loc.series_instance_uid, loc.description, loc.series_number = "9.3", "Localizer", 1
    mr.series.update({s.series_instance_uid: s for s in (flair, t2, loc)})
    hanging = hang(mr, [], load_protocols())
    assert hanging.protocol == "MR brain: sequences by description"
    stage = hanging.current
    assert (stage.rows, stage.cols) == (2, 2)
    assert [v.series.description for v in stage.viewports if v.series] == [
        "T1post",
        "AX T2 FSE",
        "AX FLAIR",
        "Localizer",  # no diffusion series: the free viewport gets the rest
    ]
    assert len(hanging.stages) == 1  # "current and prior" needs a prior


def test_unknown_study_falls_back_to_one_viewport(shared: dict[str, Study]) -> None:
    us = copy.deepcopy(shared["CR"])
    only(us).modality = "US"
    hanging = hang(us, [], load_protocols())
    assert hanging.protocol == "default"
    assert [(v.series, v.label) for v in hanging.current.viewports] == [(only(us), "Current")]
    with_prior = hang(us, [prior_of(us, "19990101")], load_protocols())
    assert (with_prior.current.rows, with_prior.current.cols) == (1, 2)


def test_apply_lays_out_the_stage(shared: dict[str, Study]) -> None:
    ct = shared["CT"]
    hanging = hang(ct, [prior_of(ct, "20100101")], load_protocols())
    layout = Layout()
    apply(hanging.current, layout)
    assert (layout.rows, layout.cols) == (2, 2)
    assert [c.orientation for c in layout] == ["axial", "coronal", "sagittal", "axial"]
    assert [c.label for c in layout] == ["Axial", "Coronal", "Sagittal", "Prior axial"]
    assert layout.cells[0].state.series is only(ct)
    assert layout.active == 0
    apply(hanging.next(), layout)
    assert (layout.rows, layout.cols) == (1, 2)


IT_FILE = """
[[protocol]]
name = "Chest CT, lung window"
[[protocol.match]]
modality = "CT"
body_part = "chest"
min_images = 100
[[protocol.stage]]
name = "Lung"
layout = "1x1"
viewport = [{ modality = "CT", window = "lung", label = "Lung" }]
"""


def test_its_file_from_the_machine_settings_comes_first(
    shared: dict[str, Study], tmp_path: Path
) -> None:
    rules = tmp_path / "hanging.toml"
    rules.write_text(IT_FILE)
    machine = tmp_path / "machine.toml"
    machine.write_text(f'[viewer]\nhanging_protocols = "{rules}"\n')
    settings = load_settings(machine, tmp_path / "user.toml")
    protocols = load_protocols(settings.viewer.hanging_protocols)
    hanging = hang(shared["CT"], [], protocols)
    assert hanging.protocol == "Chest CT, lung window"
    layout = Layout(2, 2)
    apply(hanging.current, layout)
    assert len(layout) == 1
    assert layout.active_state.viewport.preset == "lung"
    assert layout.active_state.viewport.window_width == 1500
    # the CR does not fit IT's rule: the shipped ones still apply
    assert hang(shared["CR"], [], protocols).protocol == "Radiograph"
    # a CT preset never lands on another modality, even when a protocol asks for it
    mr = copy.deepcopy(shared["MR"])
    mr_hanging = hang(mr, [], protocols)
    mr_hanging.current.viewports[0].window = "lung"
    apply(mr_hanging.current, layout)
    assert layout.cells[0].state.viewport.preset == "auto"
    assert describe(hanging)["stages"][0]["viewports"][0]["window"] == "lung"


def test_an_image_relative_preset_waits_for_the_first_slice(shared: dict[str, Study]) -> None:
    mr = shared["MR"]
    hanging = hang(mr, [], load_protocols())
    hanging.current.viewports[0].window = "mr-contrast"
    layout = Layout()
    apply(hanging.current, layout)
    state = layout.active_state
    assert state.viewport.preset == "auto"  # nothing decoded yet
    values = np.linspace(0, 1000, 64 * 64, dtype=np.float32).reshape(64, 64)
    layout.deliver_frame(only(mr).series_instance_uid, 3, Frame(values, value_range=(0, 1000)))
    assert state.viewport.preset == "mr-contrast"
    assert state.viewport.window_width == pytest.approx(900, rel=0.02)  # 5-95 %


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            IT_FILE.replace('window = "lung"', 'window = "lungs"'),
            "protocol[1].stage[1].viewport[1].window: unknown window 'lungs'",
        ),
        (
            IT_FILE.replace('body_part = "chest"', 'body_part = "che(st"'),
            "protocol[1].match[1].body_part: 'che(st' is not a regular expression",
        ),
        (
            IT_FILE.replace('layout = "1x1"', 'layout = "big"'),
            "protocol[1].stage[1].layout: layout 'big' is not rows x columns",
        ),
        (IT_FILE.replace("min_images = 100", "min_imgs = 100"), "protocol[1].match[1].min_imgs"),
        (IT_FILE.replace("[[protocol.match]]\n", ""), "protocol[1].match: Field required"),
        ("[[protocol]\nname = 1", "cannot read hanging protocol file"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_file_and_the_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "hanging.toml"
    path.write_text(text)
    with pytest.raises(HangingError) as info:
        load_protocols(path)
    message = str(info.value)
    assert str(path) in message
    assert expected in message
    assert "pydantic" not in message


def test_a_missing_file_is_said(tmp_path: Path) -> None:
    with pytest.raises(HangingError, match="does not exist"):
        load_protocols(tmp_path / "nope.toml")


def test_the_shipped_file_is_valid() -> None:
    names = [p.name for p in read_protocols(DEFAULT_FILE)]
    assert len(names) == len(set(names)) == 5


def test_hang_on_open_and_the_priors_cache_time_are_machine_settings(tmp_path: Path) -> None:
    from core.config import ConfigError

    machine, user = tmp_path / "machine.toml", tmp_path / "user.toml"
    defaults = load_settings(machine, user).viewer
    assert (defaults.hang_on_open, defaults.priors_cache_s) == (True, 600.0)
    machine.write_text("[viewer]\nhang_on_open = false\npriors_cache_s = 30\n")
    viewer = load_settings(machine, user).viewer
    assert (viewer.hang_on_open, viewer.priors_cache_s) == (False, 30.0)
    machine.write_text("[viewer]\npriors_cache_s = -5\n")
    with pytest.raises(ConfigError, match=r"viewer\.priors_cache_s"):
        load_settings(machine, user)
