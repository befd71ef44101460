"""Artefacts in S3: boto3 against moto's S3-compatible server on 127.0.0.1 (skip: no moto)."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.catalogue import add_model
from backend.storage import S3Storage, StorageError
from tests.backend.conftest import LiveServer, base_settings, make_package

moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # moto accepts any credentials; these dummies keep boto3 from looking for real ones
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local-test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    port = _free_port()
    srv = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    srv.start()
    url = f"http://127.0.0.1:{port}"
    S3Storage("artefacts", endpoint_url=url).client.create_bucket(Bucket="artefacts")
    yield url
    srv.stop()


def test_s3_storage_roundtrip(s3_endpoint: str, tmp_path: Path) -> None:
    store = S3Storage("artefacts", "models", endpoint_url=s3_endpoint)
    src = tmp_path / "blob"
    src.write_bytes(bytes(range(256)) * 100)
    store.put_file("targets/abc", src)
    assert store.size("targets/abc") == 25600
    assert b"".join(store.iter_range("targets/abc", 10, 19)) == bytes(range(10, 20))
    assert store.read_all("targets/abc") == src.read_bytes()
    with pytest.raises(StorageError, match="s3://artefacts/models/targets/missing"):
        store.size("targets/missing")
    with pytest.raises(StorageError, match="invalid storage key"):
        store.size("../escape")


def test_backend_serves_models_from_s3(s3_endpoint: str, tmp_path: Path) -> None:
    settings = base_settings(
        tmp_path / "data", storage_url="s3://artefacts/prod", s3_endpoint_url=s3_endpoint
    )
    live = LiveServer(settings).start()
    try:
        with live.state.sessions() as s:
            pkg = add_model(s, live.state.repo, make_package(tmp_path, "s3-model", "1.0"))
        assert not (tmp_path / "data" / "artefacts").exists()
        ws = live.workstation()
        half = pkg.length // 2
        head = ws.http.get("/models/s3-model/1.0/file", headers={"Range": f"bytes=0-{half - 1}"})
        tail = ws.http.get("/models/s3-model/1.0/file", headers={"Range": f"bytes={half}-"})
        assert (head.status_code, tail.status_code) == (206, 206)
        assert hashlib.sha256(head.content + tail.content).hexdigest() == pkg.sha256
    finally:
        live.stop()
