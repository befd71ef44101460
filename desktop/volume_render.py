"""VTK volume rendering of a CT, in a child process: the part of the 3D view without Qt.

Why a child process. VTK's offscreen EGL window on Mesa's llvmpipe crashes the whole process
(segmentation fault in the first ``Render()``) once TensorFlow has been imported into it: the
keras adapter imports TensorFlow when a keras model runs (brain MRI), and any later 3D view
killed the application (found by bisecting tests/desktop: test_ai_panel's keras test, then
``import tensorflow`` alone before a render, reproduces it). gdb shows why: Mesa's llvmpipe
(swrast_dri.so) calls ``llvm::FixedVectorType::get`` and the dynamic linker binds it to the copy
of LLVM that libtensorflow_framework.so.2 exports, another LLVM version. No environment
variable unbinds a symbol already loaded, and any package bundling LLVM can do the same
(softpipe, without LLVM, is far too slow), so VTK never renders in the application's process:
``VolumeRenderer`` starts a render process ('spawn': a fresh interpreter, without whatever the
application imported since, TensorFlow included), hands it the voxels ONCE through shared
memory, and sends it camera and preset requests; frames come back as arrays. A crash there is
a ``VolumeRenderError`` naming the signal; the application lives and the window says so.

Memory. The voxels are copied once into a shared-memory block; the render process's VTK wraps
that block without copying (``numpy_to_vtk(deep=False)``; ``shares_memory``), so the total is
the series' volume plus one block of the same size, plus VTK's own working data in the child
(the CPU ray caster a 16-bit copy plus gradients, the GPU ray caster a 3D texture).

GPU or CPU. ``vtkSmartVolumeMapper`` picks GPU ray casting whenever OpenGL can, which includes
Mesa's software rasteriser (llvmpipe), where it is 10-16x slower than VTK's multi-threaded CPU
ray caster. So the renderer asks for the CPU ray caster when the OpenGL renderer is a
software one and leaves the GPU ray caster on a real GPU; ``mode`` says which ran.

Offscreen. VTK renders into its own offscreen ``vtkRenderWindow`` (EGL when there is no X
display: NVIDIA's or Mesa's driver through libglvnd; GLX otherwise) and frames are RGB arrays,
so the same code runs on a desktop, headless and in CI.

vtk is imported on first use only (start-up stays fast); without it ``vtk_missing`` says what
to install. Without a working OpenGL (no Mesa EGL, no GPU driver) VTK does not raise but
crashes, so ``probe_opengl`` first renders once in a child process and turns a failure into a
VolumeRenderError naming VTK's complaint and the packages to install.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from multiprocessing import shared_memory
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from core.viewer.reformat import Volume
from core.viewer.volume_presets import VolumePreset, check_modality, get_preset

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

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


def check_renderable(volume: Volume) -> None:
    """vtk installed, a CT, and OpenGL that works (probed once, in a child process: without a
    driver VTK crashes instead of raising); else VolumeRenderError saying what is missing."""
    missing = vtk_missing()
    if missing is not None:
        raise VolumeRenderError(missing)
    check_modality(volume.modality, volume.series_uid)
    probe_opengl()


def volume_centre(volume: Volume) -> np.ndarray:
    """The patient position (LPS mm) of the volume's middle voxel: where the camera looks."""
    k, r, c = volume.values.shape
    return volume.geometry.to_patient(((k - 1) / 2, (r - 1) / 2, (c - 1) / 2))


class VtkVolumeRenderer:
    """A CT volume rendered offscreen by VTK in THIS process; every call on the thread that
    made it. The application runs it in a render process only (``VolumeRenderer``)."""

    def __init__(
        self,
        volume: Volume,
        preset: str = "bone",
        size: tuple[int, int] = (512, 512),
        mode: Mode = "auto",
        probe: bool = True,
    ) -> None:
        """``probe`` False: the checks of ``check_renderable`` were made by the process that
        started this one (the render process does not probe OpenGL a second time)."""
        if probe:
            check_renderable(volume)
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
        self.centre = volume_centre(volume)
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


Request = tuple[Any, ...]  # ("rotate", az, el) ("zoom", f) ("preset", name) ("size", w, h) ...


def _apply(renderer: VtkVolumeRenderer, request: Request) -> None:
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


def _transfer(renderer: VtkVolumeRenderer, hu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The colour (n, 3) and opacity (n,) VTK's property gives at ``hu``: what it draws with."""
    colour = renderer.property.GetRGBTransferFunction()
    opacity = renderer.property.GetScalarOpacity()
    return (
        np.array([colour.GetColor(float(v)) for v in hu], dtype=float),
        np.array([opacity.GetValue(float(v)) for v in hu], dtype=float),
    )


# --- the render process --------------------------------------------------------------------
def _state(renderer: VtkVolumeRenderer) -> dict[str, Any]:
    return {
        "mode": renderer.mode,
        "preset": renderer.preset.name,
        "size": renderer.size,
        "mm_per_pixel": renderer.mm_per_pixel,
    }


def serve(
    conn: Connection,
    block: str,
    fields: dict[str, Any],
    preset: str,
    size: tuple[int, int],
    mode: Mode,
) -> None:
    """The render process: the voxels from shared memory ``block`` (no copy), one VTK
    pipeline, then one answer per message ``(requests, want)`` until ``None`` or EOF.
    An answer is ("ok", value, state) or ("error", type name, message, state)."""
    shm = shared_memory.SharedMemory(name=block)
    # the parent owns the block and unlinks it; this process shares its resource tracker
    # ('spawn'), where attaching registers the same name again: nothing to undo here
    values: np.ndarray = np.ndarray(fields["geometry"].shape, np.float32, buffer=shm.buf)
    renderer: VtkVolumeRenderer | None = None
    try:
        try:
            volume = Volume(values=values, **fields)  # checked by the starting process
            renderer = VtkVolumeRenderer(volume, preset, size, mode, probe=False)
        except Exception as exc:  # noqa: BLE001 (passed on, by name, to the application)
            conn.send(("error", type(exc).__name__, str(exc), {}))
            return
        conn.send(
            ("ok", (renderer.gl_renderer, renderer.shares_memory(), os.getpid()), _state(renderer))
        )
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return
            if message is None:
                return
            requests, want = message
            try:
                for request in requests:
                    _apply(renderer, request)
                value: Any = None
                if want == "frame":
                    start = time.perf_counter()
                    value = (renderer.render(), time.perf_counter() - start)
                elif want == "transfer":
                    value = _transfer(renderer, np.asarray(requests[-1][1], dtype=float))
                conn.send(("ok", value, _state(renderer)))
            except Exception as exc:  # noqa: BLE001 (a bad request; the pipeline stands)
                conn.send(("error", type(exc).__name__, str(exc), _state(renderer)))
    finally:
        if renderer is not None:
            renderer.close()
        del renderer, values
        with contextlib.suppress(BufferError):  # VTK may still hold the array: exit unmaps it
            shm.close()


def _signal_name(code: int) -> str:
    try:
        name = signal.Signals(code).name
    except ValueError:
        return f"signal {code}"
    return f"{name}, signal {code}" + (": a segmentation fault" if name == "SIGSEGV" else "")


class VolumeRenderer:
    """A CT volume rendered by VTK in a render process of its own (see the module docstring):
    the same calls as ``VtkVolumeRenderer``; each waits for the process's answer. A crash of
    the process raises VolumeRenderError; the caller's process is untouched."""

    START_TIMEOUT = 180.0  # importing VTK and the first frame, on a loaded 2-core machine

    def __init__(
        self,
        volume: Volume,
        preset: str = "bone",
        size: tuple[int, int] = (512, 512),
        mode: Mode = "auto",
    ) -> None:
        check_renderable(volume)  # names a missing driver before anything starts
        self.preset: VolumePreset = get_preset(preset)
        self.volume = volume
        self.centre = volume_centre(volume)
        self._state: dict[str, Any] = {}
        self.seconds = 0.0  # the render process's time for the last frame
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        # the voxels, copied once into a block the render process maps without copying
        self._shm: shared_memory.SharedMemory | None = shared_memory.SharedMemory(
            create=True, size=max(1, volume.values.nbytes)
        )
        self.shared_bytes = volume.values.nbytes
        try:
            block: np.ndarray = np.ndarray(volume.values.shape, np.float32, buffer=self._shm.buf)
            block[...] = volume.values
            del block
            fields = {
                f.name: getattr(volume, f.name)
                for f in dataclasses.fields(volume)
                if f.name != "values"
            }
            context = multiprocessing.get_context("spawn")
            ours, theirs = context.Pipe()
            self._conn = ours
            self._process = context.Process(
                target=serve,
                args=(theirs, self._shm.name, fields, self.preset.name, size, mode),
                name="doctorai-3d-render",
                daemon=True,
            )
            self._process.start()
            theirs.close()
            gl, shares, pid = self._receive(self.START_TIMEOUT)
        except BaseException:
            self.close()
            raise
        self.gl_renderer: str = gl
        self._shares_memory = bool(shares)
        self.pid: int = pid

    # --- talking to the render process -----------------------------------------------------
    def _receive(self, timeout: float) -> Any:
        conn, process = self._conn, self._process
        if conn is None or process is None:
            raise VolumeRenderError("the 3D render process is closed")
        deadline = time.monotonic() + timeout
        while True:
            try:
                if conn.poll(0.1):
                    answer = conn.recv()
                    break
            except (EOFError, OSError):
                answer = None
                break
            if not process.is_alive() or time.monotonic() > deadline:
                answer = None
                break
        if answer is None:
            raise VolumeRenderError(self._died(timeout))
        if answer[0] == "error":
            _, kind, text, state = answer
            self._remember(state)
            if kind == "ValueError":
                raise ValueError(text)
            if kind == "VolumePresetError":
                from core.viewer.volume_presets import VolumePresetError

                raise VolumePresetError(text)
            raise VolumeRenderError(f"3D rendering failed: {kind}: {text}")
        _, value, state = answer
        self._remember(state)
        return value

    def _died(self, timeout: float) -> str:
        process = self._process
        assert process is not None
        process.join(2.0)
        code = process.exitcode
        self._close_process()
        if code is None:
            return f"the 3D render process did not answer within {timeout:.0f} s and was stopped"
        how = f"killed by {_signal_name(-code)}" if code < 0 else f"exit status {code}"
        return (
            f"the 3D render process (VTK/OpenGL) crashed ({how}); the application is "
            "unaffected: close this window and open the 3D view again"
        )

    def _remember(self, state: dict[str, Any]) -> None:
        if state:
            self._state = state
            self.preset = get_preset(state["preset"])

    def _call(self, requests: list[Request], want: str = "", timeout: float = 600.0) -> Any:
        if self._conn is None:
            raise VolumeRenderError("the 3D render process is closed")
        try:
            self._conn.send((requests, want))
        except (OSError, ValueError) as exc:  # the pipe broke: the process is gone
            raise VolumeRenderError(self._died(0.0)) from exc
        return self._receive(timeout)

    # --- what the renderer is and holds --------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def mode(self) -> str:
        """Which ray caster drew the last frame."""
        return str(self._state["mode"])

    def shares_memory(self) -> bool:
        """True when the render process's VTK draws from the shared block itself (the one
        copy of the voxels made for it), not from a second copy of its own."""
        return self._shares_memory

    @property
    def size(self) -> tuple[int, int]:
        w, h = self._state["size"]
        return int(w), int(h)

    @property
    def mm_per_pixel(self) -> float:
        """Patient mm per frame pixel (parallel projection: the same everywhere)."""
        return float(self._state["mm_per_pixel"])

    def transfer_functions(self, hu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Colour (n, 3) and opacity (n,) at ``hu`` as VTK holds them in the render process."""
        return self._call([("render", [float(v) for v in np.ravel(hu)])], "transfer")  # type: ignore[no-any-return]

    # --- changes ---------------------------------------------------------------------------
    def apply(self, requests: list[Request]) -> None:
        """Several changes at once (one round trip)."""
        self._call(list(requests))

    def set_preset(self, name: str) -> None:
        self._call([("preset", get_preset(name).name)])

    def reset(self, view: str = "anterior") -> None:
        """Look at the whole volume from ``view`` (parallel projection, head up)."""
        if view not in VIEWS:
            raise ValueError(f"no 3D view '{view}' (known: {', '.join(VIEWS)})")
        self._call([("reset", view)])

    def rotate(self, azimuth: float, elevation: float) -> None:
        """Turn the camera about the focal point (degrees): sideways, then up/down."""
        self._call([("rotate", float(azimuth), float(elevation))])

    def zoom(self, factor: float) -> None:
        """Magnify by ``factor`` (> 1 closer)."""
        self._call([("zoom", float(factor))])

    def set_size(self, width: int, height: int) -> None:
        self._call([("size", int(width), int(height))])

    def render(self) -> np.ndarray:
        """One frame: (height, width, 3) uint8, top row first."""
        image, self.seconds = self._call([], "frame")
        return image  # type: ignore[no-any-return]

    def _close_process(self) -> None:
        conn, process = self._conn, self._process
        self._conn = None
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)
            conn.close()
        if process is not None:
            process.join(10.0)
            if process.is_alive():
                process.kill()
                process.join(5.0)
            process.close()
            self._process = None

    def close(self) -> None:
        """Stop the render process (its OpenGL context goes with it) and free the block."""
        self._close_process()
        shm = getattr(self, "_shm", None)
        if shm is not None:
            self._shm = None
            shm.close()
            shm.unlink()
