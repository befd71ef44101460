"""Where instances come from: files, folders, zip archives and DICOMDIRs.

Every input becomes a flat list of *instance paths*: a filesystem path, or
``archive.zip::member`` for a zip member (read into memory, never extracted to disk, so nothing
patient-identifying is left behind in temp folders), or a file in a sealed folder (the encrypted
PACS cache, decrypted into memory by the reader its owner registered). ``open_bytes``/
``open_stream`` read any of them; the indexer and the pixel pipeline use only these.

Decompression is bounded (decompression bombs): a zip member is refused before it is read when
it declares more than ``MAX_MEMBER_BYTES`` or inflates at more than ``MAX_MEMBER_RATIO``:1, and
``read_prefix`` inflates only the bytes asked for; a deflated DICOM data set (Deflated Explicit
VR Little Endian) is inflated by ``read_dicom`` only as far as its header declares, under
``MAX_INFLATED_BYTES``. The limits are module constants: set them to configure.
"""

from __future__ import annotations

import functools
import io
import os
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.filereader import read_dataset as read_elements
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian

from core.imaging.model import LoadError

ZIP_SEP = "::"
MiB = 1024**2
# A zip member larger than this is refused instead of being read into memory (zip bombs).
MAX_MEMBER_BYTES = 2 * 1024**3
# A zip member over RATIO_CHECKED_FROM that inflates more than this (inflated : compressed) is
# refused before it is read: real images deflate 2-20:1, a run of zeros up to ~1000:1.
MAX_MEMBER_RATIO = 100
RATIO_CHECKED_FROM = 64 * MiB
# Deflated data sets (pydicom inflates them whole with one unbounded zlib.decompress: a few MB
# of a file can claim many GB, so ``read_dicom`` inflates them itself, bounded):
MAX_INFLATED_BYTES = 2 * 1024**3  # ceiling of one inflated data set
MAX_INFLATED_HEADER = 64 * MiB  # what comes before the Pixel Data
INFLATED_TRAILER = 1 * MiB  # allowed after the Pixel Data its header declares (padding etc.)
_INFLATE_FIRST = 1 * MiB  # the first part of a deflated data set inflated for its header
_DEFLATE_CHUNK = 256 * 1024  # compressed bytes read at a time
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"})
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
PLAIN_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
# Files that are never instances: skipped silently in folders (not reported as errors).
_IGNORED_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
_IGNORED_SUFFIXES = frozenset({".txt", ".md", ".csv", ".json", ".xml", ".html", ".pdf"})


class SourceError(ValueError):
    """A file or zip member that is refused or cannot be read as what it claims to be; the
    message is the reason (without the path, which the caller names): a decompression bomb, a
    truncated or corrupt deflate stream."""


def _mib(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n < 10 * MiB else f"{n // MiB} MiB"


def split_zip_path(path: str) -> tuple[str, str] | None:
    """``(archive, member)`` for an ``archive.zip::member`` path, else None."""
    if ZIP_SEP not in path:
        return None
    archive, member = path.split(ZIP_SEP, 1)
    return archive, member


@functools.lru_cache(maxsize=8)
def _zip(archive: str, mtime_ns: int) -> zipfile.ZipFile:
    """An open archive, reused: re-reading the central directory for every member of a big
    zip would make indexing it quadratic. zipfile serialises reads of a shared handle."""
    return zipfile.ZipFile(archive)


def check_member(info: zipfile.ZipInfo) -> None:
    """Refuse a zip member that would inflate beyond the limits (SourceError), from its
    declared sizes alone. zipfile never inflates a member beyond its declared ``file_size``
    (and checks its CRC), so the declared size bounds what a read costs."""
    size, packed = info.file_size, info.compress_size
    if size > MAX_MEMBER_BYTES:
        raise SourceError(
            f"the zip member declares {size} bytes ({_mib(size)}) inflated, over the "
            f"{_mib(MAX_MEMBER_BYTES)} limit for one member"
        )
    if size > RATIO_CHECKED_FROM and size > MAX_MEMBER_RATIO * packed:
        raise SourceError(
            f"the zip member inflates {size / max(packed, 1):.0f}:1 ({_mib(size)} from "
            f"{_mib(packed)}), over the {MAX_MEMBER_RATIO}:1 limit for members over "
            f"{_mib(RATIO_CHECKED_FROM)}: refused as a likely zip bomb"
        )


def _member(path: str, archive: str, member: str) -> tuple[zipfile.ZipFile, zipfile.ZipInfo]:
    zf = _zip(archive, os.stat(archive).st_mtime_ns)
    try:
        info = zf.getinfo(member)
    except KeyError:
        raise FileNotFoundError(f"no member '{member}' in zip archive '{archive}'") from None
    check_member(info)
    return zf, info


# Folders whose files are stored sealed (the PACS cache, AES-GCM): their owner registers a
# function returning a file's plaintext, and every read below goes through it, in memory.
SealedReader = Callable[[str], bytes]
_sealed_folders: dict[str, SealedReader] = {}


def register_sealed_folder(folder: Path, read: SealedReader) -> None:
    """Files under ``folder`` are read through ``read`` (it raises SourceError for a file it
    refuses, e.g. one that fails authentication)."""
    global _sealed_folders
    # a new dict, not a change to the one that readers on other threads may be iterating
    _sealed_folders = {**_sealed_folders, os.path.join(os.path.abspath(folder), ""): read}


def sealed_reader(path: str) -> SealedReader | None:
    """The reader of the sealed folder holding ``path``, or None for a plain file."""
    if not _sealed_folders:
        return None
    full = os.path.abspath(path)
    return next((r for root, r in _sealed_folders.items() if full.startswith(root)), None)


def is_plain_file(path: str) -> bool:
    """A file whose bytes on disk are its content (not a zip member, not sealed)."""
    return split_zip_path(path) is None and sealed_reader(path) is None


def open_bytes(path: str) -> bytes:
    """The whole content of a file or zip member (a member within the limits of
    ``check_member``, else SourceError)."""
    sealed = sealed_reader(path)
    if sealed is not None:
        return sealed(path)
    parts = split_zip_path(path)
    if parts is None:
        return Path(path).read_bytes()
    zf, info = _member(path, *parts)
    return zf.read(info)


def read_prefix(path: str, n: int) -> tuple[bytes, int]:
    """The first ``n`` bytes of a file or zip member, and its whole size; a zip member is
    inflated only as far as that (after ``check_member``)."""
    sealed = sealed_reader(path)
    if sealed is not None:
        data = sealed(path)
        return data[:n], len(data)
    parts = split_zip_path(path)
    if parts is None:
        with open(path, "rb") as f:
            return f.read(n), os.fstat(f.fileno()).st_size
    zf, info = _member(path, *parts)
    with zf.open(info) as member:
        return member.read(n), info.file_size


def open_reader(path: str) -> BinaryIO:
    """A binary file object reading a file or zip member from its start, for reading forward:
    a zip member is inflated as it is read, never held whole (use as a context manager)."""
    if sealed_reader(path) is not None:
        return io.BytesIO(open_bytes(path))
    parts = split_zip_path(path)
    if parts is None:
        return open(path, "rb")
    zf, info = _member(path, *parts)
    return cast(BinaryIO, zf.open(info))


def open_stream(path: str) -> BinaryIO:
    """A seekable binary file object for a file or zip member (use as a context manager)."""
    if is_plain_file(path):
        return open(path, "rb")
    return io.BytesIO(open_bytes(path))


# ---------------------------------------------------------------- bounded DICOM reading


@dataclass(frozen=True)
class Inflated:
    """How ``read_dicom`` inflated a deflated data set; offsets count from the start of the
    inflated data set (the byte after the File Meta Information)."""

    size: int  # bytes of the whole inflated data set
    pixel_element: tuple[int, int] | None  # (value offset, value length) of the Pixel Data


class _Inflater:
    """A raw deflate stream read forward from ``fp`` and inflated on demand, only as far as
    asked. Hand-written around zlib.decompressobj(max_length): pydicom has no bounded inflate."""

    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp
        self._z = zlib.decompressobj(-zlib.MAX_WBITS)
        self._pending = b""
        self.done = False  # the deflate stream has ended

    def read(self, n: int, into: bytearray | None = None) -> int:
        """Inflate up to ``n`` more bytes (fewer only at the end of the stream), appended to
        ``into`` when given, else discarded. Returns how many."""
        got = 0
        while got < n and not self.done:
            if not self._pending:
                self._pending = self._fp.read(_DEFLATE_CHUNK)
                if not self._pending:
                    raise SourceError(
                        "the deflated data set is truncated (its deflate stream ends early)"
                    )
            try:
                out = self._z.decompress(self._pending, n - got)
            except zlib.error as exc:
                raise SourceError(f"the deflated data set is corrupt (deflate: {exc})") from None
            self._pending = self._z.unconsumed_tail
            got += len(out)
            if into is not None:
                into += out
            self.done = self._z.eof
        return got


def _at_pixels(tag: BaseTag, vr: str | None, length: int) -> bool:
    return int(tag) in _PIXEL_TAGS


def _pixel_element(data: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """(value offset, length) of an explicit VR little endian Pixel Data element at ``pos``."""
    head = bytes(data[pos : pos + 12])
    if len(head) < 12:
        return None
    tag = int.from_bytes(head[0:2], "little") << 16 | int.from_bytes(head[2:4], "little")
    if tag not in _PIXEL_TAGS:
        return None
    if head[4:6] in _LONG_VRS:
        return pos + 12, int.from_bytes(head[8:12], "little")
    return pos + 8, int.from_bytes(head[6:8], "little")


def _declared_pixel_bytes(ds: Dataset) -> int:
    """Bytes of pixels that Rows, Columns, Number of Frames, Samples per Pixel and Bits
    Allocated declare (0 when the header declares no image size)."""

    def number(keyword: str, default: int) -> int:
        try:
            return int(ds.get(keyword) or default)
        except (TypeError, ValueError):
            return default

    rows, cols = number("Rows", 0), number("Columns", 0)
    if rows <= 0 or cols <= 0:
        return 0
    frames = max(number("NumberOfFrames", 1), 1)
    samples = max(number("SamplesPerPixel", 1), 1)
    bits = max(number("BitsAllocated", 16), 1)
    return (rows * cols * frames * samples * bits + 7) // 8


def _parse_elements(
    data: bytes, stop_before_pixels: bool, defer_size: str | int | None
) -> tuple[Dataset, DicomBytesIO, int]:
    """The data set (explicit VR little endian) in ``data``, its buffer and where it stopped."""
    buf = DicomBytesIO(data)
    stop = _at_pixels if stop_before_pixels else None
    ds = read_elements(cast(BinaryIO, buf), False, True, stop_when=stop, defer_size=defer_size)
    return ds, buf, buf.tell()


def _read_deflated(
    fp: BinaryIO,
    preamble: bytes | None,
    meta: FileMetaDataset,
    stop_before_pixels: bool,
    defer_size: str | int | None,
) -> tuple[FileDataset, Inflated]:
    """The data set of a Deflated Explicit VR Little Endian file (``fp`` just after its File
    Meta Information), inflated no further than its header accounts for."""
    inflater = _Inflater(fp)
    data = bytearray()
    # 1. The header: the data set up to the Pixel Data element, inflated in growing steps.
    step = _INFLATE_FIRST
    while True:
        inflater.read(step - len(data), data)
        try:
            ds, buf, end = _parse_elements(bytes(data), True, defer_size)
        except Exception:
            if inflater.done or len(data) >= MAX_INFLATED_HEADER:
                raise
            pixel = None  # cut inside an element pydicom could not skip: inflate more
        else:
            pixel = _pixel_element(data, end)
            if pixel is not None or inflater.done:
                break
        if len(data) >= MAX_INFLATED_HEADER:
            raise SourceError(
                f"the deflated data set inflates to more than {_mib(MAX_INFLATED_HEADER)} "
                "before its Pixel Data: refused as a likely decompression bomb"
            )
        step = min(step * 4, MAX_INFLATED_HEADER)
    # 2. The rest: the Pixel Data the header declares, and a little after it.
    if pixel is not None:
        offset, length = pixel
        if length == 0xFFFFFFFF:
            raise SourceError(
                "encapsulated Pixel Data (undefined length) in a deflated data set, whose "
                "pixels are native"
            )
        declared = _declared_pixel_bytes(ds)
        if declared > MAX_INFLATED_BYTES:
            raise SourceError(
                f"its header declares {declared} bytes ({_mib(declared)}) of pixel data, over "
                f"the {_mib(MAX_INFLATED_BYTES)} ceiling for a deflated data set"
            )
        limit = min(offset + min(length, declared + 1) + INFLATED_TRAILER, MAX_INFLATED_BYTES)
        rest = max(limit + 1 - len(data), 0)
        size = len(data) + inflater.read(rest, None if stop_before_pixels else data)
        if size > limit:
            raise SourceError(
                f"the deflated data set inflates to more than {limit} bytes ({_mib(limit)}), "
                f"which is what its header accounts for ({declared} bytes of pixel data and "
                "what precedes and may follow it): refused as a likely decompression bomb"
            )
        if not stop_before_pixels:
            ds, buf, _ = _parse_elements(bytes(data), False, defer_size)
    else:
        size = len(data)
    del data
    dataset = FileDataset(buf, ds, preamble, meta, is_implicit_VR=False, is_little_endian=True)
    dataset.set_original_encoding(False, True, ds.original_character_set)
    return dataset, Inflated(size, pixel)


def read_dicom(
    fp: BinaryIO, *, stop_before_pixels: bool = True, defer_size: str | int | None = None
) -> tuple[FileDataset, Inflated | None]:
    """``pydicom.dcmread`` of the DICOM file at ``fp``'s position, but a deflated data set
    (Deflated Explicit VR Little Endian) is inflated here, no further than its header accounts
    for and never beyond ``MAX_INFLATED_BYTES``; the ``Inflated`` says how (None otherwise).

    Raises what pydicom raises (InvalidDicomError for a file without the DICM prefix), and
    SourceError for a deflated data set that is refused, truncated or corrupt.
    """
    start = fp.tell()
    preamble = read_preamble(fp, False)
    # pydicom's own reader of the File Meta Information: the transfer syntax seen here is the
    # one dcmread would act on, so no deflated data set reaches pydicom's unbounded inflate.
    meta = _read_file_meta_info(fp)
    if meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        return _read_deflated(fp, preamble, meta, stop_before_pixels, defer_size)
    fp.seek(start)
    return pydicom.dcmread(fp, defer_size=defer_size, stop_before_pixels=stop_before_pixels), None


def transfer_syntax_of(prefix: bytes) -> str:
    """The Transfer Syntax UID in the File Meta Information at the start of ``prefix``, or ""."""
    try:
        fp = io.BytesIO(prefix)
        read_preamble(fp, False)
        return str(_read_file_meta_info(fp).get("TransferSyntaxUID", "") or "")
    except Exception:  # noqa: BLE001 - no readable meta: the caller's own parse says why
        return ""


def read_dataset(path: str, *, stop_before_pixels: bool = True) -> Dataset:
    """The DICOM dataset at ``path`` (file or zip member), e.g. for the tag browser.

    Large values are deferred (not read), so a header declaring a huge element length cannot
    exhaust memory; nor can a deflated data set (``read_dicom``). Raises ValueError naming the
    path and the reason.
    """
    try:
        with open_stream(path) as fp:
            ds, _ = read_dicom(fp, stop_before_pixels=stop_before_pixels, defer_size="16 MB")
    except Exception as exc:
        raise ValueError(f"cannot read the DICOM file '{path}': {exc}") from exc
    if len(ds) == 0:
        raise ValueError(f"cannot read the DICOM file '{path}': no data elements (truncated?)")
    return ds


def is_zip(path: Path) -> bool:
    return path.suffix.lower() == ".zip" and zipfile.is_zipfile(path)


def _is_ignored(name: str) -> bool:
    base = os.path.basename(name).lower()
    return (
        base in _IGNORED_NAMES
        or base.startswith("._")
        or os.path.splitext(base)[1] in _IGNORED_SUFFIXES
        or base.startswith(("license", "readme", "citation"))
    )


def _is_dicomdir_name(name: str) -> bool:
    return os.path.basename(name).upper() == "DICOMDIR"


def _zip_members(archive: Path, errors: list[LoadError]) -> list[str]:
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [i.filename for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        errors.append(LoadError(str(archive), f"not a readable zip archive: {exc}"))
        return []
    return [
        f"{archive}{ZIP_SEP}{n}"
        for n in sorted(names)
        if not _is_ignored(n) and not _is_dicomdir_name(n)
    ]


def dicomdir_files(dicomdir: Path) -> list[str]:
    """Files referenced by a DICOMDIR (Referenced File ID of each record), in record order."""
    with open(dicomdir, "rb") as fp:
        ds, _ = read_dicom(fp, stop_before_pixels=False)
    root = dicomdir.parent
    out: list[str] = []
    for record in ds.get("DirectoryRecordSequence", []):
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [file_id] if isinstance(file_id, str) else list(file_id)
        out.append(str(root.joinpath(*parts)))
    return out


def _dicomdir(path: Path, errors: list[LoadError]) -> list[str]:
    try:
        files = dicomdir_files(path)
    except Exception as exc:  # noqa: BLE001 - a broken DICOMDIR is one per-file error
        errors.append(LoadError(str(path), f"unreadable DICOMDIR: {exc}"))
        return []
    found = []
    for f in files:
        if os.path.isfile(f):
            found.append(f)
        else:
            errors.append(LoadError(f, f"referenced by DICOMDIR '{path}' but missing"))
    return found


def enumerate_inputs(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[str], list[LoadError]]:
    """Instance paths under ``paths`` (deduplicated, in a stable order) and per-path errors.

    Folders are walked recursively; zip archives are listed member by member; a DICOMDIR
    (given directly or found in a folder) contributes the files it references and is not itself
    an instance. Text files such as licences in a folder are skipped, not reported.
    """
    out: list[str] = []
    errors: list[LoadError] = []
    seen: set[str] = set()

    def unreadable(exc: OSError) -> None:
        errors.append(LoadError(str(exc.filename), f"cannot read folder: {exc.strerror or exc}"))

    def add(p: str, key: str | None = None) -> None:
        key = key or (p if ZIP_SEP in p else os.path.realpath(p))
        if key not in seen:
            seen.add(key)
            out.append(p)

    for raw in paths:
        path = Path(raw)
        if ZIP_SEP in str(raw):
            add(str(raw))
        elif path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path, onerror=unreadable):
                dirnames.sort()
                # one realpath per folder, not per file (it costs a syscall per path part)
                real_dir = os.path.realpath(dirpath)
                for name in sorted(filenames):
                    full = os.path.join(dirpath, name)
                    if _is_dicomdir_name(name):
                        for f in _dicomdir(Path(full), errors):
                            add(f)
                    elif name.lower().endswith(".zip") and is_zip(Path(full)):
                        for m in _zip_members(Path(full), errors):
                            add(m)
                    elif not _is_ignored(name):
                        add(full, None if os.path.islink(full) else os.path.join(real_dir, name))
        elif path.is_file():
            if _is_dicomdir_name(path.name):
                for f in _dicomdir(path, errors):
                    add(f)
            elif is_zip(path):
                for m in _zip_members(path, errors):
                    add(m)
            else:
                add(str(path))
        else:
            errors.append(LoadError(str(raw), "no such file or folder"))
    return out, errors
