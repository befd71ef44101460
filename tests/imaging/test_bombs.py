"""Decompression bombs (issue 15, hole 6): deflated DICOM data sets and zip members are inflated
within the sizes their headers declare and a ceiling, and refused with a message otherwise.

The bombs are real files generated here: a deflated DICOM (Deflated Explicit VR Little Endian,
1.2.840.10008.1.2.1.99) whose few MB inflate to GBs of zeros, and a zip whose members do. Each
attack runs ``doctorai inspect`` / ``render`` / the decoder in a child process, whose peak memory
(``ru_maxrss`` from ``os.wait4``) must stay bounded. The real deflated file of the shared data
still indexes and decodes, as a file and as a zip member.
"""

from __future__ import annotations

import io
import os
import resource
import subprocess
import sys
import tracemalloc
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.pixels import apply_modality_lut
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from core.imaging import sources
from core.imaging.header import HeaderError, read_header
from core.imaging.index import build_index
from core.imaging.pixels import read_frame
from tests.imaging.refdata import CT_TS, PYDICOM_TF, instance

REPO = Path(__file__).resolve().parents[2]
MiB = 1024**2
GB = 1000**3
DEFLATED_CT = (
    f"{CT_TS}/CTImage.dcm_DeflatedExplicitVRLittleEndianTransferSyntax_1.2.840.10008.1.2.1.99.dcm"
)
EXPLICIT_CT = f"{CT_TS}/CTImage.dcm_LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1.dcm"
# A child that reads a 512x512 CT needs ~150 MB; the bombs below inflate to 1-3.5 GB.
PEAK_LIMIT = 500 * MiB
CHILD_CPU_S = 120  # a child never runs longer (SIGXCPU): no test can hang on a bomb


# ---------------------------------------------------------------- bomb generators


def _zero_block() -> bytes:
    """1 MiB of zeros as raw deflate, ending in a full flush: byte-aligned and referring to no
    earlier data, so the same bytes can be written again and again into any raw deflate stream
    that was itself fully flushed. Writing a 3.5 GB stream of zeros then takes milliseconds
    instead of the ~10 s zlib needs to compress them."""
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(bytes(MiB)) + c.flush(zlib.Z_FULL_FLUSH)


def write_deflate_stream(fh: io.BufferedWriter, parts: list[bytes | int]) -> None:
    """Raw deflate of ``parts`` (bytes, or an int: that many zero bytes), streamed with
    zlib.compressobj: nothing of the inflated size is ever held in memory."""
    block = _zero_block()
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    for part in parts:
        if isinstance(part, bytes):
            fh.write(c.compress(part))
            continue
        fh.write(c.flush(zlib.Z_FULL_FLUSH))
        blocks, rest = divmod(part, MiB)
        for _ in range(blocks):
            fh.write(block)
        fh.write(c.compress(bytes(rest)))
    fh.write(c.flush())


def _element(tag: int, vr: bytes, length: int) -> bytes:
    """An explicit VR little endian element header with a 4-byte length (OB/OW)."""
    return (
        (tag >> 16).to_bytes(2, "little")
        + (tag & 0xFFFF).to_bytes(2, "little")
        + (vr + b"\0\0" + length.to_bytes(4, "little"))
    )


def _body(ds: Dataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    return fp.getvalue()


def _meta_prefix(ds: Dataset, ts: str) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_file_meta_info(fp, meta)
    return b"\0" * 128 + b"DICM" + fp.getvalue()


def ct_header(dicom_data: Path, **changes: object) -> Dataset:
    """The real CT header (no pixel data) of the shared set, with ``changes`` applied."""
    ds = pydicom.dcmread(dicom_data / EXPLICIT_CT, stop_before_pixels=True)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    return ds


def deflated_dicom(path: Path, header: Dataset, tail: list[bytes | int]) -> Path:
    """A Deflated Explicit VR Little Endian file: ``header`` then ``tail`` (element headers and
    zero runs), deflated. Returns ``path``."""
    with open(path, "wb") as fh:
        fh.write(_meta_prefix(header, DeflatedExplicitVRLittleEndian))
        write_deflate_stream(fh, [_body(header), *tail])
    return path


def deflate_bombs(dicom_data: Path, folder: Path) -> dict[str, Path]:
    """Deflated DICOM bombs, each a few MB inflating to ~3.5 GB, by where the zeros hide."""
    ct = ct_header(dicom_data)
    pixels = 512 * 512 * 2
    huge = 3500 * MiB
    private = Dataset()
    private.add_new(0x00090010, "LO", "BOMB")
    before_pixels = ct_header(dicom_data)
    before_pixels.update(private)
    big = ct_header(dicom_data, Rows=16384, Columns=16384, NumberOfFrames="8")
    return {
        # the image as declared, then 3.5 GB of Data Set Trailing Padding
        "trailing": deflated_dicom(
            folder / "trailing.dcm",
            ct,
            [_element(0x7FE00010, b"OW", pixels), pixels, _element(0xFFFCFFFC, b"OB", huge), huge],
        ),
        # Pixel Data declaring 3.5 GB where 512x512x16 bits need 512 KiB
        "pixel_length": deflated_dicom(
            folder / "pixel_length.dcm", ct, [_element(0x7FE00010, b"OW", huge), huge]
        ),
        # a 3.5 GB private value before the Pixel Data (inside what is read as the header)
        "before_pixels": deflated_dicom(
            folder / "before_pixels.dcm",
            before_pixels,
            [_element(0x00091010, b"OB", huge), huge, _element(0x7FE00010, b"OW", pixels), pixels],
        ),
        # dimensions declaring 4 GiB of pixels: over the ceiling for a deflated data set
        "declared_huge": deflated_dicom(
            folder / "declared_huge.dcm",
            big,
            [_element(0x7FE00010, b"OW", 0xFFFFFFFE), huge],
        ),
    }


def zip_bomb(dicom_data: Path, path: Path, size: int = 1100 * MiB) -> Path:
    """A zip (written with zipfile's streaming writes) holding zero-filled members, a member
    that is a valid DICOM header followed by zeros, a small non-DICOM member and one real CT."""
    zeros = bytes(MiB)
    dicom_head = _meta_prefix(ct_header(dicom_data), ExplicitVRLittleEndian) + _body(
        ct_header(dicom_data)
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, head, n in (
            ("zeros.dcm", b"", size),
            ("disguised.dcm", dicom_head + _element(0x7FE00010, b"OW", 512 * 512 * 2), size),
        ):
            with zf.open(name, "w", force_zip64=True) as member:
                member.write(head)
                for _ in range(n // MiB):
                    member.write(zeros)
        # below the size at which the ratio is checked: refused by its missing DICM prefix
        with zf.open("small_zeros.dcm", "w") as member:
            for _ in range(40):
                member.write(zeros)
        zf.write(dicom_data / EXPLICIT_CT, "real.dcm")
    return path


# ---------------------------------------------------------------- running a child, measured


@dataclass
class Child:
    returncode: int
    stdout: str
    stderr: str
    peak: int  # bytes: the child's own high-water RSS after exec (VmHWM)


def _limits() -> None:  # pragma: no cover - runs in the child
    # Safety nets for the machine running the tests, far above what a child needs: a regression
    # shows as a failed assertion (or a MemoryError), not as an exhausted or hung test machine.
    resource.setrlimit(resource.RLIMIT_AS, (8 * 1024**3, 8 * 1024**3))
    resource.setrlimit(resource.RLIMIT_CPU, (CHILD_CPU_S, CHILD_CPU_S))


# The child reports its own VmHWM as it exits. Not ru_maxrss from wait4: a child forked from a
# large test process (the whole suite has loaded the AI frameworks) counts the parent's pages
# it shared until exec in ru_maxrss; VmHWM belongs to the new process image only.
_REPORT = """
import atexit, os, runpy, sys
def _report():
    with open("/proc/self/status") as f:
        kb = next(line for line in f if line.startswith("VmHWM")).split()[1]
    with open(os.environ["DOCTORAI_TEST_HWM"], "w") as out:
        out.write(kb)
atexit.register(_report)
if sys.argv[1] == "-m":
    sys.argv = [sys.argv[2], *sys.argv[3:]]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    code, sys.argv = sys.argv[2], ["-c", *sys.argv[3:]]
    exec(compile(code, "<child>", "exec"), {"__name__": "__main__"})
"""


def run_child(args: list[str], tmp_path: Path) -> Child:
    """``args``: ``["-m", module, ...]`` or ``["-c", code]``, as for ``python``."""
    out, err, hwm = tmp_path / "child.out", tmp_path / "child.err", tmp_path / "child.hwm"
    hwm.unlink(missing_ok=True)
    env = dict(
        os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", DOCTORAI_TEST_HWM=str(hwm)
    )
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(
            [sys.executable, "-c", _REPORT, *args],
            cwd=REPO,
            stdout=o,
            stderr=e,
            env=env,
            preexec_fn=_limits,
        )
        try:
            _, status, _usage = os.wait4(proc.pid, 0)
        finally:
            proc.returncode = -1  # reaped by wait4: keep Popen from waiting again
    peak = int(hwm.read_text()) * 1024 if hwm.exists() else 1 << 62  # no report: no pass
    return Child(
        os.waitstatus_to_exitcode(status),
        out.read_text(errors="replace"),
        err.read_text(errors="replace"),
        peak,
    )


def doctorai(tmp_path: Path, *args: str) -> Child:
    return run_child(["-m", "desktop.launcher", *args], tmp_path)


# ---------------------------------------------------------------- the attacks


def test_deflated_bombs_are_refused_by_inspect_in_bounded_memory(
    dicom_data: Path, tmp_path: Path
) -> None:
    bombs = deflate_bombs(dicom_data, tmp_path)
    assert all(p.stat().st_size < 5 * MiB for p in bombs.values())
    child = doctorai(tmp_path, "inspect", *map(str, bombs.values()))
    assert child.returncode == 1, child.stderr  # nothing usable, no traceback
    assert "Traceback" not in child.stderr
    lines = {
        name: [ln for ln in child.stderr.splitlines() if str(p) in ln] for name, p in bombs.items()
    }
    for name, found in lines.items():
        assert len(found) == 1, (name, child.stderr)
    assert "more than" in lines["trailing"][0]
    assert "inflate" in lines["trailing"][0]
    assert "inflate" in lines["pixel_length"][0]
    assert "before its Pixel Data" in lines["before_pixels"][0]
    assert "ceiling" in lines["declared_huge"][0]
    assert child.peak < PEAK_LIMIT, f"peak {child.peak / MiB:.0f} MiB"


def test_deflated_bomb_is_refused_by_render_and_the_decoder(
    dicom_data: Path, tmp_path: Path
) -> None:
    bombs = deflate_bombs(dicom_data, tmp_path)
    child = doctorai(tmp_path, "render", str(bombs["trailing"]), "--out", str(tmp_path / "x.png"))
    assert child.returncode == 1, child.stderr
    assert str(bombs["trailing"]) in child.stderr
    assert "inflate" in child.stderr
    assert "Traceback" not in child.stderr
    assert not (tmp_path / "x.png").exists()
    assert child.peak < PEAK_LIMIT, f"peak {child.peak / MiB:.0f} MiB"

    # The decoder and the tag browser, given the bombs directly (as after a file was replaced).
    script = f"""
import dataclasses, sys
from core.imaging import sources
from core.imaging.pixels import PixelDecodeError, read_frame
from tests.imaging.refdata import instance
good = instance({str(dicom_data / DEFLATED_CT)!r})
for path in {[str(p) for p in bombs.values()]!r}:
    try:
        read_frame(dataclasses.replace(good, path=path))
    except PixelDecodeError as exc:
        print("decode:", exc)
    for pixels in (True, False):
        try:
            sources.read_dataset(path, stop_before_pixels=pixels)
        except ValueError as exc:
            print("dataset:", exc)
"""
    child = run_child(["-c", script], tmp_path)
    assert child.returncode == 0, child.stderr
    lines = child.stdout.splitlines()
    for path in bombs.values():
        mine = [ln for ln in lines if f"'{path}'" in ln]
        assert len(mine) == 3, (path, child.stdout)
        assert mine[0].startswith("decode: cannot decode")
    assert child.peak < PEAK_LIMIT, f"peak {child.peak / MiB:.0f} MiB"


def test_zip_bomb_members_are_refused_in_bounded_memory(dicom_data: Path, tmp_path: Path) -> None:
    archive = zip_bomb(dicom_data, tmp_path / "bomb.zip")
    assert archive.stat().st_size < 16 * MiB
    child = doctorai(tmp_path, "inspect", str(archive))
    assert child.returncode == 0, child.stderr  # the real member is still indexed
    assert "1 instance(s)" in child.stdout
    assert "Traceback" not in child.stderr
    reasons = {
        ln.split("::", 1)[1].split("'", 1)[0]: ln for ln in child.stderr.splitlines() if "::" in ln
    }
    assert sorted(reasons) == ["disguised.dcm", "small_zeros.dcm", "zeros.dcm"], child.stderr
    assert "zip bomb" in reasons["zeros.dcm"]
    assert "zip bomb" in reasons["disguised.dcm"]
    assert "not a DICOM file" in reasons["small_zeros.dcm"]
    assert child.peak < PEAK_LIMIT, f"peak {child.peak / MiB:.0f} MiB"


def test_zip_member_prefix_is_checked_before_the_member_is_read(tmp_path: Path) -> None:
    """A member below the ratio check (40 MiB of zeros): only its first bytes are inflated to
    find it is no DICOM file (tracemalloc sees every bytes object Python allocates)."""
    archive = tmp_path / "zeros.zip"
    with (
        zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf,
        zf.open("scan.dcm", "w") as member,
    ):
        for _ in range(40):
            member.write(bytes(MiB))
    path = f"{archive}::scan.dcm"
    tracemalloc.start()
    try:
        with pytest.raises(HeaderError, match="not a DICOM file"):
            read_header(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * MiB, f"peak {peak / MiB:.1f} MiB"
    index = build_index([archive])
    assert [(e.path, e.reason.split(" (")[0]) for e in index.errors] == [(path, "not a DICOM file")]


# ---------------------------------------------------------------- real files still work


def test_real_deflated_file_indexes_and_decodes_as_file_and_zip_member(
    dicom_data: Path, tmp_path: Path
) -> None:
    deflated, explicit = dicom_data / DEFLATED_CT, dicom_data / EXPLICIT_CT
    inst = instance(deflated)
    assert inst.transfer_syntax_uid == DeflatedExplicitVRLittleEndian
    assert inst.has_pixels
    assert (inst.rows, inst.columns) == (512, 512)
    expected = read_frame(instance(explicit)).values
    np.testing.assert_array_equal(read_frame(inst).values, expected)
    # the same through pydicom alone (its own unbounded inflate), as an independent reference
    np.testing.assert_array_equal(
        pydicom.dcmread(deflated).pixel_array, pydicom.dcmread(explicit).pixel_array
    )

    archive = tmp_path / "deflated.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(deflated, "a/deflated.dcm")
    index = build_index([archive])
    assert index.errors == []
    ((_, _, series),) = list(index.iter_series())
    (member,) = series.instances
    assert member.path == f"{archive}::a/deflated.dcm"
    np.testing.assert_array_equal(read_frame(member).values, expected)
    ds = sources.read_dataset(member.path, stop_before_pixels=False)
    assert ds.PatientName == pydicom.dcmread(deflated).PatientName
    np.testing.assert_array_equal(ds.pixel_array, pydicom.dcmread(explicit).pixel_array)


def test_pydicoms_deflated_test_file_indexes_and_decodes(dicom_data: Path) -> None:
    """The other deflated file of the shared set (4.6 KB inflating ~60:1), against pydicom's
    own reading of it."""
    path = dicom_data / PYDICOM_TF / "image_dfl.dcm"
    ds = pydicom.dcmread(path)
    index = build_index([path])
    assert index.errors == []
    ((_, _, series),) = list(index.iter_series())
    (inst,) = series.instances
    assert inst.transfer_syntax_uid == DeflatedExplicitVRLittleEndian
    expected = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
    np.testing.assert_array_equal(read_frame(inst).values, expected)


def test_deflated_files_written_by_pydicom_index_and_decode(
    dicom_data: Path, tmp_path: Path
) -> None:
    """pydicom's own deflate writer: a header longer than the first inflate step (a 3 MiB
    private value before the Pixel Data) and a data set without pixels still read."""
    source = pydicom.dcmread(dicom_data / EXPLICIT_CT)
    source.add_new(0x00090010, "LO", "LONG")
    source.add_new(0x00091010, "OB", bytes(range(256)) * (3 * MiB // 256))
    source.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    long_header = tmp_path / "long_header.dcm"
    source.save_as(long_header, enforce_file_format=True)
    np.testing.assert_array_equal(
        read_frame(instance(long_header)).values,
        read_frame(instance(dicom_data / EXPLICIT_CT)).values,
    )
    no_pixels = pydicom.dcmread(dicom_data / EXPLICIT_CT, stop_before_pixels=True)
    for keyword in ("Rows", "Columns"):
        delattr(no_pixels, keyword)
    no_pixels.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    no_pixels.save_as(tmp_path / "no_pixels.dcm", enforce_file_format=True)
    header = read_header(str(tmp_path / "no_pixels.dcm"))
    assert not header.instance.has_pixels
    assert header.instance.sop_instance_uid == no_pixels.SOPInstanceUID


def test_truncated_or_corrupt_deflated_file_is_refused_with_a_reason(
    dicom_data: Path, tmp_path: Path
) -> None:
    data = (dicom_data / DEFLATED_CT).read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(HeaderError, match="truncated"):
        read_header(str(cut))
    garbled = tmp_path / "garbled.dcm"
    meta_end = data.index(b"1.2.840.10008.1.2.1.99") + 200
    garbled.write_bytes(data[:meta_end] + bytes(b ^ 0x5A for b in data[meta_end : meta_end + 4096]))
    with pytest.raises(HeaderError, match="deflate"):
        read_header(str(garbled))
    index = build_index([cut, garbled])
    assert {Path(e.path).name for e in index.errors} == {"cut.dcm", "garbled.dcm"}


def test_inspect_of_a_normal_deflated_file_stays_small(dicom_data: Path, tmp_path: Path) -> None:
    """The reference for PEAK_LIMIT: the same child on the real deflated file."""
    child = doctorai(tmp_path, "inspect", str(dicom_data / DEFLATED_CT))
    assert child.returncode == 0, child.stderr
    assert "1 instance(s)" in child.stdout
    assert child.peak < PEAK_LIMIT / 2, f"peak {child.peak / MiB:.0f} MiB"
