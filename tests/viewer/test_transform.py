"""Image <-> screen transforms against hand-computed positions."""

from __future__ import annotations

import itertools

import pytest

from core.viewer.transform import (
    ViewGeometry,
    fit_zoom,
    image_to_screen,
    pixel_at,
    screen_to_image,
)

IMG = (100, 50)  # width, height
VIEW = (200, 100)


def test_identity_zoom_centres_the_image() -> None:
    g = ViewGeometry(IMG, VIEW, zoom=2.0)
    assert image_to_screen(g, (0, 0)) == pytest.approx((0, 0))
    assert image_to_screen(g, (100, 50)) == pytest.approx((200, 100))
    assert image_to_screen(g, (50, 25)) == pytest.approx((100, 50))


def test_pan_shifts_in_screen_pixels() -> None:
    g = ViewGeometry(IMG, VIEW, zoom=1.0, pan=(10, -5))
    assert image_to_screen(g, (50, 25)) == pytest.approx((110, 45))


def test_rotation_90_clockwise_puts_top_left_at_top_right() -> None:
    # rotated image is 50 wide, 100 high, centred at (100, 50): spans x 75..125, y 0..100
    g = ViewGeometry(IMG, VIEW, zoom=1.0, rotation=90)
    assert image_to_screen(g, (0, 0)) == pytest.approx((125, 0))
    assert image_to_screen(g, (100, 0)) == pytest.approx((125, 100))
    assert image_to_screen(g, (0, 50)) == pytest.approx((75, 0))


def test_rotation_180_and_270() -> None:
    g180 = ViewGeometry(IMG, VIEW, rotation=180)
    assert image_to_screen(g180, (0, 0)) == pytest.approx((150, 75))
    g270 = ViewGeometry(IMG, VIEW, rotation=270)
    assert image_to_screen(g270, (0, 0)) == pytest.approx((75, 100))


def test_flips_mirror_in_image_frame() -> None:
    gh = ViewGeometry(IMG, VIEW, flip_h=True)
    assert image_to_screen(gh, (0, 0)) == pytest.approx((150, 25))
    gv = ViewGeometry(IMG, VIEW, flip_v=True)
    assert image_to_screen(gv, (0, 0)) == pytest.approx((50, 75))
    # flip then rotate: top-left -> (w, 0) by flip_h -> bottom-right corner region by 90 cw
    g = ViewGeometry(IMG, VIEW, flip_h=True, rotation=90)
    assert image_to_screen(g, (0, 0)) == pytest.approx((125, 100))


@pytest.mark.parametrize(
    ("rotation", "flip_h", "flip_v"),
    list(itertools.product((0, 90, 180, 270), (False, True), (False, True))),
)
def test_round_trip(rotation: int, flip_h: bool, flip_v: bool) -> None:
    g = ViewGeometry(
        IMG, VIEW, zoom=1.7, pan=(13, -7), rotation=rotation, flip_h=flip_h, flip_v=flip_v
    )
    for pt in ((0, 0), (12.5, 33.25), (100, 50), (-4, 80)):
        assert screen_to_image(g, image_to_screen(g, pt)) == pytest.approx(pt)


def test_pixel_at_and_outside() -> None:
    g = ViewGeometry(IMG, VIEW, zoom=2.0)
    assert pixel_at(g, (1, 1)) == (0, 0)
    assert pixel_at(g, (199, 99)) == (99, 49)
    assert pixel_at(g, (-1, 5)) is None


def test_fit_zoom_respects_rotation() -> None:
    assert fit_zoom((512, 512), (800, 600)) == pytest.approx(600 / 512)
    assert fit_zoom((100, 50), (200, 400)) == pytest.approx(2.0)
    assert fit_zoom((100, 50), (200, 400), rotation=90) == pytest.approx(4.0)


def test_bad_rotation_is_rejected() -> None:
    with pytest.raises(ValueError, match="rotation"):
        image_to_screen(ViewGeometry(IMG, VIEW, rotation=45), (0, 0))
