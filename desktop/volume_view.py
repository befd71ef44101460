"""3D volume rendering of a CT series with VTK: a window with presets, rotate and zoom.

Why VTK renders offscreen here and Qt only shows pictures. ``QVTKRenderWindowInteractor``
hands VTK the widget's native window id; under ``QT_QPA_PLATFORM=offscreen`` (tests, CI) that
is no X window, and VTK's EGL window cannot make a context from it ("Failed to initialize
OpenGL functions", garbage pixels). So ``VolumeRenderer`` owns an offscreen ``vtkRenderWindow``
(EGL when there is no X display: NVIDIA's or Mesa's driver through libglvnd; GLX otherwise) and
returns each frame as an RGB array that ``VolumeView`` paints. The same code then runs on a
desktop, headless, and in CI; reading a frame back costs well under a millisecond at 512².

Threads. OpenGL contexts belong to one thread, and a frame can take 50 ms to seconds, so all of
VTK lives in ONE ``JobRunner`` job (``render_loop``): it gets the series' shared volume (built
there when no reformat has built it yet), builds the pipeline, and then renders whenever the
window queues camera or preset changes (several queued changes give one frame). The GUI thread
only queues requests and paints the last frame. Closing the window cancels the job.

One copy of the voxels. VTK wraps ``Volume.values`` (float32, C order: x = columns fastest)
without copying (``numpy_to_vtk(deep=False)``; ``VolumeRenderer.shares_memory``); its
orientation and position go into the vtkVolume's matrix. The mappers still make their own
working data: the CPU ray caster a 16-bit copy plus gradients for shading, the GPU ray caster a
3D texture (in GPU memory on a GPU; in system memory under Mesa's llvmpipe).

GPU or CPU. ``vtkSmartVolumeMapper`` picks GPU ray casting whenever OpenGL can, which includes
Mesa's software rasteriser (llvmpipe), where it is 10-16x slower than VTK's multi-threaded CPU
ray caster. So the renderer asks for the CPU ray caster when the OpenGL renderer is a
software one and leaves the GPU ray caster on a real GPU; ``mode`` says which ran.

vtk is imported on first use only (start-up stays fast); without it ``vtk_missing`` says what
to install and the menu entry says so. Without a working OpenGL (no Mesa EGL, no GPU driver)
VTK does not raise but crashes the process (segmentation fault, seen with its OSMesa window
where libOSMesa is absent), so ``probe_opengl`` first renders once in a child process and
turns a failure into a VolumeRenderError naming VTK's complaint and the packages to install.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

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
from core.viewer.volume_presets import VOLUME_PRESETS, VolumePreset, check_modality, get_preset

if TYPE_CHECKING:
    from desktop.viewport_grid import ViewportGrid
    from desktop.workers import Job, JobContext, JobRunner

VTK_REQUIREMENT = "vtk==9.7.2"
# OpenGL renderers that are software rasterisers: the CPU ray caster beats GPU ray casting there
SOFTWARE_GL = ("llvmpipe", "softpipe", "swrast", "software rasterizer", "swr ")
MAX_RENDER_SIDE = 512  # frames are scaled up beyond this: CPU ray casting stays interactive
DRAG_FACTOR = 0.5  # frame size while the mouse drags, relative to the still frame
Mode = Literal["auto", "gpu", "cpu"]
VIEWS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    # name -> (direction from the focal point to the camera, view up), LPS; head up everywhere
    "anterior": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),  # patient's right on the image's left
    "posterior": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "left": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),  # anterior on the left, as a sagittal
    "right": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
}


class VolumeRenderError(RuntimeError):
    """3D rendering cannot run here: vtk or OpenGL is missing (the message says what)."""


def vtk_missing() -> str | None:
    """None when vtk can be imported; otherwise what is missing and how to install it."""
    try:
        found = importlib.util.find_spec("vtkmodules") is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return None
    return (
        f"3D volume rendering needs the 'vtk' package, which is not installed "
        f"(pip install {VTK_REQUIREMENT})"
    )


def _offscreen_default() -> None:
    """Without an X display VTK would try X first and log an error: go straight to EGL."""
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and not display:
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


def _numpy_support() -> Any:
    """vtk's numpy bridge (untyped), imported on first use."""
    from vtkmodules.util import numpy_support

    return numpy_support


NO_GL_FIX = (
    "It renders offscreen through EGL with a GPU driver or Mesa "
    "(Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri)"
)
_PROBE = """
import vtkmodules.vtkRenderingOpenGL2
from vtkmodules.vtkRenderingCore import vtkRenderer, vtkRenderWindow
window = vtkRenderWindow()
window.SetOffScreenRendering(1)
window.AddRenderer(vtkRenderer())
window.SetSize(8, 8)
window.Render()
print(window.GetClassName())
print(window.ReportCapabilities())
"""
_probed: dict[str, str] = {}  # VTK_DEFAULT_OPENGL_WINDOW -> OpenGL renderer (once a process)


def probe_opengl() -> str:
    """The OpenGL renderer VTK gets offscreen, asked of a child process once: a missing
    driver or library makes VTK crash (segmentation fault), not raise. VolumeRenderError
    names what failed and what to install. (A frozen bundle has no ``python -c``: not probed.)"""
    _offscreen_default()
    key = os.environ.get("VTK_DEFAULT_OPENGL_WINDOW", "")
    if key in _probed or getattr(sys, "frozen", False):
        return _probed.get(key, "")
    try:
        run = subprocess.run(
            [sys.executable, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VolumeRenderError(f"3D volume rendering could not test OpenGL: {exc}") from exc
    renderer = _gl_renderer(run.stdout)
    if run.returncode != 0 or not renderer:
        said = [
            re.sub(r"\x1b\[[0-9;]*m", "", line).split("| ", 1)[-1].strip()
            for line in run.stderr.splitlines()
            if "WARN|" in line or "ERR|" in line
        ]
        how = (
            f"exit status {run.returncode}"
            if run.returncode >= 0
            else (f"killed by signal {-run.returncode}")
        )
        detail = f"; VTK said: {said[0]}" if said else ""
        window = run.stdout.splitlines()[0] if run.stdout.strip() else key or "vtkRenderWindow"
        raise VolumeRenderError(
            f"3D volume rendering found no OpenGL: VTK's {window} failed ({how}{detail}). "
            f"{NO_GL_FIX}"
        )
    _probed[key] = renderer
    return renderer


def _gl_renderer(capabilities: str) -> str:
    for line in capabilities.splitlines():
        if line.startswith("OpenGL renderer string:"):
            return line.split(":", 1)[1].strip()
    return ""


class VolumeRenderer:
    """A CT volume rendered offscreen by VTK; every call on the thread that made it."""

    def __init__(
        self,
        volume: Volume,
        preset: str = "bone",
        size: tuple[int, int] = (512, 512),
        mode: Mode = "auto",
    ) -> None:
        missing = vtk_missing()
        if missing is not None:
            raise VolumeRenderError(missing)
        check_modality(volume.modality, volume.series_uid)
        probe_opengl()  # in a child process: without a driver VTK crashes instead of raising
        import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL classes)
        from vtkmodules.vtkCommonDataModel import vtkImageData
        from vtkmodules.vtkCommonMath import vtkMatrix4x4
        from vtkmodules.vtkRenderingCore import (
            vtkRenderer,
            vtkRenderWindow,
            vtkVolume,
            vtkVolumeProperty,
            vtkWindowToImageFilter,
        )
        from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper

        self.volume = volume
        k, r, c = volume.values.shape
        geometry = volume.geometry
        # the voxels as they are: no copy (x = columns fastest, as in the C-ordered array)
        self.scalars: Any = _numpy_support().numpy_to_vtk(volume.values.reshape(-1), deep=False)
        self.scalars.SetName("values")
        image = vtkImageData()
        image.SetDimensions(c, r, k)
        step = float(np.linalg.norm(geometry.step))
        image.SetSpacing(geometry.pixel_spacing[1], geometry.pixel_spacing[0], step or 1.0)
        image.GetPointData().SetScalars(self.scalars)
        # voxel axes -> patient (LPS) mm; the slice axis follows the step (a tilt is a shear)
        axes = np.column_stack(
            (geometry.row_dir, geometry.col_dir, geometry.step / step if step else geometry.normal)
        )
        matrix = vtkMatrix4x4()
        for i in range(3):
            for j in range(3):
                matrix.SetElement(i, j, float(axes[i, j]))
            matrix.SetElement(i, 3, float(geometry.origin[i]))
        self.centre = geometry.to_patient(((k - 1) / 2, (r - 1) / 2, (c - 1) / 2))
        corners = geometry.to_patient(
            [(a, b, d) for a in (0, k - 1) for b in (0, r - 1) for d in (0, c - 1)]
        )
        self.radius = float(np.linalg.norm(corners - self.centre, axis=1).max()) or 1.0

        self.window: Any = vtkRenderWindow()
        self.window.SetOffScreenRendering(1)
        self.window.SetSize(*size)
        self.renderer: Any = vtkRenderer()
        self.renderer.SetBackground(0.0, 0.0, 0.0)
        self.window.AddRenderer(self.renderer)
        self.window.Render()  # makes the OpenGL context: what renders here?
        self.gl_renderer = _gl_renderer(self.window.ReportCapabilities())
        if not self.gl_renderer:
            self.window.Finalize()
            raise VolumeRenderError(f"3D volume rendering found no OpenGL. {NO_GL_FIX}")
        self.mapper: Any = vtkSmartVolumeMapper()
        self.mapper.SetInputData(image)
        software = any(s in self.gl_renderer.lower() + " " for s in SOFTWARE_GL)
        if mode == "cpu" or (mode == "auto" and software):
            self.mapper.SetRequestedRenderModeToRayCast()
        elif mode == "gpu":
            self.mapper.SetRequestedRenderModeToGPU()
        self.property: Any = vtkVolumeProperty()
        self.property.SetInterpolationTypeToLinear()
        self.actor: Any = vtkVolume()
        self.actor.SetMapper(self.mapper)
        self.actor.SetProperty(self.property)
        self.actor.SetUserMatrix(matrix)
        self.renderer.AddVolume(self.actor)
        self._grab: Any = vtkWindowToImageFilter()
        self._grab.SetInput(self.window)
        self._grab.SetInputBufferTypeToRGB()
        self._grab.ReadFrontBufferOff()
        self._grab.ShouldRerenderOff()
        self.preset = get_preset(preset)
        self.set_preset(preset)
        self.reset()

    # --- what the renderer is and holds --------------------------------------------------
    @property
    def mode(self) -> str:
        """Which ray caster drew the last frame."""
        used = self.mapper.GetLastUsedRenderMode()
        if used == self.mapper.GPURenderMode:
            return "GPU ray cast"
        if used == self.mapper.RayCastRenderMode:
            return "CPU ray cast"
        return "not rendered yet"

    def shares_memory(self) -> bool:
        """True when VTK draws from the volume's own array (no second copy of the voxels)."""
        as_numpy = _numpy_support().vtk_to_numpy
        return bool(np.shares_memory(as_numpy(self.scalars), self.volume.values))

    @property
    def size(self) -> tuple[int, int]:
        w, h = self.window.GetSize()
        return int(w), int(h)

    @property
    def mm_per_pixel(self) -> float:
        """Patient mm per frame pixel (parallel projection: the same everywhere)."""
        return 2.0 * float(self.renderer.GetActiveCamera().GetParallelScale()) / self.size[1]

    # --- changes ---------------------------------------------------------------------------
    def set_preset(self, name: str) -> None:
        from vtkmodules.vtkCommonDataModel import vtkPiecewiseFunction
        from vtkmodules.vtkRenderingCore import vtkColorTransferFunction

        preset: VolumePreset = get_preset(name)
        colour = vtkColorTransferFunction()
        for hu, red, green, blue in preset.colour:
            colour.AddRGBPoint(hu, red, green, blue)
        opacity = vtkPiecewiseFunction()
        for hu, alpha in preset.opacity:
            opacity.AddPoint(hu, alpha)
        prop = self.property
        prop.SetColor(colour)
        prop.SetScalarOpacity(opacity)
        prop.SetShade(int(preset.shade))
        prop.SetAmbient(preset.ambient)
        prop.SetDiffuse(preset.diffuse)
        prop.SetSpecular(preset.specular)
        self.preset = preset

    def reset(self, view: str = "anterior") -> None:
        """Look at the whole volume from ``view`` (parallel projection, head up)."""
        if view not in VIEWS:
            raise ValueError(f"no 3D view '{view}' (known: {', '.join(VIEWS)})")
        direction, up = VIEWS[view]
        camera = self.renderer.GetActiveCamera()
        camera.ParallelProjectionOn()
        camera.SetFocalPoint(*map(float, self.centre))
        camera.SetPosition(*map(float, self.centre + 4.0 * self.radius * np.asarray(direction)))
        camera.SetViewUp(*up)
        camera.SetParallelScale(0.7 * self.radius)  # the box never fills its diagonal
        self.renderer.ResetCameraClippingRange()

    def rotate(self, azimuth: float, elevation: float) -> None:
        """Turn the camera about the focal point (degrees): sideways, then up/down."""
        camera = self.renderer.GetActiveCamera()
        camera.Azimuth(azimuth)
        camera.Elevation(elevation)
        camera.OrthogonalizeViewUp()
        self.renderer.ResetCameraClippingRange()

    def zoom(self, factor: float) -> None:
        """Magnify by ``factor`` (> 1 closer)."""
        if not (np.isfinite(factor) and factor > 0):
            raise ValueError(f"zoom factor must be a positive number, not {factor}")
        self.renderer.GetActiveCamera().Zoom(factor)

    def set_size(self, width: int, height: int) -> None:
        self.window.SetSize(max(1, int(width)), max(1, int(height)))

    def render(self) -> np.ndarray:
        """One frame: (height, width, 3) uint8, top row first."""
        self.window.Render()
        self._grab.Modified()
        self._grab.Update()
        w, h = self.size
        scalars = self._grab.GetOutput().GetPointData().GetScalars()
        pixels = _numpy_support().vtk_to_numpy(scalars)
        return np.ascontiguousarray(pixels.reshape(h, w, -1)[::-1, :, :3])

    def close(self) -> None:
        """Free the OpenGL context (on the thread that made it)."""
        self.renderer.RemoveAllViewProps()
        self.window.Finalize()


# --- the render job ------------------------------------------------------------------------
@dataclass(frozen=True)
class RendererReady:
    """What the job tells the window once the pipeline stands."""

    volume: Volume
    gl_renderer: str
    shares_memory: bool


@dataclass(frozen=True)
class RenderedFrame:
    image: np.ndarray  # (h, w, 3) uint8
    seconds: float
    preset: str
    mode: str
    requests: int  # how many of the window's requests it shows (all of them: up to date)


Request = tuple[Any, ...]  # ("rotate", az, el) ("zoom", f) ("preset", name) ("size", w, h) ...


def _apply(renderer: VolumeRenderer, request: Request) -> None:
    kind, *args = request
    if kind == "rotate":
        renderer.rotate(*args)
    elif kind == "zoom":
        renderer.zoom(*args)
    elif kind == "preset":
        renderer.set_preset(*args)
    elif kind == "size":
        renderer.set_size(*args)
    elif kind == "reset":
        renderer.reset(*args)
    elif kind != "render":
        raise ValueError(f"unknown 3D view request '{kind}'")


def render_loop(
    ctx: JobContext,
    build: Callable[[], Volume],
    requests: queue.SimpleQueue[Request],
    preset: str,
    size: tuple[int, int],
    mode: Mode = "auto",
) -> None:
    """The job: the volume (``build``), the VTK pipeline, then a frame after every batch of
    requests, until cancelled. Everything VTK stays on this one thread."""
    volume = build()
    if ctx.cancelled:
        return
    renderer = VolumeRenderer(volume, preset, size, mode)
    try:
        ctx.report(RendererReady(volume, renderer.gl_renderer, renderer.shares_memory()))
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
            for request in batch:
                _apply(renderer, request)
            applied += sum(r[0] != "render" for r in batch)
            batch = []
            start = time.perf_counter()
            image = renderer.render()
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
