"""Signed model updates against a live backend: install, switch, rollback, and TUF attacks.

The package is the real shipped XGBoost model (models/zoo/tabular-breast-cancer); its self-test
runs through the real adapter before any switch. Each attack leaves the installed model as it
was (pointer file and files byte for byte) and is refused with a message that names it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from backend.catalogue import add_model, create_rollout, package_path, set_channel
from backend.db import ModelPackage, TufMetadata
from backend.storage import LocalStorage
from core.sync.model_update import ModelUpdateError, ModelUpdater
from core.sync.service import rollout_assignment
from models.discovery import ZOO_DIR
from models.manifest import load_package, write_manifest
from tests.backend.conftest import LiveServer, base_settings
from tests.sync.conftest import enrolled_client
from tests.sync.faultproxy import FaultProxy

MODEL = "tabular-breast-cancer"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(base_settings(tmp_path / "backend")).start()
    yield server
    server.stop()


def _package(tmp: Path, version: str, break_selftest: bool = False) -> Path:
    dest = tmp / f"pkg-{version}"
    shutil.copytree(ZOO_DIR / MODEL, dest)
    raw = json.loads((dest / "manifest.json").read_text())
    raw["version"] = version
    if break_selftest:  # a package that verifies by hash but whose model disagrees with itself
        expected = dest / raw["selftest"]["expected"]
        np.save(expected, 1.0 - np.load(expected))
    raw.pop("files")
    write_manifest(dest, raw)
    return dest


def publish(
    server: LiveServer,
    tmp: Path,
    version: str,
    *,
    channel: bool = True,
    break_selftest: bool = False,
) -> ModelPackage:
    with server.state.sessions() as s:
        pkg = add_model(s, server.state.repo, _package(tmp, version, break_selftest))
        if channel:
            set_channel(s, server.state.repo, MODEL, version)
            server.state.repo.publish(s)
            s.commit()
        return pkg


def trusted_root(server: LiveServer) -> bytes:
    with server.state.sessions() as s:
        return server.state.repo.root_json_for_installer(s)


def device_token(server: LiveServer) -> Callable[[bool], str]:
    """A newly enrolled workstation's access token, renewed by logging in again when asked:
    what ``SyncClient.access_token`` gives the updater (the backend serves packages only to
    enrolled, non-revoked workstations)."""
    r = httpx.post(f"{server.api}/enrol", json={"code": server.enrol_code(), "label": "updater"})
    r.raise_for_status()
    creds = {"device_id": r.json()["device_id"], "device_secret": r.json()["device_secret"]}
    token = ""

    def access_token(renew: bool) -> str:
        nonlocal token
        if renew or not token:
            login = httpx.post(f"{server.api}/token", json=creds)
            login.raise_for_status()
            token = str(login.json()["access_token"])
        return token

    return access_token


def updater(
    server: LiveServer, profile: Path, url: str | None = None, **kw: object
) -> ModelUpdater:
    kw.setdefault("access_token", device_token(server))
    return ModelUpdater(url or server.url, trusted_root(server), profile, **kw)  # type: ignore[arg-type]


def installed_state(profile: Path) -> dict[str, str]:
    """Every file under the installed model, with its hash (staging excluded)."""
    root = profile / "models" / MODEL
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def installed(live: LiveServer, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Version 1.0.0 installed through the update channel; returns (profile, file state)."""
    profile = tmp_path / "profile"
    publish(live, tmp_path, "1.0.1")
    up = updater(live, profile)
    assert up.update(MODEL).action == "installed"
    up.close()
    return profile, installed_state(profile)


def _assert_refused(
    up: ModelUpdater, reason: str, words: str, profile: Path, before: dict[str, str]
) -> None:
    with pytest.raises(ModelUpdateError) as err:
        up.update(MODEL)
    assert err.value.reason == reason, err.value
    assert words in str(err.value)
    assert "installed model is unchanged" in str(err.value)
    assert installed_state(profile) == before
    assert not any((profile / "models" / ".staging").iterdir())


def test_install_switch_and_rollback(
    live: LiveServer, tmp_path: Path, installed: tuple[Path, dict[str, str]]
) -> None:
    profile, _ = installed
    up = updater(live, profile)
    store = up.store
    assert store.current_version(MODEL) == "1.0.1"
    assert load_package(store.current_dir(MODEL)).version == "1.0.1"  # type: ignore[arg-type]
    assert up.update(MODEL).action == "up_to_date"

    publish(live, tmp_path, "1.1.0")
    up = updater(live, profile)  # a later run
    res = up.update(MODEL)
    assert (res.action, res.version, res.previous) == ("installed", "1.1.0", "1.0.1")
    assert load_package(store.current_dir(MODEL)).version == "1.1.0"  # type: ignore[arg-type]
    assert sorted(p.name for p in (profile / "models" / MODEL).iterdir() if p.is_dir()) == [
        "1.0.1",
        "1.1.0",
    ]

    back = store.rollback(MODEL)  # one click
    assert (back.version, back.previous, back.pinned) == ("1.0.1", "1.1.0", True)
    assert store.current_package_dirs() == [profile / "models" / MODEL / "1.0.1"]
    assert updater(live, profile).update(MODEL).action == "pinned"
    assert updater(live, profile).update(MODEL, force=True).version == "1.1.0"


def test_failed_selftest_is_not_switched_in(
    live: LiveServer, tmp_path: Path, installed: tuple[Path, dict[str, str]]
) -> None:
    profile, before = installed
    publish(live, tmp_path, "1.2.0", break_selftest=True)
    _assert_refused(updater(live, profile), "package", "failed its self-test", profile, before)


def test_tampered_package_refused(
    live: LiveServer, tmp_path: Path, installed: tuple[Path, dict[str, str]]
) -> None:
    profile, before = installed
    pkg = publish(live, tmp_path, "1.3.0")
    storage = live.state.storage
    assert isinstance(storage, LocalStorage)
    stored = storage.path(pkg.storage_key)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    _assert_refused(updater(live, profile), "hash", "tampered", profile, before)


def test_tampered_metadata_refused(
    live: LiveServer, tmp_path: Path, installed: tuple[Path, dict[str, str]]
) -> None:
    profile, before = installed
    pkg = publish(live, tmp_path, "1.4.0")
    with live.state.sessions() as s:
        row = s.get(TufMetadata, ("targets", live.state.repo.latest_version(s, "targets")))
        assert row is not None
        doc = json.loads(row.body)
        doc["signed"]["targets"][pkg.target_path]["length"] += 1  # edited, not re-signed
        row.body = json.dumps(doc).encode()
        s.commit()
    _assert_refused(
        updater(live, profile), "signature", "not signed by the trusted keys", profile, before
    )


def test_metadata_rollback_refused(
    live: LiveServer, tmp_path: Path, installed: tuple[Path, dict[str, str]]
) -> None:
    profile, before = installed
    with live.state.sessions() as s:  # the newest timestamp the workstation has already seen
        newest = live.state.repo.latest_version(s, "timestamp")
        s.delete(s.get(TufMetadata, ("timestamp", newest)))  # the server replays an older one
        s.commit()
    _assert_refused(updater(live, profile), "rollback", "rollback", profile, before)


def test_expired_timestamp_refused_then_recovers(
    live: LiveServer, tmp_path: Path, installed: tuple[Path, dict[str, str]]
) -> None:
    profile, before = installed
    publish(live, tmp_path, "1.5.0")
    with live.state.sessions() as s:
        live.state.repo.publish_timestamp(s, expires=datetime.now(UTC) - timedelta(minutes=5))
        s.commit()
    _assert_refused(updater(live, profile), "expired", "freeze attack", profile, before)
    with live.state.sessions() as s:
        live.state.repo.publish_timestamp(s)
        s.commit()
    assert updater(live, profile).update(MODEL).version == "1.5.0"


def test_mix_and_match_refused(
    live: LiveServer, tmp_path: Path, installed: tuple[Path, dict[str, str]]
) -> None:
    """A mirror answers the new N.targets.json with the older, genuinely signed, N-1."""
    profile, before = installed
    publish(live, tmp_path, "1.6.0")
    with live.state.sessions() as s:
        n = live.state.repo.latest_version(s, "targets")
        old = live.state.repo.get(s, "targets", n - 1)
    assert old is not None
    mirror = FaultProxy(live.url)
    mirror.responder = lambda _m, path: (
        (200, {"Content-Type": "application/json"}, [old])
        if path.endswith(f"/{n}.targets.json")
        else None
    )
    try:
        _assert_refused(
            updater(live, profile, mirror.url), "rollback", "mix-and-match", profile, before
        )
    finally:
        mirror.close()


@pytest.mark.parametrize("where", ["package", "timestamp"])
def test_endless_data_refused(
    live: LiveServer, tmp_path: Path, where: str, installed: tuple[Path, dict[str, str]]
) -> None:
    profile, before = installed
    pkg = publish(live, tmp_path, "1.7.0")
    sha_name = f"{pkg.sha256}.{package_path(MODEL, '1.7.0').rsplit('/', 1)[1]}"
    wanted = sha_name if where == "package" else "/metadata/timestamp.json"
    sent = {"bytes": 0}

    def endless() -> Iterator[bytes]:
        for _ in itertools.count():
            sent["bytes"] += 65536
            yield b"\0" * 65536

    mirror = FaultProxy(live.url)
    mirror.responder = lambda _m, path: (
        (200, {"Content-Type": "application/octet-stream"}, endless())
        if path.endswith(wanted)
        else None
    )
    try:
        _assert_refused(
            updater(live, profile, mirror.url), "endless_data", "endless-data", profile, before
        )
    finally:
        mirror.close()
    assert sent["bytes"] < 64 * 2**20  # the client hung up (loopback buffers hold a few MB)


def test_oversize_package_refused_before_download(
    live: LiveServer, tmp_path: Path, installed: tuple[Path, dict[str, str]]
) -> None:
    profile, before = installed
    publish(live, tmp_path, "1.8.0")
    _assert_refused(
        updater(live, profile, max_package_bytes=1000),
        "too_large",
        "over the limit",
        profile,
        before,
    )


def test_rollout_candidate_arm_gets_the_candidate(
    live: LiveServer, tmp_path: Path, installed: tuple[Path, dict[str, str]]
) -> None:
    profile, _ = installed
    publish(live, tmp_path, "1.9.0", channel=False)
    with live.state.sessions() as s:  # every workstation on the candidate arm
        create_rollout(s, live.state.repo, MODEL, "1.0.1", "1.9.0", split=1.0)
    client = enrolled_client(live)
    up = updater(
        live, profile, assignment=rollout_assignment(client), access_token=client.access_token
    )
    assert up.update(MODEL).version == "1.9.0"
    # without an assignment (e.g. not enrolled) the signed channel's baseline is used
    assert updater(live, tmp_path / "other").update(MODEL).version == "1.0.1"
    client.close()


@pytest.mark.parametrize("shadow", [False, True], ids=["shown", "shadow"])
def test_second_candidate_of_a_three_arm_rollout_is_installed(
    live: LiveServer, tmp_path: Path, installed: tuple[Path, dict[str, str]], shadow: bool
) -> None:
    """K arms: the signed channel names every candidate's package, so a workstation assigned
    the second candidate runs it (before, only the first candidate was ever installed)."""
    profile, _ = installed
    for v in ("1.9.0", "1.9.3"):
        publish(live, tmp_path, v, channel=False)
    with live.state.sessions() as s:  # baseline 0%, first candidate 0%, second candidate 100%
        rid = create_rollout(
            s,
            live.state.repo,
            MODEL,
            "1.0.1",
            "1.9.0",
            0.0,
            shadow,
            more_candidates=[("1.9.3", 1.0)],
        ).id
    client = enrolled_client(live)
    try:
        got = rollout_assignment(client)(MODEL)
        assert got is not None
        assert (got.shadow_version if shadow else got.version) == "1.9.3"
        up = updater(
            live, profile, assignment=rollout_assignment(client), access_token=client.access_token
        )
        assert up.plan(MODEL) == (
            ("1.0.1", package_path(MODEL, "1.0.1"), (("1.9.3", package_path(MODEL, "1.9.3"), rid)))
            if shadow
            else ("1.9.3", package_path(MODEL, "1.9.3"), None)
        )
        res = up.update(MODEL)
        if shadow:
            assert (res.version, res.shadow) == ("1.0.1", "1.9.3")
            assert up.store.current_version(MODEL) == "1.0.1"
            assert load_package(profile / "models" / MODEL / "1.9.3").version == "1.9.3"
        else:
            assert (res.action, res.version, res.previous) == ("installed", "1.9.3", "1.0.1")
            assert up.store.current_version(MODEL) == "1.9.3"
        assert not (profile / "models" / MODEL / "1.9.0").exists()  # the other candidate: no
    finally:
        client.close()


def test_foreign_root_refused(live: LiveServer, tmp_path: Path) -> None:
    other = LiveServer(base_settings(tmp_path / "other"))  # different keys, never started
    try:
        publish(live, tmp_path, "1.0.1")
        up = ModelUpdater(live.url, trusted_root(other), tmp_path / "p")
        with pytest.raises(ModelUpdateError) as err:
            up.update(MODEL)
        assert err.value.reason == "signature"
        assert not (tmp_path / "p" / "models" / MODEL).exists()
    finally:
        other.state.engine.dispose()


def test_shipped_version_is_not_downloaded_again(live: LiveServer, tmp_path: Path) -> None:
    shipped = load_package(ZOO_DIR / MODEL).version
    publish(live, tmp_path, shipped)
    res = updater(live, tmp_path / "p").update(MODEL)
    assert (res.action, res.version) == ("up_to_date", shipped)
    assert not (tmp_path / "p" / "models" / MODEL).exists()


def test_signed_update_replaces_the_shipped_model_in_the_catalog(
    installed: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.inference.catalog import load_catalog

    profile, _ = installed
    monkeypatch.setenv("DOCTORAI_HOME", str(profile))
    package = load_catalog().get(MODEL)
    assert package is not None
    assert (package.version, package.path) == ("1.0.1", profile / "models" / MODEL / "1.0.1")
    (profile / "models" / MODEL / "current").write_text("{not json")  # damaged pointer
    package = load_catalog().get(MODEL)
    assert package is not None
    assert package.path == ZOO_DIR / MODEL


def test_shadow_rollout_installs_the_candidate_beside_the_shown_version(
    live: LiveServer, tmp_path: Path, installed: tuple[Path, dict[str, str]]
) -> None:
    from backend.catalogue import promote

    profile, _ = installed
    publish(live, tmp_path, "1.9.1", channel=False)
    with live.state.sessions() as s:  # every workstation gets the candidate, in shadow
        rid = create_rollout(s, live.state.repo, MODEL, "1.0.1", "1.9.1", 1.0, shadow=True).id
    client = enrolled_client(live)
    try:
        up = updater(
            live, profile, assignment=rollout_assignment(client), access_token=client.access_token
        )
        res = up.update(MODEL)
        assert (res.version, res.shadow) == ("1.0.1", "1.9.1")
        assert "1.9.1 installed to run in shadow mode" in res.message
        store = up.store
        assert store.current_version(MODEL) == "1.0.1"  # what the radiologist sees is unchanged
        shadow = store.shadow(MODEL)
        assert shadow is not None
        assert (shadow.version, shadow.rollout_id) == ("1.9.1", rid)
        assert store.shadow_package_dirs() == [(profile / "models" / MODEL / "1.9.1", rid)]
        assert load_package(profile / "models" / MODEL / "1.9.1").version == "1.9.1"
        assert store.current_package_dirs() == [profile / "models" / MODEL / "1.0.1"]
        assert (
            updater(
                live,
                profile,
                assignment=rollout_assignment(client),
                access_token=client.access_token,
            )
            .update(MODEL)
            .action
            == "up_to_date"
        )
        # not enrolled / no assignment: no shadow run
        assert updater(live, tmp_path / "other").update(MODEL).shadow is None

        with live.state.sessions() as s:
            promote(s, live.state.repo, rid)
        res = updater(
            live, profile, assignment=rollout_assignment(client), access_token=client.access_token
        ).update(MODEL)
        assert (res.action, res.version, res.previous, res.shadow) == (
            "installed",
            "1.9.1",
            "1.0.1",
            None,
        )
        assert store.shadow(MODEL) is None
        assert store.shadow_package_dirs() == []
        assert sorted(p.name for p in (profile / "models" / MODEL).iterdir() if p.is_dir()) == [
            "1.0.1",
            "1.9.1",
        ]
    finally:
        client.close()


def test_shadow_candidate_failing_its_selftest_is_refused(
    live: LiveServer, tmp_path: Path, installed: tuple[Path, dict[str, str]]
) -> None:
    from backend.catalogue import rollback

    profile, before = installed
    publish(live, tmp_path, "1.9.2", channel=False, break_selftest=True)
    with live.state.sessions() as s:
        rid = create_rollout(s, live.state.repo, MODEL, "1.0.1", "1.9.2", 1.0, shadow=True).id
    client = enrolled_client(live)
    try:
        up = updater(
            live, profile, assignment=rollout_assignment(client), access_token=client.access_token
        )
        _assert_refused(up, "package", "failed its self-test", profile, before)
        assert up.store.shadow(MODEL) is None
        with live.state.sessions() as s:
            rollback(s, live.state.repo, rid)
        assert (
            updater(
                live,
                profile,
                assignment=rollout_assignment(client),
                access_token=client.access_token,
            )
            .update(MODEL)
            .action
            == "up_to_date"
        )
    finally:
        client.close()
