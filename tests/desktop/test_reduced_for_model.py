"""The window's inference job decodes a large JPEG 2000 frame that the viewer has not decoded at a
lower resolution level for the model (core.imaging.reduced), and the heatmap still comes back at
the image's full size, so the viewer can draw it."""

from __future__ import annotations

import threading
from pathlib import Path

from core.app.results import SessionResults
from core.imaging.header import read_header
from core.imaging.model import SliceRef
from core.imaging.reduced import ReducedFrame
from core.inference.manager import ModelManager
from desktop.inference_jobs import _decoded, _model_input_size, inference_job
from models.discovery import ZOO_DIR
from models.manifest import load_package

CR = Path(__file__).resolve().parents[2] / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
MODEL = "chest-xray-pneumonia"


class _Ctx:
    """The slice of desktop.jobs.JobContext the job functions use, on this thread."""

    def __init__(self) -> None:
        self.cancel_event = threading.Event()
        self.reports: list[object] = []

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def report(self, value: object) -> None:
        self.reports.append(value)


def test_a_j2k_radiograph_is_decoded_small_for_the_model_and_mapped_back_full_size() -> None:
    inst = read_header(str(CR), require_uids=False).instance
    refs = [SliceRef(inst, 0)]
    manager = ModelManager([load_package(ZOO_DIR / MODEL)], device="cpu")
    try:
        target = _model_input_size(manager, MODEL)
        assert target == (28, 28)
        (frame,) = _decoded(_Ctx(), refs, [None], target=target)  # type: ignore[arg-type]
        assert isinstance(frame, ReducedFrame)
        assert frame.values.shape[0] < inst.rows
        assert frame.full_shape == (inst.rows, inst.columns)
        out = inference_job(_Ctx(), SessionResults(), manager, MODEL, refs, [None])  # type: ignore[arg-type]
    finally:
        manager.shutdown()
    assert out.result.heatmaps is not None
    assert out.result.heatmaps.shape[1:] == (inst.rows, inst.columns)
