"""Hanging on open: a study opened (files, folder, zip, a drop, the study list, a PACS
retrieve) is hung by its protocol as soon as its index is known, with its priors.

The controller shows the study's main series in viewport 1 first (the first image does not
wait for any of this). With a profile open, one job, started as soon as the study is known (its
provisional first image, else its index), asks the local study database for the priors (Patient
ID + issuer, ``core.app.studies.find_priors``, audited), indexes the files of the newest ones of
the study's modality that the protocols can show (audited as access; a patient with twenty
priors does not have twenty studies read) and reads the protocols. When both the study's index
and that answer are in, the protocol is laid out (``ViewportGrid.show_hanging``) with those
priors in the viewports the protocol gives them.
When PACS nodes are configured a second job asks them (answers cached per patient,
``core.studies.priors.RemotePriorsCache``); the newest prior that is only on a PACS is retrieved
in the background and the study is hung again when it has arrived, if the reader has not
changed the layout in between.

Laying a stage out resets viewport 1 and starts its load again; the slices it had already
decoded are handed back to it (``_keep_frames``), so only the missing ones load.

Machine setting ``[viewer] hang_on_open`` (default true). Without a profile (tests, the
screenshot script) it is off unless the window is made with ``hang_on_open=True``; then the
priors are the other studies of the patient among the open studies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from core.imaging.model import Patient, Study, StudyIndex
from core.viewer.hanging import Hanging, Protocol, hang, load_protocols
from desktop.workers import Job, JobContext

if TYPE_CHECKING:
    from core.app.workstation import Workstation
    from core.studies.priors import Prior, RemotePriorsCache
    from desktop.main_window import MainWindow


@dataclass
class LocalPriors:
    """What the first job brings back: the protocols, the local priors' index, the key."""

    protocols: list[Protocol]
    index: StudyIndex | None
    prior_uids: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _protocols() -> list[Protocol]:
    from core.config import load_settings

    return load_protocols(load_settings().viewer.hanging_protocols)


def prior_depth(protocols: Sequence[Protocol]) -> int:
    """How many priors any protocol shows (``prior = 2`` is the second newest); at least 1."""
    used = [vr.prior for p in protocols for stage in p.stage for vr in stage.viewport]
    return max([1, *used])


def local_priors_job(
    ctx: JobContext, ws: Workstation, patient: Patient, study: Study, open_uids: Sequence[str]
) -> LocalPriors:
    """The protocols, and the priors of ``study`` in the local study database, indexed (their
    headers read, audited as access) unless they are open already."""
    from core.app.access import index_read
    from core.app.studies import find_priors, study_paths
    from core.imaging.index import build_index
    from core.studies.catalogue import StudyUnavailable, issuer_of
    from core.studies.priors import NoPatientKey, PatientKey

    protocols = _protocols()
    try:
        key = PatientKey.of(patient.patient_id, issuer_of(study))
    except NoPatientKey:
        return LocalPriors(protocols, None)
    found = find_priors(ws, study.study_instance_uid, (), key, lambda: ctx.cancelled)
    mods = {s.modality.upper() for s in study.series.values() if s.modality}
    fitting = [  # newest first
        p
        for p in found.priors
        if p.local is not None and (not p.modalities or mods & {m.upper() for m in p.modalities})
    ]
    uids = [p.study_uid for p in fitting[: prior_depth(protocols)]]
    paths: list[str] = []
    problems: list[str] = []
    for uid in uids:
        if uid in open_uids:
            continue
        try:
            paths += study_paths(ws, uid)
        except (LookupError, StudyUnavailable) as exc:  # moved, evicted: said, not fatal
            problems.append(str(exc))
    if not paths or ctx.cancelled:
        return LocalPriors(protocols, None, uids, problems)
    index = build_index(paths, cancel=ctx.cancel_event)
    index_read(ws, index, action="hang-priors")
    return LocalPriors(protocols, index, uids, problems)


def remote_priors_job(
    ctx: JobContext, ws: Workstation, patient: Patient, study: Study, cache: RemotePriorsCache
) -> list[Prior]:
    """The priors of ``study`` on the configured PACS nodes (cached per patient)."""
    from core.app.studies import find_priors, pacs_searchers
    from core.studies.catalogue import issuer_of
    from core.studies.priors import PatientKey
    from desktop.pacs_dialog import current_settings

    clients, _problems = pacs_searchers(ws, current_settings())
    if not clients:
        return []
    key = PatientKey.of(patient.patient_id, issuer_of(study))
    found = find_priors(
        ws, study.study_instance_uid, clients, key, lambda: ctx.cancelled, cache=cache
    )
    return found.priors


def index_study_job(ctx: JobContext, ws: Workstation, study_uid: str) -> StudyIndex:
    """Index a prior just retrieved (recorded by the retrieve; audited here as access)."""
    from core.app.access import index_read
    from core.app.studies import study_paths
    from core.imaging.index import build_index

    index = build_index(study_paths(ws, study_uid), cancel=ctx.cancel_event)
    index_read(ws, index, action="hang-priors")
    return index


def newest_remote(priors: Sequence[Prior], study: Study) -> Prior | None:
    """The prior to fetch: the newest one of a modality of ``study`` (or of modalities the node
    did not say), when it is only on a PACS (a newer or equal one here is what the protocol
    shows anyway)."""
    mods = {s.modality.upper() for s in study.series.values() if s.modality}
    fitting = [p for p in priors if not p.modalities or mods & {m.upper() for m in p.modalities}]
    newest = max(fitting, key=lambda p: (p.study_date, p.study_time), default=None)
    return newest if newest is not None and newest.local is None and newest.nodes else None


class AutoHang(QObject):
    """Hangs each study opened in the window (module doc)."""

    hung = Signal(object)  # the Hanging laid out

    def __init__(
        self,
        window: MainWindow,
        ws: Workstation | None,
        enabled: bool = True,
        cache: RemotePriorsCache | None = None,
    ) -> None:
        super().__init__(window)
        self.window_, self.ws, self.enabled, self.cache = window, ws, enabled, cache
        self.protocols: list[Protocol] | None = None
        self.hanging: Hanging | None = None  # the last one laid out by this object
        self.study_uid = ""  # the study it was for
        self.prior_uids: list[str] = []  # its priors in the study database (retrieved ones too)
        self._images = 0  # how many images that study had when it was last hung
        self._indexed = False  # the study's index is known (not only its first image)
        self._found: LocalPriors | None = None  # its local priors, once the job has answered
        self._asked_pacs = False  # the PACS nodes were asked for its priors
        self.jobs: list[Job] = []
        self.message = ""  # the last thing said about hanging (tests, status bar)
        window.controller.first_image_shown.connect(lambda _uid: self._on_first_image())
        window.controller.index_loaded.connect(self._on_index)

    # --- when a study is known -------------------------------------------------------------
    def _on_first_image(self) -> None:
        """A provisional first image names the study before its folder is indexed: the priors
        are looked up (and indexed) beside the indexing, not after it."""
        if self.enabled and self.ws is not None:
            self._prepare()

    def _on_index(self, _index: StudyIndex) -> None:
        # the controller puts the study's main series on screen after this signal: look then
        if self.enabled:
            QTimer.singleShot(0, self.hang_shown)

    def _prepare(self) -> bool:
        """Start on the study of viewport 1 when it is another than the last; True if so."""
        win = self.window_
        ctx = win.state.context()
        if ctx is None or win.runner.closed or ctx[1].study_instance_uid == self.study_uid:
            return False
        patient, study = ctx
        self._cancel_jobs()
        hung = win.grid.hanging
        if hung is not None and hung.studies and hung.studies[0] is not study:
            win.grid.hanging = None  # the last study's stages no longer apply (stage keys)
        self.study_uid, self._images, self._indexed = study.study_instance_uid, 0, False
        self.prior_uids, self._found, self.hanging = [], None, None
        self._asked_pacs = False
        if self.ws is not None:
            open_uids = [uid for p in win.state.index.patients.values() for uid in p.studies]
            self._start(
                "hang on open: priors", local_priors_job, self.ws, patient, study, open_uids,
                on_result=lambda found: self._local_done(study.study_instance_uid, found),
            )  # fmt: skip
        return True

    def hang_shown(self) -> None:
        """Hang the study of viewport 1 (with its priors, once they are known); once per study,
        again when it grew (a PACS retrieve arriving in batches) while the layout is still the
        one hung."""
        win = self.window_
        self._prepare()
        ctx = win.state.context()
        if ctx is None or ctx[1].study_instance_uid != self.study_uid:
            return
        self._indexed = True
        patient, study = ctx
        if self.ws is None:
            if self.protocols is None:
                self.protocols = self._read_protocols()
        elif self._found is None:
            return  # hung when the priors job answers
        images = sum(s.frame_count for s in study.series.values())
        if self.hanging is not None and (
            images <= self._images or win.grid.hanging is not self.hanging
        ):
            return
        self._lay_out(patient, study)
        self._ask_pacs(patient, study)

    def _read_protocols(self) -> list[Protocol]:
        from core.config import ConfigError
        from core.viewer.hanging import HangingError

        try:
            return _protocols()
        except (ConfigError, HangingError) as exc:
            self._say(f"Not hung by protocol: {exc}")
            return load_protocols()

    def _start(self, name: str, func: Any, *args: Any, on_result: Any) -> Job:
        job = self.window_.runner.start(
            name, func, *args,
            on_result=on_result,
            on_error=lambda exc: self._say(f"{name} failed: {exc}"),
            on_finished=lambda j: self.jobs.remove(j) if j in self.jobs else None,
        )  # fmt: skip
        self.jobs.append(job)
        return job

    def _cancel_jobs(self) -> None:
        """Another study: its lookups stop; a prior's retrieve goes on (shared with the study
        list, and the prior is in the cache and the list when it ends)."""
        for job in list(self.jobs):
            if job.name != "retrieve prior":
                job.cancel()

    def _still_on_screen(self, study: Study) -> bool:
        ctx = self.window_.state.context()
        return ctx is not None and ctx[1].study_instance_uid == study.study_instance_uid

    def _local_done(self, study_uid: str, found: LocalPriors) -> None:
        self.protocols = found.protocols
        if study_uid != self.study_uid:
            return
        self._found = found
        if found.index is not None:
            self._add(found.index)
        self.prior_uids = list(found.prior_uids)
        if found.problems:
            self._say("Some priors could not be opened: " + "; ".join(found.problems))
        ctx = self.window_.state.context()
        if not self._indexed or ctx is None or ctx[1].study_instance_uid != study_uid:
            return  # hung when the index arrives (hang_shown)
        patient, study = ctx
        self._lay_out(patient, study)
        self._ask_pacs(patient, study)

    def _ask_pacs(self, patient: Patient, study: Study) -> None:
        """Once per study, after its first hanging: the PACS nodes' priors (cached)."""
        if self._asked_pacs or self.cache is None or self.ws is None or not _has_pacs():
            return
        self._asked_pacs = True
        self._start(
            "hang on open: PACS priors", remote_priors_job, self.ws, patient, study,
            self.cache, on_result=lambda priors: self._remote_done(study, priors),
        )  # fmt: skip

    def _remote_done(self, study: Study, priors: list[Prior]) -> None:
        prior = newest_remote(priors, study)
        if prior is None or not self._still_on_screen(study) or self.ws is None:
            return
        from desktop.study_list import start_retrieve

        node = prior.nodes[0]
        self._say(f"Retrieving the prior of {prior.study_date} from '{node}' to hang it…")
        job = start_retrieve(
            self.window_, self.ws, node, prior.study_uid, self._pacs_cache(),
            on_result=lambda n: self._retrieved(study, prior, n),
            on_error=lambda exc: self._say(f"The prior was not retrieved: {exc}"),
        )  # fmt: skip
        self.jobs.append(job)  # not cancelled with the study: the prior is wanted anyway
        job.signals.finished.connect(lambda: self.jobs.remove(job) if job in self.jobs else None)

    def _retrieved(self, study: Study, prior: Prior, count: int) -> None:
        if not count or self.ws is None or not self._still_on_screen(study):
            return
        hanging = self.hanging
        self._start(
            "hang on open: index prior", index_study_job, self.ws, prior.study_uid,
            on_result=lambda index: self._prior_arrived(study, prior, index, hanging),
        )  # fmt: skip

    def _prior_arrived(
        self, study: Study, prior: Prior, index: StudyIndex, before: Hanging | None
    ) -> None:
        win = self.window_
        self._add(index)
        if not self._still_on_screen(study) or win.grid.hanging is not before:
            self._say("A prior arrived from PACS; it is in the study list")  # layout changed
            return
        self.prior_uids.append(prior.study_uid)
        ctx = win.state.context()
        if ctx is not None:
            self._lay_out(*ctx)

    def _add(self, index: StudyIndex) -> None:
        """Priors into the open studies, with their thumbnails in the study browser."""
        self.window_.state.add_index(index)
        self.window_.controller.start_thumbnails([s for _p, _st, s in index.iter_series()])

    def _pacs_cache(self) -> Any:
        pacs = self.window_.pacs
        if pacs is not None:
            return pacs.cache
        from core.pacs.cache import PacsCache
        from desktop.pacs_dialog import current_settings

        return PacsCache.from_settings(current_settings())

    # --- laying out ------------------------------------------------------------------------
    def _lay_out(self, patient: Patient, study: Study) -> None:
        """Hang ``study`` with the other studies of its patient that are open (``hang`` leaves
        out another issuer's); with a profile only those the study database calls priors."""
        others = [s for s in patient.studies.values() if s is not study]
        if self.ws is not None:
            wanted = set(self.prior_uids)
            others = [s for s in others if s.study_instance_uid in wanted]
        hanging = hang(study, others, self.protocols or load_protocols())
        self._images = sum(s.frame_count for s in study.series.values())
        self._show(hanging)
        n = len(hanging.studies) - 1
        self._say(f"Hung by '{hanging.protocol}'" + (f" with {n} prior(s)" if n else ""))
        self.hung.emit(hanging)

    def _show(self, hanging: Hanging) -> None:
        grid, ctl = self.window_.grid, self.window_.controller
        first = grid.model.cells[0].state
        series, frames = first.series, list(first.frames)
        self.hanging = hanging
        grid.show_hanging(hanging)
        _keep_frames(first, series, frames, ctl)

    def _say(self, text: str) -> None:
        self.message = text
        self.window_.statusBar().showMessage(text, 8000)


def _keep_frames(state: Any, series: Any, frames: list[Any], controller: Any) -> None:
    """Laying a stage out reset viewport 1 and restarted its load: when it shows the same
    series again, give it back the slices it had decoded and load only the missing ones."""
    if series is None or state.series is not series or len(frames) != len(state.frames):
        return
    back = [(i, f) for i, f in enumerate(frames) if f is not None and state.frames[i] is None]
    if back:
        state.set_frames(back)
        controller.refresh_series()


def _has_pacs() -> bool:
    from desktop.pacs_dialog import current_settings

    settings = current_settings()
    return settings is not None and bool(settings.pacs)
