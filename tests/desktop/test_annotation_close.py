"""A step written while the window closes runs on the GUI thread (the job runner takes no more
jobs): it must not wait there for a study to be recorded (up to STUDY_WAIT_S = 10 s in a job),
so the window closes at once and the failure is said."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtWidgets import QWidget

from desktop.annotation_layer import STUDY_WAIT_S, AnnotationLayer
from desktop.workers import ErrorSink, JobRunner


def test_a_step_after_shutdown_does_not_wait_for_the_study_on_the_gui_thread(qtbot: Any) -> None:
    from core.app.annotations import StudyNotRecorded

    parent = QWidget()
    qtbot.addWidget(parent)
    runner = JobRunner(ErrorSink(parent), parent)
    assert runner.shutdown()
    layer = AnnotationLayer(runner, None, parent)
    said: list[str] = []
    layer.writer.failed.connect(said.append)
    tries: list[float] = []

    def never_recorded(_session: object) -> object:
        tries.append(time.monotonic())
        raise StudyNotRecorded("1.2.3 is not in the local study database")

    started = time.monotonic()
    layer._run("1.2.3", "create", never_recorded)
    elapsed = time.monotonic() - started
    assert elapsed < STUDY_WAIT_S / 10, elapsed  # not the 10 s wait of the writer's job
    assert len(tries) == 1
    assert said
    assert "not saved" in said[0]
