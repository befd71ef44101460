"""The PACS cache encrypted at rest (AES-256-GCM, key in the OS keyring): real DICOM files of
the shared data on the cache layer, the viewer's readers on the sealed files, the attacks
(a flipped byte, a file moved to another series, a foreign file, another key), and a real
retrieve from Orthanc opened in the real window."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pydicom
import pytest

from core.config import Settings
from core.imaging.index import build_index
from core.imaging.pixels import read_frame
from core.imaging.sources import open_bytes, read_dataset
from core.imaging.volume import fast_path_ok, load_slice
from core.pacs.cache import CacheAuthError, CacheCipher, PacsCache
from core.store.keys import SERVICE, pacs_cache_key_entry, profile_key_entries
from tests.desktop.conftest import _no_leaked_workers, window  # noqa: F401 - fixtures
from tests.pacs.conftest import CT3_DIR, ct_subset

if TYPE_CHECKING:
    from pytestqt.qtbot import QtBot

    from desktop.main_window import MainWindow
    from tests.pacs.orthanc import OrthancServer

IDENTIFYING = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber")


@pytest.fixture
def profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "profile"
    monkeypatch.setenv("DOCTORAI_HOME", str(home))
    return home


def _fill(cache: PacsCache, files: list[Path]) -> list[Path]:
    out = []
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        out.append(
            cache.put(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, f.read_bytes())
        )
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    cache.mark_complete(first.StudyInstanceUID, first.SeriesInstanceUID, len(files))
    return out


def _identifying(files: list[Path]) -> set[bytes]:
    values = set()
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        for keyword in IDENTIFYING:
            value = str(ds.get(keyword, "") or "")
            if len(value) >= 3:
                values.add(value.encode())
    return values


def test_files_on_disk_are_sealed_and_read_back_exactly(profile: Path) -> None:
    import keyring

    src = sorted(CT3_DIR.glob("*.dcm"))
    cache = PacsCache.from_settings(Settings())  # the default: encrypted
    assert cache.encrypted
    paths = _fill(cache, src)
    secrets_ = _identifying(src)
    assert secrets_  # the test could fail: the files do carry a name/ID
    for p in paths:
        raw = p.read_bytes()
        assert raw[128:132] != b"DICM"
        assert b"DICM" not in raw
        assert not any(s in raw for s in secrets_)
        assert p.stat().st_mode & 0o077 == 0
    for s, p in zip(src, paths, strict=True):
        assert open_bytes(str(p)) == s.read_bytes()  # the viewer's reader decrypts
    # the key: in the OS keyring, out of the profile's backed-up entries
    entry = pacs_cache_key_entry(profile)
    assert len(bytes.fromhex(keyring.get_password(SERVICE, entry) or "")) == 32
    assert entry not in profile_key_entries(profile / "doctorai.db").values()


def test_the_viewer_reads_the_sealed_series(profile: Path) -> None:
    src = ct_subset()[:6]
    cache = PacsCache.from_settings(Settings())
    paths = _fill(cache, src)
    index = build_index([str(p) for p in paths])
    assert not index.errors
    ((_p, _st, series),) = list(index.iter_series())
    assert len(series.instances) == len(src)
    plain = build_index([str(p) for p in src])
    ((_p2, _st2, plain_series),) = list(plain.iter_series())
    for sealed_inst, plain_inst in zip(series.instances, plain_series.instances, strict=True):
        assert fast_path_ok(sealed_inst)  # the viewer's fast path, from the decrypted bytes
        fast = load_slice(sealed_inst, 0)
        assert fast is not None
        expected = read_frame(plain_inst).values
        assert np.array_equal(fast.values, expected)
        assert np.array_equal(read_frame(sealed_inst).values, expected)
    assert read_dataset(str(paths[0])).PatientID == pydicom.dcmread(src[0]).PatientID


def test_a_flipped_byte_is_refused_and_the_series_evicted(profile: Path) -> None:
    src = sorted(CT3_DIR.glob("*.dcm"))
    cache = PacsCache.from_settings(Settings())
    paths = _fill(cache, src)
    series_uid = paths[0].parent.name
    raw = bytearray(paths[1].read_bytes())
    raw[len(raw) // 2] ^= 0x01  # the attack: one bit of the pixel data
    paths[1].write_bytes(bytes(raw))
    index = build_index([str(p) for p in paths])
    messages = [e.reason for e in index.errors]
    assert any(f"cached PACS series '{series_uid}' failed authentication" in m for m in messages), (
        messages
    )
    assert not paths[0].parent.exists()  # evicted: the next retrieve fetches it again
    study_uid = paths[0].parent.parent.name
    assert cache.complete_paths(study_uid, series_uid) is None


def test_moved_foreign_and_other_key_files_are_refused(profile: Path, tmp_path: Path) -> None:
    src = sorted(CT3_DIR.glob("*.dcm"))
    cache = PacsCache.from_settings(Settings())
    paths = _fill(cache, src)
    # a sealed file moved under another name: its place is bound into the tag
    shutil.copy(paths[0], paths[1])
    with pytest.raises(CacheAuthError, match="failed authentication"):
        cache.read(paths[1])
    # a plain DICOM file dropped into the cache
    paths = _fill(cache, src)
    shutil.copy(src[0], paths[0])
    with pytest.raises(CacheAuthError, match="failed authentication"):
        open_bytes(str(paths[0]))
    # sealed by another workstation's key
    other = PacsCache(tmp_path / "other", cipher=CacheCipher(lambda: b"\x07" * 32))
    foreign = _fill(other, src[:1])[0]
    paths = _fill(cache, src)
    shutil.copy(foreign, paths[0])
    with pytest.raises(CacheAuthError, match="failed authentication"):
        cache.read(paths[0])


def test_the_setting_off_stores_plain_files(profile: Path) -> None:
    cache = PacsCache.from_settings(Settings(pacs_cache_encrypted=False))
    paths = _fill(cache, sorted(CT3_DIR.glob("*.dcm"))[:1])
    assert paths[0].read_bytes()[128:132] == b"DICM"


def test_retrieved_series_is_sealed_and_opens_in_the_window(
    orthanc: OrthancServer,
    profile: Path,
    qtbot: QtBot,
    window: MainWindow,  # noqa: F811
) -> None:
    from core.pacs.client import client_for_url
    from core.pacs.retrieve import retrieve_series
    from tests.pacs.conftest import RecordingSink

    src = sorted(CT3_DIR.glob("*.dcm"))
    first = pydicom.dcmread(src[0], stop_before_pixels=True)
    cache = PacsCache.from_settings(Settings())
    result = retrieve_series(
        client_for_url(orthanc.dicomweb, RecordingSink()),  # type: ignore[arg-type]
        cache,
        first.StudyInstanceUID,
        first.SeriesInstanceUID,
    )
    assert len(result.paths) == 3
    secrets_ = _identifying(src)
    for p in result.paths:
        raw = p.read_bytes()
        assert b"DICM" not in raw
        assert not any(s in raw for s in secrets_)
    window.open_paths([str(p) for p in result.paths])
    qtbot.waitUntil(
        lambda: window.state.slice_count == 3 and window.state.loaded_count == 3, timeout=30_000
    )
    assert window.state.series is not None
    assert window.state.series.series_instance_uid == first.SeriesInstanceUID
