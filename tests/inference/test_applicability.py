"""The intended-population check against real DICOM headers: the repository's adult chest CR
(patient born 1940-03-05, imaged 2004-08-26: 64 years) against the paediatric chest model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image

from core.imaging.index import build_index
from core.imaging.model import Instance
from core.inference import applicability
from core.inference.applicability import age_of, check, check_instances, read_facts
from models.discovery import ZOO_DIR
from models.manifest import Population, load_package

REPO = Path(__file__).resolve().parents[2]
CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
CHEST = "chest-xray-pneumonia"


def _instances(*paths: Path | str) -> list[Instance]:
    index = build_index([str(p) for p in paths])
    assert not index.errors, index.errors
    return [i for _p, _s, series in index.iter_series() for i in series.instances]


def _chest_population() -> Population:
    population = load_package(ZOO_DIR / CHEST).manifest.population
    assert population is not None
    return population


def test_age_from_patient_age_or_dates() -> None:
    assert age_of({"PatientAge": "064Y"}) == 64
    assert age_of({"PatientAge": "018M"}) == pytest.approx(1.5)
    assert age_of({"PatientAge": "003W"}) == pytest.approx(21 / 365.25)
    assert age_of({"PatientBirthDate": "20200101", "StudyDate": "20230701"}) == pytest.approx(
        3.5, abs=0.01
    )
    # no study date: the series', acquisition or content date, never one before the birth
    assert age_of({"PatientBirthDate": "20200101", "ContentDate": "20210101"}) == pytest.approx(
        1.0, abs=0.01
    )
    assert age_of({"PatientBirthDate": "20200101", "StudyDate": "19990101"}) is None
    assert age_of({"PatientAge": "abc", "PatientBirthDate": "2020"}) is None


def test_the_adult_cr_is_outside_the_paediatric_population() -> None:
    (instance,) = _instances(CR)
    (facts,) = read_facts([instance])
    assert (facts.modality, facts.body_part, facts.view_position, facts.sex) == (
        "CR",
        "CHEST",
        "PA",
        "F",
    )
    assert facts.photometric == "MONOCHROME1"
    assert int(facts.age_years or 0) == 64
    (flag,) = check(_chest_population(), [facts])
    assert flag.kind == "population"
    assert flag.message == (
        "patient age 64 y is outside this model's intended population 1-5 y "
        "(paediatric frontal chest radiographs)"
    )
    assert flag.images == [0]
    assert not flag.refused
    assert flag.details == {"outside": True, "on_mismatch": "warn"}


def test_each_restricted_attribute_is_checked_and_refuse_refuses() -> None:
    (instance,) = _instances(CR)
    facts = read_facts([instance])
    base = _chest_population()
    assert check(base.model_copy(update={"age_years": (60.0, 70.0)}), facts) == []
    cases: dict[str, dict[str, Any]] = {
        "patient sex F is outside": {"sexes": ["M"]},
        "body part CHEST is outside": {"body_parts": ["ABDOMEN"]},
        "view position PA is outside": {"view_positions": ["AP"]},
        "modality CR is outside": {"modalities": ["DX"]},
        "photometric interpretation MONOCHROME1 is outside": {"photometric": ["MONOCHROME2"]},
    }
    for expected, change in cases.items():
        population = base.model_copy(update={"age_years": (60.0, 70.0), **change})
        (flag,) = check(population, facts)
        assert flag.message.startswith(expected), flag.message
        assert not flag.refused
    refusing = base.model_copy(update={"on_mismatch": "refuse"})
    (flag,) = check(refusing, facts)
    assert flag.refused
    # a range is completed years: 5 years 11 months is "aged 1-5", 6 years is not
    young = [applicability.HeaderFacts(age_years=5.95), applicability.HeaderFacts(age_years=6.0)]
    only_age = Population(age_years=(1, 5), note="children: x")
    (flag,) = check(only_age, young)
    assert flag.images == [1]
    assert flag.message.startswith("patient age 6 y is outside")
    assert check(only_age, [applicability.HeaderFacts(age_years=0.5)])[0].message.startswith(
        "patient age 6 months"
    )


def test_missing_header_attributes_give_a_softer_flag(tmp_path: Path) -> None:
    ds = pydicom.dcmread(CR)
    for keyword in ("PatientBirthDate", "ViewPosition"):
        delattr(ds, keyword)
    copy = tmp_path / "no-age.dcm"
    ds.save_as(copy)
    (flag,) = check_instances(_chest_population(), _instances(copy), 1)
    assert flag.message == (
        "intended population could not be checked: the header lacks patient age (PatientAge, "
        "or PatientBirthDate and StudyDate), view position (ViewPosition) "
        "(paediatric frontal chest radiographs)"
    )
    assert not flag.refused
    assert flag.details["outside"] is False
    # a refusing manifest with on_unknown "warn" still runs an image it cannot check
    lenient = _chest_population().model_copy(update={"on_mismatch": "refuse", "on_unknown": "warn"})
    assert not check_instances(lenient, _instances(copy), 1)[0].refused
    # and without it the unknown is refused like a mismatch (no bypass by a stripped header)
    refusing = _chest_population().model_copy(update={"on_mismatch": "refuse"})
    assert check_instances(refusing, _instances(copy), 1)[0].refused


def test_plain_images_and_missing_instances_cannot_be_checked(tmp_path: Path) -> None:
    png = tmp_path / "chest.png"
    Image.fromarray(np.full((64, 64), 128, dtype=np.uint8)).save(png)
    instances = _instances(png)
    assert instances[0].is_plain_image
    (flag,) = check_instances(_chest_population(), instances, 1)
    assert "could not be checked: the image is not a DICOM file" in flag.message
    (flag,) = check_instances(_chest_population(), None, 2)
    assert flag.images == [0, 1]
    assert "no DICOM header came with the image" in flag.message


def test_no_population_or_no_restriction_checks_nothing() -> None:
    (instance,) = _instances(CR)
    assert check_instances(None, [instance], 1) == []
    tabular = load_package(ZOO_DIR / "tabular-breast-cancer").manifest.population
    assert tabular is not None  # documented, with nothing a header could tell
    assert check_instances(tabular, None, 3) == []


def test_one_header_read_per_series(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three instances of one series (the CR with new instance UIDs): one header read."""
    from core.imaging import sources

    ds = pydicom.dcmread(CR)
    for n in range(3):
        ds.SOPInstanceUID = f"{ds.SOPInstanceUID.rsplit('.', 1)[0]}.{900 + n}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = n + 1
        ds.save_as(tmp_path / f"{n}.dcm")
    instances = _instances(tmp_path)
    assert len(instances) == 3
    assert len({i.series_instance_uid for i in instances}) == 1
    reads: list[str] = []
    real = sources.read_dataset

    def counting(path: str, **kwargs: Any) -> Any:
        reads.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(sources, "read_dataset", counting)
    flags = check_instances(_chest_population(), instances, len(instances))
    assert len(reads) == 1
    (flag,) = flags
    assert flag.images == list(range(len(instances)))
