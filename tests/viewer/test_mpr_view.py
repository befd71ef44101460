"""MprView's slab and oblique controls, headless: thickness steps, the overlay's slab label,
turning through a point (the crosshair), how far a plane is tilted, and straightening it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.viewer.mpr import SLAB_STEPS_MM, MprView
from core.viewer.reformat import Slab
from tests.viewer.test_reformat import geometry, sphere_volume


@pytest.fixture
def view() -> MprView:
    g = geometry()
    return MprView(sphere_volume(g, g.center()), "coronal")


def test_slab_labels_and_thickness_steps(view: MprView) -> None:
    assert view.slab_label() == ""
    view.thicker(1)  # no slab: nothing to thicken
    assert view.slab is None
    view.set_slab(Slab("mip", 10.0))
    assert view.slab_label() == "MIP 10 mm"
    view.thicker(1)
    assert view.slab == Slab("mip", 15.0)
    view.thicker(-3)
    assert view.slab == Slab("mip", 5.0)
    view.thicker(-100)
    assert view.slab == Slab("mip", SLAB_STEPS_MM[0])
    view.thicker(100)
    assert view.slab == Slab("mip", SLAB_STEPS_MM[-1])
    # a thickness between two steps (typed, or from the CLI) goes to the next step each way
    view.set_slab(Slab("avg", 12.0))
    assert view.slab_label() == "Average 12 mm"
    view.thicker(1)
    assert view.slab == Slab("avg", 15.0)
    view.set_slab(Slab("minip", 12.0))
    view.thicker(-1)
    assert view.slab == Slab("minip", 10.0)
    assert view.slab_label() == "MinIP 10 mm"


def test_turning_through_a_point_keeps_it_on_the_plane_and_straightening_comes_back(
    view: MprView,
) -> None:
    g = view.volume.geometry
    point = g.center() + np.array([12.0, 7.0, -20.0])
    view.goto(point)
    index = view.index
    assert not view.is_oblique
    assert view.tilt_degrees() == pytest.approx(0.0)
    changes: list[int] = []
    view.changed.connect(lambda: changes.append(view.index))
    view.rotate(view.plane().v, 15.0, through=point)
    view.rotate(view.plane().u, -10.0, through=point)
    assert view.is_oblique
    assert view.base_name == "coronal"
    assert len(changes) == 2
    plane = view.plane()
    # the turned plane passes through the point (its centre would not: it is off-centre)
    assert abs(plane.to_pixel(point)[2]) < 1e-9
    expected = math.degrees(math.acos(math.cos(math.radians(15)) * math.cos(math.radians(10))))
    assert view.tilt_degrees() == pytest.approx(expected, abs=1e-6)
    # turning about the plane's centre instead moves the point off the plane
    view.rotate(view.plane().u, 20.0)
    assert abs(view.plane().to_pixel(point)[2]) > 1.0
    view.reset_oblique(through=point)
    assert view.plane_name == "coronal"
    assert view.index == index
    assert view.tilt_degrees() == pytest.approx(0.0)
    view.reset_oblique()  # not oblique: nothing happens
    assert len(changes) == 4
