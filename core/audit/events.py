"""The one way an audit event is built: who did it (``Actor``), what it touched
(``Participants``, PS3.15 ParticipantObjectIdentification) and ``event()``.

Every use case, the CLI and the GUI name patient, study, series and instances the same way
through ``Participants``, so the same action gives the same event whichever front end ran it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.audit.log import AuditEvent, AuditObject
from core.audit.vocabulary import EventType, Outcome

if TYPE_CHECKING:
    from core.imaging.model import Instance, Patient, StudyIndex

#: Who the trail names for events that happen before anyone signs in (start-up, failed logins).
SYSTEM_USER = "system"


@dataclass(frozen=True)
class Actor:
    """Who performs an action: an account and its role ("cli" for the OS user of the CLI)."""

    user: str
    role: str = ""


SYSTEM = Actor(SYSTEM_USER)


@dataclass
class Participants:
    """What an event touched, in PS3.15 order: patient, study, series, instances, then the rest
    (model, result, file, user). Duplicates are dropped; insertion order is kept."""

    objects: list[AuditObject] = field(default_factory=list)

    def add(self, kind: str, oid: str, name: str = "") -> Participants:
        if oid and not any(o.kind == kind and o.id == oid for o in self.objects):
            self.objects.append(AuditObject(kind, oid, name))
        return self

    def patient(self, patient_id: str, name: str = "") -> Participants:
        return self.add("patient", patient_id, name)

    def study(self, uid: str) -> Participants:
        return self.add("study", uid)

    def series(self, uid: str) -> Participants:
        return self.add("series", uid)

    def instances(
        self, instances: Iterable[Instance], names: dict[str, str] | None = None
    ) -> Participants:
        """Patient, study, series and SOP instance of each; ``names`` maps patient id -> name."""
        for inst in instances:
            self.patient(inst.patient_id, (names or {}).get(inst.patient_id, ""))
            self.study(inst.study_instance_uid)
            self.series(inst.series_instance_uid)
            self.add("instance", inst.sop_instance_uid)
        return self

    def index(self, index: StudyIndex) -> Participants:
        """Each patient (with name) and study found by indexing."""
        for patient in index.patients.values():
            self.patient(patient.patient_id, patient.name)
            for uid in patient.studies:
                self.study(uid)
        return self

    def extend(self, objects: Iterable[AuditObject]) -> Participants:
        for o in objects:
            self.add(o.kind, o.id, o.name)
        return self

    def ordered(self) -> list[AuditObject]:
        """PS3.15 order: patient, study, series, instance, then the others as added."""
        rank = {"patient": 0, "study": 1, "series": 2, "instance": 3}
        return sorted(self.objects, key=lambda o: rank.get(o.kind, 4))


def patient_names(patients: Iterable[Patient]) -> dict[str, str]:
    return {p.patient_id: p.name for p in patients}


def event(
    event_type: EventType,
    actor: Actor,
    participants: Participants | Sequence[AuditObject] = (),
    outcome: Outcome = Outcome.SUCCESS,
    /,
    **details: Any,
) -> AuditEvent:
    """The audit event of ``actor`` doing ``event_type`` to ``participants``; ``details`` are
    free-form (positional-only parameters, so a detail may be called "outcome")."""
    objects = (
        participants.ordered() if isinstance(participants, Participants) else list(participants)
    )
    return AuditEvent(
        event_type,
        user=actor.user,
        role=actor.role,
        outcome=outcome,
        objects=objects,
        details=details,
    )
