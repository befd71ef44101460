"""Model packages (``/tuf/targets/``) only for enrolled, non-revoked workstations (or an admin).

The attacks, over real HTTP against a live backend: no token, a garbage token, a token forged
with another key, an expired token, a token of a device that never existed, and a revoked
device's still-unexpired token each ask for a published package: each gets 401 in the API's
error shape and not one byte of the package, and no download is counted. The same package
downloads whole with a device's (or an admin's) token; the metadata stays public. On the
workstation side, the fetcher renews an expired token once, and a revoked workstation's
ModelUpdater stops with ``revoked``, its installed model unchanged.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest

from backend.auth import ALGORITHM, ISSUER
from backend.catalogue import add_model
from backend.db import ModelPackage
from backend.storage import LocalStorage
from core.sync.client import SyncClient
from core.sync.credentials import CredentialStore
from core.sync.model_update import ModelUpdateError, ModelUpdater
from core.sync.tuf_fetch import HttpxFetcher, TargetAccessError, download_verified
from tests.backend.conftest import LiveServer, Workstation, make_package

MODEL = "auth-model"


@pytest.fixture(scope="module")
def pkg(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> ModelPackage:
    root = tmp_path_factory.mktemp("pkgs")
    with server.state.sessions() as s:
        return add_model(s, server.state.repo, make_package(root, MODEL, "1.0", 64 * 1024))


def _url(server: LiveServer, pkg: ModelPackage) -> str:
    directory, base = pkg.target_path.rsplit("/", 1)
    return f"{server.url}/tuf/targets/{directory}/{pkg.sha256}.{base}"


def _package_bytes(server: LiveServer, pkg: ModelPackage) -> bytes:
    storage = server.state.storage
    assert isinstance(storage, LocalStorage)
    return storage.path(pkg.storage_key).read_bytes()


def _downloads(server: LiveServer) -> float:
    text = httpx.get(f"{server.url}/metrics", headers=server.admin_headers()).text
    m = re.search(rf'doctorai_model_downloads_total{{model="{MODEL}",version="1.0"}} (\S+)', text)
    return float(m.group(1)) if m else 0.0


def _forged(subject: str, role: str = "admin") -> str:
    """A well-formed access token signed with a key the server does not have."""
    now = datetime.now(UTC)
    claims = {
        "sub": subject,
        "role": role,
        "typ": "access",
        "amr": ["pwd", "otp"],
        "iss": ISSUER,
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    return jwt.encode(claims, "not-the-server-secret-" + "x" * 32, algorithm=ALGORITHM)


def _assert_refused(r: httpx.Response, code: str, package: bytes, method: str) -> None:
    assert r.status_code == 401, (r.status_code, r.text[:200])
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert len(r.content) < 1024
    assert package[:256] not in r.content
    assert package[-256:] not in r.content
    if method == "GET":  # a HEAD answer has no body to carry the error
        assert r.json()["error"]["code"] == code
        assert isinstance(r.json()["error"]["message"], str)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_forged_or_expired_token_gets_a_package(
    server: LiveServer, pkg: ModelPackage, ws: Workstation
) -> None:
    url, package = _url(server, pkg), _package_bytes(server, pkg)
    assert hashlib.sha256(package).hexdigest() == pkg.sha256
    expired = server.state.tokens.access(ws.device_id, ttl_s=-60)
    ghost = server.state.tokens.access("no-such-device")  # the server's key, unknown device
    attacks: list[tuple[dict[str, str], str]] = [
        ({}, "auth_required"),
        ({"Authorization": "Bearer garbage"}, "token_invalid"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "auth_required"),
        (_bearer(_forged(ws.device_id, "device")), "token_invalid"),
        (_bearer(_forged("it-admin")), "token_invalid"),
        (_bearer(expired), "token_expired"),
        (_bearer(ghost), "device_revoked"),
        # a refresh token is not an access token
        (_bearer(ws.tokens["refresh_token"]), "token_invalid"),
    ]
    before = _downloads(server)
    for headers in (h for h, _ in attacks):
        for method in ("GET", "HEAD"):
            code = next(c for h, c in attacks if h is headers)
            _assert_refused(httpx.request(method, url, headers=headers), code, package, method)
            # with a Range too: a refusal comes before the file, whatever part is asked for
            ranged = {**headers, "Range": "bytes=0-1023"}
            _assert_refused(httpx.request(method, url, headers=ranged), code, package, method)
    assert _downloads(server) == before  # nothing was served, so nothing was counted
    # the same package with a valid device token, then an admin's: whole, and counted
    got = httpx.get(url, headers=_bearer(ws.tokens["access_token"]))
    assert got.status_code == 200
    assert got.content == package
    part = httpx.get(url, headers={**_bearer(ws.tokens["access_token"]), "Range": "bytes=10-19"})
    assert (part.status_code, part.content) == (206, package[10:20])
    head = httpx.head(url, headers=_bearer(ws.tokens["access_token"]))
    assert (head.status_code, head.headers["Content-Length"]) == (200, str(len(package)))
    assert httpx.get(url, headers=server.admin_headers()).content == package
    assert _downloads(server) == before + 3  # two whole GETs and a ranged one (not HEAD)
    # an unknown target with a valid token: still the path check's 404
    missing = url.replace(pkg.sha256, "0" * 64)
    assert httpx.get(missing, headers=_bearer(ws.tokens["access_token"])).status_code == 404
    # metadata stays public: signed, not secret
    assert httpx.get(f"{server.url}/tuf/metadata/timestamp.json").status_code == 200


def test_a_revoked_workstation_gets_no_package_with_its_unexpired_token(
    server: LiveServer, pkg: ModelPackage
) -> None:
    ws = server.workstation("revoked-ws")
    try:
        url, package = _url(server, pkg), _package_bytes(server, pkg)
        token = _bearer(ws.tokens["access_token"])
        assert httpx.get(url, headers=token).content == package  # before: served
        r = httpx.post(
            f"{server.api}/admin/devices/{ws.device_id}/revoke",
            json={"reason": "laptop stolen"},
            headers=server.admin_headers(),
        )
        assert r.status_code == 200, r.text
        before = _downloads(server)
        for method in ("GET", "HEAD"):
            _assert_refused(
                httpx.request(method, url, headers=token), "device_revoked", package, method
            )
        assert _downloads(server) == before
        # and no fresh token to try with either
        login = ws.http.post("/token", json={"device_id": ws.device_id, "device_secret": ws.secret})
        assert login.json()["error"]["code"] == "device_revoked"
    finally:
        ws.close()


def _fetch(
    server: LiveServer, pkg: ModelPackage, dest: Path, token: Callable[[bool], str] | None
) -> Path:
    from tuf.api.metadata import TargetFile  # type: ignore[attr-defined]

    info = TargetFile(pkg.length, {"sha256": pkg.sha256}, pkg.target_path)
    with httpx.Client() as http:
        return download_verified(
            HttpxFetcher(http, token), f"{server.url}/tuf/targets/", info, dest
        )


def test_fetcher_renews_an_expired_token_once(
    server: LiveServer, pkg: ModelPackage, ws: Workstation, tmp_path: Path
) -> None:
    asked: list[bool] = []
    current = server.state.tokens.access(ws.device_id, ttl_s=-60)  # cached, but expired

    def token(renew: bool) -> str:
        nonlocal current
        asked.append(renew)
        if renew:
            ws.login()  # what SyncClient.access_token(renew=True) does: a fresh token
            current = ws.tokens["access_token"]
        return current

    got = _fetch(server, pkg, tmp_path / "pkg.tar.gz", token)
    assert hashlib.sha256(got.read_bytes()).hexdigest() == pkg.sha256
    assert asked == [False, True]
    asked.clear()
    _fetch(server, pkg, tmp_path / "again.tar.gz", token)  # the renewed token is used as it is
    assert asked == [False]


def test_fetcher_refusals_name_the_servers_reason(
    server: LiveServer, pkg: ModelPackage, tmp_path: Path
) -> None:
    with pytest.raises(TargetAccessError) as err:
        _fetch(server, pkg, tmp_path / "anon.tar.gz", None)
    assert err.value.code == "auth_required"
    ws = server.workstation("revoked-fetcher")
    try:
        with server.state.sessions() as s:
            from backend import fleet

            fleet.revoke(s, ws.device_id, "test-admin", "decommissioned")
            s.commit()
        asked: list[bool] = []

        def token(renew: bool) -> str:  # a provider that cannot renew: the same token again
            asked.append(renew)
            return str(ws.tokens["access_token"])

        with pytest.raises(TargetAccessError) as err:
            _fetch(server, pkg, tmp_path / "revoked.tar.gz", token)
        assert (err.value.code, asked) == ("device_revoked", [False, True])  # renewed once
    finally:
        ws.close()
    assert not list(tmp_path.iterdir())  # no partial file left behind


@pytest.fixture
def keyring_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The device secret goes to keyrings.alt's file backend under tmp_path, never a real one."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    import keyring.core

    keyring.core._keyring_backend = None  # re-read the backend from the environment


@pytest.fixture
def live(tmp_path: Path, keyring_in_tmp: None) -> Iterator[LiveServer]:
    from tests.backend.conftest import base_settings

    server = LiveServer(base_settings(tmp_path / "backend")).start()
    yield server
    server.stop()


def test_revoked_workstation_keeps_its_model_and_is_told_why(
    live: LiveServer, tmp_path: Path
) -> None:
    from tests.sync.test_model_updates import MODEL as ZOO_MODEL
    from tests.sync.test_model_updates import installed_state, publish, trusted_root

    client = SyncClient(live.url, CredentialStore(live.url), timeout=10)
    client.enrol(live.enrol_code(), label="to-revoke")
    profile = tmp_path / "profile"
    try:
        publish(live, tmp_path, "1.0.1")
        up = ModelUpdater(live.url, trusted_root(live), profile, access_token=client.access_token)
        assert up.update(ZOO_MODEL).action == "installed"  # the production wiring: signed in
        up.close()
        before = installed_state(profile)
        publish(live, tmp_path, "1.1.0")
        device_id = client.credentials.require_device().device_id
        r = httpx.post(
            f"{live.api}/admin/devices/{device_id}/revoke",
            json={"reason": "left the hospital"},
            headers=live.admin_headers(),
        )
        assert r.status_code == 200, r.text
        up = ModelUpdater(live.url, trusted_root(live), profile, access_token=client.access_token)
        with pytest.raises(ModelUpdateError) as err:
            up.update(ZOO_MODEL)  # cached token refused, the renewal refused: revoked
        up.close()
        assert err.value.reason == "revoked", err.value
        assert "revoked" in str(err.value)
        assert "installed model is unchanged" in str(err.value)
        assert installed_state(profile) == before
        assert not any((profile / "models" / ".staging").iterdir())
    finally:
        client.close()

    # a workstation never enrolled with this server: told so, nothing installed
    stranger = SyncClient(live.url, CredentialStore(live.url + "/other"), timeout=10)
    up = ModelUpdater(
        live.url, trusted_root(live), tmp_path / "p2", access_token=stranger.access_token
    )
    try:
        with pytest.raises(ModelUpdateError) as err:
            up.update(ZOO_MODEL)
        assert err.value.reason == "not_enrolled", err.value
        assert "not enrolled" in str(err.value)
    finally:
        up.close()
        stranger.close()
