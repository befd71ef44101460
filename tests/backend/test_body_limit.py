"""The 32 MiB body limit holds for chunked bodies too (issue 15, hole 7).

The server runs in its own process so its resident memory can be watched while an
unauthenticated client streams a body of several hundred MiB, with no Content-Length, to the
enrolment endpoint.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from backend.app import MAX_BODY_BYTES
from core.sync.wire import API_PREFIX

ROOT = Path(__file__).resolve().parents[2]
ATTACK_BYTES = 400 * 2**20
CHUNK = b"A" * 2**20


class Served:
    def __init__(self, proc: subprocess.Popen[str], info: dict[str, Any]) -> None:
        self.proc, self.url, self.codes = proc, str(info["url"]), list(info["codes"])
        self.api = self.url + API_PREFIX
        self.process = psutil.Process(int(info["pid"]))

    def rss(self) -> int:
        return int(self.process.memory_info().rss)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.backend.serve_live", str(tmp_path / "data")],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "the server process did not start"
        yield Served(proc, json.loads(line))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class PeakRss:
    """Samples a process's RSS every few milliseconds in a thread; ``peak`` is the highest."""

    def __init__(self, served: Served) -> None:
        self.served, self.peak = served, served.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.served.rss())
            time.sleep(0.005)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.served.rss())


def test_chunked_body_over_the_limit_is_refused_early_and_never_buffered(
    served: Served,
) -> None:
    sent = 0

    def body() -> Iterator[bytes]:
        """A JSON enrolment request whose code is ATTACK_BYTES long, made on the fly."""
        nonlocal sent
        yield b'{"label": "x", "code": "'
        while sent < ATTACK_BYTES:
            sent += len(CHUNK)
            yield CHUNK
        yield b'"}'

    # warm up (imports, first request) so the baseline is the server at rest
    assert httpx.get(f"{served.url}/healthz").status_code == 200
    before = served.rss()
    with PeakRss(served) as rss:
        start = time.monotonic()
        r = httpx.post(
            f"{served.api}/enrol",
            content=body(),
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        elapsed = time.monotonic() - start
    grown = rss.peak - before
    print(
        f"chunked {ATTACK_BYTES >> 20} MiB: status {r.status_code} after {sent >> 20} MiB sent, "
        f"{elapsed:.2f} s; server RSS {before >> 20} -> peak {rss.peak >> 20} MiB "
        f"(+{grown >> 20} MiB)"
    )
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in r.request.headers
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"
    assert sent < ATTACK_BYTES // 4, f"413 came only after {sent >> 20} MiB"
    assert grown < 100 * 2**20, f"server RSS grew by {grown >> 20} MiB"

    # the server is still there, and ordinary requests (chunked or not) still work
    small = [b'{"code": "', served.codes[0].encode(), b'", "label": "chunked"}']
    ok = httpx.post(
        f"{served.api}/enrol",
        content=iter(small),
        headers={"Content-Type": "application/json"},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["device_id"]
    ok = httpx.post(f"{served.api}/enrol", json={"code": served.codes[1], "label": "plain"})
    assert ok.status_code == 200, ok.text


def test_a_body_just_under_the_limit_streamed_in_chunks_is_accepted(served: Served) -> None:
    """The limit counts bytes, not chunks: 32 MiB less a little, chunked, reaches the route
    (which then refuses it for what it is, a too long code: 422, not 413)."""
    pad = MAX_BODY_BYTES - 64

    def body() -> Iterator[bytes]:
        yield b'{"code": "'
        left = pad
        while left:
            n = min(left, len(CHUNK))
            left -= n
            yield CHUNK[:n]
        yield b'"}'

    r = httpx.post(
        f"{served.api}/enrol",
        content=body(),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_request"
