"""The one job shape: progress, result, error (to the sink), cancel, finished; shutdown waits."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QObject

from desktop.workers import ErrorSink, JobContext, JobRunner


@pytest.fixture
def runner(qtbot):  # type: ignore[no-untyped-def]
    parent = QObject()
    sink = ErrorSink(parent)
    r = JobRunner(sink, parent)
    yield r
    assert r.shutdown(5_000)


def counting(ctx: JobContext, n: int, gate: threading.Event | None = None):  # type: ignore[no-untyped-def]
    for i in range(n):
        if gate is not None:
            gate.wait(5)
        if ctx.cancelled:
            return -1
        yield i
    return n


def test_progress_result_finished(qtbot, runner) -> None:
    seen: list[int] = []
    results: list[int] = []
    done: list[object] = []
    job = runner.start(
        "count",
        counting,
        5,
        on_progress=seen.append,
        on_result=results.append,
        on_finished=done.append,
    )
    qtbot.waitUntil(lambda: bool(done), timeout=5_000)
    assert seen == [0, 1, 2, 3, 4]
    assert results == [5]
    assert done == [job]
    assert job.done
    assert runner.active == 0


def test_callback_style_progress_and_errors_go_to_the_sink(qtbot, runner) -> None:
    def failing(ctx: JobContext, path: str) -> None:
        ctx.report(("step", 1))
        raise ValueError(f"cannot read '{path}': truncated")

    progress: list[object] = []
    messages: list[tuple[str, str]] = []
    runner.sink.message.connect(lambda name, text: messages.append((name, text)))
    job = runner.start("read file", failing, "/data/x.dcm", on_progress=progress.append)
    qtbot.waitUntil(lambda: job.done, timeout=5_000)
    qtbot.waitUntil(lambda: bool(messages), timeout=5_000)
    assert progress == [("step", 1)]
    assert messages == [("read file", "ValueError: cannot read '/data/x.dcm': truncated")]


def test_cancel_stops_and_suppresses_result(qtbot, runner) -> None:
    gate = threading.Event()
    results: list[int] = []
    job = runner.start("slow", counting, 1000, gate, on_result=results.append)
    job.cancel()
    gate.set()
    qtbot.waitUntil(lambda: job.done, timeout=5_000)
    assert job.cancelled
    assert results == []


def test_shutdown_cancels_running_jobs_and_refuses_new_ones(qtbot) -> None:
    parent = QObject()
    r = JobRunner(ErrorSink(parent), parent)
    gate = threading.Event()
    job = r.start("endless", counting, 10**9, gate)
    gate.set()
    assert r.shutdown(5_000)
    assert job.cancelled
    with pytest.raises(RuntimeError, match="shutting down"):
        r.start("late", counting, 1)
