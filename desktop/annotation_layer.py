"""The annotation layer of the reading room: draw, select, move, edit, delete, undo; stored.

One ``AnnotationLayer`` per window (``install_annotations(window)``, called once after the
window is built, does everything: tools in the toolbar and Tools menu with their keys, Undo and
Redo, the layer over every viewport the grid has now or makes later, acquired and reformatted).

Model and storage are ``core.annotations`` and ``core.app.annotations``: one
``AnnotationSession`` per study, opened on first sight of the study. Every change goes to the
session (hence the store and the audit trail) in a worker as soon as it is made: the GUI thread
only appends the step to a queue that one ``JobRunner`` job at a time drains, in order. What is
on screen (``shown``) is updated at once and corrected by what the store answers (the session's
listener, re-emitted to the GUI thread). A step in flight when the window closes is finished
before the window's job runner lets it go (``JobRunner.shutdown`` awaits the drain job); a
stroke not yet released is not a change and is lost with a crash, nothing else.

Mouse and keys: ``desktop.annotation_input`` (an event filter on each viewport and reformat
cell). Other authors' annotations are shown read-only, as core says; a role that may not
annotate keeps the viewport's unsaved Length and ROI. GSPS graphics and TID 1500 measurements
of other systems among the loaded files are drawn read-only, naming the system
(``desktop.annotation_foreign``). Labels are placed by ``core.annotations.labels`` (at most
``MAX_LABELS`` on one image) and kept while nothing they depend on changes. The annotations of
the image a study opens on are read ahead in a short thread, so it is painted with them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QPointF, Signal
from PySide6.QtGui import QAction, QFontMetrics, QKeySequence, QPainter
from PySide6.QtWidgets import QInputDialog, QToolBar, QWidget

from core.annotations import compute
from core.annotations.labels import LabelRequest, Rect, place_labels
from core.annotations.model import (
    AcquiredImage,
    Annotation,
    AnnotationError,
    ImageRef,
    Kind,
    PlaneImage,
    Point,
)
from core.annotations.session import AnnotationSession, SessionOnly
from core.app.annotations import WRITE
from core.imaging.model import Frame
from core.viewer.state import ViewerState
from core.viewer.transform import ViewGeometry, screen_to_image, view_matrix
from desktop import annotation_tools as tools
from desktop.viewport_widget import ViewportWidget

if TYPE_CHECKING:
    from core.app.workstation import Workstation
    from desktop.mpr_cell import MprCell
    from desktop.workers import JobContext, JobRunner

log = logging.getLogger(__name__)

#: A study's first annotation may be drawn before the window's audit job has recorded the study
#: in the local database (core.app.annotations needs it to name the patient): retried this long.
STUDY_WAIT_S = 10.0
#: At most this many labels on one image (placed in the paint: a few ms); a more crowded
#: image labels the selected, the dragged and the top-left most and says how many are not.
MAX_LABELS = 60


@dataclass
class Where:
    """The image a widget shows now and how its pixels map to the widget's."""

    study_uid: str
    series_uid: str
    image: ImageRef
    frame: Frame | None
    to_screen: Callable[[Point], tuple[float, float]]  # image (row, col) -> widget (x, y)
    to_image: Callable[[tuple[float, float]], Point]


def _study_of(state: ViewerState) -> tuple[str, str] | None:
    series = state.series
    if series is None:
        return None
    ctx = state.context()
    study = ctx[1].study_instance_uid if ctx is not None else ""
    if not study and series.instances:
        study = series.instances[0].study_instance_uid
    return (study, series.series_instance_uid) if study else None


def _mapping(g: ViewGeometry) -> tuple[Any, Any]:
    m = view_matrix(g)  # once: hundreds of points are mapped per paint
    a, b, c, d, e, f = (float(m[0, 0]), float(m[0, 1]), float(m[0, 2]), float(m[1, 0]),
                        float(m[1, 1]), float(m[1, 2]))  # fmt: skip

    def to_screen(q: Point) -> tuple[float, float]:
        return (a * q[1] + b * q[0] + c, d * q[1] + e * q[0] + f)

    def to_image(pos: tuple[float, float]) -> Point:
        x, y = screen_to_image(g, pos)
        return (y, x)

    return to_screen, to_image


def where_acquired(w: ViewportWidget) -> Where | None:
    """The acquired frame a viewport shows (None while it shows another slice's pixels)."""
    ids = _study_of(w.state)
    ref = w.state.current_slice()
    frame = w.state.current_frame()
    if ids is None or ref is None or frame is None:
        return None
    spacing = ref.instance.pixel_spacing or frame.pixel_spacing
    if spacing is not None and not all(v > 0 for v in spacing):
        spacing = None  # "0\\0" says nothing: measured in pixels, as core.annotations says
    image = AcquiredImage(ref.instance.sop_instance_uid, ref.frame, spacing)
    to_screen, to_image = _mapping(w.geometry_for(frame))
    return Where(ids[0], ids[1], image, frame, to_screen, to_image)


def where_reformat(cell: MprCell) -> Where | None:
    """The reformatted plane an MPR cell shows, with its frame of reference."""
    ids = _study_of(cell.state)
    view, g = cell.view, cell.view_geometry()
    if ids is None or view is None or g is None or cell.state.series is None:
        return None
    instances = cell.state.series.instances
    for_uid = instances[0].frame_of_reference_uid if instances else ""
    image = PlaneImage.from_plane(view.plane(), for_uid)
    to_screen, to_image = _mapping(g)
    return Where(ids[0], ids[1], image, cell.current_frame(), to_screen, to_image)


def on_image(a: Annotation, image: ImageRef) -> tuple[Point, ...] | None:
    """The annotation's points in ``image``'s grid when it is drawn there, else None."""
    if isinstance(image, AcquiredImage):
        mine = a.image
        if isinstance(mine, AcquiredImage) and (mine.sop_instance_uid, mine.frame) == (
            image.sop_instance_uid,
            image.frame,
        ):
            return a.points
        return None
    if isinstance(a.image, PlaneImage) and a.image.shows(image):
        return a.image.map_points(a.points, image)
    return None


def to_own_grid(a: Annotation, image: ImageRef, points: tuple[Point, ...]) -> tuple[Point, ...]:
    """Points drawn in ``image``'s grid back in the grid the annotation was made in."""
    if isinstance(image, PlaneImage) and isinstance(a.image, PlaneImage):
        return image.map_points(points, a.image)
    return points


class _Writer(QObject):
    """The one queue of steps to the store: appended on the GUI thread, drained in order by one
    JobRunner job at a time (a job is started when the queue was idle)."""

    failed = Signal(str)

    def __init__(self, runner: JobRunner, parent: QObject) -> None:
        super().__init__(parent)
        self.runner = runner
        self._steps: list[tuple[str, Callable[[], object]]] = []
        self._lock = threading.Lock()
        self._draining = False
        self.done = 0  # steps finished (tests, benchmarks)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._steps) + int(self._draining)

    def submit(self, name: str, step: Callable[[], object]) -> None:
        with self._lock:
            self._steps.append((name, step))
            if self._draining:
                return
            self._draining = True
        try:
            self.runner.start("Save annotations", self._drain)
        except RuntimeError:  # the window is closing: write it here rather than lose it
            self._drain(None)

    def _drain(self, _ctx: JobContext | None) -> None:
        while True:
            with self._lock:
                if not self._steps:
                    self._draining = False
                    return
                name, step = self._steps.pop(0)
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - every failure is told, none stops the queue
                log.warning("annotation step %s failed: %s", name, exc)
                self.failed.emit(f"Annotation not saved ({name}): {exc}")
            self.done += 1


class AnnotationLayer(QObject):
    """See the module docstring. ``workstation`` None: a bare window, annotations live for the
    session only (``SessionOnly``)."""

    changed = Signal()  # what is shown changed (repaint)
    message = Signal(str)  # for the status bar
    _stepped = Signal(str, object, bool)  # (what, annotation, deleted), from the worker
    _loaded = Signal(str, list)  # (study uid, annotations), from the worker

    def __init__(self, runner: JobRunner, workstation: Workstation | None, parent: QObject) -> None:
        super().__init__(parent)
        self.ws = workstation
        self.author = workstation.actor.user if workstation is not None else "local"
        user = workstation.session.user if workstation is not None else None
        #: whether this user's role may annotate (core.app.annotations.WRITE); checked again,
        #: with the audit, by every use case
        self.may_write = workstation is None or (user is not None and user.can(WRITE))
        self.writer = _Writer(runner, self)
        self.writer.failed.connect(self._failed)
        self.sessions: dict[str, AnnotationSession] = {}
        self._session_lock = threading.Lock()
        self._requested: set[str] = set()
        self._ahead: list[Annotation] = []  # read ahead for the first image, not yet shown
        self.loaded: set[str] = set()  # studies whose stored annotations are shown
        self.shown: dict[str, Annotation] = {}
        self.selected: str | None = None
        self.last_study = ""
        self.widgets: list[QWidget] = []
        self.foreign: Any = None  # desktop.annotation_foreign.ForeignMarks, when installed
        self.grid: Any = None  # the window's ViewportGrid: a press makes its cell active
        self.text_dialog: QInputDialog | None = None
        self.undo_action: QAction | None = None  # set by install_annotations
        self.redo_action: QAction | None = None
        self.dragging: dict[str, Any] | None = None
        self.drawing: dict[str, Any] | None = None  # a click tool's points so far
        self._painted: dict[int, list[tuple[Annotation, tuple[Point, ...], Rect]]] = {}
        self._lines: dict[tuple[Any, ...], list[str]] = {}
        self._placed: dict[int, tuple[Any, dict[str, Rect]]] = {}  # per widget: key, rects
        from desktop.annotation_input import AnnotationInput

        self.input = AnnotationInput(self)
        self._stepped.connect(self._on_step)
        self._loaded.connect(self._on_loaded)

    # --- sessions (worker side) -------------------------------------------------------------
    def _session(self, study_uid: str) -> AnnotationSession:
        """The study's session, opened here (in the writer's job) on first use."""
        with self._session_lock:
            found = self.sessions.get(study_uid)
            if found is not None:
                return found
        if self.ws is None:
            session = AnnotationSession(SessionOnly(self.author), self.author)
        else:
            from core.app.annotations import open_session

            session = open_session(self.ws, study_uid)
        session.listen(self._stepped.emit)
        with self._session_lock:
            self.sessions.setdefault(study_uid, session)
            return self.sessions[study_uid]

    def _run(self, study_uid: str, what: str, step: Callable[[AnnotationSession], object]) -> None:
        def call() -> object:
            from core.app.annotations import StudyNotRecorded

            session = self._session(study_uid)
            # the study may be recorded a moment later (in a job): wait for it in the writer's
            # job, never on the GUI thread (a step written there while the window closes)
            on_gui = threading.current_thread() is threading.main_thread()
            deadline = time.monotonic() + (0.0 if on_gui else STUDY_WAIT_S)
            while True:
                try:
                    return step(session)
                except StudyNotRecorded:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

        self.writer.submit(what, call)

    def require(self, study_uid: str, first: AcquiredImage | None = None) -> None:
        """Show the study's stored annotations (read in the writer's queue, so before any
        change drawn after this call). Those of ``first``, the image about to be shown, are
        read first by an indexed query, so that image is painted with them."""
        if not study_uid or study_uid in self._requested:
            return
        self._requested.add(study_uid)

        if first is not None and self.ws is not None:
            # its own short thread: when a study opens, the shared pool is busy decoding, and
            # this indexed read (about a millisecond) must not wait behind those jobs
            threading.Thread(
                target=self._read_first, args=(study_uid, first), daemon=True, name="annotations"
            ).start()

        def load() -> object:
            found = self._session(study_uid).all()
            self._loaded.emit(study_uid, found)
            return found

        self.writer.submit("load", load)

    def _read_first(self, study_uid: str, image: AcquiredImage) -> None:
        from core.app.annotations import list_annotations_on

        assert self.ws is not None
        try:
            found = list_annotations_on(self.ws, study_uid, image)
            with self._session_lock:
                self._ahead.extend(found)  # taken by the next paint, if it comes first
            self._loaded.emit("", found)
        except Exception as exc:  # noqa: BLE001 - the study's full read follows and says why
            log.info("annotations of the first image not read ahead: %s", exc)

    # --- GUI side -------------------------------------------------------------------------
    def _on_loaded(self, study_uid: str, found: list[Annotation]) -> None:
        """``study_uid`` "": the first image's, ahead of the study's (they are not all yet)."""
        for a in found:
            self.shown.setdefault(a.uid, a)
        if study_uid:
            self.loaded.add(study_uid)
        self.repaint()

    def _on_step(self, _what: str, a: Annotation, deleted: bool) -> None:
        if deleted:
            self.shown.pop(a.uid, None)
            if self.selected == a.uid:
                self.selected = None
        else:
            self.shown[a.uid] = a
        self._name_steps()
        self.repaint()

    def _name_steps(self) -> None:
        """Undo and Redo say which step they take (their menu entries' tool tips)."""
        session = self.sessions.get(self.last_study)
        history = session.history if session is not None else None
        for action, name in (
            (self.undo_action, history.undo_name if history else ""),
            (self.redo_action, history.redo_name if history else ""),
        ):
            if action is not None:
                verb = "Undo" if action is self.undo_action else "Redo"
                action.setStatusTip(f"{verb} {name}" if name else f"Nothing to {verb.lower()}")
                action.setToolTip(action.statusTip())

    def _failed(self, text: str) -> None:
        """A refused or failed step: say so and show what the store holds."""
        self.message.emit(text)
        with self._session_lock:
            sessions = list(self.sessions.values())
        for session in sessions:
            for a in session.all():
                self.shown[a.uid] = a
        live = {a.uid for s in sessions for a in s.all()}
        for uid in [u for u in self.shown if u not in live]:
            del self.shown[uid]
        self.repaint()

    def repaint(self) -> None:
        for w in self.widgets:
            w.update()
        self.changed.emit()

    def editable(self, a: Annotation) -> bool:
        return a.author == self.author

    # changes: shown at once, stored in order by the writer
    def create(self, a: Annotation) -> None:
        a = replace(a, author=self.author)
        self.shown[a.uid] = a
        self.selected = a.uid
        self.last_study = a.study_uid
        self._run(a.study_uid, "create", lambda s: s.create(a))
        self.repaint()

    def update(self, before: Annotation, after: Annotation, what: str) -> None:
        self.shown[after.uid] = after
        self.last_study = after.study_uid
        uid = after.uid
        if what == "move":
            d_row = after.points[0][0] - before.points[0][0]
            d_col = after.points[0][1] - before.points[0][1]
            self._run(after.study_uid, what, lambda s: s.move(uid, d_row, d_col))
        elif what == "move label":
            self._run(after.study_uid, what, lambda s: s.move_label(uid, after.label_pos))
        else:
            self._run(
                after.study_uid,
                what,
                lambda s: s.edit(uid, points=after.points, text=after.text),
            )
        self.repaint()

    def delete(self, uid: str) -> bool:
        a = self.shown.get(uid)
        if a is None:
            return False
        if not self.editable(a):
            self.message.emit(f"{a.what} was drawn by '{a.author}': it is read-only")
            return False
        del self.shown[uid]
        if self.selected == uid:
            self.selected = None
        self.last_study = a.study_uid
        self._run(a.study_uid, "delete", lambda s: s.delete(uid))
        self.repaint()
        return True

    def active_where(self) -> Where | None:
        """The image on screen in the grid's active viewport: its reformat when it shows one,
        else its acquired frame (None without a grid or an image)."""
        grid = self.grid
        if grid is None or not grid.widgets:
            return None
        cell = grid.mpr.get(grid.model.active)
        return where_reformat(cell) if cell is not None else where_acquired(grid.active_widget())

    def mine_on(self, image: ImageRef) -> list[Annotation]:
        """This user's annotations drawn on ``image``: what Clear deletes (others' stay)."""
        return [a for a, _ in self.on(image) if self.editable(a)]

    def delete_each(self, uids: list[str]) -> int:
        """Delete each of ``uids`` still shown, one ``delete`` at a time: each a step of its
        own (stored, audited and undone like the Delete key's). Returns how many went."""
        gone = sum(1 for uid in uids if uid in self.shown and self.delete(uid))
        if gone > 1:
            self.message.emit(f"{gone} annotations deleted (Undo brings them back one at a time)")
        return gone

    def undo(self) -> None:
        if self.last_study:
            self._run(self.last_study, "undo", lambda s: s.undo())

    def redo(self) -> None:
        if self.last_study:
            self._run(self.last_study, "redo", lambda s: s.redo())

    def edit_text(self, uid: str, text: str) -> None:
        a = self.shown.get(uid)
        if a is None or not self.editable(a) or text == a.text:
            return
        try:
            after = a.edited(text=text)
        except AnnotationError as exc:
            self.message.emit(str(exc))
            return
        self.update(a, after, "edit")

    # --- attaching to widgets -------------------------------------------------------------
    def attach(self, w: ViewportWidget) -> None:
        """Draw over ``w`` and take its mouse and keys (each viewport of the grid)."""
        if any(x is w for x in self.widgets):
            return
        self.widgets.append(w)
        w.overlays.append(partial(self._paint_acquired, w))
        w.installEventFilter(self.input)
        w.destroyed.connect(lambda *_: self._forget(w))
        from desktop.grid_cells import tie

        tie(w, w.state.series_changed, lambda *_: self._series_shown(w.state))
        self._series_shown(w.state)

    def attach_reformat(self, cell: MprCell) -> None:
        if any(x is cell for x in self.widgets):
            return
        self.widgets.append(cell)
        cell.overlays.append(partial(self._paint_reformat, cell))
        cell.installEventFilter(self.input)
        cell.destroyed.connect(lambda *_: self._forget(cell))

    def _paint_acquired(self, w: ViewportWidget, p: QPainter, *_: object) -> None:
        self.paint(w, p, where_acquired(w))

    def _paint_reformat(self, cell: MprCell, p: QPainter, *_: object) -> None:
        self.paint(cell, p, where_reformat(cell))

    def scan_reformats(self) -> None:
        """Attach to the MPR cells over the viewports (made and dropped by the grid)."""
        from desktop.mpr_cell import MprCell

        for w in list(self.widgets):
            if isinstance(w, ViewportWidget):
                for cell in w.findChildren(MprCell):
                    self.attach_reformat(cell)

    def _forget(self, w: QObject) -> None:
        self.widgets = [x for x in self.widgets if x is not w]
        for cache in (self._painted, self._placed):
            cache.pop(id(w), None)

    def _series_shown(self, state: ViewerState) -> None:
        ids = _study_of(state)
        if ids is not None:
            ref = state.current_slice()
            first = AcquiredImage(ref.instance.sop_instance_uid, ref.frame) if ref else None
            self.require(ids[0], first)
            self.last_study = self.last_study or ids[0]

    def where(self, w: QObject) -> Where | None:
        if isinstance(w, ViewportWidget):
            return where_acquired(w)
        return where_reformat(w)  # type: ignore[arg-type]

    # --- painting -------------------------------------------------------------------------
    def on(self, image: ImageRef) -> list[tuple[Annotation, tuple[Point, ...]]]:
        found = []
        for a in self.shown.values():
            pts = on_image(a, image)
            if pts is not None:
                found.append((a, pts))
        return found

    def lines(self, a: Annotation, frame: Frame | None) -> list[str]:
        key = (a.uid, a.points, a.text, id(frame) if frame is not None else None)
        found = self._lines.get(key)
        if found is None:
            values = frame.values if frame is not None else None
            units = frame.units if frame is not None else ""
            try:
                found = compute.label_lines(a, values, units)
            except (AnnotationError, ValueError) as exc:
                found = [str(exc)]
            if not self.editable(a):
                found = [*found, f"by {a.author}"]
            if len(self._lines) > 5000:
                self._lines.clear()
            self._lines[key] = found
        return found

    def paint(self, w: QWidget, p: QPainter, at: Where | None) -> None:
        """Every annotation on the image ``w`` shows, their labels placed without overlap."""
        if at is None:
            self._painted[id(w)] = []
            return
        if self._ahead:  # the first image's annotations, read while its pixels decoded
            with self._session_lock:
                ahead, self._ahead = self._ahead, []
            for a in ahead:
                self.shown.setdefault(a.uid, a)
        items = self.on(at.image)
        d = self.dragging
        if d is not None and d.get("widget") is w and d.get("preview") is not None:
            a = d["preview"]
            items = [(x, pts) for x, pts in items if x.uid != a.uid]
            items.append((a, on_image(a, at.image) or a.points))
        fm = p.fontMetrics()
        speaks = self._labelled(at, items)  # measured only where a label will say it
        texts = {a.uid: self.lines(a, at.frame) if a.uid in speaks else [] for a, _ in items}
        rects = self._labels(w, at, items, texts, fm)
        painted = []
        for a, pts in items:
            colour = tools.OWN_COLOUR if self.editable(a) else tools.OTHER_COLOUR
            chosen = a.uid == self.selected
            tools.paint_shape(p, a.kind, pts, at.to_screen, colour, chosen)
            rect = rects.get(a.uid)
            if rect is not None:
                tools.paint_label(p, rect, texts[a.uid], colour, chosen)
            painted.append((a, pts, rect or Rect(0, 0, 0, 0)))
        self._painted[id(w)] = painted
        hidden = sum(1 for a, _ in items if a.kind is not Kind.ARROW or a.text) - len(rects)
        if hidden > 0:
            note = f"{hidden} annotation labels not shown: zoom in, or select one"
            p.setPen(tools.OWN_COLOUR)
            p.drawText(QPointF(8.0, w.height() - 28.0 - fm.height()), note)
        drawing = self.drawing
        if drawing is not None and drawing["widget"] is w:
            sketch = [*drawing["points"], drawing["cursor"]]
            tools.paint_shape(p, drawing["kind"], sketch, at.to_screen, tools.OWN_COLOUR)
        if self.foreign is not None:
            self.foreign.paint(p, at, rects.values())

    def _labelled(self, at: Where, items: list[tuple[Annotation, tuple[Point, ...]]]) -> set[str]:
        """The annotations that get a label: every one that says something, or on a crowded
        image (more than ``MAX_LABELS``) the selected, the dragged and the top-left most; the
        paint says how many are not (zoom in, or select one)."""
        speaking = [(a, pts) for a, pts in items if a.kind is not Kind.ARROW or a.text]
        if len(speaking) <= MAX_LABELS:
            return {a.uid for a, _ in speaking}

        def rank(item: tuple[Annotation, tuple[Point, ...]]) -> tuple[int, float, float]:
            a, pts = item
            corners = [at.to_screen(q) for q in pts]
            first = a.uid == self.selected or a.label_pos is not None
            return (0 if first else 1, min(y for _, y in corners), min(x for x, _ in corners))

        return {a.uid for a, _ in sorted(speaking, key=rank)[:MAX_LABELS]}

    def _labels(
        self,
        w: QWidget,
        at: Where,
        items: list[tuple[Annotation, tuple[Point, ...]]],
        texts: dict[str, list[str]],
        fm: QFontMetrics,
    ) -> dict[str, Rect]:
        """The label rectangles of the image shown (``core.annotations.labels``), the same as
        the last paint's while nothing they depend on changed (the key is every input)."""

        def to_view(q: Point) -> tuple[float, float]:
            x, y = at.to_screen(q)
            return (y, x)

        requests = []
        for a, pts in items:
            if not texts[a.uid]:
                continue
            corners = [to_view(q) for q in pts]
            ys, xs = [c[0] for c in corners], [c[1] for c in corners]
            label = self._local_label(a, at.image)
            pinned = to_view(label) if label is not None else None
            size = tools.label_size(fm, texts[a.uid])
            requests.append(
                LabelRequest(a.uid, Rect(min(ys), min(xs), max(ys), max(xs)), size, pinned)
            )
        bounds = Rect(0.0, 0.0, float(w.height()), float(w.width()))
        key = (bounds, tuple(requests))
        last = self._placed.get(id(w))
        if last is not None and last[0] == key:
            return last[1]
        rects = place_labels(requests, bounds)
        self._placed[id(w)] = (key, rects)
        return rects

    def _local_label(self, a: Annotation, image: ImageRef) -> Point | None:
        if a.label_pos is None:
            return None
        if isinstance(image, PlaneImage) and isinstance(a.image, PlaneImage):
            return a.image.map_points([a.label_pos], image)[0]
        return a.label_pos

    def painted_items(self, w: QObject) -> list[tuple[Annotation, tuple[Point, ...], Rect]]:
        """What the last paint of ``w`` drew: each annotation, its points in the image shown
        and its label's rectangle (empty when it has none): what the mouse can hit."""
        return self._painted.get(id(w), [])

    def painted_on(self, w: QWidget) -> list[Annotation]:
        """The annotations the last paint of ``w`` drew (tests)."""
        return [a for a, _, _ in self._painted.get(id(w), [])]

    def label_rect(self, w: QWidget, uid: str) -> Rect | None:
        for a, _, rect in self._painted.get(id(w), []):
            if a.uid == uid:
                return rect
        return None


def _toolbar(window: Any) -> QToolBar | None:
    found = window.findChild(QToolBar, "toolsToolbar")
    return found if isinstance(found, QToolBar) else None


def install_annotations(window: Any) -> AnnotationLayer:
    """Everything annotations need in a built main window, in one call: the layer (on the
    window's profile, or session-only without one), the tools in the Tools toolbar, group and
    menu with their keys, Undo/Redo (Ctrl+Z; Ctrl+Shift+Z and Ctrl+Y), Delete in the Tools
    menu, the layer over every viewport and reformat of the grid (now and later), other systems'
    GSPS/TID 1500 marks, and the status bar told of refused steps. Returns the layer; a
    second call returns the same one (nothing is added twice)."""
    found = getattr(window, "annotations", None)
    if isinstance(found, AnnotationLayer):
        return found
    from desktop.annotation_foreign import ForeignMarks
    from desktop.grid_cells import GridCells

    layer = AnnotationLayer(window.runner, window.workstation, window)
    layer.grid = window.grid
    window.annotations = layer
    layer.message.connect(lambda text: window.statusBar().showMessage(text, 8000))
    group = None
    known = getattr(window, "actions_by_name", {})
    if "Length" in known:
        group = known["Length"].actionGroup()
    bar = _toolbar(window)
    menu = window.menus.tools if getattr(window, "menus", None) is not None else None
    added: list[QAction] = []
    for spec in tools.TOOLS:
        action = QAction(spec.label, window)
        action.setShortcut(QKeySequence(spec.key))
        action.setCheckable(True)
        action.setToolTip(f"{spec.tip} ({spec.key})")
        action.toggled.connect(lambda on, k=spec.kind: window.set_tool(k.value) if on else None)
        window.addAction(action)
        if group is not None:
            group.addAction(action)
        if bar is not None:
            bar.addAction(action)
        if menu is not None:
            menu.addAction(action)
        known[spec.label] = action
        added.append(action)
    for name, keys, slot in (
        ("Undo annotation", ["Ctrl+Z"], layer.undo),
        ("Redo annotation", ["Ctrl+Shift+Z", "Ctrl+Y"], layer.redo),
        ("Delete annotation", [], lambda: layer.selected and layer.delete(layer.selected)),
    ):
        action = QAction(name, window)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.triggered.connect(slot)
        window.addAction(action)
        if menu is not None:
            menu.addAction(action)
        known[name] = action
    layer.undo_action, layer.redo_action = known["Undo annotation"], known["Redo annotation"]
    if window.workstation is not None:
        from desktop.permissions import gate_action

        user = window.workstation.session.user
        for action in [*added, known["Undo annotation"], known["Redo annotation"]]:
            gate_action(action, user, WRITE)
    layer.tool_actions = added  # type: ignore[attr-defined]

    cells = GridCells(window.grid)
    cells.added.connect(layer.attach)
    cells.start()
    layer.cells = cells  # type: ignore[attr-defined]
    layer.scan_reformats()
    layer.foreign = ForeignMarks(window, layer)
    return layer
