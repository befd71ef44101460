"""The retrieve cache (LRU by series, purge, path safety) and the streaming multipart splitter."""

from __future__ import annotations

import os
import time

import pytest

from core.pacs.cache import PacsCache
from core.pacs.multipart import boundary_of, iter_parts
from tests.pacs.conftest import CT3_DIR


def _fill(cache: PacsCache, study: str, series: str, blobs: list[bytes]) -> None:
    for i, blob in enumerate(blobs):
        cache.put(study, series, f"1.2.{i}", blob)
    cache.mark_complete(study, series, len(blobs))
    cache.touch(study, series)


def test_cache_evicts_least_recently_used_series(tmp_path) -> None:
    cache = PacsCache(tmp_path / "c", max_bytes=2500)
    _fill(cache, "1.1", "1.1.1", [b"x" * 1000])
    _fill(cache, "1.1", "1.1.2", [b"y" * 1000])
    _fill(cache, "1.2", "1.2.1", [b"z" * 1000])
    old = time.time() - 100
    os.utime(cache.series_dir("1.1", "1.1.1") / ".used", (old, old))  # the oldest use
    cache.touch("1.1", "1.1.2")
    removed = cache.evict()
    assert [(e.study_uid, e.series_uid) for e in removed] == [("1.1", "1.1.1")]
    assert cache.complete_paths("1.1", "1.1.1") is None
    assert cache.complete_paths("1.1", "1.1.2") is not None
    assert cache.size_bytes() <= 2500


def test_cache_keeps_the_series_in_use_and_purges_everything(tmp_path) -> None:
    cache = PacsCache(tmp_path / "c", max_bytes=10)
    _fill(cache, "1.1", "1.1.1", [b"x" * 100])
    assert cache.evict(keep={("1.1", "1.1.1")}) == []
    assert cache.purge() >= 100
    assert cache.entries() == []
    assert list((tmp_path / "c").iterdir()) == []


def test_incomplete_series_is_not_served_from_cache(tmp_path) -> None:
    cache = PacsCache(tmp_path / "c")
    _fill(cache, "1.1", "1.1.1", [b"a", b"b"])
    (cache.series_dir("1.1", "1.1.1") / "1.2.0.dcm").unlink()
    assert cache.complete_paths("1.1", "1.1.1") is None


@pytest.mark.parametrize("uid", ["..", "1.2/../../x", "", "1" * 65, "1.2.a"])
def test_bad_uids_never_become_paths(tmp_path, uid: str) -> None:
    with pytest.raises(ValueError, match="invalid DICOM"):
        PacsCache(tmp_path / "c").put("1.2", uid, "1.3", b"")


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_multipart_parts_survive_any_chunking(dicom_data, chunk: int) -> None:
    files = [p.read_bytes() for p in sorted(CT3_DIR.glob("*.dcm"))]
    boundary = b"b0undary-1234"
    body = (
        b"preamble\r\n"
        + b"".join(
            b"--" + boundary + b"\r\nContent-Type: application/dicom\r\n\r\n" + f + b"\r\n"
            for f in files
        )
        + b"--"
        + boundary
        + b"--\r\n"
    )
    if chunk == 1:
        body_chunks = [body[i : i + 1] for i in range(0, 200_000)] + [body[200_000:]]
    else:
        body_chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    assert list(iter_parts(body_chunks, boundary)) == files


def test_multipart_truncation_and_boundary_errors() -> None:
    assert boundary_of('multipart/related; type="application/dicom"; boundary="abc"') == b"abc"
    with pytest.raises(ValueError, match="no multipart boundary"):
        boundary_of("application/dicom")
    with pytest.raises(ValueError, match="truncated"):
        list(iter_parts([b"--b\r\n\r\nhalf a part"], b"b"))
