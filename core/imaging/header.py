"""Read ONE file's header into an ``Instance`` (or a ``LoadError`` saying why not).

Headers only: pixel data is never read here, but its position and length are checked against
the declared dimensions so a truncated or absurd file is rejected before anyone decodes it.
"""

from __future__ import annotations

import io
import math
import os
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from core.imaging import plain, scan, sources
from core.imaging.frame_order import frame_order, group_keys
from core.imaging.model import Instance, Patient, PixelInfo, Series, Study
from core.imaging.rawtags import RawTags, ScanTags, Tags

# Parse the header from the first bytes of a file held in memory: pydicom's many small reads are
# cheaper on a BytesIO than on a file, and the pixel data is never touched. Headers longer than
# this (big enhanced multi-frame) fall back to reading the file itself.
HEADER_PREFIX = 16 * 1024
LONG_HEADER_PREFIX = 1024 * 1024
# Sanity caps: a header may declare anything; we refuse to decode beyond these.
MAX_FRAME_PIXELS = 2**28  # 16384 x 16384
MAX_TOTAL_BYTES = 16 * 1024**3  # decoded size of all frames of one instance
NATIVE_LE = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})
BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED_DATASET = "1.2.840.10008.1.2.1.99"  # the whole data set deflated (sources.read_dicom)
DEFLATED = frozenset({DEFLATED_DATASET, "1.2.840.10008.1.2.8.1"})
NO_DICM = "no 'DICM' prefix after the 128-byte preamble"
NATIVE = NATIVE_LE | {BIG_ENDIAN} | DEFLATED
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_LONG_VRS = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"SQ", b"UT", b"UC", b"UR"})


# Top-level tags the indexer reads (the scanner keeps exactly these).
WANTED = frozenset(
    {
        0x00080005,
        0x00080016,
        0x00080018,
        0x00080020,
        0x00080030,
        0x00080050,
        0x00080060,
        0x00081030,
        0x0008103E,
        0x00100010,
        0x00100020,
        0x00100021,
        0x00100030,
        0x00100040,
        0x00180015,
        0x0020000D,
        0x0020000E,
        0x00200011,
        0x00200013,
        0x00200032,
        0x00200037,
        0x00200052,
        0x00201041,
        0x00280002,
        0x00280004,
        0x00280008,
        0x00280010,
        0x00280011,
        0x00280030,
        0x00280100,
        0x00280101,
        0x00280102,
        0x00280103,
        0x00281050,
        0x00281051,
        0x00281052,
        0x00281053,
        0x00281054,
        0x00281056,
    }
)


class HeaderError(ValueError):
    """A file that cannot be indexed; the message is the per-file reason shown to the user."""


@dataclass(frozen=True)
class Header:
    """One indexed file: its instance plus the tree context (patient/study/series fields)."""

    instance: Instance
    patient: Patient  # empty containers: the indexer fills the tree
    study: Study
    series: Series


def floats_of(value: Any, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def spacing_of(values: tuple[float, ...] | None) -> tuple[float, float] | None:
    """A usable pixel spacing, or None: a zero, negative or non-finite spacing (some CR files
    carry 0\\0) means "unknown", so measurements fall back to pixels instead of reading 0 mm."""
    if values is None or len(values) != 2:
        return None
    if not all(math.isfinite(v) and v > 0 for v in values):
        return None
    return (values[0], values[1])


def int_of(value: Any, default: int | None = None) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def str_of(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def _multi(value: Any) -> list[float]:
    if value is None or value == "":
        return []
    seq = value if isinstance(value, list | tuple | MultiValue) else [value]
    out = []
    for v in seq:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            continue
    return out


def windows_of(ds: Dataset) -> tuple[tuple[float, float], ...]:
    """(center, width) pairs from Window Center/Width (multi-valued: pairwise); width >= 1."""
    centers, widths = _multi(ds.get("WindowCenter")), _multi(ds.get("WindowWidth"))
    return tuple((c, w) for c, w in zip(centers, widths, strict=False) if w > 0)


def _item(seq_owner: Dataset | None, keyword: str) -> Dataset | None:
    if seq_owner is None:
        return None
    seq = seq_owner.get(keyword)
    return seq[0] if seq else None


def functional_item(ds: Dataset, frame: int, keyword: str) -> Dataset | None:
    """An enhanced multi-frame functional group macro for a frame: per-frame, else shared."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and frame < len(per_frame):
        found = _item(per_frame[frame], keyword)
        if found is not None:
            return found
    shared = ds.get("SharedFunctionalGroupsSequence")
    return _item(shared[0], keyword) if shared else None


def rescale_of(ds: Dataset, frame: int) -> tuple[float, float, str]:
    """(slope, intercept, rescale type) for a frame: top level, else functional groups."""
    src: Dataset | None = ds if "RescaleSlope" in ds or "RescaleIntercept" in ds else None
    if src is None:
        src = functional_item(ds, frame, "PixelValueTransformationSequence")
    if src is None:
        return 1.0, 0.0, ""
    slope = _multi(src.get("RescaleSlope")) or [1.0]
    intercept = _multi(src.get("RescaleIntercept")) or [0.0]
    return slope[0] or 1.0, intercept[0], str_of(src, "RescaleType")


def frame_windows(ds: Dataset, frame: int) -> tuple[tuple[float, float], ...]:
    found = windows_of(ds)
    if found:
        return found
    item = functional_item(ds, frame, "FrameVOILUTSequence")
    return windows_of(item) if item is not None else ()


def units_for(modality: str, rescale_type: str) -> str:
    """Units of modality values: HU on CT, else the Rescale Type ('US' means unspecified)."""
    if modality.upper() == "CT":
        return "HU"
    return "" if rescale_type.upper() == "US" else rescale_type


def pixel_element(fp: BinaryIO, ts: str) -> tuple[int, int] | None:
    """(value offset, value length) of the Pixel Data element at fp's position, else None."""
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return None
    implicit = ts == "1.2.840.10008.1.2"
    if len(head) < 12 and not implicit:
        return None
    big = ts == BIG_ENDIAN
    group, elem = struct.unpack(">HH" if big else "<HH", head[:4])
    if ((group << 16) | elem) not in _PIXEL_TAGS:
        return None
    if implicit:
        return start + 8, struct.unpack("<I", head[4:8])[0]
    if head[4:6] in _LONG_VRS:
        return start + 12, struct.unpack(">I" if big else "<I", head[8:12])[0]
    return start + 8, struct.unpack(">H" if big else "<H", head[6:8])[0]


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def parse(fp: BinaryIO) -> Dataset:
    """The header (up to the Pixel Data) of the DICOM file at ``fp``; HeaderError says why not."""
    return parse_bounded(fp)[0]


def parse_bounded(fp: BinaryIO) -> tuple[Dataset, sources.Inflated | None]:
    """``parse``, and for a deflated data set (inflated within bounds by
    ``sources.read_dicom``) where its Pixel Data lies and its inflated size."""
    try:
        return sources.read_dicom(fp, stop_before_pixels=True, defer_size="1 MB")
    except InvalidDicomError as exc:
        # pydicom's own hint ("Use force=True ...") is advice for programmers, not users
        reason = str(exc).split(" Use force=True")[0].rstrip()
        raise HeaderError(f"not a DICOM file ({reason})") from exc
    except sources.SourceError as exc:
        raise HeaderError(str(exc)) from exc
    except Exception as exc:
        raise HeaderError(f"unreadable DICOM header: {type(exc).__name__}: {exc}") from exc


def read_header(path: str, *, require_uids: bool = True, fast: bool = True) -> Header:
    """Index one file (see module docstring). Raises HeaderError with the reason.

    ``require_uids=False`` accepts a file lacking Study/Series/SOP Instance UIDs (their path
    stands in), for commands that handle one named file, such as ``doctorai render``.
    ``fast=False`` skips the scanner (``core.imaging.scan``) and always uses pydicom.
    """
    try:
        # Only the first bytes, also of a zip member: its DICM prefix (or image signature) is
        # checked before anything more of it is inflated.
        prefix, size = sources.read_prefix(path, HEADER_PREFIX)
    except sources.SourceError as exc:
        raise HeaderError(str(exc)) from exc
    if prefix[128:132] != b"DICM":
        if plain.looks_like_image(prefix):
            return _plain_header(path)
        suffix = os.path.splitext(path)[1].lower()
        if suffix in IMAGE_SUFFIXES:
            raise HeaderError(f"not a readable {suffix[1:].upper()} image (its content is not one)")
        if suffix == ".zip":
            raise HeaderError("not a readable zip archive (damaged or truncated)")
        # what pydicom says of a file without the prefix, without reading any more of it
        raise HeaderError(f"not a DICOM file ({NO_DICM})")
    partial = len(prefix) < size
    scanned = scan.scan(prefix, WANTED, whole_file=not partial) if fast else None
    if scanned is None and fast and partial:
        # Long headers (e.g. Siemens CSA): one larger read before falling back to pydicom.
        prefix, size = sources.read_prefix(path, LONG_HEADER_PREFIX)
        partial = len(prefix) < size
        scanned = scan.scan(prefix, WANTED, whole_file=not partial)
    if scanned is not None:
        ts = scanned.transfer_syntax
        element = None
        if scanned.pixel_tag_offset is not None:
            bio = io.BytesIO(prefix)
            bio.seek(scanned.pixel_tag_offset)
            element = pixel_element(bio, ts)
            if element is None:  # the element header itself was cut off: use pydicom
                return read_header(path, require_uids=require_uids, fast=False)
        if element is not None and element[1] == 0xFFFFFFFF:
            check_fragments(path, element[0], ts)
        tags = ScanTags(scanned.values, scanned.present, scanned.codec)
        return _to_header(path, tags, None, ts, element, size, require_uids)
    if sources.transfer_syntax_of(prefix) == DEFLATED_DATASET:
        # Inflated as it is read, no further than its header declares (sources.read_dicom).
        with sources.open_reader(path) as f:
            ds, inflated = parse_bounded(f)
        return _inflated_header(path, ds, inflated, require_uids)
    bio = io.BytesIO(prefix)
    try:
        ds = parse(bio)
    except HeaderError:
        if not partial:
            raise
        ds = Dataset()  # the cut fell inside an element: parse the whole file below
    ts = transfer_syntax(ds)
    end = bio.tell()
    element = None if ts in DEFLATED else pixel_element(bio, ts)
    if partial and element is None and ts not in DEFLATED:
        # The header did not fit in the prefix: parse the file itself.
        with sources.open_stream(path) as f:
            ds, inflated = parse_bounded(f)
            if inflated is not None:
                return _inflated_header(path, ds, inflated, require_uids)
            ts = transfer_syntax(ds)
            end = f.tell()
            element = None if ts in DEFLATED else pixel_element(f, ts)
    if end > size and ts not in DEFLATED:
        # pydicom skipped (deferred) a value whose declared length runs past the end of file.
        raise HeaderError(
            "a header element declares a length beyond the end of the file (corrupt or truncated)"
        )
    if len(ds) == 0:
        raise HeaderError("no data elements could be read (truncated or corrupt file)")
    if element is not None and element[1] == 0xFFFFFFFF:
        check_fragments(path, element[0], ts)
    return _to_header(path, RawTags(ds), ds, ts, element, size, require_uids)


def _inflated_header(
    path: str, ds: Dataset, inflated: sources.Inflated | None, require_uids: bool
) -> Header:
    """The Header of a deflated data set: its Pixel Data checked like a native one's, in the
    inflated data (offsets and size from ``sources.read_dicom``)."""
    if inflated is None:  # the file meta said deflated in the prefix, not in the whole file
        raise HeaderError("the File Meta Information differs between reads (file changed?)")
    if len(ds) == 0:
        raise HeaderError("no data elements could be read (truncated or corrupt file)")
    ts = transfer_syntax(ds)
    return _to_header(
        path, RawTags(ds), ds, ts, inflated.pixel_element, inflated.size, require_uids
    )


def check_fragments(path: str, offset: int, ts: str) -> None:
    """Walk the encapsulated Pixel Data items (seeks only) to catch a truncated file, which
    pydicom would otherwise turn into an EMPTY dataset with nothing but a warning."""
    fmt = ">HHI" if ts == BIG_ENDIAN else "<HHI"
    with sources.open_stream(path) as fp:
        fp.seek(0, os.SEEK_END)
        end = fp.tell()
        pos = offset
        while True:
            fp.seek(pos)
            head = fp.read(8)
            if len(head) < 8:
                raise HeaderError(
                    "encapsulated Pixel Data ends before its sequence delimiter (truncated file)"
                )
            group, elem, length = struct.unpack(fmt, head)
            if (group, elem) == (0xFFFE, 0xE0DD):
                return
            if (group, elem) != (0xFFFE, 0xE000) or length == 0xFFFFFFFF:
                raise HeaderError(
                    f"corrupt encapsulated Pixel Data: unexpected tag ({group:04X},{elem:04X})"
                )
            pos += 8 + length
            if pos > end:
                raise HeaderError(
                    "encapsulated Pixel Data fragment runs past the end of the file (truncated)"
                )


def _plain_header(path: str) -> Header:
    try:
        inst, name = plain.plain_instance(path)
    except Exception as exc:
        raise HeaderError(f"unreadable image file: {type(exc).__name__}: {exc}") from exc
    return Header(
        instance=inst,
        patient=Patient(inst.patient_id, name=name),
        study=Study(inst.study_instance_uid, description=name),
        series=Series(inst.series_instance_uid, modality=plain.PLAIN_MODALITY, description=name),
    )


def transfer_syntax(ds: Dataset) -> str:
    return str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")


def _tuple(values: list[float], n: int) -> tuple[float, ...] | None:
    return tuple(values) if len(values) == n else None


def _to_header(
    path: str,
    t: Tags,
    ds: Dataset | None,
    ts: str,
    element: tuple[int, int] | None,
    size: int,
    require_uids: bool = True,
) -> Header:
    """The Header from tag values ``t``; ``ds`` (pydicom) is needed only for enhanced
    multi-frame functional groups, which the scanner never handles."""
    uids = {}
    for keyword, tag, name in (
        ("SOPInstanceUID", 0x00080018, "(0008,0018)"),
        ("StudyInstanceUID", 0x0020000D, "(0020,000D)"),
        ("SeriesInstanceUID", 0x0020000E, "(0020,000E)"),
    ):
        uids[keyword] = t.text(tag)
        if not uids[keyword]:
            if require_uids:
                raise HeaderError(f"missing required {name} {keyword}")
            uids[keyword] = path
    rows, cols = t.us(0x00280010), t.us(0x00280011)
    frames = max(t.int_(0x00280008) or 1, 1)
    has_pixels = element is not None or (ts in DEFLATED and rows is not None)
    if rows is not None and cols is not None and not has_pixels:
        raise HeaderError(
            "header declares an image (Rows/Columns) but the file has no Pixel Data (truncated?)"
        )
    modality = t.text(0x00080060)
    pixel = None
    if has_pixels:
        pixel = pixel_info(t, ds, ts, element, size, rows, cols, frames, modality)

    orientation = _tuple(t.floats(0x00200037), 6)
    position = _tuple(t.floats(0x00200032), 3)
    spacing = spacing_of(_tuple(t.floats(0x00280030), 2))
    frame_positions: tuple[tuple[float, float, float], ...] | None = None
    order: tuple[int, ...] | None = None
    if ds is not None and (0x52009229 in ds or 0x52009230 in ds):  # functional groups
        positions = []
        for f in range(frames):
            item = functional_item(ds, f, "PlanePositionSequence")
            pos = floats_of(item.get("ImagePositionPatient"), 3) if item is not None else None
            positions.append(pos)
        if all(p is not None for p in positions):
            frame_positions = tuple(p for p in positions if p is not None)  # type: ignore[misc]
            position = position or frame_positions[0]
        item = functional_item(ds, 0, "PlaneOrientationSequence")
        if orientation is None and item is not None:
            orientation = floats_of(item.get("ImageOrientationPatient"), 6)
        item = functional_item(ds, 0, "PixelMeasuresSequence")
        if spacing is None and item is not None:
            spacing = spacing_of(floats_of(item.get("PixelSpacing"), 2))
        if frames > 1:
            order = frame_order(frame_positions, orientation, group_keys(ds, frames))

    slice_location = t.floats(0x00201041)
    instance = Instance(
        path=path,
        sop_instance_uid=uids["SOPInstanceUID"],
        sop_class_uid=t.text(0x00080016),
        instance_number=t.int_(0x00200013),
        number_of_frames=frames,
        rows=rows,
        columns=cols,
        image_position=position,  # type: ignore[arg-type]
        image_orientation=orientation,  # type: ignore[arg-type]
        pixel_spacing=spacing,
        slice_location=slice_location[0] if slice_location else None,
        photometric=t.text(0x00280004),
        transfer_syntax_uid=ts,
        has_pixels=has_pixels,
        frame_positions=frame_positions,
        frame_order=order,
        series_instance_uid=uids["SeriesInstanceUID"],
        study_instance_uid=uids["StudyInstanceUID"],
        patient_id=t.person_text(0x00100020, "PatientID"),
        issuer_of_patient_id=t.person_text(0x00100021, "IssuerOfPatientID"),
        frame_of_reference_uid=t.text(0x00200052),
        pixel=pixel,
    )
    return Header(
        instance=instance,
        patient=Patient(
            instance.patient_id,
            name=t.person_text(0x00100010, "PatientName"),
            birth_date=t.text(0x00100030),
            sex=t.text(0x00100040),
        ),
        study=Study(
            instance.study_instance_uid,
            study_date=t.text(0x00080020),
            study_time=t.text(0x00080030),
            description=t.person_text(0x00081030, "StudyDescription"),
            accession_number=t.person_text(0x00080050, "AccessionNumber"),
        ),
        series=Series(
            instance.series_instance_uid,
            modality=modality,
            description=t.person_text(0x0008103E, "SeriesDescription"),
            series_number=t.int_(0x00200011),
            body_part=t.text(0x00180015),
        ),
    )


def check_dimensions(
    rows: int | None, cols: int | None, frames: int, samples: int, bits: int
) -> int:
    """Decoded bytes of all frames; raises HeaderError for absurd declared dimensions."""
    if not rows or not cols or rows <= 0 or cols <= 0:
        raise HeaderError(f"invalid image size Rows={rows} Columns={cols}")
    if bits not in (1, 8, 16, 32, 64) or samples not in (1, 3, 4):
        raise HeaderError(f"unsupported Bits Allocated {bits} / Samples per Pixel {samples}")
    if rows * cols * samples > MAX_FRAME_PIXELS:
        raise HeaderError(
            f"absurd dimensions {rows}x{cols}x{samples} per frame (cap {MAX_FRAME_PIXELS} pixels)"
        )
    total = (rows * cols * frames * samples * bits + 7) // 8
    if total > MAX_TOTAL_BYTES:
        raise HeaderError(
            f"absurd dimensions {rows}x{cols}x{frames} frames x {bits} bits = {total} bytes "
            f"(cap {MAX_TOTAL_BYTES})"
        )
    return total


def pixel_info(
    t: Tags,
    ds: Dataset | None,
    ts: str,
    element: tuple[int, int] | None,
    size: int,
    rows: int | None,
    cols: int | None,
    frames: int,
    modality: str,
) -> PixelInfo:
    """Decoding facts of a header; raises HeaderError if the pixel data cannot match it."""
    samples = t.us(0x00280002) or 1
    bits = t.us(0x00280100) or 16
    expected = check_dimensions(rows, cols, frames, samples, bits)
    offset = length = None
    if element is not None and element[1] != 0xFFFFFFFF:  # native (not encapsulated)
        value_offset, declared = element
        available = size - value_offset
        if min(declared, available) < expected:
            raise HeaderError(
                f"Pixel Data holds {min(declared, available)} bytes but "
                f"{rows}x{cols}x{frames} frames x {bits} bits needs {expected} (truncated or "
                "absurd dimensions)"
            )
        if ts in NATIVE_LE:
            offset, length = value_offset, declared
    elif element is not None and ts in NATIVE:
        raise HeaderError(f"encapsulated Pixel Data in a native transfer syntax '{ts}'")
    slopes, intercepts, windows, units = [], [], [], ""
    per_frame = ds is not None and 0x52009230 in ds
    if ds is None or (not per_frame and 0x52009229 not in ds):
        # Plain (not enhanced) header: the common case, read raw.
        slopes = t.floats(0x00281053)[:1] or [1.0]
        slopes = [v or 1.0 for v in slopes]
        intercepts = t.floats(0x00281052)[:1] or [0.0]
        centers, widths = t.floats(0x00281050), t.floats(0x00281051)
        windows = [tuple((c, w) for c, w in zip(centers, widths, strict=False) if w > 0)]
        units = units_for(modality, t.person_text(0x00281054, "RescaleType"))
    else:
        for f in range(frames if per_frame else 1):
            slope, intercept, rtype = rescale_of(ds, f)
            slopes.append(slope)
            intercepts.append(intercept)
            windows.append(frame_windows(ds, f))
            units = units or units_for(modality, rtype)
    return PixelInfo(
        samples_per_pixel=samples,
        bits_allocated=bits,
        bits_stored=t.us(0x00280101) or bits,
        high_bit=t.us(0x00280102) if t.us(0x00280102) is not None else bits - 1,  # type: ignore[arg-type]
        pixel_representation=t.us(0x00280103) or 0,
        slopes=tuple(slopes),
        intercepts=tuple(intercepts),
        has_modality_lut_sequence=t.has(0x00283000),
        has_voi_lut_sequence=t.has(0x00283010),
        windows=windows[0],
        frame_windows=tuple(windows) if per_frame else None,
        voi_function=t.text(0x00281056).upper() or "LINEAR",
        units=units or units_for(modality, ""),
        pixel_data_offset=offset,
        pixel_data_length=length,
    )
