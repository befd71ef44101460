"""Backend admins sign in with password + TOTP (issue 15): each attack against a live server.

Admin endpoints refuse tokens without a second factor; password-only, replayed and wrong codes are
refused; wrong codes lock the account; a recovery code works once; an unknown name answers like
a wrong password (body and timing); no secret reaches a log, a response or the database in clear.
The sign-in also runs on PostgreSQL where a server can be started.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pyotp
import pytest
from sqlalchemy import update

from backend import admins
from backend.db import BackendAdmin, utcnow
from backend.ops import JsonFormatter
from tests.backend import pg
from tests.backend.conftest import LiveServer, base_settings

PASSWORD = "correct horse battery staple"
REPO = Path(__file__).resolve().parents[2]
CLI_SECRET = "cli-mfa-test-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def mfa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = base_settings(
        tmp_path_factory.mktemp("mfa"), admin_max_failures=3, admin_lockout_s=600
    )
    live = LiveServer(settings, with_keys=False).start()
    yield live
    live.stop()


class Admin:
    """An enrolled, confirmed admin: the TOTP secret as the authenticator app holds it."""

    def __init__(self, live: LiveServer, name: str) -> None:
        self.live, self.name = live, name
        keys = live.state.admin_keys
        with live.state.sessions() as s:
            uri = admins.create(s, keys, name, PASSWORD)
            totp = pyotp.parse_uri(uri)
            assert isinstance(totp, pyotp.TOTP)
            self.totp: pyotp.TOTP = totp
            self.secret = totp.secret
            # confirmed with the previous step's code, so the current one is still unused
            self.recovery = admins.confirm(s, keys, name, self.code(-1))

    def code(self, steps: int = 0) -> str:
        return str(self.totp.at(time.time() + steps * 30))

    def sign_in(self, code: str | None = None, **body: Any) -> httpx.Response:
        payload = {"name": self.name, "password": PASSWORD, "code": self.code(), **body}
        if code is not None:
            payload["code"] = code
        return httpx.post(f"{self.live.api}/admin/session", json=payload, timeout=30)


def _alerts(live: LiveServer, name: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{live.api}/admin/security-alerts", headers=live.admin_headers())
    assert r.status_code == 200
    return [a for a in r.json() if a["device_id"] == f"admin:{name}"]


def _failed(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "admin_sign_in_failed"


def test_admin_tokens_without_a_second_factor_are_refused(mfa: LiveServer) -> None:
    url = f"{mfa.api}/admin/security-alerts"
    tokens = mfa.state.tokens
    for amr in (None, ["pwd"], ["break-glass"], ["cli"]):
        bare = tokens.access("mallory", role="admin", amr=amr)
        for target in (url, f"{mfa.url}/metrics"):
            r = httpx.get(target, headers={"Authorization": f"Bearer {bare}"})
            assert r.status_code == 403, (amr, target)
            assert r.json()["error"]["code"] == "admin_mfa_required"
            assert "/admin/session" in r.json()["error"]["message"]
    good = tokens.access("alice", role="admin", amr=["pwd", "otp"])
    assert httpx.get(url, headers={"Authorization": f"Bearer {good}"}).status_code == 200
    # a device token claiming otp is still no admin token
    dev = tokens.access("dev-1", amr=["pwd", "otp"])
    r = httpx.get(url, headers={"Authorization": f"Bearer {dev}"})
    assert r.json()["error"]["code"] == "forbidden"


def test_sign_in_with_totp_gives_a_short_lived_otp_token(mfa: LiveServer) -> None:
    a = Admin(mfa, "alice")
    r = a.sign_in()
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["amr"] == ["pwd", "otp"]
    assert body["expires_in"] == 900
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["role"] == "admin"
    assert claims["sub"] == "alice"
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["exp"] - claims["iat"] == 900
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert httpx.get(f"{mfa.api}/admin/security-alerts", headers=auth).status_code == 200
    ok = [x for x in _alerts(mfa, "alice") if x["code"] == "admin_sign_in"]
    with mfa.state.sessions() as s:  # disabling alice stops her token at once
        admins.disable(s, "alice")
    r = httpx.get(f"{mfa.api}/admin/security-alerts", headers=auth)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "admin_disabled"
    assert ok[0]["detail"] == {
        "admin": "alice",
        "address": "127.0.0.1",
        "reason": "ok",
        "method": "totp",
    }


def test_password_only_and_wrong_codes_refused(mfa: LiveServer) -> None:
    a = Admin(mfa, "bob")
    no_code = httpx.post(
        f"{mfa.api}/admin/session", json={"name": "bob", "password": PASSWORD}, timeout=30
    )
    _failed(no_code)
    _failed(a.sign_in(code=""))
    assert a.sign_in().status_code == 200  # a success resets the failure count ...
    wrong = f"{(int(a.code(1)) + 1) % 1_000_000:06d}"
    _failed(a.sign_in(code=wrong))
    _failed(a.sign_in(code="ABCDE-FGHJK"))  # not one of bob's recovery codes
    assert a.sign_in(code=a.code(1)).status_code == 200  # ... so 4 failures did not lock bob
    reasons = [x["detail"].get("reason") for x in _alerts(mfa, "bob")]
    assert reasons.count("no_code") == 2
    assert "wrong_code" in reasons
    assert "wrong_recovery_code" in reasons


def test_replayed_code_refused_also_when_racing(mfa: LiveServer) -> None:
    a = Admin(mfa, "carol")
    code = a.code()
    assert a.sign_in(code=code).status_code == 200
    _failed(a.sign_in(code=code))
    assert "replayed_code" in [x["detail"].get("reason") for x in _alerts(mfa, "carol")]
    # an older step's code (still inside the window) is a replay too
    _failed(a.sign_in(code=a.code(-1)))

    # eight requests at once with one fresh code: exactly one wins
    fresh = a.code(+1)
    answers: list[int] = []

    def go() -> None:
        answers.append(a.sign_in(code=fresh).status_code)

    with mfa.state.sessions() as s:  # the replays above counted; start the race from zero
        s.execute(
            update(BackendAdmin).where(BackendAdmin.name == "carol").values(failed_attempts=0)
        )
        s.commit()
    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200] + [401] * 7


def test_wrong_codes_lock_the_account(mfa: LiveServer) -> None:
    a = Admin(mfa, "dave")
    for i in range(3):  # admin_max_failures=3
        _failed(a.sign_in(code=f"{(int(a.code()) + 1 + i) % 1_000_000:06d}"))
    locked = a.sign_in()  # the right password and code, but locked
    _failed(locked)
    codes = [x["code"] for x in _alerts(mfa, "dave")]
    assert "admin_locked_out" in codes
    assert _alerts(mfa, "dave")[0]["detail"]["reason"] == "locked"
    # the lockout ends (moved into the past here): the same code now works, the account is unlocked
    with mfa.state.sessions() as s:
        s.execute(
            update(BackendAdmin)
            .where(BackendAdmin.name == "dave")
            .values(locked_until=utcnow() - timedelta(seconds=1))
        )
        s.commit()
    assert a.sign_in().status_code == 200


def test_recovery_code_works_once(mfa: LiveServer) -> None:
    a = Admin(mfa, "erin")
    assert len(a.recovery) == 10
    assert len(set(a.recovery)) == 10
    first, second = a.recovery[0], a.recovery[1]
    r = a.sign_in(code=first)
    assert r.status_code == 200
    assert r.json()["amr"] == ["pwd", "otp"]
    _failed(a.sign_in(code=first))
    # typed without the dash and in lower case: the same code
    assert a.sign_in(code=second.replace("-", "").lower()).status_code == 200
    _failed(a.sign_in(code=second))
    used = [x["detail"] for x in _alerts(mfa, "erin") if x["detail"].get("method") == "recovery"]
    assert [d["recovery_codes_left"] for d in used] == [8, 9]  # newest first
    # new codes replace the old ones
    with mfa.state.sessions() as s:
        fresh = admins.new_recovery_codes(s, mfa.state.admin_keys, "erin")
    _failed(a.sign_in(code=a.recovery[2]))
    # three failures in a row lock erin: clear them so the new code is what is tested
    with mfa.state.sessions() as s:
        s.execute(
            update(BackendAdmin)
            .where(BackendAdmin.name == "erin")
            .values(failed_attempts=0, locked_until=None)
        )
        s.commit()
    assert a.sign_in(code=fresh[0]).status_code == 200


def _timed(body: dict[str, str], url: str) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    r = httpx.post(url, json=body, timeout=30)
    return r, time.perf_counter() - start


def test_unknown_name_and_wrong_password_answer_the_same(mfa: LiveServer) -> None:
    a = Admin(mfa, "frank")
    url = f"{mfa.api}/admin/session"
    unknown: list[float] = []
    wrong: list[float] = []
    answers = set()
    for _ in range(7):
        for name, out in (("nobody-here", unknown), ("frank", wrong)):
            r, dt = _timed({"name": name, "password": "wrong password!", "code": a.code()}, url)
            answers.add((r.status_code, r.text))
            out.append(dt)
    Admin(mfa, "grace")
    with mfa.state.sessions() as s:
        admins.disable(s, "grace")  # disabled
        admins.create(s, mfa.state.admin_keys, "heidi", PASSWORD)  # never confirmed
    for name in ("grace", "heidi", "Frank", "a\nb"):
        r, _ = _timed({"name": name, "password": PASSWORD, "code": a.code()}, url)
        answers.add((r.status_code, r.text))
    assert len(answers) == 1, answers
    ratio = statistics.median(unknown) / statistics.median(wrong)
    print(
        f"\nadmin sign-in median: unknown name {statistics.median(unknown) * 1000:.0f} ms, "
        f"wrong password {statistics.median(wrong) * 1000:.0f} ms (ratio {ratio:.2f})"
    )
    assert 0.6 < ratio < 1.6


def test_no_secret_in_logs_responses_alerts_or_database(
    mfa: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    a = Admin(mfa, "ivan")
    texts = [a.sign_in().text, a.sign_in(code=a.recovery[0]).text]
    texts += [a.sign_in(code="123456", password="not the password").text]
    texts.append(httpx.get(f"{mfa.api}/admin/security-alerts", headers=mfa.admin_headers()).text)
    fmt = JsonFormatter()
    logged = "\n".join(fmt.format(r) for r in caplog.records)
    assert "admin sign-in" in logged
    assert "ivan" in logged
    secrets_ = [a.secret, PASSWORD, *a.recovery, *(c.replace("-", "") for c in a.recovery)]
    for text in [*texts, logged]:
        for secret in secrets_:
            assert secret not in text
    stored = b"".join(
        p.read_bytes() for p in mfa.settings.data_dir.glob("backend.sqlite3*") if p.is_file()
    )
    assert b"ivan" in stored  # the row is there ...
    for secret in secrets_:
        assert secret.encode() not in stored  # ... its secrets are not, in clear


def test_malformed_sign_in_bodies_are_4xx(mfa: LiveServer) -> None:
    url = f"{mfa.api}/admin/session"
    bad: list[Any] = ["\x00", "a\x00b", "\ud800", "A" * 5000, None, 5, [], {}]
    for field in ("name", "password", "code"):
        for value in bad:
            body = {"name": "alice", "password": PASSWORD, "code": "123456", field: value}
            raw = json.dumps(body)  # ASCII escapes: a lone surrogate reaches the server
            r = httpx.post(url, content=raw, headers={"Content-Type": "application/json"})
            assert 400 <= r.status_code < 500, (field, value, r.status_code)
            assert r.json()["error"]["code"]


def test_sign_in_is_rate_limited_per_address(tmp_path: Path) -> None:
    live = LiveServer(
        base_settings(tmp_path, rate_per_s=0.01, rate_burst=3), with_keys=False
    ).start()
    try:
        body = {"name": "nobody", "password": "guess guess guess", "code": "123456"}
        got = [httpx.post(f"{live.api}/admin/session", json=body).status_code for _ in range(5)]
        assert got == [401, 401, 401, 429, 429]
    finally:
        live.stop()


def test_mfa_off_accepts_plain_admin_tokens(tmp_path: Path) -> None:
    live = LiveServer(base_settings(tmp_path, admin_mfa=False), with_keys=False).start()
    try:
        plain = live.state.tokens.access("ops", role="admin")
        r = httpx.get(
            f"{live.api}/admin/security-alerts", headers={"Authorization": f"Bearer {plain}"}
        )
        assert r.status_code == 200
    finally:
        live.stop()


def _cli(data: Path, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend", *args, "--data-dir", str(data)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "DOCTORAI_BACKEND_JWT_SECRET": CLI_SECRET, **env},
        timeout=60,
        check=False,
    )


def test_cli_admin_lifecycle_then_sign_in(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = _cli(data, "admin", "add", "root-ops", stdin=f"{PASSWORD}\nsomething else\n")
    assert r.returncode == 2
    assert "the two passwords differ" in r.stderr
    r = _cli(data, "admin", "add", "root-ops", stdin="short\nshort\n")
    assert r.returncode == 2
    assert "too short" in r.stderr
    r = _cli(data, "admin", "add", "Root Ops", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert r.returncode == 2
    assert "not allowed" in r.stderr
    r = _cli(data, "admin", "add", "root-ops", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert r.returncode == 0, r.stderr
    uri = next(line for line in r.stdout.splitlines() if line.startswith("otpauth://"))
    assert "█" in r.stdout or "▀" in r.stdout  # the terminal QR code
    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP)
    r = _cli(data, "admin", "add", "root-ops", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert r.returncode == 2
    assert "already exists" in r.stderr

    r = _cli(data, "admin", "confirm", "root-ops", "000000" if totp.now() != "000000" else "1")
    assert r.returncode == 2
    assert "does not match" in r.stderr
    r = _cli(data, "admin", "confirm", "root-ops", totp.at(time.time() - 30))
    assert r.returncode == 0, r.stderr
    recovery = r.stdout.splitlines()[1:]
    assert len(recovery) == 10
    r = _cli(data, "admin", "recovery-codes", "root-ops")
    assert r.returncode == 0
    assert "old ones no longer work" in r.stdout
    fresh = r.stdout.splitlines()[1:]

    refused = _cli(data, "admin-token")
    assert refused.returncode == 2
    assert "admin-token is off" in refused.stderr
    assert refused.stdout == ""
    glass = _cli(data, "admin-token", "--name", "ops", DOCTORAI_BACKEND_ADMIN_BREAK_GLASS="1")
    assert glass.returncode == 0
    assert "break-glass" in glass.stderr
    glass_token = glass.stdout.strip()

    settings = base_settings(data, jwt_secret=CLI_SECRET)
    live = LiveServer(settings, with_keys=False).start()
    try:
        alerts_url = f"{live.api}/admin/security-alerts"
        # the break-glass token is refused by a server that does not allow break-glass
        gr = httpx.get(alerts_url, headers={"Authorization": f"Bearer {glass_token}"})
        assert gr.json()["error"]["code"] == "admin_mfa_required"
        url = f"{live.api}/admin/session"
        _failed(
            httpx.post(url, json={"name": "root-ops", "password": PASSWORD, "code": recovery[0]})
        )
        ok = httpx.post(url, json={"name": "root-ops", "password": PASSWORD, "code": totp.now()})
        assert ok.status_code == 200, ok.text
        token = ok.json()["access_token"]
        listed = httpx.get(alerts_url, headers={"Authorization": f"Bearer {token}"}).json()
        codes = [x["code"] for x in listed if x["device_id"] == "admin:root-ops"]
        for expected in ("admin_added", "admin_confirmed", "admin_recovery_codes_issued"):
            assert expected in codes
        assert "admin_break_glass_token" in [x["code"] for x in listed]
    finally:
        live.stop()
    assert _cli(data, "admin", "disable", "root-ops").returncode == 0
    live = LiveServer(settings, with_keys=False).start()
    try:
        body = {"name": "root-ops", "password": PASSWORD, "code": fresh[0]}
        _failed(httpx.post(f"{live.api}/admin/session", json=body))
    finally:
        live.stop()
    assert (
        _cli(data, "admin", "disable", "nobody")
        .stderr.strip()
        .endswith("no backend admin named 'nobody'")
    )


@pytest.mark.skipif(pg.unavailable_reason() is not None, reason=pg.unavailable_reason() or "")
def test_sign_in_replay_and_lockout_on_postgres(tmp_path: Path) -> None:
    with pg.postgres_server() as url:
        settings = base_settings(tmp_path, db_url=url, admin_max_failures=2)
        live = LiveServer(settings, with_keys=False).start()
        try:
            assert live.state.engine.dialect.name == "postgresql"
            a = Admin(live, "pat")
            code = a.code()
            assert a.sign_in(code=code).status_code == 200
            _failed(a.sign_in(code=code))  # replay (1st failure)
            assert a.sign_in(code=a.recovery[0]).status_code == 200
            _failed(a.sign_in(code="000000" if a.code(1) != "000000" else "111111"))
            _failed(a.sign_in(code="ABCDE-FGHJK"))  # 2nd failure: locked
            _failed(a.sign_in(code=a.code(1)))
            assert "admin_locked_out" in [x["code"] for x in _alerts(live, "pat")]
        finally:
            live.stop()
