"""Use cases of the local study database: list and search it, open a study from it, find a
study's priors, remember where the file dialogs were last.

Reading the list shows patient data, so every list and every priors search is audited as
"Query" (PS3.16 CID 400, as PACS queries are) in the same transaction as the read, naming each
patient and study shown; the filters are named, not their values. A PACS asked for priors
audits its own query through ``core.app.pacs_audit``. Recording a study opened or indexed is
part of the access events (core.app.access). Callers run these off the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.app.workstation import Workstation
from core.audit.events import Participants, event
from core.audit.vocabulary import EventType
from core.pacs.errors import PacsError
from core.security.users import Permission
from core.store.database import set_property
from core.store.schema import properties
from core.studies import catalogue
from core.studies.catalogue import StudyEntry, StudySearch
from core.studies.priors import (
    PatientKey,
    Prior,
    RemotePriorsCache,
    StudySearcher,
    local_priors,
    merge,
    remote_priors,
)

if TYPE_CHECKING:
    from core.config import Settings

#: How many studies the study list shows by default ("Recent").
DEFAULT_RECENT = 50


def _shown(entries: Sequence[StudyEntry]) -> Participants:
    found = Participants()
    for e in entries:
        found.patient(e.patient_id, e.patient_name)
        found.study(e.study_uid)
    return found


def list_studies(
    ws: Workstation, query: StudySearch | None = None, recent: int | None = None
) -> list[StudyEntry]:
    """The studies matching ``query``, or the ``recent`` last opened (default: the recent
    list); audited as a Query naming what is shown."""
    actor = ws.require(Permission.VIEW)
    with ws.db.transaction() as conn:
        if query is not None and query.keys():
            found = catalogue.search(conn, query)
            details = {"keys": ",".join(query.keys())}
        else:
            found = catalogue.recent(conn, recent or DEFAULT_RECENT)
            details = {"keys": "recent"}
        ws.audit.append(
            event(
                EventType.QUERY,
                actor,
                _shown(found),
                action="study-list",
                source="local",
                matches=len(found),
                **details,
            ),
            conn=conn,
        )
    return found


def study_paths(ws: Workstation, study_uid: str) -> list[str]:
    """The files to index to open a listed study again (the opening itself is audited when its
    series shows). Raises StudyNotFound / StudyUnavailable naming the study and why."""
    ws.require(Permission.LOAD)
    with ws.db.engine.connect() as conn:
        entry = catalogue.get(conn, study_uid)
    return catalogue.open_paths(entry)


def mark_retrieved(ws: Workstation, study_uid: str, node: str) -> None:
    """A study retrieved from PACS node ``node``: the list says where it came from."""
    ws.require(Permission.LOAD)
    with ws.db.transaction() as conn:
        catalogue.set_source(conn, study_uid, f"pacs:{node}")


def forget_study(ws: Workstation, study_uid: str) -> StudyEntry:
    """Remove a study from the local study database (its files, the PACS cache and the audit
    trail are untouched: it can be opened or retrieved again). Audited in the same transaction
    as DICOM Instances Accessed with action "forget", naming the patient and study. Raises
    StudyNotFound naming the study when it is not listed."""
    actor = ws.require(Permission.LOAD)
    with ws.db.transaction() as conn:
        entry = catalogue.get(conn, study_uid)
        catalogue.forget(conn, study_uid)
        ws.audit.append(
            event(
                EventType.INSTANCES_ACCESSED,
                actor,
                _shown([entry]),
                action="forget",
                source="local",
            ),
            conn=conn,
        )
    return entry


@dataclass
class PriorsFound:
    """The priors of one study, and what could not be asked (a node down, refused...)."""

    study_uid: str
    key: PatientKey
    priors: list[Prior] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def find_priors(
    ws: Workstation,
    study_uid: str,
    clients: Sequence[StudySearcher] = (),
    key: PatientKey | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    cache: RemotePriorsCache | None = None,
) -> PriorsFound:
    """The other studies of ``study_uid``'s patient (same Patient ID and issuer), here and on
    each PACS of ``clients``, newest first. ``key``: who the patient is when the study is not
    in the local database yet; ``cache``: PACS answers reused while fresh (no query, so no
    PACS audit event for them). Raises StudyNotFound (no key, study unknown) or NoPatientKey."""
    actor = ws.require(Permission.VIEW)
    with ws.db.transaction() as conn:
        if key is None:
            current = catalogue.get(conn, study_uid)
            key = PatientKey.of(current.patient_id, current.issuer)
        local = local_priors(conn, key, study_uid)
        shown = Participants().patient(key.patient_id).study(study_uid)
        for p in local:
            shown.study(p.study_uid)
        ws.audit.append(
            event(
                EventType.QUERY,
                actor,
                shown,
                action="priors",
                source="local",
                matches=len(local),
                issuer=bool(key.issuer),
            ),
            conn=conn,
        )
    found = PriorsFound(study_uid, key)
    remote: list[list[Prior]] = []
    for client in clients:
        if cancelled():
            break
        try:  # each node audits its own query (core.app.pacs_audit)
            if cache is not None:
                remote.append(cache.priors(client, key, study_uid))
            else:
                remote.append(remote_priors(client, key, study_uid))
        except PacsError as exc:
            found.problems.append(str(exc))
    found.priors = merge(local, *remote)
    return found


def _folder_key(ws: Workstation) -> str:
    return f"last_folder:{ws.actor.user}"


def last_folder(ws: Workstation) -> str:
    """Where the user's last file dialog ended ("" the first time). Kept in the encrypted
    store: a folder's name often carries a patient's name."""
    from sqlalchemy import select

    with ws.db.engine.connect() as conn:
        value = conn.execute(
            select(properties.c.value).where(properties.c.key == _folder_key(ws))
        ).scalar_one_or_none()
    return str(value or "")


def remember_folder(ws: Workstation, folder: str) -> None:
    """The folder a file dialog ended in, for the next one of the same user."""
    if folder:
        with ws.db.transaction() as conn:
            set_property(conn, _folder_key(ws), folder)


def pacs_searchers(
    ws: Workstation, settings: Settings | None = None, names: Sequence[str] | None = None
) -> tuple[list[StudySearcher], list[str]]:
    """A client for each configured PACS node (or those ``names``), each auditing its queries
    on ``ws``'s trail in the name of whoever acts, and what is wrong with the nodes that cannot
    be used (no secret in the keyring, a missing CA bundle): one bad node never hides the
    others. Raises PacsConfigError for a name that is not configured."""
    from core.app.pacs_audit import pacs_audit
    from core.pacs.client import PacsClient
    from core.pacs.dimse import DimseClient, is_dimse
    from core.pacs.nodes import get_node, list_nodes

    nodes = [get_node(n, settings) for n in names] if names else list_nodes(settings)
    sink = pacs_audit(ws)
    clients: list[StudySearcher] = []
    problems: list[str] = []
    for node in nodes:
        try:
            clients.append(DimseClient(node, sink) if is_dimse(node) else PacsClient(node, sink))
        except PacsError as exc:
            problems.append(str(exc))
    return clients, problems
