"""Start a throw-away Orthanc (Debian's orthanc + orthanc-dicomweb) on 127.0.0.1, or say why not.

Used by tests/pacs and benchmarks/bench_pacs.py. The process always stops (terminate, then
kill) and its storage directory is deleted, whatever the body of the ``with`` did.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

DICOMWEB_PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc/plugins")


def orthanc_binary() -> str | None:
    return shutil.which("Orthanc") or (
        "/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None
    )


def dicomweb_plugin() -> Path | None:
    for folder in DICOMWEB_PLUGIN_DIRS:
        path = Path(folder) / "libOrthancDicomWeb.so"
        if path.exists():
            return path
    return None


def unavailable_reason() -> str | None:
    if orthanc_binary() is None:
        return "the Orthanc binary is not installed (apt-get install orthanc orthanc-dicomweb)"
    if dicomweb_plugin() is None:
        return "Orthanc's DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class OrthancServer:
    url: str  # http://127.0.0.1:PORT
    storage: Path
    auth: tuple[str, str] | None = None
    dicom_port: int = 0
    aet: str = "ORTHANC"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def upload(self, paths: Iterable[Path | str]) -> int:
        """POST each file to /instances (Orthanc's own REST API); returns how many were stored."""
        n = 0
        with requests.Session() as s:
            for path in paths:
                r = s.post(
                    f"{self.url}/instances",
                    data=Path(path).read_bytes(),
                    timeout=60,
                    auth=self.auth,
                )
                r.raise_for_status()
                n += 1
        return n

    def upload_bytes(self, blobs: Iterable[bytes]) -> int:
        n = 0
        with requests.Session() as s:
            for blob in blobs:
                s.post(
                    f"{self.url}/instances", data=blob, timeout=60, auth=self.auth
                ).raise_for_status()
                n += 1
        return n


@contextmanager
def orthanc_server(
    startup_timeout_s: float = 30.0, users: dict[str, str] | None = None
) -> Iterator[OrthancServer]:
    """Run Orthanc with a fresh storage dir on free ports; stop it and delete it afterwards.

    ``users`` turns on HTTP basic authentication with those accounts.
    """
    binary, plugin = orthanc_binary(), dicomweb_plugin()
    if binary is None or plugin is None:
        raise RuntimeError(str(unavailable_reason()))
    tmp = Path(tempfile.mkdtemp(prefix="doctorai-orthanc-"))
    port, dicom_port = _free_port(), _free_port()
    config = {
        "Name": "DOCTORAI_TEST",
        "StorageDirectory": str(tmp / "db"),
        "IndexDirectory": str(tmp / "db"),
        "HttpPort": port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "DicomAlwaysAllowFind": True,  # any calling AET may query and C-GET (tests only)
        "DicomAlwaysAllowGet": True,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": bool(users),
        "RegisteredUsers": dict(users or {}),
        "HttpTimeout": 60,
        "StableAge": 1,
        "Plugins": [str(plugin)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full"},
    }
    cfg = tmp / "orthanc.json"
    cfg.write_text(json.dumps(config))
    log = (tmp / "orthanc.log").open("wb")
    proc = subprocess.Popen([binary, str(cfg)], stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    try:
        auth = next(iter(users.items())) if users else None
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"Orthanc exited with {proc.returncode} at start-up: "
                    f"{(tmp / 'orthanc.log').read_text(errors='replace')[-2000:]}"
                )
            try:
                r = requests.get(f"{url}/dicom-web/studies", timeout=2, auth=auth)
                if r.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Orthanc did not answer on {url} within {startup_timeout_s} s")
            time.sleep(0.1)
        yield OrthancServer(url=url, storage=tmp / "db", auth=auth, dicom_port=dicom_port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
