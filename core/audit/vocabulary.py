"""Audit event types: DICOM PS3.16 CID 400 (the IHE ATNA vocabulary) plus the workstation's AI
events, and the PS3.15 outcome codes."""

from __future__ import annotations

from enum import Enum, IntEnum


class EventType(Enum):
    """(code value, coding scheme, meaning) of each event type."""

    APPLICATION_ACTIVITY = ("110100", "DCM", "Application Activity")
    AUDIT_LOG_USED = ("110101", "DCM", "Audit Log Used")
    BEGIN_TRANSFERRING = ("110102", "DCM", "Begin Transferring DICOM Instances")
    INSTANCES_ACCESSED = ("110103", "DCM", "DICOM Instances Accessed")
    INSTANCES_TRANSFERRED = ("110104", "DCM", "DICOM Instances Transferred")
    EXPORT = ("110106", "DCM", "Export")
    IMPORT = ("110107", "DCM", "Import")
    QUERY = ("110112", "DCM", "Query")
    SECURITY_ALERT = ("110113", "DCM", "Security Alert")
    USER_AUTHENTICATION = ("110114", "DCM", "User Authentication")
    # The workstation's own AI events (a private coding scheme, as PS3.15 allows).
    MODEL_RUN = ("AI001", "99DOCTORAI", "AI Model Run")
    RESULT_ACCEPTED = ("AI002", "99DOCTORAI", "AI Result Accepted")
    RESULT_REJECTED = ("AI003", "99DOCTORAI", "AI Result Rejected")
    RESULT_COMMENTED = ("AI004", "99DOCTORAI", "AI Result Commented")
    MODEL_INSTALLED = ("AI005", "99DOCTORAI", "AI Model Installed")
    MODEL_ROLLED_BACK = ("AI006", "99DOCTORAI", "AI Model Rolled Back")

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def scheme(self) -> str:
        return self.value[1]

    @property
    def meaning(self) -> str:
        return self.value[2]

    @classmethod
    def from_name(cls, name: str) -> EventType:
        """By enum name ("EXPORT") or meaning ("Export"), case-insensitive."""
        wanted = name.strip().lower().replace("_", " ")
        for member in cls:
            if wanted in (member.name.lower().replace("_", " "), member.meaning.lower()):
                return member
        raise ValueError(f"unknown audit event type '{name}'")


class Outcome(IntEnum):
    """PS3.15 EventOutcomeIndicator."""

    SUCCESS = 0
    MINOR_FAILURE = 4
    SERIOUS_FAILURE = 8
    MAJOR_FAILURE = 12
