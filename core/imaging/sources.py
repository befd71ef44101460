"""Where instances come from: files, folders, zip archives and DICOMDIRs.

Every input becomes a flat list of *instance paths*: a filesystem path, or
``archive.zip::member`` for a zip member (read into memory, never extracted to disk, so nothing
patient-identifying is left behind in temp folders). ``open_bytes``/``open_stream`` read any of
them; the indexer and the pixel pipeline use only these.
"""

from __future__ import annotations

import functools
import io
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.dataset import Dataset

from core.imaging.model import LoadError

ZIP_SEP = "::"
# A zip member larger than this is refused instead of being read into memory (zip bombs).
MAX_MEMBER_BYTES = 2 * 1024**3
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
PLAIN_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
# Files that are never instances: skipped silently in folders (not reported as errors).
_IGNORED_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
_IGNORED_SUFFIXES = frozenset({".txt", ".md", ".csv", ".json", ".xml", ".html", ".pdf"})


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


def open_bytes(path: str) -> bytes:
    """The whole content of a file or zip member."""
    parts = split_zip_path(path)
    if parts is None:
        return Path(path).read_bytes()
    archive, member = parts
    zf = _zip(archive, os.stat(archive).st_mtime_ns)
    try:
        info = zf.getinfo(member)
    except KeyError:
        raise FileNotFoundError(f"no member '{member}' in zip archive '{archive}'") from None
    if info.file_size > MAX_MEMBER_BYTES:
        raise ValueError(
            f"zip member '{path}' declares {info.file_size} bytes, over the "
            f"{MAX_MEMBER_BYTES} byte limit"
        )
    return zf.read(info)


def open_stream(path: str) -> BinaryIO:
    """A binary file object for a file or zip member (use as a context manager)."""
    if split_zip_path(path) is None:
        return open(path, "rb")
    return io.BytesIO(open_bytes(path))


def read_dataset(path: str, *, stop_before_pixels: bool = True) -> Dataset:
    """The DICOM dataset at ``path`` (file or zip member), e.g. for the tag browser.

    Large values are deferred (not read), so a header declaring a huge element length cannot
    exhaust memory. Raises ValueError naming the path and the reason.
    """
    try:
        with open_stream(path) as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=stop_before_pixels, defer_size="16 MB")
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
    ds = pydicom.dcmread(dicomdir)
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
