"""3D volume rendering of a CT series with VTK: a window with presets, rotate and zoom.

Why Qt only shows pictures. ``QVTKRenderWindowInteractor`` hands VTK the widget's native window
id; under ``QT_QPA_PLATFORM=offscreen`` (tests, CI) that is no X window, and VTK's EGL window
cannot make a context from it. And VTK must not render in this process at all: its EGL window
on Mesa crashes the process once TensorFlow (the keras adapter) has been imported here. So
``desktop.volume_render.VolumeRenderer`` renders offscreen in a render process of its own (the
voxels handed over once through shared memory) and returns each frame as an RGB array that
``VolumeView`` paints; a crash there becomes a message in this window, never a dead
application. See that module for the process, the memory and the GPU/CPU ray caster choice.

Threads. A frame can take 50 ms to seconds, so one ``JobRunner`` job (``render_loop``) owns the
render process: it gets the series' shared volume (built there when no reformat has built it
yet), starts the process, and then asks for a frame whenever the window queues camera or preset
changes (several queued changes give one frame). The GUI thread only queues requests and paints
the last frame. Closing the window cancels the job, which stops the process.

vtk is imported on first use only, and only in the render process and the OpenGL probe
(start-up stays fast); without it ``vtk_missing`` says what to install and the menu entry says
so.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from core.viewer.reformat import Volume
from core.viewer.volume_presets import VOLUME_PRESETS, check_modality, get_preset
from desktop.volume_render import (
    NO_GL_FIX,
    SOFTWARE_GL,
    VIEWS,
    VTK_REQUIREMENT,
    Mode,
    Request,
    VolumeRenderer,
    VolumeRenderError,
    VtkVolumeRenderer,
    probe_opengl,
    vtk_missing,
)

__all__ = [
    "NO_GL_FIX",
    "SOFTWARE_GL",
    "VIEWS",
    "VTK_REQUIREMENT",
    "Mode",
    "RenderedFrame",
    "RendererReady",
    "VolumeRenderError",
    "VolumeRenderer",
    "VolumeView",
    "VtkVolumeRenderer",
    "install_volume_menu",
    "probe_opengl",
    "render_loop",
    "vtk_missing",
]

if TYPE_CHECKING:
    from desktop.viewport_grid import ViewportGrid
    from desktop.workers import Job, JobContext, JobRunner

MAX_RENDER_SIDE = 512  # frames are scaled up beyond this: CPU ray casting stays interactive
DRAG_FACTOR = 0.5  # frame size while the mouse drags, relative to the still frame


# --- the render job ------------------------------------------------------------------------
@dataclass(frozen=True)
class RendererReady:
    """What the job tells the window once the pipeline stands."""

    volume: Volume
    gl_renderer: str
    shares_memory: bool  # the render process's VTK draws from the shared block (no copy)
    pid: int  # the render process


@dataclass(frozen=True)
class RenderedFrame:
    image: np.ndarray  # (h, w, 3) uint8
    seconds: float
    preset: str
    mode: str
    requests: int  # how many of the window's requests it shows (all of them: up to date)


def render_loop(
    ctx: JobContext,
    build: Callable[[], Volume],
    requests: queue.SimpleQueue[Request],
    preset: str,
    size: tuple[int, int],
    mode: Mode = "auto",
) -> None:
    """The job: the volume (``build``), the render process with its VTK pipeline, then a frame
    after every batch of requests, until cancelled; the process stops with the job. A crash of
    the process raises VolumeRenderError here, which the window shows."""
    volume = build()
    if ctx.cancelled:
        return
    renderer = VolumeRenderer(volume, preset, size, mode)  # VTK in its own process
    try:
        ctx.report(
            RendererReady(volume, renderer.gl_renderer, renderer.shares_memory(), renderer.pid)
        )
        batch: list[Request] = [("render",)]
        applied = 0
        while not ctx.cancelled:
            if not batch:
                try:
                    batch.append(requests.get(timeout=0.05))
                except queue.Empty:
                    continue
            while True:  # everything queued meanwhile: one frame for all of it
                try:
                    batch.append(requests.get_nowait())
                except queue.Empty:
                    break
            renderer.apply([r for r in batch if r[0] != "render"])
            applied += sum(r[0] != "render" for r in batch)
            batch = []
            start = time.perf_counter()
            image = renderer.render()  # the render process's frame, back as an array
            seconds = time.perf_counter() - start
            frame = RenderedFrame(image, seconds, renderer.preset.name, renderer.mode, applied)
            ctx.report(frame)
    finally:
        renderer.close()


# --- the window ----------------------------------------------------------------------------
def render_size(width: int, height: int, factor: float = 1.0) -> tuple[int, int]:
    """The frame size for a canvas: its own, scaled down to MAX_RENDER_SIDE at most, times
    ``factor`` (a drag renders at half size: a quarter of the rays, so it follows the mouse)."""
    scale = min(1.0, MAX_RENDER_SIDE / max(width, height, 1)) * factor
    return max(1, round(width * scale)), max(1, round(height * scale))


class VolumeCanvas(QWidget):
    """Paints the last frame, fitted; left drag rotates, wheel or right drag zooms (frames at
    half size while the button is down)."""

    def __init__(self, view: VolumeView) -> None:
        super().__init__(view)
        self.view = view
        self.image: QImage | None = None
        self.message = ""
        self._last: QPointF | None = None
        self._button = Qt.MouseButton.NoButton
        self.setMinimumSize(200, 200)
        self.setMouseTracking(False)

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), Qt.GlobalColor.black)
        if self.image is not None:
            w, h = self.image.width(), self.image.height()
            scale = min(self.width() / w, self.height() / h)
            target = QRectF(0, 0, w * scale, h * scale)
            target.moveCenter(QRectF(self.rect()).center())
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawImage(target, self.image)
        if self.message:
            p.setPen(QColor("#ff7b72") if "No 3D" in self.message else QColor("#c8c8c8"))
            p.drawText(
                self.rect().adjusted(30, 0, -30, 0),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self.message,
            )
        p.end()

    def resizeEvent(self, event: QResizeEvent) -> None:
        self.view.request("size", *render_size(self.width(), self.height()))
        super().resizeEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._last, self._button = event.position(), event.button()
        self.view.request("size", *render_size(self.width(), self.height(), DRAG_FACTOR))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._last is None:
            return
        d = event.position() - self._last
        self._last = event.position()
        if self._button == Qt.MouseButton.LeftButton:
            # drag right: the volume turns right (the camera goes the other way)
            self.view.request("rotate", -0.5 * d.x(), 0.5 * d.y())
        elif self._button == Qt.MouseButton.RightButton:
            self.view.request("zoom", 1.01 ** (-d.y()))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._last, self._button = None, Qt.MouseButton.NoButton
        self.view.request("size", *render_size(self.width(), self.height()))

    def wheelEvent(self, event: QWheelEvent) -> None:
        self.view.request("zoom", 1.1 ** (event.angleDelta().y() / 120))


class VolumeView(QWidget):
    """A window showing one CT series in 3D: preset and view choices above the canvas, what
    renders and how fast below. ``build`` returns the series' Volume (run in the job); None
    for a window that only says why there is nothing to show."""

    frame_shown = Signal(object)  # RenderedFrame
    failed = Signal(str)

    def __init__(
        self,
        runner: JobRunner,
        build: Callable[[], Volume] | None,
        title: str = "",
        preset: str = "bone",
        mode: Mode = "auto",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("volumeView")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setWindowTitle(f"3D — {title}" if title else "3D volume")
        self.runner, self.build, self.mode = runner, build, mode
        self.preset = get_preset(preset).name
        self.info: RendererReady | None = None
        self.last_frame: RenderedFrame | None = None
        self.job: Job | None = None
        self._requests: queue.SimpleQueue[Request] = queue.SimpleQueue()
        self.sent = 0  # requests queued so far

        self.presets = QComboBox()
        for p in VOLUME_PRESETS.values():
            self.presets.addItem(p.title, p.name)
        self.presets.setCurrentIndex(self.presets.findData(self.preset))
        self.presets.currentIndexChanged.connect(
            lambda i: self.set_preset(str(self.presets.itemData(i)))
        )
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Preset:"))
        bar.addWidget(self.presets)
        for name in VIEWS:
            button = QPushButton(name.capitalize())
            button.setToolTip(f"Look from the patient's {name} side")
            button.clicked.connect(partial(self.request, "reset", name))
            bar.addWidget(button)
        bar.addStretch(1)
        self.canvas = VolumeCanvas(self)
        self.status = QLabel("Building the 3D volume…")
        # a long status line must not resize the canvas (each size is a new frame)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.status)
        self.resize(640, 700)

    # --- the job -----------------------------------------------------------------------------
    def start(self) -> None:
        """Build the volume and the pipeline in a job; frames follow."""
        missing = vtk_missing()
        if missing is not None or self.build is None:
            self._fail(missing or "no series to show")
            return
        self.canvas.message = "Building the 3D volume…"
        self.canvas.update()
        size = render_size(max(self.canvas.width(), 200), max(self.canvas.height(), 200))
        self.job = self.runner.start(
            "3D volume",
            render_loop,
            self.build,
            self._requests,
            self.preset,
            size,
            self.mode,
            on_progress=self._progress,
            on_error=lambda exc: self._fail(f"No 3D view: {exc}"),
        )

    def request(self, kind: str, *args: Any) -> None:
        """Queue a change for the render job (none runs yet: it waits for the job)."""
        self._requests.put((kind, *args))
        self.sent += 1

    @property
    def up_to_date(self) -> bool:
        """The last frame shows every change asked for so far."""
        return self.last_frame is not None and self.last_frame.requests == self.sent

    def set_preset(self, name: str) -> None:
        self.preset = get_preset(name).name
        if self.presets.currentData() != self.preset:
            self.presets.setCurrentIndex(self.presets.findData(self.preset))
        self.request("preset", self.preset)

    def _progress(self, item: object) -> None:
        if isinstance(item, RendererReady):
            self.info = item
            return
        if not isinstance(item, RenderedFrame):
            return
        from desktop.viewport_widget import to_qimage

        self.last_frame = item
        self.canvas.image = to_qimage(item.image)
        self.canvas.message = ""
        self.canvas.update()
        gl = f" on {self.info.gl_renderer}" if self.info is not None else ""
        h, w = item.image.shape[:2]
        self.status.setText(
            f"{get_preset(item.preset).title} · {item.mode}{gl} · {w}×{h} in "
            f"{item.seconds * 1000:.0f} ms · drag to rotate, wheel to zoom"
        )
        self.frame_shown.emit(item)

    def _fail(self, text: str) -> None:
        self.canvas.message = text if text.startswith("No 3D") else f"No 3D view: {text}"
        self.canvas.image = None
        self.canvas.update()
        self.status.setText(self.canvas.message)
        self.failed.emit(self.canvas.message)

    def closeEvent(self, event: Any) -> None:
        if self.job is not None and not self.job.done:
            self.job.cancel()
        super().closeEvent(event)


# --- the menu ------------------------------------------------------------------------------
def volume_source(grid: ViewportGrid) -> tuple[Callable[[], Volume], str]:
    """The active viewport's series as a Volume builder (the grid's shared volume: one copy
    for the 3D view and every reformat) and its title; ValueError says why there is none."""
    state = grid.model.cells[grid.model.active].state
    series = state.series
    if series is None:
        raise ValueError("open a CT series in the active viewport first")
    label = series.description or series.modality or series.series_instance_uid
    check_modality(series.modality, label)
    if state.settled_count < state.slice_count:
        raise ValueError(
            f"series '{label}' is still loading ({state.settled_count}/{state.slice_count})"
        )
    if state.failed:
        k = min(state.failed)
        raise ValueError(f"series '{label}': image {k + 1} cannot be decoded ({state.failed[k]})")
    build = partial(grid.volumes.get, series, list(state.slices), list(state.frames))
    return build, label


def open_volume_view(window: QWidget, grid: ViewportGrid, preset: str = "bone") -> VolumeView:
    """Open a 3D window for the active viewport's series (or one that says why not)."""
    from desktop.workers import ErrorSink, JobRunner

    runner = grid.runner if grid.runner is not None else JobRunner(ErrorSink(), window)
    try:
        build, title = volume_source(grid)
    except ValueError as exc:
        view = VolumeView(runner, None, "", preset, parent=window)
        view._fail(f"No 3D view: {exc}")
        view.show()
        return view
    view = VolumeView(runner, build, title, preset, parent=window)
    view.show()
    view.start()
    return view


def install_volume_menu(window: QWidget, menu: QMenu, grid: ViewportGrid) -> QAction:
    """``menu`` > 3D volume rendering, for the active viewport's series. Without vtk the entry
    is disabled and says what is missing (checked without importing vtk)."""
    missing = vtk_missing()
    if missing is None:
        action = QAction("3D volume rendering…", window)
        action.setStatusTip("Volume rendering of the active viewport's CT (bone, vessels, soft)")
        action.triggered.connect(lambda _checked=False: open_volume_view(window, grid))
    else:
        action = QAction(f"3D volume rendering: needs vtk (pip install {VTK_REQUIREMENT})", window)
        action.setEnabled(False)
        action.setStatusTip(missing)
        action.setToolTip(missing)
    menu.addAction(action)
    return action
