"""Model catalogue, resumable downloads, and TUF verification by the real ngclient Updater.

Loopback tests run over plain HTTP; in production the base URLs are https:// and TLS is verified.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from tuf.api.exceptions import (
    BadVersionNumberError,
    ExpiredMetadataError,
    LengthOrHashMismatchError,
    RepositoryError,
)
from tuf.ngclient import Updater

from backend.catalogue import CatalogueError, add_model, package_path
from backend.db import ModelPackage, TufMetadata
from backend.storage import LocalStorage
from core.sync.tuf_fetch import HttpxFetcher
from core.sync.wire import ChannelFile
from tests.backend.conftest import LiveServer, Workstation, make_package


def _publish(
    server: LiveServer, root: Path, model_id: str, version: str, size: int = 256 * 1024
) -> ModelPackage:
    with server.state.sessions() as s:
        return add_model(s, server.state.repo, make_package(root, model_id, version, size))


def _root(server: LiveServer) -> bytes:
    with server.state.sessions() as s:
        body = server.state.repo.get(s, "root", 1)
    assert body is not None
    return body


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """A client without credentials: the fetcher adds the token itself."""
    with httpx.Client(timeout=30) as client:
        yield client


def _updater(
    server: LiveServer, tmp: Path, ws: Workstation | None = None, http: httpx.Client | None = None
) -> Updater:
    """ngclient's Updater; given ``ws`` and ``http``, its downloads carry that workstation's
    token (targets are served to enrolled devices only), else it reads public metadata only."""
    meta, targets = tmp / "meta", tmp / "targets"
    meta.mkdir(exist_ok=True)
    targets.mkdir(exist_ok=True)
    fetcher = None
    if ws is not None and http is not None:
        fetcher = HttpxFetcher(http, lambda _renew: str(ws.tokens["access_token"]))
    return Updater(
        str(meta),
        f"{server.url}/tuf/metadata/",
        str(targets),
        f"{server.url}/tuf/targets/",
        fetcher=fetcher,
        bootstrap=_root(server),
    )


def test_catalogue_and_bad_package(server: LiveServer, ws: Workstation, tmp_path: Path) -> None:
    pkg = _publish(server, tmp_path, "cat-model", "1.0")
    models = ws.http.get("/models").json()["models"]
    entry = next(m for m in models if m["model_id"] == "cat-model")
    assert entry["sha256"] == pkg.sha256
    assert entry["manifest"]["version"] == "1.0"
    with pytest.raises(CatalogueError, match="already published"):
        _publish(server, tmp_path / "again", "cat-model", "1.0")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    with server.state.sessions() as s, pytest.raises(CatalogueError, match="not valid JSON"):
        add_model(s, server.state.repo, broken)


def test_range_download_resumes(server: LiveServer, ws: Workstation, tmp_path: Path) -> None:
    pkg = _publish(server, tmp_path, "range-model", "2.0", size=1024 * 1024)
    url = "/models/range-model/2.0/file"
    cut = pkg.length // 3
    # an interrupted download: only the first third arrived
    with ws.http.stream("GET", url) as r:
        assert r.headers["Accept-Ranges"] == "bytes"
        etag = r.headers["ETag"]
        part = b""
        for chunk in r.iter_bytes():
            part += chunk
            if len(part) >= cut:
                break
    part = part[:cut]
    r = ws.http.get(url, headers={"Range": f"bytes={cut}-", "If-Range": etag})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes {cut}-{pkg.length - 1}/{pkg.length}"
    assert hashlib.sha256(part + r.content).hexdigest() == pkg.sha256
    # stale validator: the whole file again; past the end: 416
    r = ws.http.get(url, headers={"Range": f"bytes={cut}-", "If-Range": '"other"'})
    assert r.status_code == 200
    assert len(r.content) == pkg.length
    r = ws.http.get(url, headers={"Range": f"bytes={pkg.length}-"})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == f"bytes */{pkg.length}"
    assert ws.http.get("/models/range-model/9.9/file").json()["error"]["code"] == "model_not_found"


def test_updater_refreshes_and_downloads(
    server: LiveServer, ws: Workstation, http: httpx.Client, tmp_path: Path
) -> None:
    pkg = _publish(server, tmp_path / "pkgs", "tuf-model", "1.0")
    up = _updater(server, tmp_path, ws, http)
    up.refresh()
    info = up.get_targetinfo(package_path("tuf-model", "1.0"))
    assert info is not None
    assert info.length == pkg.length
    assert info.custom == {"kind": "model", "model_id": "tuf-model", "version": "1.0"}
    path = up.download_target(info)
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == pkg.sha256
    channel = up.get_targetinfo("channels/tuf-model.json")
    assert channel is not None
    body = ChannelFile.model_validate_json(Path(up.download_target(channel)).read_bytes())
    assert (body.model_id, body.version) == ("tuf-model", "1.0")
    downloads = httpx.get(f"{server.url}/metrics", headers=server.admin_headers()).text
    assert 'doctorai_model_downloads_total{model="tuf-model",version="1.0"} 1.0' in downloads


def test_tampered_target_refused(
    server: LiveServer, ws: Workstation, http: httpx.Client, tmp_path: Path
) -> None:
    pkg = _publish(server, tmp_path / "pkgs", "tamper-model", "1.0")
    storage = server.state.storage
    assert isinstance(storage, LocalStorage)
    stored = storage.path(pkg.storage_key)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same length, one byte flipped on the server's disk
    stored.write_bytes(bytes(data))
    up = _updater(server, tmp_path, ws, http)
    up.refresh()
    info = up.get_targetinfo(pkg.target_path)
    assert info is not None
    with pytest.raises(LengthOrHashMismatchError):
        up.download_target(info)
    assert not any((tmp_path / "targets").iterdir())


def test_tampered_metadata_refused(server: LiveServer, tmp_path: Path) -> None:
    _publish(server, tmp_path / "pkgs", "meta-model", "1.0")
    with server.state.sessions() as s:
        version = server.state.repo.latest_version(s, "targets")
        row = s.get(TufMetadata, ("targets", version))
        assert row is not None
        original = row.body
        doc = json.loads(original)
        target = doc["signed"]["targets"][package_path("meta-model", "1.0")]
        target["hashes"]["sha256"] = "0" * 64  # point at other bytes without re-signing
        row.body = json.dumps(doc).encode()
        s.commit()
        try:
            with pytest.raises(RepositoryError, match="signed by 0/1 keys"):
                _updater(server, tmp_path).refresh()
        finally:
            row.body = original
            s.commit()


def test_rollback_to_older_timestamp_refused(server: LiveServer, tmp_path: Path) -> None:
    repo = server.state.repo
    with server.state.sessions() as s:
        newest = repo.publish_timestamp(s)
        s.commit()
    up = _updater(server, tmp_path)
    up.refresh()
    with server.state.sessions() as s:  # a mirror now replays the previous timestamp.json
        s.delete(s.get(TufMetadata, ("timestamp", newest)))
        s.commit()
    with pytest.raises(BadVersionNumberError):
        _updater(server, tmp_path).refresh()


def test_expired_timestamp_refused(server: LiveServer, tmp_path: Path) -> None:
    repo = server.state.repo
    with server.state.sessions() as s:
        repo.publish_timestamp(s, expires=datetime.now(UTC) - timedelta(hours=1))
        s.commit()
    try:
        with pytest.raises(ExpiredMetadataError):
            _updater(server, tmp_path).refresh()
    finally:
        with server.state.sessions() as s:
            repo.publish_timestamp(s)
            s.commit()
    later = tmp_path / "later"
    later.mkdir()
    _updater(server, later).refresh()  # re-signed: clients recover without intervention


def test_metadata_routes(server: LiveServer, ws: Workstation) -> None:
    assert httpx.get(f"{server.url}/tuf/metadata/1.root.json").status_code == 200
    assert httpx.get(f"{server.url}/tuf/metadata/999.root.json").status_code == 404
    assert httpx.get(f"{server.url}/tuf/metadata/3.timestamp.json").status_code == 404
    assert httpx.get(f"{server.url}/tuf/metadata/../secret").status_code == 404
    missing = f"{server.url}/tuf/targets/models/x/{'0' * 64}.x.tar.gz"
    assert httpx.get(missing).status_code == 401  # targets: enrolled workstations only
    assert ws.http.get(missing).status_code == 404


def test_timestamp_resign_needed_when_close_to_expiry(server: LiveServer) -> None:
    repo = server.state.repo
    with server.state.sessions() as s:
        repo.publish_timestamp(s)
        assert not repo.timestamp_expires_soon(s)
        repo.publish_timestamp(s, expires=datetime.now(UTC) + timedelta(minutes=5))
        assert repo.timestamp_expires_soon(s)
        repo.publish_timestamp(s)
        s.commit()
