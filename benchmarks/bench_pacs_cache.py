"""What encrypting the PACS cache costs the viewer: the shared 134-slice CT series put in an
AES-256-GCM cache and in a plain one (same machine, same run), then

- read: every file's bytes as the viewer's readers get them (decrypted in memory vs plain);
- index + decode: ``build_index`` of the series and every slice decoded (``read_frame``), as
  opening the series does (the plain cache keeps its fast ``np.fromfile`` path; the sealed one
  decodes from memory).

Ratios sealed / plain, median of ``ROUNDS`` (warm page cache).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CT = REPO.parent / "shared" / "data" / "dicom" / "pyvista__vtk-data" / "Data" / "DICOM_Stack"
ROUNDS = 5


def _fill(root: Path, encrypted: bool) -> list[str]:
    import pydicom

    from core.pacs.cache import CacheCipher, PacsCache

    key = os.urandom(32)
    cache = PacsCache(root, cipher=CacheCipher(lambda: key) if encrypted else None)
    out = []
    for f in sorted(CT.glob("*.dcm")):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        out.append(
            str(
                cache.put(
                    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, f.read_bytes()
                )
            )
        )
    return out


def _read_all(paths: list[str]) -> float:
    from core.imaging.sources import open_bytes

    t0 = time.perf_counter()
    for p in paths:
        open_bytes(p)
    return time.perf_counter() - t0


def _open_series(paths: list[str]) -> float:
    from core.imaging.index import build_index
    from core.imaging.volume import load_slice, slice_refs

    t0 = time.perf_counter()
    index = build_index(paths, workers=1)
    ((_p, _s, series),) = list(index.iter_series())
    for ref in slice_refs(series):
        load_slice(ref.instance, ref.frame)
    return time.perf_counter() - t0


def _median(fn: Callable[[list[str]], float], paths: list[str]) -> float:
    return statistics.median(fn(paths) for _ in range(ROUNDS))


def main() -> None:
    if not CT.is_dir():
        print(f"skipped: the shared CT is not at '{CT}'")
        return
    with tempfile.TemporaryDirectory() as tmp:
        plain = _fill(Path(tmp) / "plain", encrypted=False)
        sealed = _fill(Path(tmp) / "sealed", encrypted=True)
        mb = sum(os.path.getsize(p) for p in plain) / 1e6
        print(f"series: {len(plain)} CT slices, {mb:.1f} MB")
        for what, fn in (("read every file", _read_all), ("index + decode", _open_series)):
            _, _ = fn(plain), fn(sealed)  # warm-up
            p, s = _median(fn, plain), _median(fn, sealed)
            print(
                f"{what:>16}: plain {p * 1e3:7.1f} ms, encrypted {s * 1e3:7.1f} ms, "
                f"ratio {s / p:.2f}x ({(s - p) * 1e3 / len(plain):.2f} ms per slice more)"
            )
