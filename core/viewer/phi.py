"""What counts as patient-identifying text, for the viewer's hide-PHI toggle.

Keywords follow the DICOM basic de-identification profile (PS3.15 E.1) for the attributes a
viewer actually shows; the toggle is for screenshots and teaching, not a de-identifier.
"""

from __future__ import annotations

HIDDEN = "***"

PHI_KEYWORDS: frozenset[str] = frozenset(
    {
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientBirthTime",
        "PatientSex",
        "PatientAge",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "OtherPatientIDs",
        "OtherPatientNames",
        "OtherPatientIDsSequence",
        "PatientMotherBirthName",
        "MilitaryRank",
        "EthnicGroup",
        "MedicalRecordLocator",
        "IssuerOfPatientID",
        "AccessionNumber",
        "StudyID",
        "StudyDate",
        "SeriesDate",
        "AcquisitionDate",
        "ContentDate",
        "StudyTime",
        "SeriesTime",
        "AcquisitionTime",
        "ContentTime",
        "AcquisitionDateTime",
        "InstanceCreationDate",
        "InstanceCreationTime",
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "ReferringPhysicianName",
        "PerformingPhysicianName",
        "OperatorsName",
        "NameOfPhysiciansReadingStudy",
        "RequestingPhysician",
        "StationName",
        "DeviceSerialNumber",
        "PatientComments",
        "AdditionalPatientHistory",
    }
)


def is_phi(keyword: str) -> bool:
    return keyword in PHI_KEYWORDS


def is_phi_element(group: int, keyword: str, vr: str, private: bool) -> bool:
    """The keyword list, and by rule what it cannot list: the whole patient group (0010,xxxx:
    weight, size, ...), every person name (PN), free-text comments, and private elements,
    which may hold anything."""
    return (
        is_phi(keyword) or group == 0x0010 or vr == "PN" or keyword.endswith("Comments") or private
    )


def shown(value: str, hide: bool) -> str:
    """The text to display for an identifying value."""
    return HIDDEN if hide and value else value
