"""Drives loading: indexing, progressive series loads, thumbnails and tag headers, in workers.

The GUI thread only receives finished pieces (an index, one decoded slice, a thumbnail) and
puts them into ``ViewerState``. Opening another series cancels the load in progress; a slice
scrolled to before it has loaded shows its nearest loaded neighbour until it arrives.

Opening a folder with nothing on screen shows a *provisional* first image while the headers are
still being indexed (``core.imaging.progressive``): the indexing job decodes one frame of the
middle file before it reads the other headers and reports it as progress, so it reaches the GUI
before the index does. When the index arrives, the series' slice list is rebuilt in geometric
order (``ViewerState.refresh_slices``: the image on screen, W/L, zoom and measurements stay) and
only the missing slices load.

The GUI thread shares the interpreter with the loading threads, and each queued signal it
handles has to win the interpreter lock back from a busy worker (up to the 5 ms switch interval
each time). So the workers send few, larger messages: decoded slices arrive in batches
(``batched``: the first slice at once, then at most every ``BATCH_S``), indexing progress at
most ``PROGRESS_S`` apart, and the indexing pauses while the provisional image is painted
(``FirstImage.shown``). A slice-per-signal load used to stall the event loop 20-60 ms.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from core.imaging.model import Frame, LoadError, Series, SliceRef, StudyIndex
from core.imaging.volume import first_slice, slice_refs
from core.viewer.state import ViewerState
from desktop import jobs
from desktop.workers import Job, JobContext, JobRunner

if TYPE_CHECKING:  # pydicom loads on first use, not at start-up
    from core.imaging.progressive import FirstImage
    from core.viewer.tags import TagRow

log = logging.getLogger(__name__)

BATCH_S = 0.04  # decoded slices reach the GUI thread at most this often (after the first)
PROGRESS_S = 0.1  # indexing progress reaches it at most this often
RELEASE_WAIT_S = 1.0  # longest wait for the previous series' frames to be freed


def batched(items: Iterator[Any], interval: float = BATCH_S) -> Iterator[list[Any]]:
    """Lists of ``items``: the first alone and at once, then whatever arrived in ``interval``
    seconds. Items before an error are yielded before the error propagates."""
    batch: list[Any] = []
    last: float | None = None
    while True:
        try:
            item = next(items)
        except StopIteration:
            break
        except Exception:
            if batch:
                yield batch
            raise
        batch.append(item)
        now = time.monotonic()
        if last is None or now - last >= interval:
            yield batch
            batch, last = [], now
    if batch:
        yield batch


def progressive_index_job(
    ctx: JobContext, paths: Sequence[str], workers: int | None, want_first: bool
) -> StudyIndex:
    """Index ``paths``; with ``want_first``, first report a decoded ``FirstImage`` (progress)."""
    from core.imaging.index import build_index
    from core.imaging.progressive import first_image

    def on_files(files: list[str]) -> None:
        if not want_first or not files or ctx.cancelled:
            return
        try:
            first = first_image(files, cancel=ctx.cancel_event)
        except Exception:  # a provisional image is optional: never let it stop the indexing
            log.exception("no provisional first image for %d file(s)", len(files))
            return
        if first is not None:
            ctx.report(first)
            first.wait_shown()  # let the GUI paint it before the headers take the CPU

    last = [0.0]

    def progress(*args: Any) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_S or (len(args) >= 2 and args[0] == args[1]):
            last[0] = now
            ctx.report(args)

    return build_index(
        list(paths), workers=workers, progress=progress, cancel=ctx.cancel_event, on_files=on_files
    )


def slices_job(
    ctx: JobContext,
    refs: Sequence[SliceRef],
    order: Sequence[int],
    workers: int | None = None,
    shown: threading.Event | None = None,
) -> Iterator[list[tuple[int, Frame]]]:
    """Yield batches of ``(slice index, Frame)`` for ``refs[i]``, i in ``order``.

    With ``shown``, ``order[0]`` is loaded alone and the rest waits (at most ``SHOWN_WAIT_S``)
    until the viewer has painted it: the first paint then has the interpreter to itself. The
    bulk of the load also waits for the previous series' frames to be freed
    (``core.viewer.release``), which would otherwise slow it down by half. Failed
    slices of both stages are raised together (``SeriesLoadError``) after all good ones."""
    from core.imaging.progressive import SHOWN_WAIT_S
    from core.imaging.volume import SeriesLoadError, iter_load_slices
    from core.viewer.release import wait_released

    stages = [order[:1], order[1:]] if shown is not None else [order]
    errors: list[SeriesLoadError] = []
    for n, stage in enumerate(stages):
        if n and shown is not None:
            shown.wait(SHOWN_WAIT_S)
        if len(stage) > 1:
            wait_released(RELEASE_WAIT_S)  # the previous series' frames, freed meanwhile
        if ctx.cancelled:
            return
        items = iter_load_slices(refs, stage, workers=workers, cancel=ctx.cancel_event)
        try:
            for batch in batched(items):
                yield batch
                if ctx.cancelled:
                    return
        except SeriesLoadError as exc:
            errors.append(exc)
    if errors:
        raise SeriesLoadError(
            [e for exc in errors for e in exc.errors], [i for exc in errors for i in exc.indices]
        )


class ViewerController(QObject):
    status = Signal(str)
    series_loaded = Signal(str)  # series uid, every slice decoded
    tags_loaded = Signal(object)  # list[TagRow]
    index_loaded = Signal(object)  # the StudyIndex that was just added
    busy_changed = Signal(bool)
    # a provisional first image is on screen (series uid) and the folder is still being indexed
    first_image_shown = Signal(str)

    def __init__(
        self,
        state: ViewerState,
        runner: JobRunner,
        parent: QObject | None = None,
        load_workers: int | None = None,
    ) -> None:
        super().__init__(parent)
        self.state = state
        self.runner = runner
        # one core stays free for the GUI thread, so the event loop never waits on a busy CPU
        self.load_workers = load_workers or max(1, (os.cpu_count() or 2) - 1)
        self.series_load: Job | None = None
        self.index_jobs: list[Job] = []
        self.header_job: Job | None = None
        self.thumb_jobs: list[Job] = []
        self.timings: dict[str, float] = {}
        # the series shown from a provisional first image, until its indexing job ends
        self.provisional: Series | None = None
        self._provisional_job: Job | None = None
        self._first_shown: FirstImage | None = None  # its indexing waits for the paint
        self._shown_event: threading.Event | None = None  # a series load waits for the paint
        self._header_timer = QTimer(self, singleShot=True, interval=120)
        self._header_timer.timeout.connect(self._load_header)
        state.viewport.events.slice_index.connect(lambda _i: self._header_timer.start())
        state.hide_phi_changed.connect(lambda _h: self._header_timer.start())
        state.frame_shown.connect(lambda _i: self.first_image_painted())

    # --- opening -------------------------------------------------------------------------
    def open_paths(self, paths: Sequence[str]) -> Job | None:
        paths = [str(p) for p in paths if str(p)]
        if not paths or self.runner.closed:
            return None
        self.timings["open"] = time.perf_counter()
        for key in ("first_image", "indexed"):
            self.timings.pop(key, None)
        self.status.emit(f"Indexing {len(paths)} path(s)…")
        want_first = self.state.series is None and self.provisional is None
        cell: list[Job] = []  # callbacks run later on this thread, once the job is known
        job = self.runner.start(
            "index files",
            progressive_index_job,
            paths,
            self.load_workers,
            want_first,
            on_progress=lambda args: self._on_index_progress(args, cell[0]),
            on_result=lambda index: self._on_index(index, cell[0]),
            on_error=lambda exc: self.state.add_errors([LoadError(", ".join(paths), str(exc))]),
            on_finished=self._index_finished,
        )
        cell.append(job)
        self.index_jobs.append(job)
        self.busy_changed.emit(True)
        return job

    @property
    def indexing(self) -> bool:
        """True until every indexing job has finished (a provisional image may be shown)."""
        return bool(self.index_jobs)

    def _on_index_progress(self, args: Any, job: Job | None = None) -> None:
        if not isinstance(args, tuple):
            from core.imaging.progressive import FirstImage

            if isinstance(args, FirstImage):
                self._show_first_image(args, job)
            return
        if len(args) < 2:
            return
        # already throttled where it is sent (progressive_index_job: at most one per PROGRESS_S)
        self.status.emit(f"Indexing: {args[0]}/{args[1]} files")

    def first_image_painted(self) -> None:
        """The viewport painted its slice: a load waiting for that paint goes on (module doc)."""
        if self._shown_event is not None:
            self._shown_event.set()
            self._shown_event = None
        if self._first_shown is not None:
            self._first_shown.shown.set()
            self._first_shown = None

    def _show_first_image(self, first: FirstImage, job: Job | None) -> None:
        """Show a provisional first image (indexing goes on); ignored if a series is shown."""
        if self.state.series is not None or self.provisional is not None or self.runner.closed:
            first.shown.set()
            return
        self._first_shown = first
        try:
            self._put_first_image(first, job)
        finally:
            if self.state.current_frame() is not first.frame:  # nothing new to paint
                self.first_image_painted()

    def _put_first_image(self, first: FirstImage, job: Job | None) -> None:
        self.state.add_index(first.index)
        try:
            _p, _st, series = self.state.find_series(first.series.series_instance_uid)
        except KeyError:
            return
        self.cancel_series_load()
        now = time.perf_counter()
        self.timings["series_open"] = now
        self.timings.pop("first_frame", None)
        self.timings.pop("series_loaded", None)
        self.state.set_series(series)
        self.provisional, self._provisional_job = series, job
        where = next(
            (
                i
                for i, r in enumerate(self.state.slices)
                if r.instance.path == first.instance.path and r.frame == first.frame_number
            ),
            None,
        )
        if where is None:  # cannot happen for a one-instance index; the full load covers it
            return
        self.state.set_slice(where)
        self.timings["first_frame"] = self.timings["first_image"] = time.perf_counter()
        self.state.set_frame(where, first.frame)
        self.status.emit("Showing the first image; indexing continues…")
        self.first_image_shown.emit(series.series_instance_uid)

    def _index_finished(self, job: Job) -> None:
        self._job_done(self.index_jobs, job)
        if self._provisional_job is job and self.provisional is not None:
            # no index arrived (cancelled or failed): keep the image, load what is known
            self._end_provisional()
            if not job.cancelled:
                self.refresh_series()

    def _end_provisional(self) -> Series | None:
        prov, self.provisional, self._provisional_job = self.provisional, None, None
        return prov

    def _on_index(self, index: StudyIndex, job: Job | None = None) -> None:
        self.timings["indexed"] = time.perf_counter()
        new_series = [s for _p, _st, s in index.iter_series()]
        self.state.add_index(index)
        self.index_loaded.emit(index)
        n_err = len(index.errors)
        self.status.emit(
            f"Opened {len(new_series)} series"
            + (f"; {n_err} file(s) could not be read" if n_err else "")
        )
        prov = self._end_provisional() if job is not None and job is self._provisional_job else None
        current = self.state.series
        if current is not None and current is prov:
            best = self.pick_series(new_series)
            if (
                best is not None
                and best.series_instance_uid != current.series_instance_uid
                and best.frame_count > current.frame_count
                and not self.state.measurements
            ):
                # the provisional guess was a side series (a scout): show the main stack
                self.open_series(best.series_instance_uid)
            else:
                self.refresh_series()
        elif current is not None and len(slice_refs(current)) != self.state.slice_count:
            # the new files added slices to the series on screen: keep the view, load them
            self.refresh_series()
        elif current is not None and self._opened_another_study(index):
            best = self.pick_series(new_series)
            if best is not None and not self.state.measurements:
                self.open_series(best.series_instance_uid)  # the user opened it to read it
            elif best is not None:
                self.status.emit(
                    f"Opened {len(new_series)} series of another study; it is in "
                    "the study browser (the measurements on screen are kept)"
                )
        if self.state.series is None:
            best = self.pick_series(new_series)
            if best is not None:
                self.open_series(best.series_instance_uid)
        self.start_thumbnails(new_series)

    def _opened_another_study(self, index: StudyIndex) -> bool:
        """The new files are all of studies other than the one on screen (more series of the
        study being read, e.g. a PACS retrieve arriving in batches, keep the view)."""
        context = self.state.context()
        if context is None:
            return False
        studies = {study.study_instance_uid for _p, study, _s in index.iter_series()}
        return bool(studies) and context[1].study_instance_uid not in studies

    @staticmethod
    def pick_series(series: Sequence[Series]) -> Series | None:
        """The series to show first: the one with the most images (the main stack)."""
        with_images = [s for s in series if s.frame_count > 0]
        return max(with_images, key=lambda s: s.frame_count) if with_images else None

    # --- series ----------------------------------------------------------------------------
    def open_series(self, series_uid: str) -> Job | None:
        """Make a series current and load it progressively (cancels a load in progress)."""
        self.cancel_series_load()
        if self.runner.closed:
            return None
        _p, _st, series = self.state.find_series(series_uid)
        if self.provisional is not None and self.provisional is not series:
            self._end_provisional()  # the user chose another series while indexing
        self.timings["series_open"] = time.perf_counter()
        self.timings.pop("first_frame", None)
        self.timings.pop("series_loaded", None)
        refs = slice_refs(series)  # the slice list set_series makes, in the same order
        if not refs:
            self.state.set_series(series)
            self.status.emit(f"Series '{series.description}' has no images")
            return None
        # The load starts before the views react to the new series: their work (slider,
        # panels, overlay) overlaps the decoding of the first slice. Its results are queued
        # signals, handled after set_series.
        job = self._start_load(series, refs, first_slice(len(refs)), range(len(refs)), True)
        self.state.set_series(series)
        return job

    def _start_series_load(
        self, series: Series, name: str, func: Callable[..., Any], *args: Any
    ) -> Job:
        """Start a job that loads slices of ``series`` (the one on screen) and track it."""
        job = self.runner.start(
            f"load series '{series.description or name}'",
            func,
            *args,
            on_progress=partial(self._on_slice, series),
            on_result=partial(self._on_series_done, series),
            on_error=partial(self._on_series_error, series),
            on_finished=self._series_job_finished,
        )
        self.series_load = job
        self.busy_changed.emit(True)
        return job

    def refresh_series(self) -> Job | None:
        """Bring the series on screen up to date with its (re-sorted, grown) instance list:
        loaded slices, the slice on screen, W/L, zoom and measurements are kept; only the
        missing slices load, nearest to the current one first."""
        series = self.state.series
        if series is None or self.runner.closed:
            return None
        if self.series_load is not None:  # its slice indices are about to change
            self.series_load.cancel()
            self.series_load = None
        missing = self.state.refresh_slices()
        self._header_timer.start()
        if not missing:
            self._on_series_done(series)
            return None
        return self._load_missing(series, missing)

    def _load_missing(self, series: Series, missing: Sequence[int] | None = None) -> Job:
        """Load the slices not yet loaded (all when None), nearest to the one on screen first;
        when it is not on screen yet, it loads alone and is painted before the rest loads."""
        todo = range(self.state.slice_count) if missing is None else missing
        first_pending = self.state.current_frame() is None
        return self._start_load(
            series, self.state.slices, self.state.viewport.slice_index, todo, first_pending
        )

    def _start_load(
        self,
        series: Series,
        refs: Sequence[SliceRef],
        cur: int,
        todo: Sequence[int],
        first_pending: bool,
    ) -> Job:
        """Load ``todo`` of ``refs``, nearest to slice ``cur`` first; with ``first_pending``
        (slice ``cur`` is not on screen yet) it loads alone and is painted before the rest."""
        order = sorted(todo, key=lambda i: (abs(i - cur), i))
        shown = self._shown_event = threading.Event() if first_pending else None
        plain = [(r.instance, r.frame) for r in refs]
        return self._start_series_load(
            series, series.series_instance_uid, slices_job, plain, order, self.load_workers, shown
        )

    def _on_slice(self, series: Series, batch: list[tuple[int, Frame]]) -> None:
        if self.state.series is not series or not batch:
            return  # late slices of a series no longer shown
        if "first_frame" not in self.timings:
            self.timings["first_frame"] = time.perf_counter()
        self.state.set_frames(batch)

    def _on_series_done(self, series: Series, _result: object = None) -> None:
        if self.state.series is series and self.provisional is not series:
            self.timings["series_loaded"] = time.perf_counter()
            self.status.emit(
                f"Loaded {self.state.loaded_count} images of "
                f"'{series.description or series.modality}'"
            )
            self.series_loaded.emit(series.series_instance_uid)

    def _on_series_error(self, series: Series, exc: BaseException) -> None:
        """Slices that failed (the rest of the series is shown), or the whole load failing."""
        per_file = getattr(exc, "errors", None)  # core.imaging.volume.SeriesLoadError
        if isinstance(per_file, list) and per_file:
            self.state.add_errors(list(per_file))
            if self.state.series is series:
                for index, error in zip(getattr(exc, "indices", []), per_file, strict=False):
                    self.state.mark_failed(index, error.reason)
        else:
            self.state.add_errors(
                [
                    LoadError(
                        series.description or series.series_instance_uid,
                        f"series load failed: {exc}",
                    )
                ]
            )
            if self.state.series is series:
                for index, frame in enumerate(self.state.frames):
                    if frame is None:
                        self.state.mark_failed(index, f"series load failed: {exc}")
        if self.state.series is series:
            self.timings["series_loaded"] = time.perf_counter()
            self.series_loaded.emit(series.series_instance_uid)

    def _series_job_finished(self, job: Job) -> None:
        if self.series_load is job:
            self.series_load = None
        self.busy_changed.emit(self.busy)

    def cancel_series_load(self) -> None:
        if self.series_load is not None:
            self.series_load.cancel()
            self.status.emit("Series load cancelled")
            self.series_load = None

    def stop(self) -> None:
        """No more scheduled work (window closing); the runner then cancels what runs."""
        self._header_timer.stop()

    @property
    def busy(self) -> bool:
        return self.runner.active > 0

    # --- thumbnails and tags ---------------------------------------------------------------
    def start_thumbnails(self, series: Sequence[Series]) -> None:
        if not series:
            return
        job = self.runner.start(
            "thumbnails",
            jobs.thumbnails_job,
            list(series),
            on_progress=self._on_thumbnail,
            on_finished=lambda j: self._job_done(self.thumb_jobs, j),
        )
        self.thumb_jobs.append(job)

    thumbnail_ready = Signal(str, object)

    def _on_thumbnail(self, item: tuple[str, Any]) -> None:
        uid, result = item
        if isinstance(result, str):
            self.status.emit(f"No thumbnail for a series: {result}")
            return
        self.thumbnail_ready.emit(uid, result)

    def _load_header(self) -> None:
        ref = self.state.current_slice()
        if ref is None or self.runner.closed:
            return
        if self.header_job is not None:
            self.header_job.cancel()
        path = ref.instance.path
        self.header_job = self.runner.start(
            "read header",
            jobs.header_job,
            ref.instance,
            self.state.hide_phi,
            on_result=partial(self._on_header, path),
            on_error=lambda exc: self.tags_loaded.emit(exc),
        )

    def _on_header(self, path: str, rows: list[TagRow]) -> None:
        ref = self.state.current_slice()
        if ref is not None and ref.instance.path == path:
            self.tags_loaded.emit(rows)

    def _job_done(self, bucket: list[Job], job: Job) -> None:
        if job in bucket:
            bucket.remove(job)
        self.busy_changed.emit(self.busy)
