"""Guards the pinned Qt binding: PySide6-Essentials 6.12.0 released one reference to None on
every void method call and to True on every bool signal emission under Python 3.11, so a
running workstation aborted with 'Fatal Python error: none_dealloc' (pinned to 6.11.3)."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QWidget


class _Emitter(QObject):
    flag = Signal(bool)


def test_void_calls_and_bool_signals_keep_singleton_refcounts(qtbot) -> None:
    widget = QWidget()
    qtbot.addWidget(widget)
    action = QAction()
    action.setCheckable(True)
    emitter = _Emitter()
    seen: list[bool] = []
    emitter.flag.connect(seen.append)
    none0, true0 = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(500):
        widget.update()
        action.setChecked(True)
        emitter.flag.emit(True)
    seen.clear()
    assert sys.getrefcount(None) - none0 > -50
    assert sys.getrefcount(True) - true0 > -50
