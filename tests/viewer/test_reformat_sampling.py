"""The numpy samplers of core.viewer.resample against scipy's map_coordinates (order 1, mode
'nearest'), which they replace where scipy is not installed, on random volumes and grids."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from core.viewer.resample import Grid, sample_aligned, sample_general

SHAPE = (7, 11, 13)


def reference(values: np.ndarray, grid: Grid, cval: float) -> np.ndarray:
    """map_coordinates, then the same edge rule: beyond half a voxel outside -> cval."""
    coords = grid.coordinates()
    out: np.ndarray = np.asarray(
        ndimage.map_coordinates(values, coords, order=1, mode="nearest"), dtype=np.float32
    )
    limits = np.array(values.shape)[:, None, None] - 0.5
    outside = np.any((coords < -0.5) | (coords > limits), axis=0)
    out[outside] = cval
    return out


def axis_vector(axis: int, length: float) -> np.ndarray:
    v = np.zeros(3)
    v[axis] = length
    return v


@pytest.mark.parametrize(
    ("row_axis", "col_axis", "fixed"),
    [(1, 2, 0), (0, 2, 1), (0, 1, 2), (2, 1, 0), (2, 0, 1)],
)
@pytest.mark.parametrize("at", [3.0, 2.37, -0.4, 6.45, 9.0])
def test_the_separable_sampler_matches_map_coordinates(
    row_axis: int, col_axis: int, fixed: int, at: float
) -> None:
    rng = np.random.default_rng(row_axis * 10 + col_axis)
    values = rng.normal(size=SHAPE).astype(np.float32)
    for dv, du in ((0.37, 0.61), (-0.8, 1.0), (1.0, -0.45)):
        base = np.zeros(3)
        base[fixed] = at
        base[row_axis] = -1.2 if dv > 0 else SHAPE[row_axis] + 0.7
        base[col_axis] = -0.3 if du > 0 else SHAPE[col_axis] - 0.2
        grid = Grid(base, axis_vector(col_axis, du), axis_vector(row_axis, dv), 19, 23)
        assert grid.aligned_axes() == (row_axis, col_axis, fixed)
        np.testing.assert_allclose(
            sample_aligned(values, grid, -99.0), reference(values, grid, -99.0), atol=1e-5
        )


def test_the_numpy_gather_matches_map_coordinates_on_an_oblique_grid() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(size=SHAPE).astype(np.float32)
    grid = Grid(
        base=np.array([-0.8, 1.5, -1.0]),
        du=np.array([0.11, 0.42, 0.53]),
        dv=np.array([0.31, -0.05, 0.2]),
        rows=25,
        cols=31,
    )
    assert grid.aligned_axes() is None
    expected = reference(values, grid, 5.0)
    assert (expected == 5.0).any()  # part of the grid lies outside the volume
    for use_scipy in (True, False):
        np.testing.assert_allclose(
            sample_general(values, grid, 5.0, use_scipy=use_scipy), expected, atol=1e-5
        )


def test_a_one_slice_axis_and_a_misaligned_grid() -> None:
    values = np.arange(1 * 4 * 5, dtype=np.float32).reshape(1, 4, 5)
    grid = Grid(np.array([0.0, 0.5, 0.25]), np.array([0.0, 0.0, 0.5]), np.array([0, 0.5, 0]), 4, 6)
    np.testing.assert_allclose(sample_aligned(values, grid, 0.0), reference(values, grid, 0.0))
    np.testing.assert_allclose(
        sample_general(values, grid, 0.0, use_scipy=False), reference(values, grid, 0.0)
    )
    oblique = Grid(np.zeros(3), np.array([0.0, 0.3, 0.3]), np.array([0.0, 1.0, 0.0]), 2, 2)
    with pytest.raises(ValueError, match="not aligned"):
        sample_aligned(values, oblique, 0.0)


def test_reformats_work_without_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The workstation's own install has no scipy: every plane still renders, the same."""
    import sys

    from core.viewer import resample
    from core.viewer.reformat import Reformat, Slab
    from tests.viewer.test_reformat import geometry, oblique_axes, sphere_volume

    g = geometry()
    volume = sphere_volume(g, g.center())
    u, v = oblique_axes()
    with_scipy = Reformat.oblique(volume, g.center(), u, v).image()
    monkeypatch.setattr(resample, "HAVE_SCIPY", False)
    monkeypatch.setitem(sys.modules, "scipy", None)  # import scipy now fails
    monkeypatch.setitem(sys.modules, "scipy.ndimage", None)
    with pytest.raises(ImportError):
        import scipy.ndimage  # noqa: F401
    without = Reformat.oblique(volume, g.center(), u, v).image()
    np.testing.assert_allclose(without, with_scipy, atol=1e-3)
    for name in ("axial", "coronal", "sagittal"):
        assert Reformat(volume, name).image(slab=Slab("mip", 5)).any()


@pytest.mark.parametrize("block", [1, 31 * 4 - 5, 31 * 25])
def test_sampling_in_blocks_of_rows_gives_the_whole_grid(
    block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large oblique plane is sampled a few rows at a time (bounded temporaries): one row, an
    uneven last block, one block; each the same as map_coordinates over the whole grid."""
    from core.viewer import resample

    rng = np.random.default_rng(11)
    values = rng.normal(size=SHAPE).astype(np.float32)
    grid = Grid(
        base=np.array([-0.8, 1.5, -1.0]),
        du=np.array([0.11, 0.42, 0.53]),
        dv=np.array([0.31, -0.05, 0.2]),
        rows=25,
        cols=31,
    )
    expected = reference(values, grid, 5.0)
    monkeypatch.setattr(resample, "BLOCK_PIXELS", block)
    for use_scipy in (True, False):
        np.testing.assert_allclose(
            sample_general(values, grid, 5.0, use_scipy=use_scipy), expected, atol=1e-5
        )
