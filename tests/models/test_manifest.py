"""Package validation: every way a package can be wrong is refused with a message naming it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from models.manifest import (
    FileIntegrityError,
    IncompatibleAppError,
    ManifestError,
    PackageError,
    canonical_hash,
    load_package,
)

ZOO = Path(__file__).resolve().parents[2] / "models" / "zoo"
SOURCE = ZOO / "tabular-breast-cancer"  # the smallest real package


@pytest.fixture
def package(tmp_path: Path) -> Path:
    if not SOURCE.is_dir():
        pytest.fail(f"shipped package missing: {SOURCE}")
    dest = tmp_path / "pkg"
    shutil.copytree(SOURCE, dest)
    return dest


def _edit(path: Path, **changes: object) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(changes)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_real_package_loads_and_hash_is_canonical(package: Path) -> None:
    loaded = load_package(package)
    raw = json.loads((package / "manifest.json").read_text())
    assert loaded.id == "tabular-breast-cancer"
    assert loaded.package_hash == canonical_hash(raw)
    # re-serialising with other whitespace/key order keeps the hash
    (package / "manifest.json").write_text(json.dumps(raw, indent=7, sort_keys=False))
    assert load_package(package).package_hash == loaded.package_hash
    _edit(package, intended_use="something else")
    assert load_package(package).package_hash != loaded.package_hash


def test_bad_schema_names_the_field(package: Path) -> None:
    _edit(package, version="1.0")
    with pytest.raises(ManifestError) as err:
        load_package(package)
    assert err.value.where == "version"
    assert f"'{package}'" in str(err.value)
    assert "semantic version" in str(err.value)


def test_unknown_framework_and_extra_field_refused(package: Path) -> None:
    _edit(package, framework="caffe")
    with pytest.raises(ManifestError, match="framework"):
        load_package(package)
    _edit(package, framework="xgboost", surprise=1)
    with pytest.raises(ManifestError, match="surprise"):
        load_package(package)


def test_not_json(package: Path) -> None:
    (package / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="cannot read"):
        load_package(package)


def test_missing_manifest(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="file not found"):
        load_package(tmp_path / "empty")


def test_wrong_hash_in_manifest(package: Path) -> None:
    manifest = json.loads((package / "manifest.json").read_text())
    manifest["files"]["model.json"] = "0" * 64
    (package / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FileIntegrityError) as err:
        load_package(package)
    assert err.value.where == "model.json"
    assert "SHA-256 mismatch" in err.value.reason


def test_tampered_weight_file(package: Path) -> None:
    weights = package / "model.json"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(FileIntegrityError, match=r"model\.json: SHA-256 mismatch"):
        load_package(package)
    # a listing without hashing still works (cheap); loading is what must refuse
    assert load_package(package, verify_hashes=False).id == "tabular-breast-cancer"


def test_missing_file(package: Path) -> None:
    (package / "selftest" / "expected.npy").unlink()
    with pytest.raises(FileIntegrityError, match=r"selftest/expected\.npy: listed file is missing"):
        load_package(package)


def test_unlisted_file(package: Path) -> None:
    (package / "extra_weights.bin").write_bytes(b"\x00" * 16)
    with pytest.raises(FileIntegrityError, match=r"extra_weights\.bin: .*not listed"):
        load_package(package)


def test_too_new_min_app_version(package: Path) -> None:
    _edit(package, min_app_version="99.0.0")
    with pytest.raises(IncompatibleAppError, match=r"needs app 99\.0\.0 or newer, this is 0\.1"):
        load_package(package)
    assert load_package(package, app_version="99.0.1").id == "tabular-breast-cancer"


def test_path_escape_refused(package: Path) -> None:
    manifest = json.loads((package / "manifest.json").read_text())
    manifest["files"]["../outside.bin"] = "0" * 64
    (package / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="inside the package"):
        load_package(package)


def test_weights_must_be_listed(package: Path) -> None:
    _edit(package, weights="other.json")
    with pytest.raises(ManifestError, match=r"weights 'other\.json' is not listed"):
        load_package(package)


def test_file_access_restricted_to_listed(package: Path) -> None:
    loaded = load_package(package)
    assert loaded.file("model.json").is_file()
    with pytest.raises(PackageError, match="not listed"):
        loaded.file("manifest.json")


OUR_ZOO = [
    "chest-xray-pneumonia",
    "breast-ultrasound",
    "brain-tumour-mri",
    "lung-colon-histopathology",
    "skin-lesion",
    "tabular-breast-cancer",
]


@pytest.mark.parametrize("pkg", OUR_ZOO)
def test_every_shipped_package_verifies(pkg: str) -> None:
    loaded = load_package(ZOO / pkg)
    size = sum(f.stat().st_size for f in (ZOO / pkg).rglob("*") if f.is_file())
    assert size < 20 * 1024 * 1024, f"{pkg} is {size} bytes"
    assert loaded.manifest.metrics is not None
    if loaded.manifest.demo_only:
        assert loaded.manifest.demo_notice == "Demo model - not for clinical use"
    assert (ZOO / pkg / "SOURCES.md").is_file()
