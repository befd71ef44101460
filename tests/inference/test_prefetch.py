"""run_images overlaps decode + preprocessing of batch k+1 with the model on batch k.

Real zoo model (chest-xray-pneumonia, TorchScript) on real MR slices; the model is wrapped
only to record when each predict call starts and ends.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.inference.manager import ModelManager
from core.inference.pipeline import InferenceCancelled, run_images
from core.inference.result import InputRef
from models.adapters import load_model
from models.adapters.base import LoadedModel
from models.discovery import ZOO_DIR, discover

MODEL = "chest-xray-pneumonia"
MR = Path("plotly__dash-vtk") / "demos" / "data" / "mri_brain"


@pytest.fixture(scope="module")
def packages() -> list[Any]:
    found, errors = discover([ZOO_DIR], verify_hashes=True)
    assert errors == []
    return [p for p in found if p.id == MODEL]


@pytest.fixture
def mr_paths(dicom_data: Path) -> list[Path]:
    paths = sorted((dicom_data / MR).glob("*.dcm"))
    if len(paths) < 8:
        pytest.skip(f"the shared MR series is not at '{dicom_data / MR}'")
    return paths[:8]


def _decode(path: Path) -> Any:
    from core.imaging.header import read_header
    from core.imaging.pixels import read_frame

    return read_frame(read_header(str(path), require_uids=False).instance)


class _Recording(LoadedModel):
    """The real loaded model, slowed a little and recording when each batch ran."""

    def __init__(self, inner: LoadedModel, log: list[tuple[str, float, str]]) -> None:
        super().__init__(inner.package, inner.device)
        self.inner = inner
        self.log = log

    def predict(self, batch: Any) -> Any:
        self.log.append(("predict-start", time.perf_counter(), threading.current_thread().name))
        out = self.inner.predict(batch)
        time.sleep(0.05)  # long enough that the next batch's decode must fall inside it
        self.log.append(("predict-end", time.perf_counter(), threading.current_thread().name))
        return out

    def heatmap(self, batch: Any) -> Any:
        return self.inner.heatmap(batch)

    def memory_bytes(self) -> int:
        return self.inner.memory_bytes()

    def close(self) -> None:
        self.inner.close()


def _manager(packages: list[Any], log: list[tuple[str, float, str]]) -> ModelManager:
    def loader(package: Any, device: str, **kwargs: Any) -> LoadedModel:
        return _Recording(load_model(package, device, **kwargs), log)

    return ModelManager(packages, device="cpu", loader=loader)


def test_decode_of_next_batch_overlaps_predict(packages: list[Any], mr_paths: list[Path]) -> None:
    log: list[tuple[str, float, str]] = []
    manager = _manager(packages, log)
    refs = [InputRef(f"1.2.{i}") for i in range(len(mr_paths))]

    def decode(path: Path) -> Any:
        log.append(("decode", time.perf_counter(), threading.current_thread().name))
        return _decode(path)

    lazy = run_images(manager, MODEL, mr_paths, refs, batch_size=2, decode=decode)
    eager = run_images(manager, MODEL, [_decode(p) for p in mr_paths], refs, batch_size=8)
    manager.shutdown()

    # same outputs as decoding everything first and running one batch
    np.testing.assert_allclose(lazy.probabilities, eager.probabilities, atol=1e-6)
    assert lazy.decisions == eager.decisions
    assert lazy.heatmaps is not None
    assert lazy.heatmaps.shape == (8, *_decode(mr_paths[0]).values.shape)
    # decoding ran off the caller's thread, and some decode happened while a batch predicted
    caller = threading.current_thread().name
    decodes = [(t, name) for kind, t, name in log if kind == "decode"]
    assert len(decodes) == 8
    assert all(name != caller for _t, name in decodes)
    starts = [t for kind, t, _n in log if kind == "predict-start"][:4]
    ends = [t for kind, t, _n in log if kind == "predict-end"][:4]
    overlapped = sum(any(s < t < e for s, e in zip(starts, ends, strict=True)) for t, _ in decodes)
    assert overlapped >= 2, log
    timings = lazy.provenance.timings_ms
    assert set(timings) == {"preprocess", "load", "inference", "postprocess"}
    assert timings["inference"] >= 4 * 50  # four batches, each in the model >= 50 ms


def test_decode_error_surfaces_and_cancel_stops_prefetch(
    packages: list[Any], mr_paths: list[Path], tmp_path: Path
) -> None:
    log: list[tuple[str, float, str]] = []
    manager = _manager(packages, log)
    bad = tmp_path / "not-dicom.dcm"
    bad.write_bytes(b"not a DICOM file")
    items = [*mr_paths[:4], bad]
    refs = [InputRef(f"1.2.{i}") for i in range(len(items))]
    with pytest.raises(Exception, match="not a DICOM file"):  # the decoder's own error
        run_images(manager, MODEL, items, refs, batch_size=2, heatmap=False, decode=_decode)

    decoded: list[Path] = []

    def decode(path: Path) -> Any:
        decoded.append(path)
        return _decode(path)

    calls = {"n": 0}

    def cancel_after_first() -> bool:
        calls["n"] += 1
        return calls["n"] > 1

    with pytest.raises(InferenceCancelled):
        run_images(
            manager,
            MODEL,
            mr_paths,
            refs[:1] * 8,
            batch_size=2,
            heatmap=False,
            cancel=cancel_after_first,
            decode=decode,
        )
    time.sleep(0.3)  # a prefetch still running would go on decoding here
    assert len(decoded) <= 4  # batch 1, and at most batch 2 already prefetched
    manager.shutdown()
