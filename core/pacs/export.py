"""An accepted AI result as DICOM objects that reference their source images (highdicom).

- Comprehensive 3D SR, TID 1500 Measurement Report: one TID 1501 measurement group per
  result, with the decision as a qualitative evaluation, each label's score as a measurement,
  the algorithm (TID 4019) and the source images.
- DICOM SEG (binary) for a segmentation mask, a Parametric Map for a heatmap.
- Every object carries the model in the Contributing Equipment Sequence (manufacturer, model
  name, software version, purpose "Processing Equipment"), as the IHE AI Results profile asks.

``store_objects`` sends them with STOW-RS and writes the "Export" audit event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from core import __version__
from core.dicom_out.common import MANUFACTURER, MODEL_NAME, PRIVATE_SCHEME
from core.pacs import audit as A
from core.pacs.client import PacsClient
from core.pacs.errors import PacsError

if TYPE_CHECKING:
    import highdicom as hd
    import pydicom


@dataclass(frozen=True)
class AiFinding:
    """What the export needs of one accepted AI result (mirrors core.inference provenance)."""

    model_id: str
    model_version: str
    labels: Sequence[str]
    scores: dict[str, float]  # label -> calibrated probability
    decision: str  # the label the thresholds chose
    input_sop_uids: Sequence[str]
    result_id: str
    model_name: str = ""
    manufacturer: str = MANUFACTURER
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        return self.model_name or self.model_id


def finding_from_result(
    result: Any, index: int = 0, manufacturer: str = MANUFACTURER, model_name: str = ""
) -> AiFinding:
    """From a ``core.inference.result.InferenceResult`` (duck-typed: labels, probabilities,
    decisions, provenance.model_id/model_version/inputs, result_id)."""
    prov = result.provenance
    scores = {
        str(k): float(v) for k, v in zip(result.labels, result.probabilities[index], strict=True)
    }
    inputs = [ref.sop_instance_uid for ref in prov.inputs if ref.sop_instance_uid]
    return AiFinding(
        model_id=str(prov.model_id),
        model_version=str(prov.model_version),
        labels=[str(label) for label in result.labels],
        scores=scores,
        decision=str(result.decisions[index]),
        input_sop_uids=inputs,
        result_id=str(result.result_id),
        model_name=model_name,
        manufacturer=manufacturer,
    )


def _code(text: str, meaning: str | None = None) -> hd.sr.CodedConcept:
    """A private code for a model's label (CodeValue is SH: 16 chars at most)."""
    import highdicom as hd

    value = (
        text
        if len(text) <= 16 and text.isascii() and "\\" not in text
        else (hashlib.sha256(text.encode()).hexdigest()[:16])
    )
    return hd.sr.CodedConcept(
        value=value, scheme_designator=PRIVATE_SCHEME, meaning=(meaning or text)[:64]
    )


def contributing_equipment(finding: AiFinding) -> hd.ContributingEquipment:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    return hd.ContributingEquipment(
        manufacturer=finding.manufacturer,
        purpose_of_reference=codes.DCM.ProcessingEquipment,
        manufacturer_model_name=finding.display_name[:64],
        software_versions=finding.model_version,
        contribution_description=f"AI model {finding.model_id} {finding.model_version}"[:64],
    )


def _charset(sources: Sequence[pydicom.Dataset]) -> str | list[str] | None:
    """The sources' character set; an empty value (seen in real files) means the default."""
    value = sources[0].get("SpecificCharacterSet") if sources else None
    if not value:
        return None
    return str(value) if isinstance(value, str) else [str(v) for v in value]


def _check_sources(sources: Sequence[pydicom.Dataset], finding: AiFinding | None) -> None:
    if not sources:
        raise ValueError("an export needs the source images it refers to; none were given")
    studies = {str(ds.StudyInstanceUID) for ds in sources}
    if len(studies) != 1:
        raise ValueError(f"source images span {len(studies)} studies; export one study at a time")
    if finding is not None and finding.input_sop_uids:
        have = {str(ds.SOPInstanceUID) for ds in sources}
        missing = [u for u in finding.input_sop_uids if u not in have]
        if missing:
            raise ValueError(
                f"the result's input instance '{missing[0]}' is not among the "
                "source images given for the export"
            )


def build_sr(
    finding: AiFinding,
    sources: Sequence[pydicom.Dataset],
    *,
    series_number: int = 901,
    instance_number: int = 1,
) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 Measurement Report for one classification result."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    _check_sources(sources, finding)
    device_uid = hd.UID.from_uuid(
        str(
            __import__("uuid").uuid5(
                __import__("uuid").NAMESPACE_URL,
                f"doctorai:{finding.model_id}:{finding.model_version}",
            )
        )
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.cid270.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_uid,
            name=finding.model_id[:64],
            manufacturer_name=finding.manufacturer,
            model_name=finding.display_name[:64],
        ),
    )
    algorithm = hd.sr.AlgorithmIdentification(
        name=finding.display_name[:64],
        version=finding.model_version,
        parameters=[f"{k}={v}" for k, v in sorted(finding.parameters.items())] or None,
    )
    measurements = [
        hd.sr.Measurement(
            name=_code(f"P:{label}", f"AI probability of {label}"),
            value=float(finding.scores[label]),
            unit=codes.UCUM.NoUnits,
            algorithm_id=algorithm,
        )
        for label in finding.labels
    ]
    used = [
        ds
        for ds in sources
        if not finding.input_sop_uids or str(ds.SOPInstanceUID) in finding.input_sop_uids
    ]
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=hd.UID(), identifier=f"AI result {finding.result_id}"[:64]
        ),
        finding_type=codes.SCT.ClinicalFinding,
        algorithm_id=algorithm,
        measurements=measurements,
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(
                name=_code("AI-CLASS", "AI classification"),
                value=_code(finding.decision),
            )
        ],
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ds) for ds in used],
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=[group],
    )
    return hd.sr.Comprehensive3DSR(
        evidence=list(sources),
        content=report,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=f"AI: {finding.display_name}"[:64],
        contributing_equipment=[contributing_equipment(finding)],
        specific_character_set=_charset(sources),
    )


def build_seg(
    mask: npt.NDArray[Any],
    sources: Sequence[pydicom.Dataset],
    finding: AiFinding,
    *,
    segment_label: str = "AI segment",
    series_number: int = 902,
) -> hd.seg.Segmentation:
    """A binary SEG: ``mask`` is (n, rows, cols), one plane per source image, in their order."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    _check_sources(sources, None)
    arr = np.asarray(mask).astype(bool)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.shape[0] != len(sources):
        raise ValueError(f"mask has {arr.shape[0]} planes for {len(sources)} source images")
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=segment_label[:64],
        segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=finding.display_name[:64],
            family=codes.cid7162.ArtificialIntelligence,
            version=finding.model_version,
        ),
    )
    return hd.seg.Segmentation(
        source_images=list(sources),
        pixel_array=arr.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME,
        software_versions=__version__,
        device_serial_number="0",
        series_description=f"AI SEG: {finding.display_name}"[:64],
        contributing_equipment=[contributing_equipment(finding)],
        specific_character_set=_charset(sources),
        omit_empty_frames=False,
    )


def build_heatmap(
    heatmap: npt.NDArray[Any],
    sources: Sequence[pydicom.Dataset],
    finding: AiFinding,
    *,
    series_number: int = 903,
) -> hd.pm.ParametricMap:
    """A Parametric Map of a [0, 1] heatmap, (n, rows, cols) in source-image order."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    _check_sources(sources, None)
    arr = np.asarray(heatmap, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.shape[0] != len(sources):
        raise ValueError(f"heatmap has {arr.shape[0]} planes for {len(sources)} source images")
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="AI",
        lut_explanation=f"{finding.display_name} saliency"[:64],
        unit=codes.UCUM.NoUnits,
        value_range=(0.0, 1.0),
        slope=1.0,
        intercept=0.0,
    )
    return hd.pm.ParametricMap(
        source_images=list(sources),
        pixel_array=np.clip(arr, 0.0, 1.0),
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME,
        software_versions=__version__,
        device_serial_number="0",
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        window_center=0.5,
        window_width=1.0,
        content_label="AIHEATMAP",
        series_description=f"AI heatmap: {finding.display_name}"[:64],
        contributing_equipment=[contributing_equipment(finding)],
        specific_character_set=_charset(sources),
    )


def store_objects(
    client: PacsClient, objects: Sequence[pydicom.Dataset], finding: AiFinding
) -> list[str]:
    """STOW-RS the exported objects; audited as "Export" (also when the store fails)."""
    audit_objects: list[tuple[str, str]] = []
    if objects:
        audit_objects.append(("study", str(objects[0].StudyInstanceUID)))
    audit_objects += [("instance", str(ds.SOPInstanceUID)) for ds in objects]
    audit_objects.append(("model", f"{finding.model_id}@{finding.model_version}"))
    details = {
        "node": client.node.name,
        "result_id": finding.result_id,
        "kinds": ",".join(str(getattr(ds, "Modality", "?")) for ds in objects),
    }
    try:
        stored = client.store(objects)
    except PacsError as exc:
        client.audit(A.EXPORT, A.SERIOUS_FAILURE, audit_objects, {**details, "error": str(exc)})
        raise
    client.audit(A.EXPORT, A.SUCCESS, audit_objects, {**details, "stored": str(len(stored))})
    return stored
