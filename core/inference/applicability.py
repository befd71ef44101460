"""Is this image within the population the model was made for? Checked against the header.

A paediatric chest model gives a confident answer on a 64-year-old's radiograph; nothing in the
pixels stops it. The manifest's ``population`` says whom and what the model was trained for;
``check`` compares it with what each input's DICOM header says and returns ``GuardFlag``s
(kind "population") that travel with the result, into its audit event and onto the screen.

Header facts come from the index's ``Instance`` (photometric, pixel spacing) and, for the
patient- and series-level attributes the index does not keep (age, sex, body part, view
position), from one header read per series: a 24-slice run reads one header, not 24.

Age: ``PatientAge`` ("064Y", "018M", "003W", "010D"), else ``StudyDate`` (or the series',
acquisition or content date) minus ``PatientBirthDate``. A range [1, 5] holds completed years,
as the sources say it ("children aged 1-5": a child of 5 years 11 months is in it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from core.imaging.model import Instance
from core.inference.result import GuardFlag
from models.manifest import Population

KIND = "population"
_AGE = re.compile(r"^(\d{1,3})([DWMY])$")
_UNIT_YEARS = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}
_DATES = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
_NO_HEADER = {
    "not DICOM": "the image is not a DICOM file, so it has no header",
    "no header given": "no DICOM header came with the image",
    "header unreadable": "the image's DICOM header could not be read",
}


@dataclass(frozen=True)
class HeaderFacts:
    """What one input's header says about the patient and the image ("" / None: not said).

    ``source``: "dicom", or why there is no header ("not DICOM", "no header given")."""

    source: str = "dicom"
    age_years: float | None = None
    sex: str = ""
    body_part: str = ""
    view_position: str = ""
    modality: str = ""
    photometric: str = ""
    pixel_spacing_mm: float | None = None  # row spacing


def age_of(dataset: Any) -> float | None:
    """Age in years at acquisition from ``PatientAge`` or the birth and study dates."""
    match = _AGE.match(str(dataset.get("PatientAge", "") or "").strip().upper())
    if match:
        return int(match.group(1)) * _UNIT_YEARS[match.group(2)]
    born = _date(dataset.get("PatientBirthDate", ""))
    if born is None:
        return None
    for keyword in _DATES:
        seen = _date(dataset.get(keyword, ""))
        if seen is not None and seen >= born:
            return (seen - born).days / 365.25
    return None


def _date(value: Any) -> date | None:
    text = str(value or "").strip()
    if not re.fullmatch(r"\d{8}", text):
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _spacing(value: Any) -> float | None:
    try:
        row = float(value[0])
    except (TypeError, ValueError, IndexError):
        return None
    return row if math.isfinite(row) and row > 0 else None


def _text(dataset: Any, keyword: str) -> str:
    return str(dataset.get(keyword, "") or "").strip().upper()


def facts_of(instance: Instance, dataset: Any | None) -> HeaderFacts:
    """The facts of one instance: ``dataset`` is its series' header (read once per series)."""
    if instance.is_plain_image:
        return HeaderFacts(source="not DICOM")
    if dataset is None:
        return HeaderFacts(source="header unreadable", photometric=instance.photometric.upper())
    spacing = instance.pixel_spacing[0] if instance.pixel_spacing else None
    if spacing is None:  # projection radiographs often give only the detector's spacing
        spacing = _spacing(dataset.get("ImagerPixelSpacing"))
    return HeaderFacts(
        age_years=age_of(dataset),
        sex=_text(dataset, "PatientSex"),
        body_part=_text(dataset, "BodyPartExamined"),
        view_position=_text(dataset, "ViewPosition"),
        modality=_text(dataset, "Modality"),
        photometric=(instance.photometric or _text(dataset, "PhotometricInterpretation")).upper(),
        pixel_spacing_mm=spacing,
    )


def read_facts(instances: Sequence[Instance | None]) -> list[HeaderFacts]:
    """Facts of each instance, one header read per series (None: no header given)."""
    from core.imaging.sources import read_dataset

    per_series: dict[str, Any] = {}
    out: list[HeaderFacts] = []
    for instance in instances:
        if instance is None:
            out.append(HeaderFacts(source="no header given"))
            continue
        if instance.is_plain_image:
            out.append(facts_of(instance, None))
            continue
        key = instance.series_instance_uid or instance.path
        if key not in per_series:
            try:
                per_series[key] = read_dataset(instance.path)
            except ValueError:
                per_series[key] = None  # said as "could not be checked", never a crash
        out.append(facts_of(instance, per_series[key]))
    return out


def summary(population: Population) -> str:
    """The short description of the population: the note up to its first colon."""
    note = (population.note or "").split(":", 1)[0].split(";", 1)[0].strip()
    return note or "see the model's intended use"


def _age_text(years: float) -> str:
    if years < 2:
        return f"{int(years * 12)} months"
    return f"{int(years)} y"


def _range_text(low: float, high: float) -> str:
    return f"{low:g}-{high:g} y"


def _mismatches(population: Population, facts: HeaderFacts) -> tuple[list[str], list[str]]:
    """(attributes outside the population, with their message; attributes the header lacks)."""
    outside: list[str] = []
    missing: list[str] = []
    if population.age_years is not None:
        low, high = population.age_years
        if facts.age_years is None:
            missing.append("patient age (PatientAge, or PatientBirthDate and StudyDate)")
        elif facts.age_years < low or math.floor(facts.age_years) > high:
            outside.append(
                f"patient age {_age_text(facts.age_years)} is outside this model's intended "
                f"population {_range_text(low, high)}"
            )
    pairs = (
        ("sex", "patient sex", "PatientSex", facts.sex, population.sexes),
        ("body_part", "body part", "BodyPartExamined", facts.body_part, population.body_parts),
        ("view", "view position", "ViewPosition", facts.view_position, population.view_positions),
        ("modality", "modality", "Modality", facts.modality, population.modalities),
        ("photometric", "photometric interpretation", "PhotometricInterpretation",
         facts.photometric, population.photometric),
    )  # fmt: skip
    for _key, what, keyword, value, allowed in pairs:
        if not allowed:
            continue
        wanted = [a.upper() for a in allowed]
        if not value:
            missing.append(f"{what} ({keyword})")
        elif value not in wanted:
            outside.append(
                f"{what} {value} is outside this model's intended population ({', '.join(wanted)})"
            )
    if population.pixel_spacing_mm is not None:
        low, high = population.pixel_spacing_mm
        if facts.pixel_spacing_mm is None:
            missing.append("pixel spacing (PixelSpacing or ImagerPixelSpacing)")
        elif not low <= facts.pixel_spacing_mm <= high:
            outside.append(
                f"pixel spacing {facts.pixel_spacing_mm:g} mm is outside this model's intended "
                f"range {low:g}-{high:g} mm"
            )
    return outside, missing


def restricts(population: Population | None) -> bool:
    """Whether ``population`` restricts anything a header can tell."""
    if population is None:
        return False
    return bool(
        population.age_years is not None
        or population.pixel_spacing_mm is not None
        or population.sexes
        or population.body_parts
        or population.view_positions
        or population.modalities
        or population.photometric
    )


def _details(population: Population, is_outside: bool) -> dict[str, Any]:
    """What a flag records of the rule that applied (``on_unknown`` only where it was set
    and the input could not be checked)."""
    details: dict[str, Any] = {"outside": is_outside, "on_mismatch": population.on_mismatch}
    if not is_outside and population.on_unknown is not None:
        details["on_unknown"] = population.on_unknown
    return details


def check(population: Population | None, facts: Sequence[HeaderFacts]) -> list[GuardFlag]:
    """Flags for the inputs outside ``population`` (refused when ``on_mismatch`` says
    "refuse"), and "could not be checked" ones for inputs whose header cannot tell (refused
    when ``on_unknown`` says "refuse"; unset, it follows ``on_mismatch``: a refusing manifest
    is not bypassed by a PNG or a header without the attribute). Inputs with the same message
    share one flag."""
    if population is None or not restricts(population):
        return []
    about = summary(population)
    refuse = population.on_mismatch == "refuse"
    refuse_unknown = (population.on_unknown or population.on_mismatch) == "refuse"
    grouped: dict[tuple[str, bool], list[int]] = {}
    for index, fact in enumerate(facts):
        if fact.source != "dicom":
            why = _NO_HEADER.get(fact.source, fact.source)
            grouped.setdefault((why, False), []).append(index)
            continue
        outside, missing = _mismatches(population, fact)
        for message in outside:
            grouped.setdefault((message, True), []).append(index)
        if missing:
            grouped.setdefault((f"the header lacks {', '.join(missing)}", False), []).append(index)
    flags = []
    for (message, is_outside), images in grouped.items():
        if is_outside:
            text = f"{message} ({about})"
        else:
            text = f"intended population could not be checked: {message} ({about})"
        flags.append(
            GuardFlag(
                KIND,
                text,
                images=images,
                refused=refuse if is_outside else refuse_unknown,
                details=_details(population, is_outside),
            )
        )
    return flags


def check_instances(
    population: Population | None, instances: Sequence[Instance | None] | None, n_inputs: int
) -> list[GuardFlag]:
    """``check`` over the inputs' instances (read once per series); without instances (a
    caller that gave frames only), every input is flagged as unchecked."""
    if population is None or not restricts(population):
        return []
    if instances is None:
        facts = [HeaderFacts(source="no header given")] * n_inputs
    else:
        facts = read_facts(instances)
    return check(population, facts)
