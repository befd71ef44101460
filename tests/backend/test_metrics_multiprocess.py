"""Defect 9: ``serve --workers 2``: one scrape of /metrics counts what both workers served
(prometheus_client multiprocess files), stays behind its token, and forgets a killed worker's
live series while keeping its counts."""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.backend.served import SECRET, backend_env, serve

TOKEN = "scrape-token-for-the-multiprocess-test-0123"
N = 40


def _scrape(url: str) -> str:
    r = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    return r.text


def _unmatched_404s(text: str) -> float:
    m = re.search(
        r'^doctorai_http_requests_total\{method="GET",route="unmatched",status="404"\} (\S+)$',
        text,
        re.M,
    )
    return float(m.group(1)) if m else 0.0


def _worker_pids(text: str) -> set[int]:
    return {
        int(p) for p in re.findall(r'^doctorai_backend_processes\{pid="(\d+)"\} 1\.0$', text, re.M)
    }


def _per_worker_404s(folder: Path) -> dict[str, float]:
    """Each worker's own count, read from its file (what the scrape adds up)."""
    from prometheus_client.mmap_dict import MmapedDict

    out: dict[str, float] = {}
    for f in folder.glob("counter_*.db"):
        m = MmapedDict(str(f), read_mode=True)  # type: ignore[no-untyped-call]
        try:
            out[f.name] = sum(
                v
                for k, v, _ts in m.read_all_values()  # type: ignore[no-untyped-call]
                if '"unmatched"' in k and '"404"' in k
            )
        finally:
            m.close()  # type: ignore[no-untyped-call]
    return out


def test_one_scrape_counts_every_worker(tmp_path: Path) -> None:
    env = backend_env(DOCTORAI_BACKEND_JWT_SECRET=SECRET, DOCTORAI_BACKEND_METRICS_TOKEN=TOKEN)
    with serve(tmp_path / "d", "--workers", "2", env=env) as url:
        assert httpx.get(f"{url}/metrics").status_code == 401  # still protected
        deadline = time.monotonic() + 30
        while len(_worker_pids(_scrape(url))) < 2:  # both workers up and counted
            assert time.monotonic() < deadline, _scrape(url)
            time.sleep(0.3)
        # a new connection each, 8 at a time: the kernel hands them to whichever worker is free
        with ThreadPoolExecutor(8) as pool:
            codes = list(
                pool.map(lambda i: httpx.get(f"{url}/no-such-page-{i}").status_code, range(N))
            )
        assert codes == [404] * N
        per_worker = _per_worker_404s(tmp_path / "d" / "metrics-multiproc")
        assert sum(per_worker.values()) == N
        assert len([n for n in per_worker.values() if n > 0]) == 2, per_worker  # both served
        texts = [_scrape(url) for _ in range(6)]  # whichever worker answers the scrape
        assert {_unmatched_404s(t) for t in texts} == {float(N)}
        pids = _worker_pids(texts[-1])
        assert len(pids) == 2
        assert "device" not in texts[-1]

        victim = min(pids)
        os.kill(victim, signal.SIGKILL)  # uvicorn's supervisor starts a new worker
        deadline = time.monotonic() + 30
        while True:
            text = _scrape(url)
            now = _worker_pids(text)
            if victim not in now and len(now) == 2:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.3)
        assert _unmatched_404s(text) == float(N)  # the dead worker's counts stay
