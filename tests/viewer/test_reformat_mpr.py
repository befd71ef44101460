"""A viewport's MPR state: the volume stacked from the viewer's own frames without a second
copy, plane switches through the same point, oblique planes by rotating the crosshair."""

from __future__ import annotations

import numpy as np
import pytest

from core.imaging.geometry import GeometryError
from core.imaging.model import Frame, Instance, Series, SliceRef
from core.viewer.mpr import MprView, rotated
from core.viewer.reformat import Reformat, Slab, volume_from_frames
from tests.viewer.test_reformat import RADIUS, geometry, sphere_volume


def slices(n: int = 12, gap: float = 2.5, skip: int | None = None) -> list[SliceRef]:
    refs = []
    for k in range(n):
        if k == skip:
            continue
        inst = Instance(
            path=f"/x/{k}.dcm",
            sop_instance_uid=f"1.2.{k}",
            rows=8,
            columns=10,
            image_position=(-5.0, 3.0, 40.0 + k * gap),
            image_orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
            pixel_spacing=(0.5, 0.5),
            series_instance_uid="1.2.840.99",
        )
        refs.append(SliceRef(inst, 0))
    return refs


def test_a_volume_from_the_viewers_frames_shares_their_memory() -> None:
    refs = slices()
    frames: list[Frame | None] = [
        Frame(values=np.full((8, 10), float(k), dtype=np.float32), windows=[(40.0, 400.0)])
        for k in range(len(refs))
    ]
    series = Series("1.2.840.99", modality="CT", instances=[r.instance for r in refs])
    volume = volume_from_frames(series, refs, frames)
    assert volume.geometry.shape == (12, 8, 10)
    assert volume.geometry.spacing == pytest.approx((2.5, 0.5, 0.5))
    for k, frame in enumerate(frames):
        assert frame is not None
        assert np.shares_memory(frame.values, volume.values)  # one copy of the voxels
        assert float(frame.values[0, 0]) == k
    frames[3] = None
    with pytest.raises(ValueError, match="1 slice\\(s\\) not loaded yet"):
        volume_from_frames(series, refs, frames)


def test_a_series_with_a_hole_is_refused_before_stacking() -> None:
    refs = slices(skip=5)
    frames: list[Frame | None] = [Frame(values=np.zeros((8, 10), np.float32)) for _ in refs]
    series = Series("1.2.840.99", instances=[r.instance for r in refs])
    with pytest.raises(GeometryError, match=r"series '1\.2\.840\.99'.*1 slice\(s\) missing"):
        volume_from_frames(series, refs, frames)


def test_switching_planes_keeps_the_point_and_steps_clamp() -> None:
    g = geometry()
    volume = sphere_volume(g, g.center())
    view = MprView(volume, "axial")
    seen: list[int] = []
    view.changed.connect(lambda: seen.append(view.index))
    view.set_index(30)
    centre = view.plane().center
    view.set_plane("coronal")
    assert view.plane_name == "coronal"
    assert abs(view.plane().to_pixel(centre)[2]) <= view.reformat.step / 2
    view.step(-10_000)
    assert view.index == 0
    view.set_slab(Slab("mip", 5.0))
    assert view.frame().pixel_spacing == view.plane().pixel_spacing
    assert len(seen) == 4
    with pytest.raises(ValueError, match="oblique"):
        view.set_plane("oblique")


def test_rotating_the_crosshair_gives_the_oblique_plane_in_between() -> None:
    """Turning the coronal plane 90 degrees about the axial normal gives the sagittal plane
    (same image, as computed by the sagittal reformat), and 45 degrees a plane between."""
    g = geometry()
    marker = g.center() + np.array([0.0, 10.0, 0.0])
    volume = sphere_volume(g, marker)
    view = MprView(volume, "coronal")
    view.goto(g.center())
    view.rotate((0.0, 0.0, 1.0), 90.0)
    assert view.plane_name == "oblique"
    assert view.plane().normal == pytest.approx(Reformat(volume, "sagittal").normal, abs=1e-9)
    sagittal = Reformat(volume, "sagittal")
    expected = sagittal.image(sagittal.index_of(view.plane().center))
    got = view.reformat.image(view.index)
    # both planes contain the sphere's centre: the same disc of radius RADIUS
    for image, px in ((expected, sagittal.pixel_size), (got, view.reformat.pixel_size)):
        area = np.count_nonzero(image >= 500) * px * px
        assert area == pytest.approx(np.pi * RADIUS**2, rel=0.05)
    view.rotate((0.0, 0.0, 1.0), -45.0)
    assert view.plane().u == pytest.approx(rotated((0.0, 1.0, 0.0), (0, 0, 1), -45.0))
    with pytest.raises(ValueError, match="no direction"):
        view.rotate((0.0, 0.0, 0.0), 10.0)


def test_every_view_of_a_series_gets_the_one_shared_volume() -> None:
    from core.viewer.mpr import SharedVolumes

    refs = slices()
    frames: list[Frame | None] = [Frame(values=np.ones((8, 10), np.float32)) for _ in refs]
    series = Series("1.2.840.99", modality="CT", instances=[r.instance for r in refs])
    shared = SharedVolumes()
    views = [MprView(shared.get(series, refs, frames), p) for p in ("axial", "coronal")]
    assert views[0].volume is views[1].volume
    assert shared.nbytes == 12 * 8 * 10 * 4  # one copy
    shared.drop("1.2.840.99")
    assert "1.2.840.99" not in shared


def test_the_background_comes_from_the_frames_value_ranges() -> None:
    refs = slices()
    frames: list[Frame | None] = [
        Frame(values=np.full((8, 10), 5.0 + k, np.float32), value_range=(5.0 + k, 5.0 + k))
        for k in range(len(refs))
    ]
    series = Series("1.2.840.99", instances=[r.instance for r in refs])
    volume = volume_from_frames(series, refs, frames)
    assert volume.background == 5.0 == float(volume.values.min())
