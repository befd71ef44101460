"""The patient and study lines at the top of a printed report, read from the study's images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pydicom


def _date(value: object) -> str:
    """DICOM DA (YYYYMMDD) as YYYY-MM-DD; anything else as it came."""
    text = str(value or "")
    if len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text


@dataclass(frozen=True)
class StudyHeader:
    """Who and what the report is about (no more than a printed report shows)."""

    patient_name: str
    patient_id: str
    birth_date: str = ""
    sex: str = ""
    study_date: str = ""
    study_description: str = ""
    accession: str = ""
    modality: str = ""
    institution: str = ""

    @classmethod
    def from_dataset(cls, ds: pydicom.Dataset) -> StudyHeader:
        """From any image of the study (its patient and general study modules)."""
        name = str(ds.get("PatientName", "") or "").replace("^", " ").strip()
        return cls(
            patient_name=name,
            patient_id=str(ds.get("PatientID", "") or ""),
            birth_date=_date(ds.get("PatientBirthDate")),
            sex=str(ds.get("PatientSex", "") or ""),
            study_date=_date(ds.get("StudyDate")),
            study_description=str(ds.get("StudyDescription", "") or ""),
            accession=str(ds.get("AccessionNumber", "") or ""),
            modality=str(ds.get("Modality", "") or ""),
            institution=str(ds.get("InstitutionName", "") or ""),
        )

    def lines(self) -> list[tuple[str, str]]:
        """(label, value) pairs that have a value, in print order."""
        pairs = [
            ("Patient", self.patient_name),
            ("Patient ID", self.patient_id),
            ("Birth date", self.birth_date),
            ("Sex", self.sex),
            ("Study date", self.study_date),
            ("Study", self.study_description),
            ("Accession", self.accession),
            ("Modality", self.modality),
            ("Institution", self.institution),
        ]
        return [(k, v) for k, v in pairs if v]
