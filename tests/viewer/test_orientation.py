"""Orientation letters: axial, coronal, and after rotation/flip (hand-derived)."""

from __future__ import annotations

from core.viewer.orientation import direction_label, edge_labels
from core.viewer.transform import ViewGeometry

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # rows go to patient left, columns posterior
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
G = ViewGeometry((512, 512), (800, 800))


def test_direction_label() -> None:
    assert direction_label((1, 0, 0)) == "L"
    assert direction_label((0, -1, 0)) == "A"
    assert direction_label((0.0, 0.6, -0.8)) == "FP"
    assert direction_label((0, 0, 0)) == ""


def test_axial_radiological_convention() -> None:
    # patient's right on the screen's left, anterior at the top
    assert edge_labels(AXIAL, G) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}


def test_coronal() -> None:
    assert edge_labels(CORONAL, G) == {"left": "R", "right": "L", "top": "H", "bottom": "F"}


def test_rotation_and_flip_move_the_letters() -> None:
    rot = ViewGeometry((512, 512), (800, 800), rotation=90)
    # 90 deg clockwise: what was at the top (A) is now on the right
    assert edge_labels(AXIAL, rot) == {"left": "P", "right": "A", "top": "R", "bottom": "L"}
    flip = ViewGeometry((512, 512), (800, 800), flip_h=True)
    assert edge_labels(AXIAL, flip)["left"] == "L"
    assert edge_labels(None, G)["left"] == ""
