"""PACS retrieve of a 400-slice CT series from a local Orthanc: time to the first slice
available / shown, and in total, against a plain sequential ``dicomweb-client`` retrieve of the
same series in the same run (goal: first slice < 10% of the plain total; total <= plain).

The series is made from the shared 134-slice CT (real pixels), cycled to 400 slices with new
UIDs and positions, and uploaded to a throw-away Orthanc (Debian's orthanc + orthanc-dicomweb).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CT = REPO.parent / "shared" / "data" / "dicom" / "pyvista__vtk-data" / "Data" / "DICOM_Stack"
N_SLICES = 400
ROUNDS = 3


def _series_blobs(n: int) -> tuple[str, str, list[bytes]]:
    import io

    import pydicom
    from pydicom.uid import generate_uid

    sources = sorted(CT.glob("*.dcm"))
    if not sources:
        raise RuntimeError(f"the shared CT is not at '{CT}'")
    study, series, frame_of_ref = generate_uid(), generate_uid(), generate_uid()
    blobs = []
    for i in range(n):
        ds = pydicom.dcmread(sources[i % len(sources)])
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.FrameOfReferenceUID = frame_of_ref
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        x, y, _z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, -float(i) * 1.25]
        ds.PatientID, ds.PatientName = "BENCH400", "Bench^Series"
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        blobs.append(out.getvalue())
    return study, series, blobs


def _ours(url: str, study: str, series: str, cache_root: Path) -> dict[str, float]:
    from core.imaging.display import render
    from core.imaging.header import read_header
    from core.imaging.volume import load_slice
    from core.pacs.audit import null_sink
    from core.pacs.cache import PacsCache
    from core.pacs.client import client_for_url
    from core.pacs.retrieve import retrieve_series

    client = client_for_url(url, null_sink, name="bench")
    marks: dict[str, float] = {}
    start = time.perf_counter()

    def on_instance(path: Path, done: int, _total: int) -> None:
        if done == 1:  # what the viewer does with the first arrival: decode and render it
            marks["first_available"] = time.perf_counter() - start
            inst = read_header(str(path)).instance
            render(load_slice(inst, 0))
            marks["first_shown"] = time.perf_counter() - start

    result = retrieve_series(client, PacsCache(cache_root), study, series, on_instance=on_instance)
    marks["total"] = time.perf_counter() - start
    client.close()
    if len(result.paths) != N_SLICES:
        raise RuntimeError(f"retrieved {len(result.paths)} of {N_SLICES} instances")
    return marks


def _plain(url: str, study: str, series: str) -> float:
    from dicomweb_client import DICOMwebClient

    start = time.perf_counter()
    datasets = DICOMwebClient(url).retrieve_series(study, series)
    total = time.perf_counter() - start
    if len(datasets) != N_SLICES:
        raise RuntimeError(f"plain retrieve got {len(datasets)} of {N_SLICES} instances")
    return total


def main() -> None:
    sys.path.insert(0, str(REPO))
    from tests.pacs.orthanc import orthanc_server, unavailable_reason

    reason = unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return
    study, series, blobs = _series_blobs(N_SLICES)
    print(f"series: {N_SLICES} CT slices, {sum(map(len, blobs)) / 1e6:.0f} MB")
    with orthanc_server() as server, tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        server.upload_bytes(blobs)
        print(f"upload to Orthanc: {time.perf_counter() - t0:.1f} s")
        url = server.dicomweb
        ours: list[dict[str, float]] = []
        plain: list[float] = []
        for r in range(ROUNDS):  # alternate, so neither side always gets the warmer cache
            plain.append(_plain(url, study, series))
            ours.append(_ours(url, study, series, Path(tmp) / f"cache{r}"))
    p = statistics.median(plain)
    first = statistics.median(m["first_available"] for m in ours)
    shown = statistics.median(m["first_shown"] for m in ours)
    total = statistics.median(m["total"] for m in ours)
    print(
        f"baseline: plain sequential dicomweb-client retrieve_series, median of {ROUNDS}: "
        f"{p * 1000:.0f} ms"
    )
    print(
        f"first slice available: {first * 1000:.0f} ms = {first / p:.3f} x baseline (goal < 0.10)"
    )
    print(
        f"first slice shown (decoded + rendered): {shown * 1000:.0f} ms = {shown / p:.3f} x "
        f"baseline (goal < 0.10)"
    )
    print(
        f"whole series in cache: {total * 1000:.0f} ms = {total / p:.2f} x baseline (goal <= 1.00)"
    )


if __name__ == "__main__":
    main()
