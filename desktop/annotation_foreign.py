"""Other systems' marks over their images: GSPS graphics and TID 1500 measurements, read-only.

The loaded files are indexed with the images (a presentation state or an SR is an instance
without pixels, ``core.imaging.model.Instance``). Each new one is read in a ``JobRunner`` job
through ``core.dicom_out.read`` and its marks kept by (SOP Instance UID, frame); the annotation
layer paints them over those images in their own colour, each label naming the system that made
it (Manufacturer and model, else the institution, else the object's series description). An
object that cannot be read is told on the status bar, naming the file and the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QPainter

from core.annotations.labels import LabelRequest, Rect, place_labels
from core.annotations.model import AcquiredImage, Kind, Point
from desktop import annotation_tools as tools

if TYPE_CHECKING:
    from core.imaging.model import Instance
    from desktop.annotation_layer import AnnotationLayer, Where
    from desktop.workers import JobContext

GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
SR = {
    "1.2.840.10008.5.1.4.1.1.88.11",
    "1.2.840.10008.5.1.4.1.1.88.22",
    "1.2.840.10008.5.1.4.1.1.88.33",
    "1.2.840.10008.5.1.4.1.1.88.34",
}

#: DICOM graphic types drawn as our tools' shapes (points in our (row, col) convention).
SHAPES = {
    "POLYLINE": Kind.LENGTH,
    "INTERPOLATED": Kind.LENGTH,
    "POINT": Kind.PROBE,
    "MULTIPOINT": Kind.PROBE,
    "ELLIPSE": Kind.FREEHAND,
    "CIRCLE": Kind.FREEHAND,
    "POLYGON": Kind.FREEHAND,
}


@dataclass(frozen=True)
class ForeignMark:
    """One graphic, text or measured outline of another system on one frame."""

    system: str
    kind: str  # DICOM graphic type, or TEXT
    points: tuple[Point, ...]  # (row, col), image pixels
    lines: tuple[str, ...]


def _system(ds: Any) -> str:
    maker = " ".join(
        str(ds.get(k, "") or "").strip() for k in ("Manufacturer", "ManufacturerModelName")
    ).strip()
    return (
        maker
        or str(ds.get("InstitutionName", "") or "")
        or str(ds.get("SeriesDescription", "") or "another system")
    )


def _rc(points: Iterable[tuple[float, float]]) -> tuple[Point, ...]:
    """DICOM (column, row) pairs, top-left corner of the first pixel at 0\\0, as (row, col)."""
    return tuple((float(r), float(c)) for c, r in points)


#: UCUM codes as a reader reads them.
UNITS = {"{pixel}": "px", "{pixel}2": "px²", "mm2": "mm²", "1": "", "[hnsf'U]": "HU", "deg": "°"}


def _line(label: str, what: str, value: float, unit: str) -> str:
    unit = UNITS.get(unit, unit)
    head = f"{label}: " if label and label != what else ""
    return f"{head}{what} {value:g} {unit}".rstrip()


def _key(sop: str, frame: int | None) -> tuple[str, int]:
    return (sop, (frame - 1) if frame else 0)


def read_marks(_ctx: JobContext | None, paths: list[str]) -> tuple[dict[Any, list[ForeignMark]],
                                                                    list[str]]:  # fmt: skip
    """The worker's part: every mark of the objects at ``paths`` by (SOP UID, 0-based frame),
    and a message for each object that could not be read."""
    from core.dicom_out import read
    from core.imaging.sources import read_dataset

    found: dict[Any, list[ForeignMark]] = {}
    problems: list[str] = []
    for path in paths:
        try:
            ds = read_dataset(path, stop_before_pixels=True)
            system = _system(ds)
            sop_class = str(ds.get("SOPClassUID", ""))
            if sop_class == GSPS:
                for ref, graphics in read.read_gsps(ds).items():
                    for g in graphics:
                        if g.units != "PIXEL":
                            continue  # DISPLAY units follow the screen, not the image
                        text = (g.text,) if g.text else ()
                        mark = ForeignMark(system, g.kind, _rc(g.points), text)
                        found.setdefault(_key(ref.sop_instance_uid, ref.frame), []).append(mark)
            else:
                for target, numbers in read.read_measurements(ds).items():
                    if target is None:
                        continue
                    for m in numbers:
                        line = _line(m.label, m.derivation or m.quantity, m.value, m.unit)
                        mark = ForeignMark(system, m.graphic_type or "TEXT", _rc(m.points), (line,))
                        found.setdefault(_key(target.sop_instance_uid, target.frame), []).append(
                            mark
                        )
        except Exception as exc:  # noqa: BLE001 - one bad object never hides the others
            problems.append(f"Marks of another system in '{path}' cannot be shown: {exc}")
    return found, problems


class ForeignMarks(QObject):
    """Finds GSPS and SR objects among the window's loaded files and paints their marks."""

    read_done = Signal()

    def __init__(self, window: Any, layer: AnnotationLayer) -> None:
        super().__init__(layer)
        self.window, self.layer = window, layer
        self.marks: dict[tuple[str, int], list[ForeignMark]] = {}
        self._seen: set[str] = set()
        self.painted: list[ForeignMark] = []  # by the last paint of an image with marks (tests)
        self.label_rects: list[Rect] = []  # and where their labels went
        from desktop.grid_cells import tie

        tie(self, window.state.index_changed, self._on_index)
        self._on_index(window.state.index)

    def _objects(self, index: Any) -> list[Instance]:
        found = []
        for _patient, _study, series in index.iter_series():
            for inst in series.instances:
                if inst.sop_class_uid == GSPS or inst.sop_class_uid in SR:
                    found.append(inst)
        return found

    def _on_index(self, index: Any) -> None:
        paths = [i.path for i in self._objects(index) if i.sop_instance_uid not in self._seen]
        if not paths:
            return
        self._seen.update(i.sop_instance_uid for i in self._objects(index))
        self.window.runner.start(
            "Read marks of other systems", read_marks, paths, on_result=self._read
        )

    def _read(self, result: tuple[dict[Any, list[ForeignMark]], list[str]]) -> None:
        found, problems = result
        for key, marks in found.items():
            self.marks.setdefault(key, []).extend(marks)
        for text in problems:
            self.layer.message.emit(text)
        self.layer.repaint()
        self.read_done.emit()

    def on(self, image: Any) -> list[ForeignMark]:
        if not isinstance(image, AcquiredImage):
            return []
        return self.marks.get((image.sop_instance_uid, image.frame), [])

    def paint(self, p: QPainter, at: Where, taken: Iterable[Rect] = ()) -> int:
        """Draw the marks on the image shown, their labels clear of ``taken`` (the reader's
        own labels, placed first); returns how many (tests)."""
        marks = self.on(at.image)
        if not marks:
            return 0
        self.painted = list(marks)
        fm = p.fontMetrics()
        requests = []
        for i, m in enumerate(marks):
            kind = SHAPES.get(m.kind)
            if kind is not None and m.points:
                # an outline of fewer than three points is drawn as the line it is
                draw = Kind.LENGTH if kind is Kind.FREEHAND and len(m.points) < 3 else kind
                tools.paint_shape(p, draw, m.points, at.to_screen, tools.FOREIGN_COLOUR)
            if m.points:
                xs = [at.to_screen(q) for q in m.points]
                anchor = Rect(min(y for _, y in xs), min(x for x, _ in xs),
                              max(y for _, y in xs), max(x for x, _ in xs))  # fmt: skip
            else:
                anchor = Rect(20.0 + 20 * i, 20.0, 20.0 + 20 * i, 20.0)
            lines = [*m.lines, f"({m.system})"]
            requests.append(LabelRequest(str(i), anchor, tools.label_size(fm, lines)))
        own = [
            LabelRequest(f"own-{k}", r, (r.height, r.width), pinned=(r.top, r.left))
            for k, r in enumerate(taken)
            if r.height > 0 and r.width > 0
        ]
        rects = place_labels([*own, *requests])
        self.label_rects = [rects[str(i)] for i in range(len(marks))]
        for i, m in enumerate(marks):
            tools.paint_label(p, rects[str(i)], [*m.lines, f"({m.system})"],
                              tools.FOREIGN_COLOUR)  # fmt: skip
        return len(marks)
