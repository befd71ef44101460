"""One shape for every background job: progress, result, error, cancel, finished.

A thin layer over ``superqt.utils.create_worker`` (QRunnables on the global QThreadPool).
A job function takes a ``JobContext`` first: it checks ``ctx.cancelled`` between steps and
either yields progress (generator jobs) or calls ``ctx.report(value)`` (for callback-style
APIs such as ``build_index(progress=...)``). Every error nobody else handles goes to one
``ErrorSink`` that shows it, so no thread fails silently. ``JobRunner.shutdown`` asks all
jobs to stop and waits for them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal
from superqt.utils import WorkerBase, create_worker

log = logging.getLogger(__name__)


class JobContext:
    """What a job function sees of its job: the cancel flag and a progress reporter."""

    def __init__(self, cancel_event: threading.Event, report: Callable[[object], None]) -> None:
        self.cancel_event = cancel_event
        self.report = report

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()


class ErrorSink(QObject):
    """Turns job errors into one visible message stream (status bar + errors panel)."""

    message = Signal(str, str)  # (job name, text)

    def report(self, job_name: str, error: BaseException | str) -> None:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        log.warning("job '%s' failed: %s", job_name, text)
        self.message.emit(job_name, text)


class _JobSignals(QObject):
    progress = Signal(object)
    result = Signal(object)
    error = Signal(object)
    finished = Signal()


class Job:
    """A started background job. Signals arrive on the GUI thread (queued connections)."""

    def __init__(
        self,
        name: str,
        worker: WorkerBase[Any],
        cancel_event: threading.Event,
        signals: _JobSignals,
    ) -> None:
        self.name = name
        self.worker = worker
        self.cancel_event = cancel_event
        self.signals = signals
        self.done = False

    def cancel(self) -> None:
        """Ask the job to stop; ``finished`` still fires, ``result`` does not."""
        self.cancel_event.set()
        self.worker.quit()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()


class JobRunner(QObject):
    """Starts jobs, keeps them alive until they finish, cancels and awaits them on shutdown."""

    active_changed = Signal(int)  # number of unfinished jobs

    def __init__(self, sink: ErrorSink, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.sink = sink
        self._jobs: set[Job] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def active(self) -> int:
        return len(self._jobs)

    def start(
        self,
        name: str,
        func: Callable[..., Any],
        *args: Any,
        on_progress: Callable[[Any], None] | None = None,
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_finished: Callable[[Job], None] | None = None,
        **kwargs: Any,
    ) -> Job:
        if self._closed:
            raise RuntimeError(f"cannot start job '{name}': the window is shutting down")
        cancel_event = threading.Event()
        signals = _JobSignals()
        ctx = JobContext(cancel_event, signals.progress.emit)
        worker = create_worker(func, ctx, *args, _start_thread=False, _ignore_errors=True, **kwargs)
        job = Job(name, worker, cancel_event, signals)
        if hasattr(worker.signals, "yielded"):
            worker.signals.yielded.connect(signals.progress.emit)
        worker.signals.returned.connect(signals.result.emit)
        worker.signals.errored.connect(signals.error.emit)
        worker.signals.finished.connect(signals.finished.emit)

        def guard(cb: Callable[[Any], None]) -> Callable[[Any], None]:
            def call(value: Any) -> None:
                if not self._closed and not job.cancelled:
                    cb(value)

            return call

        if on_progress is not None:
            signals.progress.connect(guard(on_progress))
        if on_result is not None:
            signals.result.connect(guard(on_result))

        def errored(exc: BaseException) -> None:
            if self._closed or job.cancelled:
                return
            if on_error is not None:
                on_error(exc)
            else:
                self.sink.report(name, exc)

        def finished() -> None:
            job.done = True
            self._jobs.discard(job)
            if self._closed:  # after shutdown the owner (and its widgets) may be gone
                return
            self.active_changed.emit(len(self._jobs))
            if on_finished is not None:
                on_finished(job)

        signals.error.connect(errored)
        signals.finished.connect(finished)
        self._jobs.add(job)
        self.active_changed.emit(len(self._jobs))
        worker.start()
        return job

    def cancel_all(self) -> None:
        for job in list(self._jobs):
            job.cancel()

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel every job and wait for the pool; True when all stopped in time."""
        self._closed = True
        self.cancel_all()
        try:
            WorkerBase.await_workers(timeout_ms)
        except RuntimeError:
            log.warning("background jobs did not stop within %d ms", timeout_ms)
            return False
        return QThreadPool.globalInstance().activeThreadCount() == 0


class SerialJobs(QObject):
    """Jobs that must run one at a time, in the order given (audit appends: the trail records
    actions in the order they happened), as ordinary ``JobRunner`` jobs."""

    def __init__(self, runner: JobRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self._queue: list[tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self._running = False

    @property
    def pending(self) -> int:
        return len(self._queue) + int(self._running)

    def submit(self, name: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """``kwargs`` are JobRunner.start's (on_result, on_error, ...) and the job's own."""
        self._queue.append((name, func, args, kwargs))
        if not self._running:
            self._next()

    def _next(self) -> None:
        if not self._queue or self.runner.closed:
            self._running = False
            self._queue.clear()
            return
        self._running = True
        name, func, args, kwargs = self._queue.pop(0)
        user_finished = kwargs.pop("on_finished", None)

        def finished(job: Job) -> None:
            if user_finished is not None:
                user_finished(job)
            self._next()

        self.runner.start(name, func, *args, on_finished=finished, **kwargs)
