"""Mouse and keys of the annotation layer: select, move, edit by a handle, drag a label,
draw with the tools, delete, Esc; an event filter on each viewport and reformat cell.

With any tool, a left press on an annotation selects it; dragging it moves it, dragging a
handle edits that point, dragging its label moves the label (it stays put). Elsewhere the
annotation tools draw: length, arrow, ellipse, rectangle by dragging; angle (3 points) and
Cobb (4) by clicks; freehand by drawing the outline; probe and text by a click. Delete or
Backspace deletes the selected one, Esc drops a drawing; a double click or the context menu
edits a text label's text. Shift+click (the grid's crosshair) and Ctrl+drag with W/L (a
region's window) are left to the grid and the viewport. What changes goes to the layer
(``desktop.annotation_layer``), which shows it at once and stores it in a worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QKeyEvent, QMouseEvent
from PySide6.QtWidgets import QInputDialog, QMenu, QWidget

from core.annotations.model import Annotation, Kind, Point, new_uid
from desktop import annotation_tools as tools
from desktop.annotation_layer import on_image, to_own_grid
from desktop.viewport_widget import ViewportWidget

if TYPE_CHECKING:
    from desktop.annotation_layer import AnnotationLayer, Where


class AnnotationInput(QObject):
    """The layer's event filter (see the module docstring)."""

    def __init__(self, layer: AnnotationLayer) -> None:
        super().__init__(layer)
        self.layer = layer

    def _activate(self, w: QObject) -> None:
        vp = w if isinstance(w, ViewportWidget) else getattr(w, "viewport", None)
        grid = self.layer.grid
        if grid is not None and vp is not None:
            for i, x in enumerate(grid.widgets):
                if x is vp:
                    grid.model.set_active(i)

    def tool_of(self, w: QObject) -> Kind | None:
        """The annotation tool the viewport's tool draws; None for the others, and for a user
        who may not annotate (their Length and ROI stay the viewport's unsaved measurements)."""
        if not self.layer.may_write:
            return None
        vp = w if isinstance(w, ViewportWidget) else getattr(w, "viewport", None)
        name = getattr(vp, "tool", "window")
        return tools.TOOL_KINDS.get(str(name))

    def _hit(self, w: QObject, pos: tuple[float, float], at: Where) -> tuple[Annotation, str, int]:
        """(annotation, part, handle) under ``pos``; part '' when nothing is."""
        found = self.layer.painted_items(w)
        order = sorted(found, key=lambda t: t[0].uid != self.layer.selected)
        hits = [(a, tools.hit(a.kind, pts, at.to_screen, pos)) for a, pts, _rect in order]
        for a, h in hits:  # a handle first: a label may lie over a line's end
            if h is not None and h >= 0:
                return a, "handle", h
        for a, _pts, rect in reversed(found):
            if rect.left <= pos[0] <= rect.right and rect.top <= pos[1] <= rect.bottom:
                return a, "label", -1
        for a, h in hits:
            if h is not None:
                return a, "body", h
        return found[0][0] if found else None, "", -1  # type: ignore[return-value]

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        t = event.type()
        if t == QEvent.Type.ChildAdded and isinstance(obj, ViewportWidget):
            QTimer.singleShot(0, self, self.layer.scan_reformats)  # an MPR cell is being made
            return False
        if t == QEvent.Type.MouseButtonPress:
            return self._press(obj, event)  # type: ignore[arg-type]
        if t == QEvent.Type.MouseMove:
            return self._move(obj, event)  # type: ignore[arg-type]
        if t == QEvent.Type.MouseButtonRelease:
            return self._release(obj, event)  # type: ignore[arg-type]
        if t == QEvent.Type.MouseButtonDblClick:
            return self._double_click(obj, event)  # type: ignore[arg-type]
        if t == QEvent.Type.ShortcutOverride:
            return self._override(event)  # type: ignore[arg-type]
        if t == QEvent.Type.KeyPress:
            return self._key(event)  # type: ignore[arg-type]
        if t == QEvent.Type.ContextMenu:
            return self._context_menu(obj, event)
        return False

    def _press(self, w: Any, e: QMouseEvent) -> bool:
        if e.button() != Qt.MouseButton.LeftButton:
            return False
        if e.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            return False  # Shift+click: the grid's crosshair
        if e.modifiers() & Qt.KeyboardModifier.ControlModifier and self.tool_of(w) is None:
            return False  # Ctrl+drag with W/L: the window of a region
        at = self.layer.where(w)
        if at is None:
            return False
        pos = (e.position().x(), e.position().y())
        point = at.to_image(pos)
        kind = self.tool_of(w)
        drawing = self.layer.drawing
        if drawing is not None and (
            drawing["widget"] is not w
            or drawing["kind"] is not kind
            or drawing["at"].image != at.image
        ):
            self.layer.drawing = drawing = None  # another cell, tool or image: it is dropped
        if drawing is not None:
            drawing["points"].append(point)
            drawing["cursor"] = point
            self._finish_clicks(w, at)
            return True
        a, part, handle = self._hit(w, pos, at)
        if part or kind is not None:
            w.setFocus()
            self._activate(w)
        if part:
            self.layer.selected = a.uid
            self.layer.last_study = a.study_uid
            if self.layer.editable(a):
                self.layer.dragging = {
                    "widget": w,
                    "part": part,
                    "handle": handle,
                    "start": point,
                    "start_pos": pos,
                    "before": a,
                    "preview": None,
                }
            self.layer.repaint()
            return True
        changed = self.layer.selected is not None
        self.layer.selected = None
        if kind is None:
            if changed:
                self.layer.repaint()
            return False
        self._start_drawing(w, at, kind, point)
        return True

    def _start_drawing(self, w: Any, at: Where, kind: Kind, point: Point) -> None:
        if kind is Kind.PROBE:
            self.layer.create(Annotation(kind, (point,), at.image, at.study_uid, at.series_uid))
        elif kind is Kind.TEXT:
            self._ask_text(w, "Text label", "", lambda text: self._new_text(at, point, text))
        elif kind in tools.CLICK_KINDS:
            self.layer.drawing = {"widget": w, "kind": kind, "points": [point], "cursor": point}
            self.layer.drawing["at"] = at
        else:
            self.layer.dragging = {
                "widget": w,
                "part": "new",
                "kind": kind,
                "start": point,
                "points": [point],
                "at": at,
                "preview": None,
                "uid": new_uid(),
            }
        self.layer.repaint()

    def _new_text(self, at: Where, point: Point, text: str) -> None:
        if text.strip():
            self.layer.create(
                Annotation(Kind.TEXT, (point,), at.image, at.study_uid, at.series_uid, text=text)
            )

    def _ask_text(self, w: QWidget, title: str, text: str, done: Callable[[str], None]) -> None:
        """A non-modal input (the event loop runs on; tests fill ``text_dialog``)."""
        dialog = QInputDialog(w.window())
        dialog.setWindowTitle(title)
        dialog.setLabelText("Text:")
        dialog.setTextValue(text)
        dialog.textValueSelected.connect(done)
        dialog.finished.connect(dialog.deleteLater)
        self.layer.text_dialog = dialog
        dialog.open()

    def _finish_clicks(self, w: Any, at: Where) -> None:
        d = self.layer.drawing
        assert d is not None
        kind: Kind = d["kind"]
        if len(d["points"]) >= (3 if kind is Kind.ANGLE else 4):
            self.layer.drawing = None
            self.layer.create(Annotation(kind, tuple(d["points"]), d["at"].image, at.study_uid,
                                   at.series_uid))  # fmt: skip
        self.layer.repaint()

    def _move(self, w: Any, e: QMouseEvent) -> bool:
        d = self.layer.dragging
        drawing = self.layer.drawing
        pos = (e.position().x(), e.position().y())
        if drawing is not None and drawing["widget"] is w:
            at = self.layer.where(w)
            if at is not None:
                drawing["cursor"] = at.to_image(pos)
                w.update()
            return False  # the status bar still follows the mouse
        if d is None or d["widget"] is not w:
            return False
        at = self.layer.where(w)
        if at is None:
            return True
        point = at.to_image(pos)
        if d["part"] == "new":
            kind: Kind = d["kind"]
            if kind is Kind.FREEHAND:
                last = d["points"][-1]
                if abs(point[0] - last[0]) + abs(point[1] - last[1]) >= 1.0:
                    d["points"].append(point)
                pts = tuple(d["points"]) if len(d["points"]) >= 3 else None
            else:
                pts = (d["start"], point)
            if pts is not None:
                d["preview"] = Annotation(
                    kind,
                    pts,
                    at.image,
                    at.study_uid,
                    at.series_uid,
                    author=self.layer.author,
                    uid=d["uid"],
                )
        else:
            self._drag_existing(d, at, point, pos)
        w.update()
        return True

    def _drag_existing(
        self, d: dict[str, Any], at: Where, point: Point, pos: tuple[float, float]
    ) -> None:
        a: Annotation = d["before"]
        local = on_image(a, at.image) or a.points
        d_row, d_col = point[0] - d["start"][0], point[1] - d["start"][1]
        if d["part"] == "label":
            rect = d.get("label_at") or self.layer.label_rect(d["widget"], a.uid)
            if rect is None:
                return
            d["label_at"] = rect
            top = rect.top + pos[1] - d["start_pos"][1]
            left = rect.left + pos[0] - d["start_pos"][0]
            label = at.to_image((left, top))
            d["preview"] = a.edited(label_pos=to_own_grid(a, at.image, (label,))[0])
            return
        if d["part"] == "handle":
            pts = list(local)
            pts[d["handle"]] = point
            moved = tuple(pts)
        else:
            moved = tuple((r + d_row, c + d_col) for r, c in local)
        d["preview"] = a.edited(points=to_own_grid(a, at.image, moved))

    def _release(self, w: Any, e: QMouseEvent) -> bool:
        if e.button() != Qt.MouseButton.LeftButton:
            return False
        d, self.layer.dragging = self.layer.dragging, None
        if d is None or d["widget"] is not w:
            return self.layer.drawing is not None and self.layer.drawing["widget"] is w
        preview: Annotation | None = d.get("preview")
        if d["part"] == "new":
            if preview is not None and self._big_enough(d["at"], preview):
                self.layer.create(replace(preview, author=""))
            self.layer.repaint()
            return True
        if preview is None:
            self.layer.repaint()
            return True
        if d["part"] == "label":
            self.layer.update(d["before"], preview, "move label")
        elif d["part"] == "handle":
            self.layer.update(d["before"], preview, "edit")
        else:
            self.layer.update(d["before"], preview, "move")
        return True

    @staticmethod
    def _big_enough(at: Where, a: Annotation) -> bool:
        """A click without a drag draws nothing (3 widget pixels at least)."""
        xs = [at.to_screen(p) for p in a.points]
        span = max(abs(x[0] - xs[0][0]) + abs(x[1] - xs[0][1]) for x in xs)
        return span >= 3.0

    def _double_click(self, w: Any, e: QMouseEvent) -> bool:
        """A text label's text edited. With a drawing tool the double-click is the tool's (Qt
        sends the second press first, which took its point): not the grid's maximise."""
        at = self.layer.where(w)
        if at is None:
            return False
        if self.tool_of(w) is not None or self.layer.drawing is not None:
            return True
        a, part, _ = self._hit(w, (e.position().x(), e.position().y()), at)
        if not part or a.kind is not Kind.TEXT or not self.layer.editable(a):
            return False
        self._ask_text(w, "Edit text label", a.text, lambda text: self.layer.edit_text(a.uid, text))
        return True

    _KEYS = (Qt.Key.Key_Delete, Qt.Key.Key_Backspace, Qt.Key.Key_Escape)

    def _override(self, e: QKeyEvent) -> bool:
        """Delete and Esc belong to the viewport while an annotation is selected or drawn
        (the window's Clear and Cancel loading keep them otherwise)."""
        if e.key() in self._KEYS and (
            self.layer.selected is not None or self.layer.drawing is not None
        ):
            e.accept()
        return False

    def _key(self, e: QKeyEvent) -> bool:
        key = e.key()
        if key == Qt.Key.Key_Escape and self.layer.drawing is not None:
            self.layer.drawing = None
            self.layer.repaint()
            return True
        if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.layer.selected is not None:
            self.layer.delete(self.layer.selected)
            return True
        return False

    def _context_menu(self, w: Any, event: QEvent) -> bool:
        at = self.layer.where(w)
        pos = getattr(event, "pos", None)
        if at is None or pos is None:
            return False
        p = pos()
        a, part, _ = self._hit(w, (float(p.x()), float(p.y())), at)
        if not part or not self.layer.editable(a):
            return False
        self.layer.selected = a.uid
        self.layer.repaint()
        menu = QMenu(w)
        menu.addAction("Delete annotation", lambda: self.layer.delete(a.uid))
        if a.kind is Kind.TEXT:
            menu.addAction(
                "Edit text…",
                lambda: self._ask_text(w, "Edit text label", a.text,
                                       lambda text: self.layer.edit_text(a.uid, text)),
            )  # fmt: skip
        menu.popup(w.mapToGlobal(p))
        return True
