"""Series loading: ours vs SimpleITK's ImageSeriesReader (GDCM, C++) vs a naive pydicom loop.

Two series: the real 134-slice CT from the shared data and a generated 512x512x400 CT (real
headers of that CT, new UIDs/positions, pixel data resampled from it), written once to a temp
folder and reused. Figures are best of N runs on a warm page cache, printed as ratios measured
in this run. Goals (issue 3): load >= SimpleITK speed, faster than the naive loop, first slice in
< 10% of the whole load for 400 slices; header indexing vs a plain dcmread(stop_before_pixels) loop.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.uid import generate_uid

from core.imaging.index import build_index
from core.imaging.model import Series
from core.imaging.volume import iter_load, load_volume

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DOCTORAI_SHARED_DATA", REPO.parent / "shared" / "data"))
CT_134 = SHARED / "dicom" / "pyvista__vtk-data" / "Data" / "DICOM_Stack"
GENERATED = Path(tempfile.gettempdir()) / "doctorai-bench-ct400"
N_GENERATED = 400
REPEATS = 3


def best_of(fn: Callable[[], Any], n: int = REPEATS) -> float:
    best = float("inf")
    for _ in range(n):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def generate_series(out: Path, n: int = N_GENERATED) -> Path:
    """A 512x512xN CT series with real headers (once; reused while complete)."""
    if out.is_dir() and len(list(out.glob("*.dcm"))) == n:
        return out
    out.mkdir(parents=True, exist_ok=True)
    sources = sorted(CT_134.glob("*.dcm"))
    template = pydicom.dcmread(sources[0])
    stack = np.stack([pydicom.dcmread(p).pixel_array for p in sources])
    series_uid, study_uid = generate_uid(), generate_uid()
    z0 = float(template.ImagePositionPatient[2])
    rng = np.random.default_rng(0)
    for k in range(n):
        ds = template.copy()
        src = stack[min(int(k * len(sources) / n), len(sources) - 1)].astype(np.int32)
        noise = rng.integers(-8, 9, size=src.shape, dtype=np.int32)
        ds.PixelData = np.clip(src + noise, 0, 4095).astype(np.uint16).tobytes()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesInstanceUID, ds.StudyInstanceUID = series_uid, study_uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [
            template.ImagePositionPatient[0],
            template.ImagePositionPatient[1],
            z0 - 1.0 * k,
        ]
        ds.SliceLocation = z0 - 1.0 * k
        ds.save_as(out / f"ct{k:04d}.dcm", enforce_file_format=True)
    return out


def naive_pydicom(folder: Path) -> np.ndarray:
    """The baseline a first implementation writes: dcmread + pixel_array per file."""
    slices = []
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        slices.append((float(ds.ImagePositionPatient[2]), hu))
    slices.sort(key=lambda s: s[0])
    return np.stack([s[1] for s in slices])


def simpleitk_reader(folder: Path, names: list[str] | None = None) -> tuple[Any, np.ndarray]:
    """(image, numpy view of it): the view costs no copy, the image keeps its memory alive."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(names if names is not None else reader.GetGDCMSeriesFileNames(str(folder)))
    reader.SetOutputPixelType(sitk.sitkFloat32)  # same work as ours: float32 modality units
    image = reader.Execute()
    return image, sitk.GetArrayViewFromImage(image)


def plain_header_loop(folder: Path) -> None:
    for path in sorted(folder.glob("*.dcm")):
        pydicom.dcmread(path, stop_before_pixels=True)


def the_series(folder: Path) -> Series:
    index = build_index([folder])
    (series,) = [s for _, _, s in index.iter_series()]
    return series


def first_slice_time(series: Series) -> tuple[float, float]:
    """(seconds to the first yielded slice, seconds to all slices) of one iter_load run."""
    start = time.perf_counter()
    first = 0.0
    for n, _ in enumerate(iter_load(series), start=1):
        if n == 1:
            first = time.perf_counter() - start
    return first, time.perf_counter() - start


def open_folder_first_image(folder: Path) -> None:
    """What the viewer shows before indexing ends: the middle file's first frame."""
    from core.imaging.progressive import first_image
    from core.imaging.sources import enumerate_inputs

    files, _errors = enumerate_inputs([folder])
    if first_image(files) is None:
        raise RuntimeError(f"no decodable image in '{folder}'")


def ratio(baseline: float, ours: float) -> str:
    return f"{baseline / ours:5.2f}x"


def bench(folder: Path, label: str) -> None:
    import SimpleITK as sitk

    n = len(list(folder.glob("*.dcm")))
    print(f"\n-- {label}: {n} slices, {folder}")
    t_headers_plain = best_of(lambda: plain_header_loop(folder))
    t_index = best_of(lambda: build_index([folder]))
    print(
        f"header indexing: build_index {t_index * 1e3:7.1f} ms | plain dcmread(stop_before_"
        f"pixels) loop {t_headers_plain * 1e3:7.1f} ms | speed vs plain loop "
        f"{ratio(t_headers_plain, t_index)} (build_index also sorts, checks pixel data "
        "lengths and builds the tree)"
    )

    series = the_series(folder)
    names = [i.path for i in series.instances]
    reference = load_volume(series)
    t_ours = best_of(lambda: load_volume(series))
    t_sitk = best_of(lambda: simpleitk_reader(folder, names))
    t_naive = best_of(lambda: naive_pydicom(folder), n=2)
    print(
        f"volume load (files known): ours {t_ours * 1e3:7.1f} ms | SimpleITK "
        f"{t_sitk * 1e3:7.1f} ms | naive pydicom {t_naive * 1e3:7.1f} ms"
    )
    print(
        f"   speed vs SimpleITK ImageSeriesReader: {ratio(t_sitk, t_ours)}   "
        f"speed vs naive pydicom loop: {ratio(t_naive, t_ours)}"
    )

    t_ours_e2e = best_of(lambda: load_volume(the_series(folder)))
    t_sitk_e2e = best_of(lambda: simpleitk_reader(folder))
    print(
        f"open folder -> volume (incl. indexing/sorting): ours {t_ours_e2e * 1e3:7.1f} ms | "
        f"SimpleITK (GetGDCMSeriesFileNames + Execute) {t_sitk_e2e * 1e3:7.1f} ms | "
        f"speed vs SimpleITK {ratio(t_sitk_e2e, t_ours_e2e)}"
    )

    # The issue's < 10% goal is stated for a 400-slice series; smaller series only report.
    goal = " (goal < 10%)" if len(names) >= 400 else " (goal stated for 400 slices)"
    firsts = [first_slice_time(series) for _ in range(REPEATS)]
    t_first = min(f for f, _ in firsts)
    t_all = min(a for _, a in firsts)
    print(
        f"progressive: first slice {t_first * 1e3:6.1f} ms, all {t_all * 1e3:7.1f} ms -> "
        f"first/whole = {t_first / t_all:6.1%}{goal}; first slice vs whole "
        f"load_volume {t_first / t_ours:6.1%}"
    )
    t_provisional = best_of(lambda: open_folder_first_image(folder))
    print(
        f"open folder -> provisional first image (list files, middle file's header, decode; "
        f"core.imaging.progressive) {t_provisional * 1e3:6.1f} ms vs open folder -> volume "
        f"{t_ours_e2e * 1e3:7.1f} ms = {t_provisional / t_ours_e2e:6.1%}{goal}"
    )
    _image, sitk_vol = simpleitk_reader(folder, names)
    same = np.allclose(sitk_vol, reference, atol=1e-3)
    print(
        f"check: our volume equals SimpleITK's voxel for voxel: {same}; threads "
        f"{sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()} (SimpleITK)"
    )


def main() -> None:
    if not CT_134.is_dir():
        print(f"skipped: shared CT series not found at {CT_134}")
        return
    print(f"CPU cores: {os.cpu_count()}; best of {REPEATS} runs, warm page cache")
    bench(CT_134, "real CT (TCIA Pancreas-CT-CB_001)")
    start = time.perf_counter()
    folder = generate_series(GENERATED)
    print(f"\n(generated series ready in {time.perf_counter() - start:.1f} s)")
    bench(folder, "generated CT 512x512x400")


if __name__ == "__main__":
    main()
