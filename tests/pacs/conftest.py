"""One Orthanc for the whole PACS test session, loaded with real shared studies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DICOM_DATA
from tests.pacs.orthanc import OrthancServer, orthanc_server, unavailable_reason

CT3_DIR = DICOM_DATA / "QIICR__dcmqi" / "data" / "segmentations" / "ct-3slice"
LIVER_SEG = DICOM_DATA / "QIICR__dcmqi" / "data" / "segmentations" / "liver.dcm"
SR_EXAMPLE = DICOM_DATA / "QIICR__dcmqi" / "data" / "sr-example" / "sr.dcm"
CT_STACK = DICOM_DATA / "pyvista__vtk-data" / "Data" / "DICOM_Stack"
CT_SUBSET = 24  # slices of the 134-slice CT uploaded (keeps the session fast on 2 cores)


def ct_subset() -> list[Path]:
    return sorted(CT_STACK.glob("*.dcm"))[:CT_SUBSET]


def _require() -> None:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    if not CT3_DIR.is_dir() or not CT_STACK.is_dir():
        pytest.skip(f"shared DICOM data not found under '{DICOM_DATA}'")


@pytest.fixture(autouse=True)
def isolated_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """keyrings.alt's file keyring under tmp_path (PACS secrets, the audit database key)."""
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    previous = keyring.get_keyring()
    keyring.set_keyring(PlaintextKeyring())
    yield home
    keyring.set_keyring(previous)


@pytest.fixture(scope="session")
def orthanc() -> Iterator[OrthancServer]:
    """Read-only for the tests: two studies (3-slice CT and 24 slices of a pancreas CT)."""
    _require()
    with orthanc_server() as server:
        server.upload(sorted(CT3_DIR.glob("*.dcm")))
        server.upload(ct_subset())
        yield server


@pytest.fixture(scope="module")
def orthanc_rw() -> Iterator[OrthancServer]:
    """A server of its own for tests that store into it (the 3-slice CT uploaded)."""
    _require()
    with orthanc_server() as server:
        server.upload(sorted(CT3_DIR.glob("*.dcm")))
        yield server


class RecordingSink:
    """A real AuditSink that keeps what it was told (the app's sink writes to the audit log)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, list[tuple[str, str]], dict[str, str]]] = []

    def __call__(
        self, event_type: str, outcome: int, objects: object, details: dict[str, str]
    ) -> None:
        self.events.append((event_type, outcome, list(objects), dict(details)))  # type: ignore[call-overload]

    def of(self, event_type: str) -> list[tuple[str, int, list[tuple[str, str]], dict[str, str]]]:
        """By event type, or by its meaning ("Query")."""
        return [
            e
            for e in self.events
            if e[0] == event_type or getattr(e[0], "meaning", None) == event_type
        ]


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()
