"""Trilinear sampling of a volume on a plane of points, written here on purpose.

scipy is not a dependency of the workstation's own install (only of the backend and AI
extras), and a reformat must work without it. Two numpy samplers, both checked against
``scipy.ndimage.map_coordinates(order=1, mode='nearest')`` (tests/viewer/
test_reformat_sampling.py):

- ``sample_aligned``: when the plane's row, column and normal directions each run along one
  voxel axis (axial, coronal and sagittal planes of a series acquired in one of them, the usual
  case), trilinear interpolation separates into one blend of two slices and two 1-D gathers;
  the slice blend is skipped (a view) when the plane sits on voxel centres. Several times
  faster than map_coordinates (benchmarks/bench_reformat.py).
- ``sample_general``: any plane (oblique): map_coordinates when scipy is importable, else an
  8-neighbour numpy gather.

Both follow the same edge rule: coordinates within half a voxel outside the outer voxel centres
take the edge value (a voxel fills its cell), points beyond that get ``cval``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vec = npt.NDArray[np.float64]
Image = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Grid:
    """Voxel coordinates ``base + row * dv + col * du`` (each a (k, r, c) vector), rows x cols."""

    base: Vec
    du: Vec
    dv: Vec
    rows: int
    cols: int

    def coordinates(self) -> Vec:
        """(3, rows, cols) float64 voxel indices of every pixel."""
        r = np.arange(self.rows, dtype=np.float64)
        c = np.arange(self.cols, dtype=np.float64)
        out = np.empty((3, self.rows, self.cols), dtype=np.float64)
        for a in range(3):
            np.add.outer(r * self.dv[a] + self.base[a], c * self.du[a], out=out[a])
        return out

    def aligned_axes(self) -> tuple[int, int, int] | None:
        """(row axis, column axis, constant axis) when each pixel step moves along one voxel
        axis and the third stays constant, else None."""
        tol = 1e-9
        ru = [a for a in range(3) if abs(self.du[a]) > tol]
        rv = [a for a in range(3) if abs(self.dv[a]) > tol]
        if len(ru) != 1 or len(rv) != 1 or ru[0] == rv[0]:
            return None
        return rv[0], ru[0], 3 - ru[0] - rv[0]


def _axis(x: Vec, n: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], Vec, Vec]:
    """Lower/upper neighbour, weight of the upper one, and an 'outside' mask, for one axis."""
    outside = (x < -0.5) | (x > n - 0.5)
    xc = np.clip(x, 0.0, n - 1.0)
    lo = np.minimum(np.floor(xc), max(n - 2, 0)).astype(np.intp)
    w = xc - lo
    hi = np.minimum(lo + 1, n - 1)
    return lo, hi, w, outside.astype(np.float64)


def sample_aligned(values: Image, grid: Grid, cval: float) -> Image:
    """Separable trilinear samples for an axis-aligned grid (see ``Grid.aligned_axes``)."""
    axes = grid.aligned_axes()
    if axes is None:
        raise ValueError("the grid is not aligned with the voxel axes")
    a_row, a_col, a_fix = axes
    shape = values.shape
    out = np.empty((grid.rows, grid.cols), dtype=np.float32)
    x_fix = float(grid.base[a_fix])
    if abs(x_fix - round(x_fix)) < 1e-6:  # on a voxel centre up to rounding: take the slice
        x_fix = float(round(x_fix))
    if x_fix < -0.5 or x_fix > shape[a_fix] - 0.5:
        out.fill(cval)
        return out
    lo, hi, w, _ = _axis(np.array([x_fix]), shape[a_fix])
    plane = np.take(values, int(lo[0]), axis=a_fix)  # a view
    if w[0] > 1e-9:
        upper = np.take(values, int(hi[0]), axis=a_fix)
        plane = plane * np.float32(1 - w[0]) + upper * np.float32(w[0])
    # plane's axes are the two remaining voxel axes in order; put the row axis first
    if a_row > a_col:
        plane = plane.T
    r = grid.base[a_row] + np.arange(grid.rows) * grid.dv[a_row]
    c = grid.base[a_col] + np.arange(grid.cols) * grid.du[a_col]
    r0, r1, wr, r_out = _axis(r, shape[a_row])
    c0, c1, wc, c_out = _axis(c, shape[a_col])
    wr32 = wr.astype(np.float32)[:, None]
    rows = plane[r0] * (np.float32(1) - wr32)
    rows += plane[r1] * wr32
    wc32 = wc.astype(np.float32)
    np.multiply(rows[:, c0], np.float32(1) - wc32, out=out)
    out += rows[:, c1] * wc32
    if r_out.any():
        out[r_out > 0, :] = cval
    if c_out.any():
        out[:, c_out > 0] = cval
    return out


def _scipy_available() -> bool:
    try:
        import scipy.ndimage  # noqa: F401
    except ImportError:
        return False
    return True


HAVE_SCIPY = _scipy_available()


BLOCK_PIXELS = 1 << 16  # pixels sampled per block by sample_general: 1.5 MiB of coordinates


def sample_general(values: Image, grid: Grid, cval: float, use_scipy: bool | None = None) -> Image:
    """Trilinear samples for any grid (see the module docstring for the edge rule);
    ``use_scipy`` None: scipy when it is installed.

    Sampled in blocks of rows (``BLOCK_PIXELS``): the float64 coordinates of a whole coronal
    plane of a 400-slice CT are ~24 MiB, and the allocator keeps such freed temporaries
    (benchmarks/bench_mpr_memory.py); a block's are ~1.5 MiB."""
    out = np.empty((grid.rows, grid.cols), dtype=np.float32)
    scipy = HAVE_SCIPY if use_scipy is None else use_scipy
    step = max(1, BLOCK_PIXELS // max(grid.cols, 1))
    for r0 in range(0, grid.rows, step):
        n = min(step, grid.rows - r0)
        block = Grid(grid.base + r0 * grid.dv, grid.du, grid.dv, n, grid.cols)
        _sample_block(values, block, cval, scipy, out[r0 : r0 + n])
    return out


def _sample_block(values: Image, grid: Grid, cval: float, scipy: bool, out: Image) -> None:
    coords = grid.coordinates()
    if scipy:
        from scipy import ndimage

        ndimage.map_coordinates(values, coords, output=out, order=1, mode="nearest")
    else:
        _gather(values, coords, out)
    # coordinates are affine in (row, col): the four corners bound them all
    corners = coords[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    limits = np.asarray(values.shape, dtype=np.float64)[:, None] - 0.5
    if np.any(corners < -0.5 - 1e-9) or np.any(corners > limits + 1e-9):
        outside = np.zeros(out.shape, dtype=bool)
        for a in range(3):
            outside |= coords[a] < -0.5
            outside |= coords[a] > limits[a, 0]
        out[outside] = np.float32(cval)


def _gather(values: Image, coords: Vec, out: Image) -> None:
    """8-neighbour trilinear interpolation with clamped indices (scipy's 'nearest' mode)."""
    flat = values.reshape(-1)  # a view for the C-contiguous volumes the loaders make
    strides = [int(np.prod(values.shape[a + 1 :])) for a in range(3)]
    parts = [_axis(coords[a], values.shape[a]) for a in range(3)]
    out.fill(0)
    for corner in range(8):
        index = np.zeros(coords.shape[1:], dtype=np.intp)
        weight = np.ones(coords.shape[1:], dtype=np.float32)
        for a in range(3):
            lo, hi, w, _ = parts[a]
            upper = (corner >> (2 - a)) & 1
            index += (hi if upper else lo) * strides[a]
            weight *= (w if upper else 1 - w).astype(np.float32)
        out += flat[index] * weight
