"""Enrolment that is safe to retry (issue 19, defect 2) and enrolment codes IT can use on N
machines (fleet and operations).

The workstation sends a secret nonce with the code. The same (code, nonce) again returns the
same device id and secret; a different nonce with a used-up code is still refused. Behind a
proxy that loses answers after the server consumed the code, every workstation still enrols,
with no orphan devices and no burnt codes.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from backend.auth import sha256_hex
from backend.db import Device, EnrolCode, Enrolment
from core.sync.client import SyncClient
from core.sync.credentials import CredentialStore
from core.sync.errors import TransientError
from tests.backend import pg
from tests.backend.conftest import LiveServer
from tests.backend.resetting_proxy import ResettingProxy
from tests.backend.two_process import Fleet, backend_processes

_pg_reason = pg.unavailable_reason()
needs_pg = pytest.mark.skipif(_pg_reason is not None, reason=_pg_reason or "")


@pytest.fixture(autouse=True)
def _keyring_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    import keyring.core

    keyring.core._keyring_backend = None


def _enrol(api: str, code: str, nonce: str | None, label: str = "ws") -> httpx.Response:
    body = {"code": code, "label": label}
    if nonce is not None:
        body["nonce"] = nonce
    return httpx.post(f"{api}/enrol", json=body, timeout=30)


def test_a_retry_with_the_same_nonce_returns_the_same_credentials(server: LiveServer) -> None:
    code, nonce = server.enrol_code(), secrets.token_urlsafe(32)
    first = _enrol(server.api, code, nonce)
    assert first.status_code == 200, first.text
    again = _enrol(server.api, code, nonce)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    # the credentials work
    creds = {k: first.json()[k] for k in ("device_id", "device_secret")}
    assert httpx.post(f"{server.api}/token", json=creds).status_code == 200
    # another workstation with the same (used) code is refused, with or without a nonce
    other = _enrol(server.api, code, secrets.token_urlsafe(32))
    assert other.status_code == 401
    assert other.json()["error"]["code"] == "enrol_code_used"
    assert _enrol(server.api, code, None).json()["error"]["code"] == "enrol_code_used"
    with server.state.sessions() as s:
        row = s.get(EnrolCode, sha256_hex(code))
        assert row is not None
        assert row.uses == 1
        made = s.scalars(select(Enrolment.device_id).where(Enrolment.code_hash == row.code_hash))
        assert list(made) == [first.json()["device_id"]]  # one device, not one per attempt


def test_a_weak_nonce_is_refused(server: LiveServer) -> None:
    r = _enrol(server.api, server.enrol_code(), "short")
    assert r.status_code == 422


def test_the_same_enrolment_racing_itself_makes_one_device(server: LiveServer) -> None:
    """A retry sent while the first attempt is still being processed gets the same answer."""
    for _ in range(10):
        code, nonce = server.enrol_code(), secrets.token_urlsafe(32)
        out: list[httpx.Response] = []
        barrier = threading.Barrier(3)

        def go(
            code: str = code,
            nonce: str = nonce,
            barrier: threading.Barrier = barrier,
            out: list[httpx.Response] = out,
        ) -> None:
            barrier.wait()
            out.append(_enrol(server.api, code, nonce))

        threads = [threading.Thread(target=go) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r.status_code for r in out] == [200, 200, 200], [r.text for r in out]
        assert len({r.json()["device_id"] for r in out}) == 1
        assert len({r.json()["device_secret"] for r in out}) == 1


def _upstream(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    if _pg_reason is not None:
        pytest.skip(_pg_reason)
    with backend_processes(tmp_path_factory.mktemp("enrol")) as f:
        yield f


@needs_pg
def test_fifty_workstations_enrol_behind_a_proxy_that_loses_answers(
    fleet: Fleet, tmp_path: Path
) -> None:
    """Two backend processes behind a round-robin proxy that cuts every third connection's
    answer after its first bytes: before, 7 of 50 workstations never enrolled (401
    enrol_code_used on the retry), leaving orphan devices and burnt codes."""
    proxy = ResettingProxy([_upstream(u) for u in fleet.urls], cut=lambda n: n % 3 == 1)
    codes = [fleet.enrol_code() for _ in range(50)]
    got: dict[str, str] = {}
    try:
        for i, code in enumerate(codes):
            client = SyncClient(proxy.url, CredentialStore(f"{proxy.url}/ws{i}"), timeout=10)
            client.enrol_backoff_s = 0.05
            try:
                creds = client.enrol(code, label=f"ws{i}")
            finally:
                client.close()
            assert client.credentials.device() == creds  # in the keyring
            got[code] = creds.device_id
            # the credentials work on either process
            r = httpx.post(
                f"{fleet.api(i % 2)}/token",
                json={"device_id": creds.device_id, "device_secret": creds.device_secret},
            )
            assert r.status_code == 200, r.text
    finally:
        proxy.close()
    print(f"50 enrolments, {proxy.cuts} answers cut by the proxy")
    assert proxy.cuts >= 15
    assert len(set(got.values())) == 50
    with fleet.state.sessions() as s:
        devices = set(s.scalars(select(Device.device_id).where(Device.label.like("ws%"))))
        assert devices == set(got.values())  # no orphan device
        for code_row in s.scalars(select(EnrolCode)):
            uses = list(
                s.scalars(
                    select(Enrolment.device_id).where(Enrolment.code_hash == code_row.code_hash)
                )
            )
            assert code_row.uses == len(uses) == 1  # no burnt code: its one use is a device
            assert uses[0] in devices


def test_an_enrolment_cut_short_by_a_restart_is_repeated_not_doubled(
    server: LiveServer, tmp_path: Path
) -> None:
    """Every answer lost until the workstation gives up (the app is closed); the next start
    enrols with the same code and gets the device the server made the first time."""
    host, port = _upstream(server.url)
    proxy = ResettingProxy([(host, port)], cut=lambda _n: True)
    code = server.enrol_code()
    store = CredentialStore(proxy.url)
    try:
        first = SyncClient(proxy.url, store, timeout=10)
        first.enrol_attempts, first.enrol_backoff_s = 2, 0.01
        with pytest.raises(TransientError):
            first.enrol(code, label="restarted")
        first.close()
        assert store.device() is None
        proxy.cut = lambda _n: False
        second = SyncClient(proxy.url, store, timeout=10)  # the app started again
        creds = second.enrol(code, label="restarted")
        second.close()
    finally:
        proxy.close()
    with server.state.sessions() as s:
        made = list(
            s.scalars(select(Enrolment.device_id).where(Enrolment.code_hash == sha256_hex(code)))
        )
    assert made == [creds.device_id]
    assert store.pending_enrolment(sha256_hex(code)[:16]) is None  # cleared once answered
