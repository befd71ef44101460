"""Use case: a segmentation result leaves the workstation as a DICOM SEG file (and, optionally,
goes to a PACS).

The SEG is built by ``core.pacs.export.build_seg`` (highdicom) from the result's mask of its
first foreground label, one plane per source image, referencing the source series. Written as
an audited export (``core.app.exports.export_file``: the Export event first, the file once it is
durable; a failed write is recorded as such). The window calls this from a worker; so can the
CLI. Without a workstation (a bare viewer, tests) the file is written without an audit trail.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.app.exports import export_file
from core.app.workstation import Workstation
from core.audit.events import Participants
from core.inference.result import InferenceResult
from core.pacs.client import PacsClient
from core.pacs.export import AiFinding, build_seg, finding_from_result, store_objects

if TYPE_CHECKING:
    import pydicom


class SegExportError(ValueError):
    """The result cannot be saved as a SEG (names the result and the reason)."""


@dataclass(frozen=True)
class SavedSeg:
    """What was written: the file, the SEG's own UID, what it refers to and its size."""

    path: Path
    sop_instance_uid: str
    referenced_series_uid: str
    frames: int
    pixels: int  # mask pixels over all frames
    segment_label: str


def _foreground(result: InferenceResult) -> tuple[np.ndarray[Any, Any], str]:
    if result.masks is None:
        raise SegExportError(
            f"result {result.result_id[:8]} of model '{result.provenance.model_id}' has no "
            "segmentation mask (only segmentation models give one)"
        )
    label = result.labels[1] if len(result.labels) > 1 else "segment"
    return np.asarray(result.masks) == 1, label


def _check_sources(result: InferenceResult, sources: Sequence[pydicom.Dataset]) -> None:
    inputs = result.provenance.inputs
    if len(sources) != len(inputs):
        raise SegExportError(f"{len(sources)} source image(s) given for {len(inputs)} inputs")
    for ref, ds in zip(inputs, sources, strict=True):
        if str(ds.SOPInstanceUID) != ref.sop_instance_uid:
            raise SegExportError(
                f"source image '{ds.SOPInstanceUID}' is not the result's input "
                f"'{ref.sop_instance_uid}' (give them in the result's order)"
            )
        if ref.frame != 0 or int(ds.get("NumberOfFrames", 1) or 1) != 1:
            raise SegExportError(
                f"source image '{ref.sop_instance_uid}' is multi-frame; a SEG is saved for "
                "single-frame series only"
            )


def build_result_seg(
    result: InferenceResult, sources: Sequence[pydicom.Dataset], model_name: str = ""
) -> tuple[pydicom.Dataset, AiFinding, str]:
    """The SEG dataset of ``result`` over ``sources`` (its inputs, in order), the finding it
    was built for and the segment's label."""
    mask, label = _foreground(result)
    _check_sources(result, sources)
    for ds, plane in zip(sources, mask, strict=True):
        if (int(ds.Rows), int(ds.Columns)) != plane.shape:
            raise SegExportError(
                f"mask {plane.shape} does not match image '{ds.SOPInstanceUID}' "
                f"({ds.Rows}x{ds.Columns})"
            )
    finding = finding_from_result(result, 0, model_name=model_name)
    finding = dataclasses.replace(
        finding, input_sop_uids=[str(ds.SOPInstanceUID) for ds in sources]
    )
    seg = build_seg(mask, sources, finding, segment_label=f"AI {label}")
    return seg, finding, label


def seg_file_name(result: InferenceResult) -> str:
    """A file name that says what it is without naming the patient."""
    model = re.sub(r"[^A-Za-z0-9._-]", "_", result.provenance.model_id)
    return f"SEG_{model}_{result.result_id[:8]}.dcm"


def save_seg(
    ws: Workstation | None,
    result: InferenceResult,
    sources: Sequence[pydicom.Dataset],
    folder: Path,
    *,
    model_name: str = "",
) -> SavedSeg:
    """Build the SEG and write it into ``folder`` (audited as an Export with a workstation).

    Raises SegExportError (nothing to save, sources that do not match) or OSError (the folder
    cannot be written: the failed export is on the trail)."""
    seg, _finding, label = build_result_seg(result, sources, model_name)
    path = Path(folder) / seg_file_name(result)
    referenced = str(sources[0].SeriesInstanceUID)

    def write(target: Path) -> None:
        if not target.parent.is_dir():
            raise FileNotFoundError(2, "folder does not exist", str(target.parent))
        seg.save_as(str(target), enforce_file_format=True)

    if ws is None:
        write(path)
    else:
        participants = Participants()
        for ref in result.provenance.inputs:
            participants.patient(ref.patient_id).study(ref.study_instance_uid)
            participants.series(ref.series_instance_uid).add("instance", ref.sop_instance_uid)
        participants.add("model", f"{result.provenance.model_id}@{result.provenance.model_version}")
        participants.add("result", result.result_id)
        export_file(
            ws,
            participants,
            path,
            write,
            action="export-seg",
            format="dicom-seg",
            sop_instance_uid=str(seg.SOPInstanceUID),
        )
    mask, _ = _foreground(result)
    return SavedSeg(
        path=path,
        sop_instance_uid=str(seg.SOPInstanceUID),
        referenced_series_uid=referenced,
        frames=len(sources),
        pixels=int(mask.sum()),
        segment_label=label,
    )


def send_seg(
    client: PacsClient,
    result: InferenceResult,
    sources: Sequence[pydicom.Dataset],
    *,
    model_name: str = "",
) -> list[str]:
    """Build the SEG and STOW it to ``client``'s node (``store_objects``: audited as an Export,
    failures included); the stored SOP instance UIDs."""
    seg, finding, _label = build_result_seg(result, sources, model_name)
    return store_objects(client, [seg], finding)
