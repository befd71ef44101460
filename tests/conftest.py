"""Shared fixtures: real data locations and an isolated profile per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DOCTORAI_SHARED_DATA", REPO.parent / "shared" / "data"))
DICOM_DATA = SHARED_DATA / "dicom"
MEDMNIST_DATA = SHARED_DATA / "medmnist"
SAMPLE = REPO / "resources" / "sample"

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _isolated_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own profile and machine config, never the developer's."""
    home = tmp_path / "profile"
    monkeypatch.setenv("DOCTORAI_HOME", str(home))
    monkeypatch.setenv("DOCTORAI_MACHINE_CONFIG", str(tmp_path / "machine-config.toml"))
    return home


@pytest.fixture(autouse=True)
def _isolated_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """keyrings.alt's file keyring under tmp_path: commands that audit (inspect, render, ...)
    create a database key, and it must never land in the developer's or CI's real keyring."""
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    data_home = tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    previous = keyring.get_keyring()
    keyring.set_keyring(PlaintextKeyring())
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def dicom_data() -> Path:
    if not DICOM_DATA.is_dir():
        pytest.skip(f"shared DICOM data not found at {DICOM_DATA}")
    return DICOM_DATA
