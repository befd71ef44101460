"""3D volume rendering of the shared CT, offscreen (EGL; Mesa's llvmpipe where there is no GPU).

The pictures are checked against an independent projection of the same voxels: with the
renderer's parallel camera a frame pixel is a known patient point, so the bone preset must be
bright exactly where a maximum-intensity projection along the view meets bone, and the
soft-tissue preset must cover the body's outline. Without vtk (a subprocess where importing it
fails, as on a machine without the package) the menu entry and the renderer say what to install.
"""

from __future__ import annotations

import ctypes.util
import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QMainWindow, QMenu

from core.imaging.geometry import VolumeGeometry
from core.imaging.index import build_index
from core.imaging.pixels import read_frame
from core.viewer.layout import Layout
from core.viewer.reformat import Volume, load_series_volume
from core.viewer.state import ViewerState
from core.viewer.volume_presets import VOLUME_PRESETS, VolumePresetError
from desktop import volume_render
from desktop.viewport_grid import ViewportGrid
from desktop.viewport_widget import ViewportWidget
from desktop.volume_view import (
    SOFTWARE_GL,
    VIEWS,
    VTK_REQUIREMENT,
    RenderedFrame,
    VolumeRenderer,
    VolumeRenderError,
    VolumeView,
    install_volume_menu,
    vtk_missing,
)
from desktop.workers import ErrorSink, JobRunner
from tests.conftest import DICOM_DATA, REPO

CT = DICOM_DATA / "pyvista__vtk-data" / "Data" / "DICOM_Stack"
SIZE = 256
needs_vtk = pytest.mark.skipif(vtk_missing() is not None, reason=str(vtk_missing()))


@pytest.fixture(scope="module")
def volume() -> Volume:
    if not CT.is_dir():
        pytest.skip(f"the shared 134-slice CT is not at '{CT}'")
    ((_, _, series),) = build_index([CT]).iter_series()
    return load_series_volume(series)


@pytest.fixture(scope="module")
def renderer(volume: Volume):  # type: ignore[no-untyped-def]
    if vtk_missing() is not None:
        pytest.skip(str(vtk_missing()))
    r = VolumeRenderer(volume, "bone", (SIZE, SIZE))
    yield r
    r.close()


def dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(steps):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def projection(volume: Volume, renderer: VolumeRenderer, view: str) -> np.ndarray:
    """HU of the maximum-intensity projection along ``view`` at each frame pixel's centre
    (-3000 outside the volume), from the voxels and the camera's documented framing: parallel
    projection centred on the volume, head up, ``mm_per_pixel`` square pixels."""
    direction, up = (np.asarray(v, dtype=float) for v in VIEWS[view])
    right = np.cross(-direction, up)  # the screen's +x: direction of projection x view up
    mm = renderer.mm_per_pixel
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    points = (
        renderer.centre
        + ((cols + 0.5 - SIZE / 2) * mm)[..., None] * right
        + ((SIZE / 2 - rows - 0.5) * mm)[..., None] * up
    )
    index = np.rint(volume.geometry.to_index(points)).astype(int)
    g = volume.geometry
    along = int(np.argmax(np.abs(g.to_index(g.origin + direction) - g.to_index(g.origin))))
    mip = volume.values.max(axis=along)
    a, b = (index[..., k] for k in range(3) if k != along)
    inside = (a >= 0) & (a < mip.shape[0]) & (b >= 0) & (b < mip.shape[1])
    out = np.full((SIZE, SIZE), -3000.0)
    out[inside] = mip[a[inside], b[inside]]
    return out


def frame(renderer: VolumeRenderer, preset: str, view: str = "anterior") -> np.ndarray:
    renderer.reset(view)
    renderer.set_preset(preset)
    return renderer.render().astype(int)


@pytest.mark.parametrize("view", ["anterior", "left"])
def test_bone_preset_is_bright_exactly_where_bone_projects(
    volume: Volume, renderer: VolumeRenderer, view: str
) -> None:
    image = frame(renderer, "bone", view)
    assert image.shape == (SIZE, SIZE, 3)
    assert (image.max(axis=2) > 40).sum() > 2000  # spine, ribs and pelvis fill much of it
    precision, recall = agreement(image, projection(volume, renderer, view))
    # nothing bright where the ray meets nothing denser than soft tissue (150 HU: where the
    # bone preset starts; 2 px of slack for interpolation and the pixel grid) ...
    assert precision > 0.97
    # ... and every ray through cortical bone (inside its outline) is bright
    assert recall > 0.95


def test_soft_tissue_preset_shows_the_body_where_bone_shows_only_bone(
    volume: Volume, renderer: VolumeRenderer
) -> None:
    bone, soft = frame(renderer, "bone"), frame(renderer, "soft_tissue")
    body = projection(volume, renderer, "anterior") > -300  # the body (and the table)
    seen_soft, seen_bone = soft.max(axis=2) > 20, bone.max(axis=2) > 20
    assert (seen_soft & body).sum() / body.sum() > 0.9
    assert (seen_bone & body).sum() / body.sum() < 0.6
    assert not (seen_soft & ~dilate(body, 2)).any()  # air stays black
    assert np.abs(soft - bone).mean() > 10


def test_a_turned_camera_shows_the_side_view(renderer: VolumeRenderer) -> None:
    front = frame(renderer, "bone")
    renderer.rotate(90, 0)
    turned = renderer.render().astype(int)
    assert np.abs(turned - front).mean() > 5
    side = frame(renderer, "bone", "left")
    assert np.abs(turned - side).mean() < 1.0  # 90° of azimuth from the front is the left side


def agreement(image: np.ndarray, mip: np.ndarray) -> tuple[float, float]:
    """(share of bright pixels over bone, share of rays through cortical bone drawn bright)."""
    bright = image.max(axis=2) > 40
    dense = (mip > 400) & ~dilate(~(mip > 400), 1)
    return (
        (bright & dilate(mip > 150, 2)).sum() / bright.sum(),
        (bright & dense).sum() / dense.sum(),
    )


def test_zoom_magnifies_about_the_centre(volume: Volume, renderer: VolumeRenderer) -> None:
    before = frame(renderer, "bone")
    mm = renderer.mm_per_pixel
    renderer.zoom(1.5)
    after = renderer.render()
    assert renderer.mm_per_pixel == pytest.approx(mm / 1.5)
    # drawn at the new scale, about the same centre: bone still lies where it projects
    precision, recall = agreement(after, projection(volume, renderer, "anterior"))
    assert precision > 0.97
    assert recall > 0.95
    assert (after.max(axis=2) > 40).sum() > 1.5 * (before.max(axis=2) > 40).sum()
    with pytest.raises(ValueError, match="zoom factor must be a positive number"):
        renderer.zoom(0)


def test_vtk_draws_from_the_shared_block_with_the_presets_functions(
    volume: Volume, renderer: VolumeRenderer
) -> None:
    """One copy for the render process: the voxels cross once, into a shared-memory block of
    exactly their size, and VTK there wraps that block (no copy of its own)."""
    assert renderer.shares_memory()
    assert renderer.shared_bytes == volume.values.nbytes
    assert renderer.pid != os.getpid()
    hu = np.linspace(-1200.0, 3200.0, 97)
    for preset in VOLUME_PRESETS.values():
        renderer.set_preset(preset.name)
        colour, opacity = renderer.transfer_functions(hu)
        np.testing.assert_allclose(colour, preset.colour_at(hu), atol=1e-6)
        np.testing.assert_allclose(opacity, preset.opacity_at(hu), atol=1e-6)


def test_tensorflow_in_this_process_does_not_reach_the_renderer(volume: Volume) -> None:
    """VTK's EGL window on Mesa crashed the process once TensorFlow had been imported into it
    (the keras adapter does that): rendering happens in its own process, so it still works."""
    pytest.importorskip("tensorflow")
    small = VolumeRenderer(volume, "bone", (64, 64))
    try:
        image = small.render()
        assert image.shape == (64, 64, 3)
        assert (image.max(axis=2) > 40).sum() > 100  # bone drawn
    finally:
        small.close()


def test_a_crash_of_the_render_process_is_an_error_naming_it_and_this_process_lives(
    volume: Volume,
) -> None:
    small = VolumeRenderer(volume, "bone", (64, 64))
    try:
        assert small.render().shape == (64, 64, 3)
        os.kill(small.pid, signal.SIGSEGV)  # what VTK's crash looks like from here
        with pytest.raises(VolumeRenderError, match=r"crashed \(killed by SIGSEGV, signal 11"):
            small.rotate(10, 0)
        assert not small.alive
        with pytest.raises(VolumeRenderError, match="render process is closed"):
            small.render()
    finally:
        small.close()
    small.close()  # twice is harmless


def test_the_ray_caster_follows_the_opengl_renderer(
    volume: Volume, renderer: VolumeRenderer
) -> None:
    frame(renderer, "bone")
    software = any(s in renderer.gl_renderer.lower() + " " for s in SOFTWARE_GL)
    assert renderer.mode == ("CPU ray cast" if software else "GPU ray cast")
    # either can be asked for (a small piece of the CT: GPU ray casting in software is slow)
    piece = dataclasses.replace(
        volume,
        values=np.ascontiguousarray(volume.values[60:76, 128:384, 128:384]),
        geometry=dataclasses.replace(
            volume.geometry,
            shape=(16, 256, 256),
            origin=volume.geometry.to_patient((60, 128, 128)),
        ),
    )
    for mode, expected in (("gpu", "GPU ray cast"), ("cpu", "CPU ray cast")):
        small = VolumeRenderer(piece, "bone", (64, 64), mode)  # type: ignore[arg-type]
        try:
            assert small.render().shape == (64, 64, 3)
            assert small.mode == expected
        finally:
            small.close()


@needs_vtk
def test_a_series_that_is_not_ct_is_refused_by_name(volume: Volume) -> None:
    mr = dataclasses.replace(volume, modality="MR", series_uid="1.2.3")
    with pytest.raises(VolumePresetError, match=r"\(CT only\); series '1\.2\.3' is MR"):
        VolumeRenderer(mr)


def test_without_vtk_the_menu_entry_and_the_renderer_say_what_to_install(tmp_path: Path) -> None:
    """A Python where ``import vtkmodules`` fails, as without the package; also checks that
    importing the module does not import vtk (start-up stays fast)."""
    code = textwrap.dedent(
        """
        import sys
        import desktop.volume_view as vv
        assert "vtkmodules" not in sys.modules, "vtk imported at module level"
        sys.modules["vtkmodules"] = None  # what a missing package looks like to importlib
        import numpy as np
        from PySide6.QtWidgets import QApplication, QMainWindow
        from core.imaging.geometry import VolumeGeometry
        from core.viewer.reformat import Volume
        app = QApplication([])
        win = QMainWindow()
        action = vv.install_volume_menu(win, win.menuBar().addMenu("View"), None)
        print("ENABLED", action.isEnabled())
        print("TEXT", action.text())
        print("TIP", action.statusTip())
        geometry = VolumeGeometry((2, 2, 2), np.zeros(3), np.array([1.0, 0, 0]),
                                  np.array([0, 1.0, 0]), np.array([0, 0, 1.0]), (1.0, 1.0))
        try:
            vv.VolumeRenderer(Volume(np.zeros((2, 2, 2), np.float32), geometry, modality="CT"))
        except vv.VolumeRenderError as exc:
            print("ERROR", exc)
        """
    )
    env = {"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "ENABLED False" in out
    assert f"TEXT 3D volume rendering: needs vtk (pip install {VTK_REQUIREMENT})" in out
    assert "TIP 3D volume rendering needs the 'vtk' package, which is not installed" in out
    assert "ERROR 3D volume rendering needs the 'vtk' package" in out
    assert f"(pip install {VTK_REQUIREMENT})" in out.split("ERROR", 1)[1]


@needs_vtk
def test_without_an_opengl_driver_the_renderer_says_what_is_missing_and_does_not_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """VTK's OSMesa window on a machine without libOSMesa: VTK itself crashes (segmentation
    fault) there, so the renderer must find out in its child-process probe and refuse."""
    if ctypes.util.find_library("OSMesa"):
        pytest.skip("libOSMesa is installed here: this machine has the driver")
    monkeypatch.setenv("VTK_DEFAULT_OPENGL_WINDOW", "vtkOSOpenGLRenderWindow")
    monkeypatch.setattr(volume_render, "_probed", {})
    geometry = VolumeGeometry(
        (2, 2, 2), np.zeros(3), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]),
        np.array([0, 0, 1.0]), (1.0, 1.0),
    )  # fmt: skip
    tiny = Volume(np.zeros((2, 2, 2), np.float32), geometry, modality="CT")
    with pytest.raises(VolumeRenderError) as info:
        VolumeRenderer(tiny)
    text = str(info.value)
    assert "found no OpenGL: VTK's vtkOSOpenGLRenderWindow failed" in text
    assert "OSMesa is not installed" in text  # VTK's own words, passed on
    assert "apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri" in text


# --- the window ------------------------------------------------------------------------------
@pytest.fixture
def grid(qtbot):  # type: ignore[no-untyped-def]
    """A reading-room grid in a window, as the main window has it, with its own job runner."""
    if vtk_missing() is not None:
        pytest.skip(str(vtk_missing()))
    first = ViewerState()
    runner = JobRunner(ErrorSink())
    win = QMainWindow()
    grid = ViewportGrid(Layout(1, 1, first=first), ViewportWidget(first), runner=runner)
    win.setCentralWidget(grid)
    qtbot.addWidget(win)
    win.resize(800, 600)
    win.show()
    qtbot.waitExposed(win)
    yield grid
    assert runner.shutdown(20_000)


def show_ct(grid: ViewportGrid) -> ViewerState:
    """The shared CT in the grid's viewport, every slice decoded by the pixel pipeline."""
    if not CT.is_dir():
        pytest.skip(f"the shared 134-slice CT is not at '{CT}'")
    index = build_index([CT])
    ((patient, _study, series),) = index.iter_series()
    grid.model.index.patients[patient.patient_id] = patient
    grid.model.assign(0, series)
    state = grid.model.cells[0].state
    state.set_frames(
        [(k, read_frame(ref.instance, ref.frame)) for k, ref in enumerate(state.slices)]
    )
    return state


def test_the_3d_window_renders_the_viewers_own_volume_and_follows_the_mouse(
    qtbot: Any, grid: ViewportGrid
) -> None:
    st = show_ct(grid)
    window = grid.window()
    action = install_volume_menu(window, QMenu(window), grid)
    assert action.isEnabled()
    action.trigger()
    (view,) = window.findChildren(VolumeView)
    frames: list[RenderedFrame] = []
    view.frame_shown.connect(frames.append)
    qtbot.waitUntil(lambda: bool(frames) or "No 3D" in view.status.text(), timeout=120_000)
    assert frames, view.status.text()

    def next_frame() -> np.ndarray:
        qtbot.waitUntil(lambda: view.up_to_date, timeout=60_000)
        return frames[-1].image.astype(int)

    next_frame()  # the canvas's size, once shown
    first = frames[-1]
    assert view.info is not None
    # the 3D view, the grid's reformats and the viewer's slices share one array here; the
    # render process got one copy of it (shared memory), which its VTK draws from directly
    assert view.info.shares_memory
    assert view.info.pid != os.getpid()
    assert st.series is not None
    assert view.info.volume is grid.volumes.get(st.series, st.slices, st.frames)
    assert all(np.shares_memory(f.values, view.info.volume.values) for f in st.frames if f)
    assert first.preset == "bone"
    assert first.mode in view.status.text()
    assert first.image.max() > 200  # bone is drawn

    view.presets.setCurrentIndex(view.presets.findData("soft_tissue"))
    soft = next_frame()
    assert frames[-1].preset == "soft_tissue"
    assert soft.shape == first.image.shape
    assert np.abs(soft - first.image.astype(int)).mean() > 5

    canvas = view.canvas
    centre = canvas.rect().center()
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=centre)
    qtbot.mouseMove(canvas, centre + QPoint(120, 0))
    dragging = next_frame()  # while the button is down: half size, turned
    assert dragging.shape[0] == pytest.approx(soft.shape[0] / 2, abs=1)
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=centre + QPoint(120, 0))
    turned = next_frame()  # let go: full size again
    assert turned.shape == soft.shape
    assert np.abs(turned - soft).mean() > 3

    wheel = QWheelEvent(
        QPointF(centre),
        QPointF(canvas.mapToGlobal(centre)),
        QPoint(0, 0),
        QPoint(0, 240),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    canvas.wheelEvent(wheel)
    zoomed = next_frame()

    def lit(image: np.ndarray) -> int:
        return int((image.max(axis=2) > 20).sum())

    assert lit(zoomed) > 1.1 * lit(turned)  # closer: the body covers more of the frame

    job = view.job
    assert job is not None
    view.close()
    qtbot.waitUntil(lambda: job.done, timeout=60_000)


def test_the_3d_window_says_why_when_there_is_nothing_to_show(grid: ViewportGrid) -> None:
    window = grid.window()
    action = install_volume_menu(window, QMenu(window), grid)
    action.trigger()
    (view,) = window.findChildren(VolumeView)
    assert view.job is None
    assert "No 3D view: open a CT series in the active viewport first" in view.status.text()
    view.close()


def test_a_crash_of_the_render_process_shows_in_the_window_and_the_application_lives(
    qtbot: Any, grid: ViewportGrid
) -> None:
    show_ct(grid)
    window = grid.window()
    install_volume_menu(window, QMenu(window), grid).trigger()
    (view,) = window.findChildren(VolumeView)
    frames: list[RenderedFrame] = []
    view.frame_shown.connect(frames.append)
    qtbot.waitUntil(lambda: bool(frames) or "No 3D" in view.status.text(), timeout=120_000)
    assert frames, view.status.text()
    assert view.info is not None
    os.kill(view.info.pid, signal.SIGSEGV)  # VTK crashing in the render process
    view.request("rotate", 10.0, 0.0)
    qtbot.waitUntil(lambda: "No 3D" in view.status.text(), timeout=60_000)
    text = view.canvas.message
    assert "3D render process (VTK/OpenGL) crashed (killed by SIGSEGV, signal 11" in text
    assert "close this window and open the 3D view again" in text
    assert view.canvas.image is None
    job = view.job
    assert job is not None
    qtbot.waitUntil(lambda: job.done, timeout=30_000)
    view.close()
