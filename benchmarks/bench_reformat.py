"""MPR cost: coronal, sagittal and oblique reformats of a 512x512x400 volume (0.7 x 0.7 x
2.5 mm) through ``core.viewer.reformat`` vs a bare ``scipy.ndimage.map_coordinates`` of the same
plane (same pixels, same trilinear interpolation).

"bare" is the map_coordinates call alone, its coordinates made beforehand and not timed (the
least any reformat by map_coordinates costs); also shown: a naive numpy reformat (coordinates
from pixel -> patient -> voxel with matrix products, then map_coordinates). Ratio ours / bare,
median of ``ROUNDS`` per plane, ``POSITIONS`` planes per round, the image cache off (every call
samples). Goal (issue 16): <= 1.5x. The outputs are checked equal inside the volume first.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from core.viewer.reformat import Plane

Image = npt.NDArray[np.float32]

SHAPE = (400, 512, 512)  # (slices, rows, cols)
SPACING = (2.5, 0.7, 0.7)
ROUNDS = 5
POSITIONS = 4


def _volume() -> npt.NDArray[np.float32]:
    """A smooth volume with structure in every direction (not a constant that caches well)."""
    k = np.arange(SHAPE[0], dtype=np.float32)[:, None, None]
    r = np.arange(SHAPE[1], dtype=np.float32)[None, :, None]
    c = np.arange(SHAPE[2], dtype=np.float32)[None, None, :]
    out = np.empty(SHAPE, dtype=np.float32)
    np.multiply(np.sin(r / 17.0), np.cos(c / 23.0), out=out)
    out *= np.float32(400.0)
    out += np.float32(3.0) * k
    return out


def _coordinates(
    plane: Plane, inverse: npt.NDArray[np.float64], origin: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Pixel centres -> patient mm -> voxel index, plain numpy: (3, rows, cols)."""
    rr, cc = np.meshgrid(np.arange(plane.rows), np.arange(plane.cols), indexing="ij")
    patient = plane.to_patient(rr, cc)
    return np.asarray(np.moveaxis((patient - origin) @ inverse.T, -1, 0))


def _bare(values: npt.NDArray[np.float32], coords: npt.NDArray[np.float64]) -> Image:
    """The baseline: one map_coordinates call, order 1, on coordinates already made."""
    from scipy import ndimage

    out = np.empty(coords.shape[1:], dtype=np.float32)
    ndimage.map_coordinates(values, coords, output=out, order=1, mode="nearest")
    return out


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    from core.imaging.geometry import VolumeGeometry
    from core.viewer.reformat import Reformat, Slab, Volume

    t0 = time.perf_counter()
    values = _volume()
    geometry = VolumeGeometry(
        shape=SHAPE,
        origin=np.array([-180.0, -180.0, -500.0]),
        row_dir=np.array([1.0, 0.0, 0.0]),
        col_dir=np.array([0.0, 1.0, 0.0]),
        step=np.array([0.0, 0.0, SPACING[0]]),
        pixel_spacing=(SPACING[1], SPACING[2]),
    )
    volume = Volume(values, geometry)
    print(
        f"volume {SHAPE} float32, {volume.nbytes / 2**20:.0f} MiB, made in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    a = np.radians(25.0)
    u = np.array([np.cos(a), 0.0, np.sin(a)])
    v = np.cross(u, np.array([0.0, 1.0, 0.0]))
    reformats = {
        "coronal": Reformat(volume, "coronal", cache_size=0),
        "sagittal": Reformat(volume, "sagittal", cache_size=0),
        "oblique": Reformat.oblique(volume, geometry.center(), u, -v, cache_size=0),
    }
    inverse = np.asarray(np.linalg.inv(geometry.matrix), dtype=np.float64)
    volume.background  # computed once per volume, not per plane  # noqa: B018
    origin = np.asarray(geometry.origin, dtype=np.float64)
    for name, reformat in reformats.items():
        indices = [
            int(i) for i in np.linspace(reformat.count * 0.2, reformat.count * 0.8, POSITIONS)
        ]
        coords = [_coordinates(reformat.plane(i), inverse, origin) for i in indices]
        for i, c in zip(indices, coords, strict=True):  # same pixels inside the volume
            inside = np.all((c >= 0) & (c <= np.array(SHAPE)[:, None, None] - 1), axis=0)
            assert inside.mean() > 0.2
            np.testing.assert_allclose(
                reformat.image(i)[inside], _bare(values, c)[inside], rtol=0, atol=1e-3
            )

        def ours_run(r: Reformat = reformat, idx: list[int] = indices) -> None:
            for i in idx:
                r.image(i)

        def bare_run(cs: list[npt.NDArray[np.float64]] = coords) -> None:
            for c in cs:
                _bare(values, c)

        def naive_run(r: Reformat = reformat, idx: list[int] = indices) -> None:
            for i in idx:
                _bare(values, _coordinates(r.plane(i), inverse, origin))

        ours, bare, naive = (
            statistics.median(_time(run) for _ in range(ROUNDS)) / POSITIONS
            for run in (ours_run, bare_run, naive_run)
        )
        print(
            f"{name:8s} {reformat.cols}x{reformat.rows} px ({reformat.pixel_size} mm): "
            f"ours {ours * 1e3:6.1f} ms; bare map_coordinates {bare * 1e3:6.1f} ms "
            f"-> ratio {ours / bare:.2f}x (goal <= 1.5x); numpy coordinates + map_coordinates "
            f"{naive * 1e3:6.1f} ms -> {ours / naive:.2f}x",
            flush=True,
        )

    # the oblique plane as the workstation's own install samples it (no scipy there)
    from core.viewer import resample

    oblique = reformats["oblique"]
    grid = oblique.grid(oblique.default_index)
    t_scipy = statistics.median(
        _time(lambda: resample.sample_general(values, grid, 0.0, use_scipy=True)) for _ in range(3)
    )
    t_numpy = statistics.median(
        _time(lambda: resample.sample_general(values, grid, 0.0, use_scipy=False)) for _ in range(3)
    )
    print(
        f"oblique without scipy (numpy 8-neighbour gather): {t_numpy * 1e3:.1f} ms vs "
        f"{t_scipy * 1e3:.1f} ms with map_coordinates -> {t_numpy / t_scipy:.2f}x"
    )
    # memory: three reformats and a slab of each over the one volume
    import tracemalloc

    tracemalloc.start()
    views = [Reformat(volume, n) for n in ("axial", "coronal", "sagittal")]
    for view in views:
        view.image()
        view.image(slab=Slab("mip", 10.0))
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"memory beyond the volume's {volume.nbytes / 2**20:.0f} MiB with axial, coronal and "
        f"sagittal open (an image and a 10 mm MIP each, cached): {current / 2**20:.1f} MiB "
        f"held, {peak / 2**20:.1f} MiB peak -> {(volume.nbytes + peak) / volume.nbytes:.3f}x"
    )


if __name__ == "__main__":
    main()
