"""Priors: the other studies of the same patient, from the local study database and from the
configured PACS nodes (QIDO-RS or C-FIND, through core.pacs).

The same patient means the same Patient ID *and* the same Issuer of Patient ID: two hospitals
may give the same ID to different people, so an ID with an issuer never matches the same ID
with another issuer, and an ID without an issuer only matches the same ID without one. A name
is never enough (two patients share names; one patient's name is spelt differently in two
studies). A study without a Patient ID has no priors.

A PACS is asked for the Patient ID only (issuer matching on the server is optional in QIDO-RS
and C-FIND), with the issuer returned, and every answer is checked here, exactly, against both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Connection

from core.pacs.client import StudyHit, StudyQuery
from core.studies.catalogue import StudyEntry, of_patient

if TYPE_CHECKING:
    from core.config import PacsNode


class NoPatientKey(ValueError):
    """The study has no Patient ID: priors are never looked up by name."""


@dataclass(frozen=True)
class PatientKey:
    """Who a study belongs to, as far as matching priors goes."""

    patient_id: str
    issuer: str = ""

    @classmethod
    def of(cls, patient_id: str, issuer: str = "") -> PatientKey:
        key = cls(patient_id.strip(), issuer.strip())
        if not key.patient_id:
            raise NoPatientKey(
                "the study has no Patient ID: priors are matched by Patient ID and issuer, "
                "never by name"
            )
        return key

    def matches(self, patient_id: str, issuer: str) -> bool:
        """Exactly the same ID and the same issuer (both absent counts as the same)."""
        return patient_id.strip() == self.patient_id and issuer.strip() == self.issuer


@dataclass(frozen=True)
class Prior:
    """One other study of the patient, as the priors list shows it."""

    study_uid: str
    study_date: str
    study_time: str
    description: str
    modalities: tuple[str, ...]
    source: str  # "local" (in the study database), or "pacs:<node>"
    n_instances: int | None = None
    accession: str = ""
    local: StudyEntry | None = None  # the local row, when the study is here already
    nodes: tuple[str, ...] = ()  # the PACS nodes that hold it

    @property
    def retrievable(self) -> bool:
        return bool(self.nodes)


class StudySearcher(Protocol):
    """What priors need of a PACS client (core.pacs PacsClient and DimseClient both are)."""

    node: PacsNode

    def search_studies(self, query: StudyQuery) -> list[StudyHit]: ...


def local_priors(conn: Connection, key: PatientKey, current_uid: str) -> list[Prior]:
    """The patient's other studies in the local study database."""
    return [
        Prior(
            study_uid=e.study_uid,
            study_date=e.study_date,
            study_time=e.study_time,
            description=e.description,
            modalities=e.modalities,
            source="local",
            n_instances=e.n_instances,
            accession=e.accession,
            local=e,
        )
        for e in of_patient(conn, key.patient_id, key.issuer)
        if e.study_uid != current_uid and key.matches(e.patient_id, e.issuer)
    ]


def remote_priors(client: StudySearcher, key: PatientKey, current_uid: str) -> list[Prior]:
    """The patient's other studies on one PACS node (one audited study query). Raises what
    the client raises (core.pacs.errors.PacsError) when the node cannot answer."""
    hits = client.search_studies(StudyQuery(patient_id=key.patient_id))
    node = client.node.name
    return [
        Prior(
            study_uid=h.study_uid,
            study_date=h.study_date,
            study_time="",
            description=h.description,
            modalities=h.modalities,
            source=f"pacs:{node}",
            n_instances=h.instance_count,
            accession=h.accession,
            nodes=(node,),
        )
        for h in hits
        if h.study_uid and h.study_uid != current_uid and key.matches(h.patient_id, h.issuer)
    ]


class RemotePriorsCache:
    """PACS answers to "the studies of this patient", per node and patient key, reused for
    ``ttl_s`` seconds: switching between a patient's studies does not ask the nodes again.

    Used from several jobs at once: two asking the same node for the same patient at the same
    time make one query (the second waits for the first's answer). A node that fails is not
    remembered (the next ask tries again). Answers live in memory only, with the window."""

    def __init__(self, ttl_s: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_s < 0:
            raise ValueError(f"priors cache time must be >= 0 seconds, not {ttl_s}")
        self.ttl_s, self._clock = ttl_s, clock
        self._answers: dict[tuple[str, PatientKey], tuple[float, list[Prior]]] = {}
        self._slots: dict[tuple[str, PatientKey], threading.Lock] = {}
        self._lock = threading.Lock()
        self.queries = 0  # node queries made (tests, benchmarks)

    def priors(self, client: StudySearcher, key: PatientKey, current_uid: str) -> list[Prior]:
        """``remote_priors`` of ``client``, from the cache while it is fresh."""
        slot = (client.node.name, key)
        with self._lock:
            slot_lock = self._slots.setdefault(slot, threading.Lock())
        with slot_lock:
            with self._lock:
                hit = self._answers.get(slot)
            if hit is None or self._clock() - hit[0] >= self.ttl_s:
                found = remote_priors(client, key, "")  # all of the patient's studies there
                with self._lock:
                    self.queries += 1
                    self._answers[slot] = (self._clock(), found)
            else:
                found = hit[1]
        return [p for p in found if p.study_uid != current_uid]

    def forget(self, key: PatientKey | None = None) -> int:
        """Drop the answers about ``key`` (every node), or all; returns how many were dropped."""
        with self._lock:
            gone = [s for s in self._answers if key is None or s[1] == key]
            for slot in gone:
                del self._answers[slot]
        return len(gone)


def merge(*lists: list[Prior]) -> list[Prior]:
    """One row per study, newest first: a study here and on a PACS shows once, as local, with
    the nodes that also hold it (it can be opened at once, or retrieved again)."""
    by_uid: dict[str, Prior] = {}
    for prior in (p for found in lists for p in found):
        seen = by_uid.get(prior.study_uid)
        if seen is None:
            by_uid[prior.study_uid] = prior
            continue
        local = seen if seen.local is not None else prior
        other = prior if local is seen else seen
        by_uid[prior.study_uid] = Prior(
            study_uid=local.study_uid,
            study_date=local.study_date or other.study_date,
            study_time=local.study_time or other.study_time,
            description=local.description or other.description,
            modalities=local.modalities or other.modalities,
            source=local.source,
            n_instances=local.n_instances if local.n_instances is not None else other.n_instances,
            accession=local.accession or other.accession,
            local=local.local,
            nodes=tuple(dict.fromkeys([*local.nodes, *other.nodes])),
        )
    return sorted(by_uid.values(), key=lambda p: (p.study_date, p.study_time), reverse=True)
